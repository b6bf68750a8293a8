import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { LeaseTimer, claimOutcome } from "../../static/js/lease.js";
import { pageData } from "./support.mjs";

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

describe("claimOutcome: the page built from its claim's answer", () => {
  const got = pageData();

  test("200: the answer's fresh data, with the lease, editable", () => {
    const fresh = { ...pageData(), image: { id: 7 }, annotations: [], lease_seconds: 1800, lease_expires_at: "2026-11-29T23:30:00+00:00" };
    const outcome = claimOutcome(got, { status: 200, json: fresh });
    assert.equal(outcome.data, fresh);
    assert.equal(outcome.heldBy, null);
    assert.equal(outcome.locked, null);
  });

  test("409: the GET's data, read only, naming who holds the image, no lease timer", () => {
    const answer = {
      status: 409,
      json: { error: "bob is reviewing this image", held_by: "bob", lease_expires_at: "2026-11-29T23:10:00+00:00" },
    };
    const outcome = claimOutcome({ ...got, lease_seconds: 12 }, answer);
    assert.equal(outcome.heldBy, "bob");
    assert.equal(outcome.locked, null);
    assert.equal(outcome.data.held_by_other, "bob");
    assert.equal(outcome.data.lease_expires_at, "2026-11-29T23:10:00+00:00");
    assert.equal(outcome.data.lease_seconds, null);
    assert.equal(outcome.data.annotations, got.annotations);
  });

  test("409 without a name: someone else", () => {
    assert.equal(claimOutcome(got, { status: 409, json: null }).heldBy, "someone else");
  });

  test("a failed claim (an error, a refusal, a 200 without data): read only with the reason", () => {
    const cases = [
      [new Error("the server cannot be reached"), "the server cannot be reached"],
      [{ status: 404, json: { error: "No such image." } }, "No such image."],
      [{ status: 403, json: null }, "the server answered 403"],
      [{ status: 200, json: null }, "the server answered 200"],
    ];
    for (const [answer, why] of cases) {
      const outcome = claimOutcome(got, answer);
      assert.equal(outcome.heldBy, null);
      assert.match(outcome.locked, /^Read only: this image could not be taken for you/);
      assert.ok(outcome.locked.includes(`(${why})`), outcome.locked);
      assert.equal(outcome.data.lease_seconds, null);
      assert.equal(outcome.data.annotations, got.annotations);
    }
  });
});
