// The review page's side list of annotations, virtualised: only the rows in view (and a few
// around them) are in the DOM, so that an image with thousands of annotations stays quick.
// The rows (list-order.js): a header per class when grouped (a button that folds the group,
// with its count), then the annotations, numbered in list order (the number the canvas draws
// next to each box), each with an eye button that hides it from the canvas.
// Rows are built with textContent: a class name is never read as markup.

import { sourceShort } from "./sources.js";
import { listRows } from "./list-order.js";

const ROW = 30; // px, the height of a row (as in review.css)
const MARGIN = 6; // rows drawn above and below the view

export class AnnotationList {
  /** box: the scrolling #ann-list; inner: #ann-rows; empty: the "nothing shown" line;
   * state: the ReviewState (visible records in list order, selection, class names, colours);
   * display: the DisplayState (grouping, collapsed groups, hidden annotations and classes);
   * onSelect(key): a row was clicked; onHide(key): its eye; onToggleGroup(classId): a header. */
  constructor({ box, inner, empty, state, display, onSelect, onHide = () => {}, onToggleGroup = () => {} }) {
    this.box = box;
    this.inner = inner;
    this.empty = empty;
    this.state = state;
    this.display = display;
    this.rows = [];
    this.rendered = "";
    box.addEventListener("scroll", () => {
      if (this._range().join("-") !== this.rendered) this._draw();
    });
    inner.addEventListener("click", (event) => {
      const eye = event.target.closest(".eye");
      const row = event.target.closest(".ann-row");
      const head = event.target.closest(".group-row");
      if (event.detail > 0) event.target.closest("button")?.blur(); // a mouse click: keys go back to the page
      if (eye && row) onHide(Number(row.dataset.key));
      else if (row) onSelect(Number(row.dataset.key));
      else if (head) onToggleGroup(Number(head.dataset.classId));
    });
  }

  _range() {
    const n = this.rows.length;
    const top = this.box.scrollTop;
    const height = this.box.clientHeight || 400;
    return [Math.max(0, Math.floor(top / ROW) - MARGIN), Math.min(n, Math.ceil((top + height) / ROW) + MARGIN)];
  }

  /** The rows again from the state (order, grouping, folds), then the ones in view. */
  render() {
    const visible = this.state.visible;
    this.rows = listRows(visible, { group: this.display.settings.group, collapsed: this.display.collapsed });
    this._draw();
    this.empty.hidden = visible.length > 0;
  }

  /** The rows in view again (the selection moved; the rows themselves did not change). */
  redraw() {
    this._draw();
  }

  _draw() {
    this.inner.style.height = `${this.rows.length * ROW}px`;
    const [first, last] = this._range();
    const out = [];
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      out.push(row.kind === "group" ? this._group(row, i) : this._row(row, i));
    }
    this.inner.replaceChildren(...out);
    this.rendered = `${first}-${last}`;
  }

  /** Scroll the list so that a record's row is in view. */
  scrollTo(key) {
    const index = this.rows.findIndex((row) => row.kind === "item" && row.record.key === key);
    if (index < 0) return;
    const top = index * ROW;
    const height = this.box.clientHeight;
    if (top < this.box.scrollTop) this.box.scrollTop = top;
    else if (top + ROW > this.box.scrollTop + height) this.box.scrollTop = top + ROW - height;
  }

  _group(group, index) {
    const { state, display } = this;
    const name = state.className(group.classId);
    const head = document.createElement("button");
    head.type = "button";
    head.className = `group-row${display.hiddenClasses.has(group.classId) ? " hidden-class" : ""}`;
    head.style.top = `${index * ROW}px`;
    head.dataset.classId = String(group.classId);
    head.setAttribute("aria-expanded", String(!group.collapsed));
    const caret = document.createElement("span");
    caret.className = "caret";
    caret.textContent = group.collapsed ? "▸" : "▾";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = state.classColor(group.classId);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = String(group.count);
    head.append(caret, swatch, label, count);
    return head;
  }

  _row({ record: r, number }, index) {
    const { state, display } = this;
    const name = state.className(r.class_id);
    const hidden = display.isHidden(r);
    const row = document.createElement("div");
    row.className = `ann-row state-${r.state}${r.conflict ? " conflict" : ""}${hidden ? " is-hidden" : ""}`;
    row.style.top = `${index * ROW}px`;
    row.setAttribute("role", "option");
    row.setAttribute("aria-selected", String(r.key === state.selectedKey));
    row.dataset.key = String(r.key);
    row.dataset.number = String(number);
    if (r.id != null) row.dataset.id = String(r.id);
    const num = document.createElement("span");
    num.className = "num";
    num.textContent = String(number);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = state.classColor(r.class_id);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    label.title = r.phrase ? `${name} — “${r.phrase}”` : name;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = r.score != null ? r.score.toFixed(2) : sourceShort(r);
    const badge = document.createElement("span");
    badge.className = `state badge ${r.state}`;
    badge.textContent = r.id == null ? "saving" : r.state;
    row.append(num, swatch, label, score, badge);
    if (r.edited) {
      const mark = document.createElement("span");
      mark.className = "edited";
      mark.title = "edited";
      mark.textContent = "✎";
      row.append(mark);
    }
    const eye = document.createElement("button");
    eye.type = "button";
    eye.className = "eye";
    eye.setAttribute("aria-pressed", String(hidden));
    eye.setAttribute("aria-label", `${hidden ? "Show" : "Hide"} annotation ${number}`);
    eye.title = `${hidden ? "Show" : "Hide"} on the image (Shift+H)`;
    eye.textContent = hidden ? "◌" : "●";
    row.append(eye);
    return row;
  }
}
