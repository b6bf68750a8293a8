import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { History } from "../../static/js/history.js";

const entry = (key, what = "edit") => ({ kind: "patch", key, before: {}, after: {}, what });

describe("History", () => {
  test("undo applies the last entry backwards and redo forwards", () => {
    const history = new History();
    const a = history.record(entry(1, "a"));
    const b = history.record(entry(2, "b"));
    const applied = [];
    const apply = (e, backwards) => applied.push([e.what, backwards]);
    assert.deepEqual(history.undo({ apply }), { status: "done", entry: b });
    assert.deepEqual(history.undo({ apply }), { status: "done", entry: a });
    assert.deepEqual(history.undo({ apply }), { status: "empty", entry: null });
    assert.deepEqual(history.redo({ apply }), { status: "done", entry: a });
    assert.deepEqual(applied, [
      ["b", true],
      ["a", true],
      ["a", false],
    ]);
    assert.equal(history.canUndo, true);
    assert.equal(history.canRedo, true);
  });

  test("a read-only page takes nothing from either stack and applies nothing", () => {
    const history = new History();
    history.record(entry(1, "a"));
    history.record(entry(2, "b"));
    history.undo({ apply: () => {} });
    const apply = () => assert.fail("nothing is applied on a read-only page");
    assert.deepEqual(history.undo({ editable: false, apply }), { status: "read-only", entry: null });
    assert.deepEqual(history.redo({ editable: false, apply }), { status: "read-only", entry: null });
    assert.deepEqual(
      history.undoStack.map((e) => e.what),
      ["a"],
    );
    assert.deepEqual(
      history.redoStack.map((e) => e.what),
      ["b"],
    );
  });

  test("a new edit clears what could be redone", () => {
    const history = new History();
    history.record(entry(1));
    history.undo({ apply: () => {} });
    assert.equal(history.canRedo, true);
    history.record(entry(2));
    assert.equal(history.canRedo, false);
  });

  test("keeps the last `limit` entries", () => {
    const history = new History({ limit: 3 });
    for (let key = 1; key <= 5; key++) history.record(entry(key));
    assert.deepEqual(
      history.undoStack.map((e) => e.key),
      [3, 4, 5],
    );
  });

  test("forget drops one entry from both stacks; forgetKey every entry of a record", () => {
    const history = new History();
    const a = history.record(entry(1, "a"));
    const b = history.record(entry(2, "b"));
    const c = history.record(entry(1, "c"));
    history.undo({ apply: () => {} }); // c on the redo stack
    history.forget(b);
    assert.deepEqual(history.undoStack, [a]);
    assert.deepEqual(history.redoStack, [c]);
    history.forgetKey(1);
    assert.equal(history.canUndo, false);
    assert.equal(history.canRedo, false);
  });

  test("an entry is on the redo stack while it is applied (a refusal can find it)", () => {
    const history = new History();
    const a = history.record(entry(1));
    history.undo({ apply: (e) => assert.ok(history.redoStack.includes(e)) });
    assert.deepEqual(history.redoStack, [a]);
  });
});
