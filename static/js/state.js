// What the review page holds, without the page: the annotations as records, the classes, the
// score thresholds, what is visible and what is selected. No DOM and nothing at import time:
// tests import it under node.
//
// A record is one annotation as the page has it: the server's fields (id, version, ...) plus a
// `key` that never changes (a new box has a key before it has an id), `deleted` (removed on the
// page, or gone on the server) and `conflict` (someone else changed it).

/** The fields an edit may change (what a PATCH sends). */
export const EDITABLE = ["state", "class_id", "box", "mask", "polygons"];

/** A server annotation (JSON) → the fields of a record. */
export function fromServer(a) {
  return {
    id: a.id,
    class_id: a.class_id,
    box: a.box.map(Number),
    mask: a.mask || null,
    polygons: a.polygons || null,
    score: a.score ?? null,
    phrase: a.phrase || "",
    source: a.source,
    state: a.state,
    version: a.version,
    edited: Boolean(a.edited),
  };
}

/** The listed fields of a record (a plain object). */
export function pick(r, keys) {
  const out = {};
  for (const k of keys) out[k] = r[k];
  return out;
}

/** Model proposals by score (most confident first), then everything else in creation order. */
function byRank(a, b) {
  const sa = a.source === "model" && a.score != null ? a.score : -1;
  const sb = b.source === "model" && b.score != null ? b.score : -1;
  return sb - sa || a.id - b.id;
}

export class ReviewState {
  /** `data`: the page's JSON ({project, classes, annotations, ...}). */
  constructor(data) {
    this.classList = data.classes;
    this.classes = new Map(data.classes.map((c) => [c.id, c]));
    this.classByIndex = new Map(data.classes.map((c) => [c.index, c]));
    this.projectThreshold = data.project.box_threshold;
    this.thresholds = new Map(data.classes.map((c) => [c.id, c.box_threshold ?? data.project.box_threshold]));
    this.nextKey = 1;
    this.records = data.annotations
      .map((a) => ({ key: this.nextKey++, deleted: false, conflict: false, ...fromServer(a) }))
      .sort(byRank);
    this.byKey = new Map(this.records.map((r) => [r.key, r]));
    this.showRejected = false;
    this.visible = [];
    this.selectedKey = null;
    this.activeClassId = data.classes.length ? data.classes[0].id : null;
    this.refreshVisible();
  }

  get selected() {
    return this.byKey.get(this.selectedKey) || null;
  }

  threshold(classId) {
    return this.thresholds.get(classId) ?? this.projectThreshold;
  }

  /** The slider moved: `scope` is "all" (every class and the project) or a class id. */
  setThreshold(scope, value) {
    if (scope === "all") {
      for (const id of this.classes.keys()) this.thresholds.set(id, value);
      this.projectThreshold = value;
    } else {
      this.thresholds.set(Number(scope), value);
    }
  }

  /** The threshold the slider shows for a scope ("all" or a class id). */
  scopeThreshold(scope) {
    return scope === "all" ? this.projectThreshold : this.threshold(Number(scope));
  }

  isVisible(r) {
    if (r.deleted) return false;
    if (r.state === "rejected") return this.showRejected;
    if (r.state === "proposed" && r.score != null) return r.score >= this.threshold(r.class_id) - 1e-9;
    return true;
  }

  className(id) {
    return this.classes.get(id)?.name ?? "?";
  }

  classColor(id) {
    return this.classes.get(id)?.color ?? "#888888";
  }

  /** Recompute the visible records (in list order); a selection no longer visible is dropped.
   * Returns true when the selection was dropped. */
  refreshVisible() {
    this.visible = this.records.filter((r) => this.isVisible(r));
    if (this.selectedKey != null && !this.visible.some((r) => r.key === this.selectedKey)) {
      this.selectedKey = null;
      return true;
    }
    return false;
  }

  /** Counts for the side panel: proposals shown and below the threshold, accepted, rejected. */
  counts() {
    const counts = { shown: this.visible.length, proposed: 0, below: 0, accepted: 0, rejected: 0 };
    for (const r of this.records) {
      if (r.deleted) continue;
      if (r.state === "proposed") {
        if (this.isVisible(r)) counts.proposed++;
        else counts.below++;
      } else if (r.state === "accepted") counts.accepted++;
      else counts.rejected++;
    }
    return counts;
  }

  /** A new record drawn or segmented by hand (accepted, not saved yet). */
  addRecord({ class_id, box, mask = null, polygons = null }) {
    const r = {
      key: this.nextKey++,
      id: null,
      class_id,
      box,
      mask,
      polygons,
      score: null,
      phrase: "",
      source: "human",
      state: "accepted",
      version: null,
      edited: false,
      deleted: false,
      conflict: false,
    };
    this.records.push(r);
    this.byKey.set(r.key, r);
    return r;
  }

  /** The key `delta` rows away from the selection in the visible list (wrapping), or null. */
  stepKey(delta) {
    const visible = this.visible;
    if (!visible.length) return null;
    const at = visible.findIndex((r) => r.key === this.selectedKey);
    const next = at < 0 ? (delta > 0 ? 0 : visible.length - 1) : (at + delta + visible.length) % visible.length;
    return visible[next].key;
  }

  /** After a decision on `fromKey`: the next undecided visible proposal in list order
   * (wrapping) as {key, found: true}; when there is none, {key: fromKey if still visible else
   * null, found: false}. */
  nextProposal(fromKey) {
    const order = this.records.filter((r) => this.isVisible(r) || r.key === fromKey);
    const at = order.findIndex((r) => r.key === fromKey);
    for (let i = 1; i <= order.length; i++) {
      const r = order[(at + i) % order.length];
      if (r.key !== fromKey && r.state === "proposed" && this.isVisible(r)) return { key: r.key, found: true };
    }
    const r = this.byKey.get(fromKey);
    return { key: r && this.isVisible(r) ? fromKey : null, found: false };
  }
}
