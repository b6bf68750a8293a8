import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ReviewState, fromServer, pick } from "../../static/js/state.js";
import { pageData } from "./support.mjs";

const ids = (records) => records.map((r) => r.id);

describe("ReviewState", () => {
  test("model proposals come first, most confident first, then the rest", () => {
    const state = new ReviewState(pageData());
    assert.deepEqual(ids(state.records), [2, 3, 1, 4]);
    assert.deepEqual(
      state.records.map((r) => r.key),
      [2, 3, 1, 4],
      "keys in the server's order",
    );
    assert.equal(state.byKey.get(3).id, 3);
    assert.equal(state.activeClassId, 10);
  });

  test("proposals under their class's threshold are hidden; decided ones are not", () => {
    const state = new ReviewState(pageData());
    // cup (class 11) has its own 0.5: its 0.45 proposal is hidden; cat's 0.4 is above 0.35.
    assert.deepEqual(ids(state.visible), [2, 1, 4]);
    assert.deepEqual(state.counts(), { shown: 3, proposed: 2, below: 1, accepted: 1, rejected: 0 });
    state.setThreshold("all", 0.5);
    state.refreshVisible();
    assert.deepEqual(ids(state.visible), [2, 4]);
    assert.equal(state.scopeThreshold("all"), 0.5);
    state.setThreshold(11, 0.1);
    state.refreshVisible();
    assert.deepEqual(ids(state.visible), [2, 3, 4]);
    assert.equal(state.scopeThreshold("11"), 0.1);
  });

  test("rejected ones show only when asked; deleted ones never", () => {
    const state = new ReviewState(pageData());
    state.byKey.get(2).state = "rejected";
    state.byKey.get(4).deleted = true;
    state.refreshVisible();
    assert.deepEqual(ids(state.visible), [1]);
    state.showRejected = true;
    state.refreshVisible();
    assert.deepEqual(ids(state.visible), [2, 1]);
    assert.equal(state.counts().rejected, 1);
  });

  test("a selection that is no longer visible is dropped", () => {
    const state = new ReviewState(pageData());
    state.selectedKey = 1;
    assert.equal(state.refreshVisible(), false);
    state.setThreshold("all", 0.8);
    assert.equal(state.refreshVisible(), true);
    assert.equal(state.selectedKey, null);
    assert.equal(state.selected, null);
  });

  test("stepKey walks the visible list and wraps", () => {
    const state = new ReviewState(pageData());
    assert.equal(state.stepKey(1), 2, "nothing selected: the first");
    assert.equal(state.stepKey(-1), 4, "nothing selected: the last");
    state.selectedKey = 4;
    assert.equal(state.stepKey(1), 2);
    state.selectedKey = 2;
    assert.equal(state.stepKey(-1), 4);
  });

  test("nextProposal finds the next undecided visible proposal, wrapping", () => {
    const state = new ReviewState(pageData());
    assert.deepEqual(state.nextProposal(2), { key: 1, found: true });
    state.byKey.get(2).state = "accepted";
    assert.deepEqual(state.nextProposal(1), { key: 1, found: false }, "none left: stay");
    state.byKey.get(1).state = "rejected";
    assert.deepEqual(state.nextProposal(1), { key: null, found: false }, "none left and hidden: nothing");
  });

  test("addRecord makes an accepted human record with a new key and no id", () => {
    const state = new ReviewState(pageData());
    const r = state.addRecord({ class_id: 12, box: [1, 2, 3, 4] });
    assert.equal(r.key, 5);
    assert.equal(r.id, null);
    assert.equal(r.state, "accepted");
    assert.equal(r.source, "human");
    assert.equal(state.byKey.get(5), r);
    assert.equal(state.records.at(-1), r);
  });

  test("class names and colours, with a fallback", () => {
    const state = new ReviewState(pageData());
    assert.equal(state.className(11), "cup");
    assert.equal(state.classColor(11), "#00ff00");
    assert.equal(state.className(99), "?");
    assert.equal(state.classColor(99), "#888888");
  });

  test("fromServer and pick", () => {
    const server = { id: 1, class_id: 2, box: ["1", "2", "3", "4"], source: "model", state: "proposed", version: 5 };
    const r = fromServer(server);
    assert.deepEqual(r.box, [1, 2, 3, 4]);
    assert.equal(r.mask, null);
    assert.equal(r.score, null);
    assert.equal(r.edited, false);
    assert.deepEqual(pick(r, ["id", "version"]), { id: 1, version: 5 });
  });
});
