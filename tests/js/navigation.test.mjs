import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { postForm } from "../../static/js/navigation.js";

/** Just enough of a document for postForm: elements that keep their fields and children. */
function fakeDocument() {
  const make = (tag) => ({
    tag,
    children: [],
    submitted: 0,
    append(...nodes) {
      this.children.push(...nodes);
    },
    submit() {
      this.submitted++;
    },
  });
  return { body: make("body"), createElement: make };
}

describe("postForm: going on by a POST", () => {
  test("submits a hidden POST form to the URL with the CSRF token, once", () => {
    const doc = fakeDocument();
    const form = postForm("/projects/3/review/", "tok-123", doc);
    assert.deepEqual(doc.body.children, [form]);
    assert.equal(form.tag, "form");
    assert.equal(form.method, "post");
    assert.equal(form.action, "/projects/3/review/");
    assert.equal(form.hidden, true);
    assert.equal(form.submitted, 1);
    assert.equal(form.children.length, 1);
    const [token] = form.children;
    assert.deepEqual(
      { tag: token.tag, type: token.type, name: token.name, value: token.value },
      { tag: "input", type: "hidden", name: "csrfmiddlewaretoken", value: "tok-123" },
    );
  });
});
