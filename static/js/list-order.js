// The side list's order, pure (no DOM): sort by score or by position (top-left reading order),
// optionally grouped by class (in the project's class order), and the rows the list draws
// (group headers with their counts, then the annotations, numbered in list order). The page
// puts its records in this order, so that Tab, "next proposal" after A / R, the list's numbers
// and the numbers drawn on the canvas all follow what the list shows.

/** Most confident first; records without a score (drawn, imported) after, oldest first. */
export function byScore(a, b) {
  const sa = a.score ?? -1;
  const sb = b.score ?? -1;
  return sb - sa || (a.id ?? Infinity) - (b.id ?? Infinity) || a.key - b.key;
}

/** Reading order: boxes in lines (a box whose top is above the middle of the line's first box
 * joins that line), lines top to bottom, left to right within a line. */
export function byPosition(records) {
  const byTop = [...records].sort((a, b) => a.box[1] - b.box[1] || a.box[0] - b.box[0] || a.key - b.key);
  const out = [];
  let line = [];
  let lineMiddle = -Infinity;
  const flush = () => {
    line.sort((a, b) => a.box[0] - b.box[0] || a.box[1] - b.box[1] || a.key - b.key);
    out.push(...line);
    line = [];
  };
  for (const r of byTop) {
    if (line.length && r.box[1] > lineMiddle) flush();
    if (!line.length) lineMiddle = r.box[1] + r.box[3] / 2;
    line.push(r);
  }
  flush();
  return out;
}

/** `records` in list order. sort: "score" | "position"; group: by class, in `classOrder` (class
 * ids; an unknown class last). */
export function listOrder(records, { sort = "score", group = false, classOrder = [] } = {}) {
  const sorted = sort === "position" ? byPosition(records) : [...records].sort(byScore);
  if (!group) return sorted;
  const rank = new Map(classOrder.map((id, i) => [id, i]));
  const place = (r) => rank.get(r.class_id) ?? classOrder.length;
  const at = new Map(sorted.map((r, i) => [r, i]));
  return sorted.sort((a, b) => place(a) - place(b) || at.get(a) - at.get(b));
}

/** The rows of the list for `ordered` records (already in list order): {kind: "group", classId,
 * count, collapsed} headers when grouped, and {kind: "item", record, number} rows (numbers
 * 1, 2, ... in list order, counted in collapsed groups too, so that they never change when a
 * group folds). */
export function listRows(ordered, { group = false, collapsed = new Set() } = {}) {
  const rows = [];
  let current = null;
  ordered.forEach((record, i) => {
    if (group && (current === null || current.classId !== record.class_id)) {
      current = { kind: "group", classId: record.class_id, count: 0, collapsed: collapsed.has(record.class_id) };
      rows.push(current);
    }
    if (current) current.count++;
    if (!current?.collapsed) rows.push({ kind: "item", record, number: i + 1 });
  });
  return rows;
}

/** Annotations per class id among `records`. */
export function classCounts(records) {
  const counts = new Map();
  for (const r of records) counts.set(r.class_id, (counts.get(r.class_id) || 0) + 1);
  return counts;
}
