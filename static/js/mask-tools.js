// The review page's mask editing tools, wired: the brush and the eraser (brush.js) and polygon
// vertex editing (vertices.js) plugged into the canvas, their modes (K, X, G), the brush size
// ([ and ], shown next to the buttons) and their edits, saved through the Editor like every
// other edit (one undo step each, with the annotation's version). A painted mask is sent as COCO
// RLE without polygons and edited polygons without a mask: the server derives the rest.

import { BrushTool } from "./brush.js";
import { VertexTool } from "./vertices.js";

const MODE_KEYS = { brush: "K", eraser: "X", vertices: "G" };

export class MaskTools {
  /** state: the ReviewState; editor: the Editor; canvas: the ReviewCanvas; modes: the Modes;
   * notify(text, kind): a message; sizeLabel: the element that shows the brush size;
   * width, height: the image's. */
  constructor({ state, editor, canvas, modes, notify, sizeLabel, width, height }) {
    Object.assign(this, { state, editor, canvas, modes, notify, sizeLabel });
    const refuse = (text) => notify(text, "info");
    this.brush = new BrushTool({
      width,
      height,
      onStroke: (stroke) => this._stroke(stroke),
      onRadius: () => this._showSize(),
      refuse,
    });
    this.vertices = new VertexTool({ width, height, onEdit: (edit) => this._vertexEdit(edit), refuse });
    canvas.setTool(this.brush);
    canvas.setTool(this.vertices);
    const name = () => {
      const r = this.state.selected;
      return r ? `“${this.state.className(r.class_id)}”` : "the selection";
    };
    this.hints = {
      brush: () => `Brush ${this.brush.radius} px on ${name()}: drag paints, each stroke is saved · [ ] size · X eraser · Esc: back.`,
      eraser: () => `Eraser ${this.brush.radius} px on ${name()}: drag erases, each stroke is saved · [ ] size · K brush · Esc: back.`,
      vertices: () =>
        `Vertices of ${name()}: drag a vertex · drag an edge's midpoint to add one · Alt+click or Del removes one · Esc: back.`,
    };
    this._showSize();
  }

  /** Another image (the page moved in place): its state, editor and size; no stroke or drag goes on. */
  use({ state, editor, width, height }) {
    Object.assign(this, { state, editor });
    Object.assign(this.brush, { width, height, target: null, stroke: null, at: null });
    Object.assign(this.vertices, { width, height, drag: null, chosen: null });
  }

  /** K, X, G: enter a tool on the selected annotation, or go back to select. */
  toggle(mode) {
    const { modes, state } = this;
    if (modes.mode === mode) {
      modes.set("select");
      return;
    }
    if (!this.editor.guard()) return;
    const r = state.selected;
    if (!r || r.deleted) {
      this.notify(`Select the annotation to edit first (click it or Tab), then press ${MODE_KEYS[mode]}.`, "info");
      return;
    }
    if (mode === "vertices" && !r.polygons?.length) {
      this.notify("This annotation has no polygons to edit: use the brush (K) or the eraser (X) on its mask.", "info");
      return;
    }
    modes.set(mode);
  }

  /** [ and ]: the brush size. */
  resize(direction) {
    this.brush.resize(direction);
    this.canvas.invalidate();
    this.modes.renderHint();
  }

  /** Delete in the vertices mode. */
  deleteVertex() {
    this.vertices.deleteChosen(this.canvas.toolView());
  }

  _showSize() {
    if (!this.sizeLabel) return;
    this.sizeLabel.hidden = false;
    this.sizeLabel.textContent = `${this.brush.radius} px`;
  }

  _record(key) {
    const r = this.state.byKey.get(key);
    return r && !r.deleted ? r : null;
  }

  _stroke({ key, mask, box, value }) {
    const r = this._record(key);
    if (!r || !this.editor.guard()) return;
    if (!box) {
      this.brush.forget();
      this.canvas.invalidate();
      this.notify("That would erase the whole mask: reject the annotation (R) instead.", "warning");
      return;
    }
    // Painted pixels are the truth: the server traces the polygons again (polygons: null).
    const after = { mask, polygons: null, box };
    if (r.state === "proposed") after.state = "accepted"; // fixing a proposal accepts it
    this.editor.edit(r, after, value ? "brush stroke" : "eraser stroke");
  }

  _vertexEdit({ key, polygons, box, kind }) {
    const r = this._record(key);
    if (!r || !box) return;
    const after = { polygons, box };
    if (r.state === "proposed") after.state = "accepted";
    const what = { move: "move a vertex", insert: "add a vertex", delete: "remove a vertex" }[kind];
    this.editor.edit(r, after, what);
  }
}
