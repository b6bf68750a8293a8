import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { byPosition, classCounts, listOrder, listRows } from "../../static/js/list-order.js";

let nextKey = 1;
const rec = (id, class_id, box, score = null) => ({ key: nextKey++, id, class_id, box, score });

describe("list order", () => {
  const a = rec(1, 10, [300, 10, 50, 40], 0.5); // top right
  const b = rec(2, 11, [10, 20, 50, 40], 0.9); // top left, a little lower: same line
  const c = rec(3, 10, [5, 200, 50, 40], 0.7); // second line
  const d = rec(null, 11, [400, 210, 30, 30]); // drawn, not saved yet: no score, no id
  const records = [a, b, c, d];
  const ids = (list) => list.map((r) => r.id);

  test("by score: most confident first, unscored last", () => {
    assert.deepEqual(ids(listOrder(records, { sort: "score" })), [2, 3, 1, null]);
  });

  test("by position: top-left reading order, boxes on one line left to right", () => {
    assert.deepEqual(ids(byPosition(records)), [2, 1, 3, null]);
    assert.deepEqual(ids(listOrder(records, { sort: "position" })), [2, 1, 3, null]);
  });

  test("grouped by class in the project's class order, sorted within each group", () => {
    assert.deepEqual(ids(listOrder(records, { sort: "score", group: true, classOrder: [10, 11] })), [3, 1, 2, null]);
    assert.deepEqual(ids(listOrder(records, { sort: "score", group: true, classOrder: [11, 10] })), [2, null, 3, 1]);
    assert.deepEqual(ids(listOrder(records, { sort: "position", group: true, classOrder: [10, 11] })), [1, 3, 2, null]);
  });

  test("the input is not reordered", () => {
    listOrder(records, { sort: "position", group: true, classOrder: [11, 10] });
    assert.deepEqual(ids(records), [1, 2, 3, null]);
  });
});

describe("list rows", () => {
  const ordered = [rec(3, 10, [0, 0, 1, 1]), rec(1, 10, [0, 0, 1, 1]), rec(2, 11, [0, 0, 1, 1])];

  test("flat: numbered rows 1..n", () => {
    const rows = listRows(ordered);
    assert.deepEqual(rows.map((r) => [r.kind, r.number]), [["item", 1], ["item", 2], ["item", 3]]);
  });

  test("grouped: a header with its count before each class's rows", () => {
    const rows = listRows(ordered, { group: true });
    assert.deepEqual(
      rows.map((r) => (r.kind === "group" ? `group ${r.classId} (${r.count})` : `#${r.number} ${r.record.id}`)),
      ["group 10 (2)", "#1 3", "#2 1", "group 11 (1)", "#3 2"],
    );
  });

  test("a folded group keeps its header and count; the numbers after it do not change", () => {
    const rows = listRows(ordered, { group: true, collapsed: new Set([10]) });
    assert.deepEqual(
      rows.map((r) => (r.kind === "group" ? `group ${r.classId} (${r.count})${r.collapsed ? " folded" : ""}` : `#${r.number}`)),
      ["group 10 (2) folded", "group 11 (1)", "#3"],
    );
  });

  test("counts per class", () => {
    assert.deepEqual([...classCounts(ordered)], [[10, 2], [11, 1]]);
  });
});
