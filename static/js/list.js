// The review page's side list of annotations, virtualised: only the rows in view (and a few
// around them) are in the DOM, so that an image with thousands of annotations stays quick.
// Rows are built with textContent: a class name is never read as markup.

import { sourceShort } from "./sources.js";

const ROW = 30; // px, the height of a row (as in review.css)
const MARGIN = 6; // rows drawn above and below the view

export class AnnotationList {
  /** box: the scrolling #ann-list; inner: #ann-rows; empty: the "nothing shown" line;
   * state: the ReviewState (visible records, selection, class names and colours);
   * onSelect(key): a row was clicked. */
  constructor({ box, inner, empty, state, onSelect }) {
    this.box = box;
    this.inner = inner;
    this.empty = empty;
    this.state = state;
    this.rendered = "";
    box.addEventListener("scroll", () => {
      if (this._range().join("-") !== this.rendered) this.render();
    });
    inner.addEventListener("click", (event) => {
      const row = event.target.closest(".ann-row");
      if (row) onSelect(Number(row.dataset.key));
    });
  }

  _range() {
    const n = this.state.visible.length;
    const top = this.box.scrollTop;
    const height = this.box.clientHeight || 400;
    return [Math.max(0, Math.floor(top / ROW) - MARGIN), Math.min(n, Math.ceil((top + height) / ROW) + MARGIN)];
  }

  render() {
    const visible = this.state.visible;
    this.inner.style.height = `${visible.length * ROW}px`;
    const [first, last] = this._range();
    const rows = [];
    for (let i = first; i < last; i++) rows.push(this._row(visible[i], i));
    this.inner.replaceChildren(...rows);
    this.empty.hidden = visible.length > 0;
    this.rendered = `${first}-${last}`;
  }

  /** Scroll the list so that a record's row is in view. */
  scrollTo(key) {
    const index = this.state.visible.findIndex((r) => r.key === key);
    if (index < 0) return;
    const top = index * ROW;
    const height = this.box.clientHeight;
    if (top < this.box.scrollTop) this.box.scrollTop = top;
    else if (top + ROW > this.box.scrollTop + height) this.box.scrollTop = top + ROW - height;
  }

  _row(r, index) {
    const { state } = this;
    const name = state.className(r.class_id);
    const row = document.createElement("div");
    row.className = `ann-row state-${r.state}${r.conflict ? " conflict" : ""}`;
    row.style.top = `${index * ROW}px`;
    row.setAttribute("role", "option");
    row.setAttribute("aria-selected", String(r.key === state.selectedKey));
    row.dataset.key = String(r.key);
    if (r.id != null) row.dataset.id = String(r.id);
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
    row.append(swatch, label, score, badge);
    if (r.edited) {
      const mark = document.createElement("span");
      mark.className = "edited";
      mark.title = "edited";
      mark.textContent = "✎";
      row.append(mark);
    }
    return row;
  }
}
