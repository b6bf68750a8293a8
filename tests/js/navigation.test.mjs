import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { postForm, progressText, queueAfter } from "../../static/js/navigation.js";

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

describe("the header and the queue after a move in place", () => {
  test("progressText writes what review.html writes", () => {
    assert.equal(progressText({ k: 2, n: 4, done: 1, skipped: 0 }, null), "Image 2 of 4");
    assert.equal(progressText({ k: null, n: 4, done: 3, skipped: 1 }, null), "3 of 4 done");
    assert.equal(progressText({ k: 3, n: 9, done: 1, skipped: 1 }, "skipped"), "Image 3 of 9 · skipped images");
    assert.equal(progressText(undefined, null), null, "no progress: the header stays as it is");
  });

  test("queueAfter names the skipped queue after the image now under review", () => {
    const base = "http://example.test/images/5/review/?queue=skipped";
    assert.equal(
      queueAfter("/projects/3/review/next/?status=skipped&after=5", 9, base),
      "/projects/3/review/next/?status=skipped&after=9",
    );
    const plain = "/projects/3/review/next/?status=skipped";
    assert.equal(queueAfter(plain, 9, base), `${plain}&after=9`);
    assert.equal(queueAfter(null, 9, base), null, "not in the skipped queue: none");
  });
});
