// The brush and the eraser (modes "brush" and "eraser"): paint on the selected annotation's mask
// in the browser. A stroke (press, drag, release) paints a round brush of `radius` image pixels
// along the pointer's path; on release the mask is encoded to COCO RLE here and handed to the page
// (`onStroke`), which saves it with the annotation's version as one edit (one undo step); the
// server traces its polygons and box again.
//
// The maths (painting a disc or a stroke into a column-major bit mask, its box, the brush sizes)
// are pure functions, tested under node. BrushTool is the canvas's plug-in for the two modes
// (canvas.js `setTool`): it takes the pointer there, keeps the working mask and draws it with
// the cursor circle.

import { bitsBox, hexRgb, rleDecode, rleEncode, tracePolygons } from "./geometry.js";

export { bitsBox }; // its tests import it from here

export const MIN_RADIUS = 1;
export const MAX_RADIUS = 256;
export const DEFAULT_RADIUS = 8;

/** The next brush radius for `[` (direction -1) and `]` (+1): one pixel at a time up to 8, then
 * by a factor of 1.25 (so that up and down come back), within [MIN_RADIUS, MAX_RADIUS]. */
export function brushResize(radius, direction) {
  let next;
  if (direction > 0) next = radius < 8 ? radius + 1 : Math.round(radius * 1.25);
  else next = radius <= 8 ? radius - 1 : Math.max(8, Math.round(radius / 1.25));
  return Math.min(MAX_RADIUS, Math.max(MIN_RADIUS, next));
}

/**
 * Paint a stroke from point a to point b (image pixels) with a round brush of radius r into a
 * column-major mask (index = col * h + row): every pixel whose centre is within r of the segment
 * a–b gets `value` (1 brush, 0 eraser). a = b paints one disc. Returns the changed pixels'
 * bounds {x0, y0, x1, y1} (inclusive) and how many changed, or null when none did.
 */
export function paintStroke(bits, h, w, a, b, r, value) {
  const x0 = Math.max(0, Math.floor(Math.min(a.x, b.x) - r));
  const x1 = Math.min(w - 1, Math.ceil(Math.max(a.x, b.x) + r));
  const y0 = Math.max(0, Math.floor(Math.min(a.y, b.y) - r));
  const y1 = Math.min(h - 1, Math.ceil(Math.max(a.y, b.y) + r));
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length2 = dx * dx + dy * dy;
  const r2 = r * r;
  const v = value ? 1 : 0;
  let changed = 0;
  let cx0 = w;
  let cy0 = h;
  let cx1 = -1;
  let cy1 = -1;
  for (let col = x0; col <= x1; col++) {
    const px = col + 0.5;
    for (let row = y0; row <= y1; row++) {
      const py = row + 0.5;
      let t = length2 ? ((px - a.x) * dx + (py - a.y) * dy) / length2 : 0;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = px - (a.x + t * dx);
      const ey = py - (a.y + t * dy);
      if (ex * ex + ey * ey > r2) continue;
      const i = col * h + row;
      if (bits[i] === v) continue;
      bits[i] = v;
      changed++;
      if (col < cx0) cx0 = col;
      if (col > cx1) cx1 = col;
      if (row < cy0) cy0 = row;
      if (row > cy1) cy1 = row;
    }
  }
  return changed ? { x0: cx0, y0: cy0, x1: cx1, y1: cy1, changed } : null;
}

/** How many pixels are set. */
export function bitsArea(bits) {
  let n = 0;
  for (let i = 0; i < bits.length; i++) n += bits[i];
  return n;
}

// ------------------------------------------------------------------------- the canvas plug-in

/** Polygons (parts of rings, image pixels) → a column-major mask, with the browser's rasteriser
 * (pixel centres inside, even-odd): the start of a brush on an annotation that has no RLE. */
function polygonsBits(polygons, h, w) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fill(tracePolygons(new Path2D(), polygons), "evenodd");
  const data = ctx.getImageData(0, 0, w, h).data;
  const bits = new Uint8Array(h * w);
  for (let row = 0; row < h; row++) {
    for (let col = 0; col < w; col++) if (data[(row * w + col) * 4 + 3] >= 128) bits[col * h + row] = 1;
  }
  return bits;
}

export class BrushTool {
  /** width, height: the image's; onStroke({key, mask, box, value, changed}) after a stroke that
   * changed pixels (`mask` COCO RLE, `box` its tight box or null when nothing is left);
   * onRadius(radius) when the size changes; refuse(text) when a press has nothing to paint on. */
  constructor({ width, height, onStroke, onRadius = () => {}, refuse = () => {} }) {
    Object.assign(this, { width, height, onStroke, onRadius, refuse });
    this.modes = ["brush", "eraser"];
    this.radius = DEFAULT_RADIUS;
    this.target = null; // {key, source, bits, overlay, image, color}
    this.stroke = null; // {value, last, changed}
    this.at = null; // the pointer (image pixels) for the cursor circle
    this.cursor = "none";
  }

