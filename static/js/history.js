// Undo / redo of the review page's edits: two stacks of entries, no DOM.
//
// An entry is what the editor recorded: {kind: "patch", key, before, after, what},
// {kind: "bulk", keys, before, after, what} or {kind: "create", key, what}. Undo and redo ask
// first whether the page may be edited and take nothing from a stack when it may not; an entry
// whose write the server refused is forgotten (forget), as are those of a record that does not
// exist on the server (forgetKey).

export class History {
  constructor({ limit = 500 } = {}) {
    this.limit = limit;
    this.undoStack = [];
    this.redoStack = [];
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  /** A new edit: it can be undone; what was undone before can no longer be redone. */
  record(entry) {
    this.undoStack.push(entry);
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack.length = 0;
    return entry;
  }

  /** Undo the last edit: `apply(entry, true)` unless `editable` is false.
   * Returns {status: "read-only" | "empty" | "done", entry}. */
  undo({ editable = true, apply }) {
    return this._move(this.undoStack, this.redoStack, editable, (entry) => apply(entry, true));
  }

  /** Redo the last undone edit: `apply(entry, false)` unless `editable` is false. */
  redo({ editable = true, apply }) {
    return this._move(this.redoStack, this.undoStack, editable, (entry) => apply(entry, false));
  }

  /** Forget one entry (the server refused its write): it is neither undone nor redone. */
  forget(entry) {
    const other = (e) => e !== entry;
    this.undoStack = this.undoStack.filter(other);
    this.redoStack = this.redoStack.filter(other);
  }

  /** Forget every entry of one record (it does not exist on the server). */
  forgetKey(key) {
    const other = (e) => e.key !== key;
    this.undoStack = this.undoStack.filter(other);
    this.redoStack = this.redoStack.filter(other);
  }

  _move(from, to, editable, apply) {
    if (!editable) return { status: "read-only", entry: null };
    const entry = from.pop();
    if (!entry) return { status: "empty", entry: null };
    // On the other stack before applying: a refusal answered meanwhile finds it there.
    to.push(entry);
    apply(entry);
    return { status: "done", entry };
  }
}
