// The review page's edits: each one is applied to the records at once, queued for the server
// (AnnotationSync) and recorded for undo (History). No DOM: what the page shows goes through the
// hooks, so tests drive it under node with a fake server.
//
// A read-only page (someone else holds the image, or the page could not claim it) changes
// nothing: every edit, undo and redo says so and leaves the records and both history stacks as
// they are. An edit the server
// refuses is reverted on the page and leaves the history.

import { History } from "./history.js";
import { AnnotationSync } from "./save-queue.js";
import { EDITABLE, pick } from "./state.js";

export class Editor {
  /** `heldBy`: who holds the image (a name) when the page is read only, else null; `locked`: why
   * the page is read only otherwise (a sentence, e.g. the claim failed), else null.
   * hooks: notify(text, kind, options), changed(), select(key, {reveal}), saved(record). */
  constructor({ state, queue, request, urls, heldBy = null, locked = null, hooks = {}, historyLimit = 500 }) {
    this.state = state;
    this.heldBy = heldBy || null;
    this.locked = this.heldBy ? `Read only: ${this.heldBy} is reviewing this image.` : locked || null;
    this.hooks = { notify: () => {}, changed: () => {}, select: () => {}, saved: () => {}, ...hooks };
    this.history = new History({ limit: historyLimit });
    this.sync = new AnnotationSync({
      queue,
      request,
      urls,
      state,
      hooks: {
        notify: (...args) => this.hooks.notify(...args),
        changed: () => this.hooks.changed(),
        saved: (r) => this.hooks.saved(r),
        refused: (entry) => this.history.forget(entry),
        gone: (key) => this.history.forgetKey(key),
      },
    });
  }

  get readOnly() {
    return this.locked !== null;
  }

  /** True when the page may be edited; otherwise says why and returns false. */
  guard() {
    if (!this.readOnly) return true;
    this.hooks.notify(this.locked, "warning");
    return false;
  }

  /** Change fields of a record (`what` names the edit in messages). */
  edit(r, after, what) {
    if (!this.guard() || !r || r.deleted) return;
    const keys = Object.keys(after).filter((k) => EDITABLE.includes(k));
    const before = pick(r, keys);
    if (keys.every((k) => before[k] === after[k])) return;
    Object.assign(r, after);
    r.edited = r.edited || "box" in after || "mask" in after;
    const entry = this.history.record({ kind: "patch", key: r.key, before, after, what });
    this.sync.patch(r, after, before, what, entry);
    this.hooks.changed();
  }

  /** A new annotation drawn or segmented by hand; selected at once. Returns it, or null. */
  create(fields, what) {
    if (!this.guard()) return null;
    if (fields.class_id == null) {
      this.hooks.notify("This project has no classes: add one first.", "error");
      return null;
    }
    const r = this.state.addRecord(fields);
    this.sync.create(r);
    this.history.record({ kind: "create", key: r.key, what });
    this.hooks.changed();
    this.hooks.select(r.key, { reveal: false });
    return r;
  }

  /** Accept or reject a record, then select the next undecided proposal. */
  decide(r, state) {
    if (!this.guard()) return;
    if (!r) {
      this.hooks.notify("Select an annotation first (click or Tab).", "info");
      return;
    }
    const fromKey = r.key;
    this.edit(r, { state }, state === "accepted" ? "accept" : state === "rejected" ? "reject" : "reset");
    this.advance(fromKey);
  }

  /** After a decision: select the next undecided visible proposal (in list order, wrapping). */
  advance(fromKey) {
    const { key, found } = this.state.nextProposal(fromKey);
    this.hooks.select(key, { reveal: true });
    if (!found) this.hooks.notify("Every visible proposal is decided — press Enter to submit.", "success");
  }

  /** Accept every visible proposal, in one request. */
  acceptAllVisible() {
    if (!this.guard()) return;
    const targets = this.state.visible.filter((r) => r.state === "proposed");
    if (!targets.length) {
      this.hooks.notify("No visible proposals to accept.", "info");
      return;
    }
    const keys = targets.map((r) => r.key);
    const states = new Map(targets.map((r) => [r.key, "accepted"]));
    const reverts = new Map(targets.map((r) => [r.key, r.state]));
    for (const r of targets) r.state = "accepted";
    const entry = this.history.record({ kind: "bulk", keys, before: reverts, after: states, what: "accept all" });
    this.sync.bulk(keys, states, reverts, entry);
    this.hooks.notify(`Accepted ${targets.length} proposal${targets.length === 1 ? "" : "s"}.`, "success");
    this.hooks.changed();
  }

  undo() {
    this._travel("undo");
  }

  redo() {
    this._travel("redo");
  }

  _travel(direction) {
    const editable = !this.readOnly;
    const apply = (entry, backwards) => this._apply(entry, backwards);
    const { status, entry } = this.history[direction]({ editable, apply });
    if (status === "read-only") this.guard();
    else if (status === "empty") this.hooks.notify(`Nothing to ${direction}.`, "info");
    else this.hooks.notify(`${direction === "undo" ? "Undone" : "Redone"}: ${entry.what}.`, "info");
  }

  _apply(entry, backwards) {
    const { byKey } = this.state;
    if (entry.kind === "patch") {
      const r = byKey.get(entry.key);
      if (!r || r.deleted) return;
      const target = backwards ? entry.before : entry.after;
      const current = pick(r, Object.keys(target));
      Object.assign(r, target);
      this.sync.patch(r, target, current, backwards ? `undo ${entry.what}` : `redo ${entry.what}`, entry);
      this.hooks.select(r.key, { reveal: true });
    } else if (entry.kind === "bulk") {
      const states = backwards ? entry.before : entry.after;
      const reverts = backwards ? entry.after : entry.before;
      for (const key of entry.keys) {
        const r = byKey.get(key);
        if (r) r.state = states.get(key);
      }
      this.sync.bulk(entry.keys, states, reverts, entry);
    } else if (entry.kind === "create") {
      const r = byKey.get(entry.key);
      if (!r) return;
      if (backwards) {
        r.deleted = true;
        this.sync.remove(r, entry);
        if (this.state.selectedKey === r.key) this.hooks.select(null, { reveal: false });
      } else {
        r.deleted = false;
        r.id = null;
        r.version = null;
        this.sync.create(r);
        this.hooks.select(r.key, { reveal: true });
      }
    }
    this.hooks.changed();
  }
}