  /** The key of the item the canvas leaves to this tool: the selected one, painted here. */
  hides(selectedKey) {
    return selectedKey;
  }

  resize(direction) {
    this.radius = brushResize(this.radius, direction);
    this.onRadius(this.radius);
  }

  /** The working mask of `item`, built again when the item's mask changed since. */
  _targetFor(item) {
    const source = item.mask || item.polygons || null;
    if (this.target && this.target.key === item.key && this.target.source === source) {
      if (this.target.color !== item.color) this._paintOverlay(0, 0, this.width - 1, this.height - 1, item.color);
      return this.target;
    }
    const h = this.height;
    const w = this.width;
    let bits;
    if (item.mask?.size && item.mask.size[0] === h && item.mask.size[1] === w) bits = rleDecode(item.mask);
    else if (item.polygons?.length) bits = polygonsBits(item.polygons, h, w);
    else bits = new Uint8Array(h * w);
    const overlay = document.createElement("canvas");
    overlay.width = w;
    overlay.height = h;
    const octx = overlay.getContext("2d");
    this.target = { key: item.key, source, bits, overlay, octx, image: octx.createImageData(w, h), color: null };
    this._paintOverlay(0, 0, w - 1, h - 1, item.color);
    return this.target;
  }

  _paintOverlay(x0, y0, x1, y1, color = this.target.color) {
    const t = this.target;
    const [r, g, b] = hexRgb(color);
    t.color = color;
    const h = this.height;
    const w = this.width;
    const data = t.image.data;
    for (let row = y0; row <= y1; row++) {
      for (let col = x0; col <= x1; col++) {
        const o = (row * w + col) * 4;
        const on = t.bits[col * h + row];
        data[o] = r;
        data[o + 1] = g;
        data[o + 2] = b;
        data[o + 3] = on ? 255 : 0;
      }
    }
    t.octx.putImageData(t.image, 0, 0, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  }

  _paint(a, b) {
    const t = this.target;
    const done = paintStroke(t.bits, this.height, this.width, a, b, this.radius, this.stroke.value);
    if (!done) return;
    this.stroke.changed += done.changed;
    this._paintOverlay(done.x0, done.y0, done.x1, done.y1);
  }

  pointerDown(p, view) {
    const item = view.selected;
    if (!item || item.hidden) {
      this.refuse("Select the annotation to paint on first (Tab, or V and click it).");
      return false;
    }
    this._targetFor(item);
    this.stroke = { value: view.mode === "brush" ? 1 : 0, last: p, changed: 0 };
    this.at = p;
    this._paint(p, p);
    view.invalidate();
    return true;
  }

  pointerMove(p, view) {
    this.at = p;
    if (this.stroke) {
      this._paint(this.stroke.last, p);
      this.stroke.last = p;
    }
    view.invalidate();
  }

  pointerUp(p, view) {
    const stroke = this.stroke;
    this.stroke = null;
    if (!stroke || !this.target) return;
    if (stroke.changed) {
      const t = this.target;
      const mask = rleEncode(t.bits, this.height, this.width);
      this.onStroke({
        key: t.key,
        mask,
        box: bitsBox(t.bits, this.height, this.width),
        value: stroke.value,
        changed: stroke.changed,
      });
      // The page's record now holds this very mask object: no decoding again for the next stroke.
      t.source = mask;
    }
    view.invalidate();
  }

  /** The pointer left, the mode changed or the gesture was cancelled: a stroke in progress is
   * ended as if released (what was painted is kept). */
  cancel(view) {
    if (this.stroke) this.pointerUp(this.at, view);
    this.at = null;
  }

  hover(p, view) {
    this.at = p;
    view.invalidate();
  }

  /** Forget the working mask (the page changed the record: undo, another annotation...). */
  forget() {
    this.target = null;
  }

  draw(ctx, view) {
    const item = view.selected;
    if (item && !item.hidden) {
      const t = this._targetFor(item);
      ctx.globalAlpha = 0.5;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(t.overlay, 0, 0);
      ctx.globalAlpha = 1;
      ctx.lineWidth = 1.5 * view.px;
      ctx.strokeStyle = item.color;
      ctx.setLineDash([4 * view.px, 3 * view.px]);
      ctx.strokeRect(...item.box);
      ctx.setLineDash([]);
    }
    if (this.at) {
      const px = view.px;
      ctx.beginPath();
      ctx.arc(this.at.x, this.at.y, this.radius, 0, Math.PI * 2);
      ctx.lineWidth = 3 * px;
      ctx.strokeStyle = "rgba(0,0,0,0.7)";
      ctx.stroke();
      ctx.lineWidth = 1.5 * px;
      ctx.strokeStyle = view.mode === "brush" ? "#fff" : "#fca5a5";
      ctx.stroke();
    }
  }
}
