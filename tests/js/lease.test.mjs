import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { LeaseTimer } from "../../static/js/lease.js";

function element() {
  const classes = new Set();
  return {
    hidden: true,
    textContent: "",
    title: "",
    classes,
    classList: { toggle: (name, on) => (on ? classes.add(name) : classes.delete(name)) },
  };
}

describe("LeaseTimer", () => {
  test("shows the minutes left, warns once when the hold runs out, and a saved write renews it", () => {
    let now = 1_700_000_000_000;
    const warnings = [];
    const el = element();
    const lease = new LeaseTimer({ element: el, seconds: 600, notify: (text) => warnings.push(text), now: () => now });
    lease.render();
    assert.equal(el.hidden, false);
    assert.equal(el.textContent, "· yours for 10 min");
    now += 601_000;
    lease.render();
    lease.render();
    assert.equal(el.textContent, "· hold expired");
    assert.ok(el.classes.has("expired"));
    assert.equal(warnings.length, 1, "warned once");
    assert.match(warnings[0], /hold on this image has run out/);
    lease.renewed();
    assert.equal(el.textContent, "· yours for 10 min");
    assert.equal(el.classes.has("expired"), false);
    now += 601_000;
    lease.render();
    assert.equal(warnings.length, 2, "warned again after the renewed hold ran out");
  });

  test("no lease (a read-only page): nothing shown", () => {
    const el = element();
    const lease = new LeaseTimer({ element: el, seconds: 0, notify: () => assert.fail("no warning") });
    lease.render();
    lease.renewed();
    assert.equal(el.hidden, true);
    assert.equal(el.textContent, "");
  });
});
