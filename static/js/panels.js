// The review page's side panels: the score threshold (slider, scope, save, show rejected), the
// counts, and the selected annotation's details. Text goes in with textContent only.

import { sourceLabel } from "./sources.js";

const $ = (id) => document.getElementById(id);

/** The threshold panel: moving the slider filters the proposals on the page at once (no
 * request); a manager can save the value as the project's or a class's threshold. */
export class ThresholdPanel {
  /** classes: the project's (data.classes); use(state) gives each image's ReviewState before
   * anything else; request: save-queue.js's request; url: data.urls.threshold; notify(text,
   * kind): a message; onChange(): what is visible changed. */
  constructor({ classes, request, url, notify, onChange }) {
    Object.assign(this, { state: null, request, url, notify, onChange });
    this.scope = "all"; // "all" or a class id (a string, as the <select> has it)
    this.slider = $("threshold");
    this.scopeSelect = $("threshold-scope");
    for (const c of classes) {
      const option = document.createElement("option");
      option.value = String(c.id);
      option.textContent = c.name;
      this.scopeSelect.append(option);
    }
    this.slider.addEventListener("input", () => {
      const value = Number(this.slider.value);
      $("threshold-value").textContent = value.toFixed(2);
      this.state.setThreshold(this.scope, value);
      onChange();
    });
    this.scopeSelect.addEventListener("change", () => {
      this.scope = this.scopeSelect.value;
      this.render();
      const save = $("threshold-save");
      if (save) save.textContent = this.scope === "all" ? "Save as project threshold" : "Save for this class";
      this.scopeSelect.blur();
    });
    $("threshold-save")?.addEventListener("click", (event) => {
      event.currentTarget.blur();
      this.save();
    });
    $("show-rejected").addEventListener("change", (event) => {
      this.state.showRejected = event.currentTarget.checked;
      event.currentTarget.blur();
      onChange();
    });
  }

  /** Another image (the page moved in place; the same project): its state, as a page load shows it. */
  use(state) {
    this.state = state;
    $("show-rejected").checked = state.showRejected;
    this.render();
  }

  render() {
    const value = this.state.scopeThreshold(this.scope);
    this.slider.value = String(value);
    $("threshold-value").textContent = Number(value).toFixed(2);
  }

  /** H: show or hide the rejected annotations. */
  toggleRejected() {
    this.state.showRejected = !this.state.showRejected;
    $("show-rejected").checked = this.state.showRejected;
    this.onChange();
  }

  async save() {
    const scope = this.scope;
    const body = { box_threshold: Number(this.slider.value) };
    if (scope !== "all") body.class_id = Number(scope);
    let res;
    try {
      res = await this.request("POST", this.url, body);
    } catch (error) {
      this.notify(`Could not save the threshold: ${error.message}`, "error");
      return;
    }
    if (res.status >= 200 && res.status < 300) {
      const target = scope === "all" ? "the project" : `“${this.state.className(Number(scope))}”`;
      this.notify(`Saved ${body.box_threshold.toFixed(2)} as the threshold of ${target}.`, "success");
    } else {
      this.notify(`Could not save the threshold: ${res.json?.error || res.status}`, "error");
    }
  }
}

/** The counts over the list: shown, to decide, accepted, rejected, below the threshold. */
export function renderCounts(state) {
  const counts = state.counts();
  for (const name of ["shown", "proposed", "accepted", "rejected", "below"]) {
    $(`count-${name}`).textContent = String(counts[name]);
  }
}

/** The class picker (the selection's class, or the class of new objects) and the selection's
 * details panel. */
export function renderSelection(state) {
  const r = state.selected;
  $("class-select").value = String(r ? r.class_id : state.activeClassId);
  $("class-label").textContent = r ? "Class of the selection" : "Class for new objects";
  const box = $("selection");
  if (!r || r.deleted) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  $("sel-class").textContent = state.className(r.class_id);
  $("sel-swatch").style.background = state.classColor(r.class_id);
  $("sel-state").textContent = r.state;
  $("sel-state").className = `badge ${r.state}`;
  const details = [];
  if (r.score != null) details.push(`score ${r.score.toFixed(3)}`);
  details.push(sourceLabel(r));
  if (r.edited) details.push("edited");
  details.push(`${Math.round(r.box[2])} × ${Math.round(r.box[3])} px`);
  if (r.mask || r.polygons) details.push("mask");
  $("sel-details").textContent = details.join(" · ");
  $("sel-phrase").textContent = r.phrase ? `“${r.phrase}”` : "";
  $("sel-phrase").hidden = !r.phrase;
}
