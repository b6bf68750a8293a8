// The class legend in the side panel: each class with its key (1–9), its colour, its name and
// how many annotations of it this image shows now (live). Clicking a class does what its number
// key does (the selection's class, or the class of new objects); the eye next to it hides or
// shows every annotation of the class on the canvas. Built with textContent only.

import { classCounts } from "./list-order.js";

export class Legend {
  /** host: the legend's <ul>; state: the ReviewState; display: the DisplayState;
   * onPick(classId): a class was clicked; onToggle(classId): its eye. */
  constructor({ host, state, display, onPick, onToggle }) {
    Object.assign(this, { host, state, display });
    host.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-class-id]");
      if (!button) return;
      if (event.detail > 0) button.blur(); // a mouse click: keys go back to the page
      const classId = Number(button.dataset.classId);
      if (button.classList.contains("eye")) onToggle(classId);
      else onPick(classId);
    });
  }

  /** Mark the class of the selection (or of new objects). */
  markActive() {
    const active = String(this.state.selected ? this.state.selected.class_id : this.state.activeClassId);
    for (const li of this.host.children) li.classList.toggle("active", li.dataset.classId === active);
  }

  render() {
    const { state, display } = this;
    const counts = classCounts(state.visible.filter((r) => r.state !== "rejected"));
    const active = state.selected ? state.selected.class_id : state.activeClassId;
    const rows = state.classList.map((c) => {
      const hidden = display.hiddenClasses.has(c.id);
      const li = document.createElement("li");
      li.className = `legend-row${hidden ? " is-hidden" : ""}${c.id === active ? " active" : ""}`;
      li.dataset.classId = String(c.id);
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = "pick";
      pick.dataset.classId = String(c.id);
      pick.title = c.index <= 9 ? `Class of the selection (${c.index})` : "Class of the selection";
      const key = document.createElement("kbd");
      key.textContent = c.index <= 9 ? String(c.index) : "·";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = c.color;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = c.name;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(counts.get(c.id) || 0);
      pick.append(key, swatch, name, count);
      const eye = document.createElement("button");
      eye.type = "button";
      eye.className = "eye";
      eye.dataset.classId = String(c.id);
      eye.setAttribute("aria-pressed", String(hidden));
      eye.setAttribute("aria-label", `${hidden ? "Show" : "Hide"} ${c.name}`);
      eye.title = `${hidden ? "Show" : "Hide"} every “${c.name}” (Shift+C on a selection)`;
      eye.textContent = hidden ? "◌" : "●";
      li.append(pick, eye);
      return li;
    });
    this.host.replaceChildren(...rows);
  }
}
