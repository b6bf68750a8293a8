// The review page's tool modes: "select" (select, move, resize), "draw" (drag a box) and
// "segment" (click to segment): the toolbar's mode buttons, the hint over the image and the
// segment tool's status line.

const $ = (id) => document.getElementById(id);

export class Modes {
  /** state: the ReviewState; canvas: the ReviewCanvas; segment: the SegmentTool; editor: the
   * Editor (a read-only page stays in "select" and says why); hints: more modes' hints (mode →
   * a function giving the text), e.g. the mask editing tools'. */
  constructor({ state, canvas, segment, editor, hints = {} }) {
    Object.assign(this, { state, canvas, segment, editor, hints });
    this.mode = "select";
    for (const button of document.querySelectorAll("button[data-mode]")) {
      button.addEventListener("click", () => this.set(button.dataset.mode));
    }
  }

  set(next) {
    if (this.editor.readOnly && next !== "select") {
      this.editor.guard();
      return;
    }
    if (this.mode === "segment" && next !== "segment") this.segment.reset();
    this.mode = next;
    this.canvas.setMode(next);
    for (const button of document.querySelectorAll("button[data-mode]")) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === next));
    }
    $("stage").dataset.mode = next;
    this.renderHint();
  }

  /** B and M: a mode, or back to "select" when already in it. */
  toggle(mode) {
    this.set(this.mode === mode ? "select" : mode);
  }

  renderHint() {
    const { state, segment, mode } = this;
    const refining = mode === "segment" && segment.refine != null ? state.byKey.get(segment.refine) : null;
    const active = state.className(state.activeClassId);
    const hints = {
      select: "",
      draw: `Drag to draw a “${active}” box. Esc: back.`,
      segment: refining
        ? `Refining “${state.className(refining.class_id)}”: left click adds · right click removes · Enter saves · Esc cancels.`
        : `Left click: add · right click: remove · drag: box · Enter keeps it as “${active}” · E refines the selection · Esc cancels.`,
    };
    if (this.hints[mode]) hints[mode] = this.hints[mode]();
    $("mode-hint").textContent = hints[mode] || "";
    $("mode-hint").hidden = !hints[mode];
  }
}

/** The segment tool's status line over the image; `retry` shows its "Try again" button,
 * `failed` its error look; empty text hides it. */
export function showSegmentStatus(text, { retry = false, failed = false } = {}) {
  $("segment-status-text").textContent = text;
  $("segment-retry").hidden = !retry;
  $("segment-status").classList.toggle("failed", failed);
  $("segment-status").hidden = !text;
}
