// The review canvas: one <canvas> that draws an image and its annotations, with zoom, pan,
// selection, box moves / resizes, box drawing and click-to-segment input.
//
// Isolated like CVAT's canvas package (only much smaller): it knows nothing of the server, of
// classes or of keyboard shortcuts. The page gives it items and calls its methods; it tells the
// page what the user did through DOM events dispatched on its host element:
//
//   canvas:ready    {width, height}          the image has loaded and is fitted to the view
//   canvas:select   {key}                    the user clicked an item (key null: empty space)
//   canvas:edit     {key, box, before, kind} a box was moved ("move") or resized ("resize")
//   canvas:draw     {box}                    a new box was dragged out (mode "draw")
//   canvas:point    {x, y, label}            a click in mode "segment" (label 1 left, 0 right)
//   canvas:segment-box {box}                 a box dragged out in mode "segment" (a box prompt)
//   canvas:view     {scale}                  the zoom changed
//   canvas:error    {message}                the image could not be loaded
//
// A plug-in tool (brush.js, vertices.js: `setTool`) takes the pointer in its modes, draws over
// the image and leaves the selected item to draw it itself; it talks to the page through its own
// callbacks.
//
// Everything is kept in image pixels; the view transform (scale, tx, ty) maps image pixels to
// CSS pixels of the host: screen = image * scale + t. Drawing happens in requestAnimationFrame,
// only when something changed; items outside the view are skipped; hit-testing is by box.
//
// Items: {key, box: [x, y, w, h], polygons, mask, color, state: "proposed" | "accepted" |
// "rejected", hidden, faint, number}: `number` (the side list's) is drawn at the box's corner.
// setDisplay({opacity, maskMode, filter}) says how: the masks' fill opacity, "filled" |
// "outline" | "hidden", and a CSS filter (contrast, brightness) for the image only. Mask outlines (polygons, in image pixels) are turned into Path2D
// once per polygons array; a mask without polygons (COCO RLE only) is decoded once into a
// small offscreen canvas.
//
// The backing store is sized in device pixels: one devicePixelRatio, read when the view is
// sized (on a resize, and again when the ratio changes: browser zoom, a move to another screen,
// seen through matchMedia), is the one every frame draws with. Every listener the canvas adds
// is registered with one AbortSignal, so destroy() removes them all.

import {
  bitsBox,
  boxFromPoints,
  clamp,
  hexRgb,
  imageToView,
  rleDecode,
  round2,
  tracePolygons,
  viewToImage,
  zoomedView,
} from "./geometry.js";

const HANDLE = 5; // half size of a resize handle, CSS pixels
const HANDLE_HIT = 8; // how close to a handle counts as on it, CSS pixels
const DRAG_START = 3; // CSS pixels of movement before a press becomes a drag
const MIN_BOX = 1; // image pixels
const MAX_SCALE = 40;
const MAX_NUMBERS = 300; // more boxes in view than this: numbers on the selected one only

// Resize handles: which box edges each one moves (x0, y0, x1, y1), and its cursor.
const HANDLES = [
  { fx: 0, fy: 0, edges: [1, 1, 0, 0], cursor: "nwse-resize" },
  { fx: 0.5, fy: 0, edges: [0, 1, 0, 0], cursor: "ns-resize" },
  { fx: 1, fy: 0, edges: [0, 1, 1, 0], cursor: "nesw-resize" },
  { fx: 1, fy: 0.5, edges: [0, 0, 1, 0], cursor: "ew-resize" },
  { fx: 1, fy: 1, edges: [0, 0, 1, 1], cursor: "nwse-resize" },
  { fx: 0.5, fy: 1, edges: [0, 0, 0, 1], cursor: "ns-resize" },
  { fx: 0, fy: 1, edges: [1, 0, 0, 1], cursor: "nesw-resize" },
  { fx: 0, fy: 0.5, edges: [1, 0, 0, 0], cursor: "ew-resize" },
];

function isFormField(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

export class ReviewCanvas {
  constructor(host, { imageUrl, width, height, readOnly = false }) {
    this.host = host;
    this.width = width;
    this.height = height;
    this.readOnly = readOnly;
    this.items = [];
    this.byKey = new Map();
    this.selectedKey = null;
    this.hoverKey = null;
    this.mode = "select";
    this.drawColor = "#4f46e5";
    this.preview = null;
    this.display = { opacity: 0.4, maskMode: "filled", filter: "none" };
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.fitted = false;
    this.loaded = false;
    this.spaceHeld = false;
    this.gesture = null;
    this.stats = { frames: 0, lastDrawMs: 0, maxDrawMs: 0, drawn: 0, masksFilled: 0, masksOutlined: 0 };
    this._frame = 0;
    this.dpr = 1; // device pixels per CSS pixel of the backing store (set by _resize)
    this._dprQuery = null; // the media query that fires when the ratio changes
    this._listeners = new AbortController();
    const signal = this._listeners.signal;
    this._paths = new WeakMap(); // polygons array → Path2D
    this._bitmaps = new WeakMap(); // mask object → {canvas, x, y}
    this.tools = new Map(); // mode → plug-in tool

    this.canvas = document.createElement("canvas");
    this.canvas.className = "review-canvas";
    this.canvas.setAttribute("aria-hidden", "true");
    host.append(this.canvas);
    this.ctx = this.canvas.getContext("2d");

    this.image = null; // the image shown: load() sets it
    this._resizeObserver = new ResizeObserver(() => this._resize());
    this._resizeObserver.observe(host);
    this._resize();

    const c = this.canvas;
    const on = (target, type, handler, options = {}) => target.addEventListener(type, handler, { ...options, signal });
    on(c, "pointerdown", (e) => this._onPointerDown(e));
    on(c, "pointermove", (e) => this._onPointerMove(e));
    on(c, "pointerup", (e) => this._onPointerUp(e));
    on(c, "pointercancel", () => this._cancelGesture());
    on(c, "pointerleave", () => {
      this._setHover(null);
      if (!this.gesture) this._tool()?.hover(null, this.toolView());
    });
    on(c, "wheel", (e) => this._onWheel(e), { passive: false });
    on(c, "contextmenu", (e) => e.preventDefault());
    on(c, "auxclick", (e) => e.preventDefault());
    on(c, "mousedown", (e) => {
      if (e.button === 1) e.preventDefault(); // no autoscroll: the middle button pans
    });
    on(window, "keydown", (e) => this._onSpace(e));
    on(window, "keyup", (e) => this._onSpace(e));
    on(window, "blur", () => {
      this.spaceHeld = false;
      this._updateCursor();
    });
    if (imageUrl) this.load({ url: imageUrl, width, height, readOnly });
  }

  /** Show an image: at the start, and again when the review page moves to the next image in
   * place (the items, selection, gesture and view of the last one go). `canvas:ready` fires once
   * it is drawn. `decoded`: the image element already loaded and decoded (prefetch.js), shown
   * as it is; else the image is loaded from `url`. */
  load({ url, width, height, readOnly = this.readOnly, decoded = null }) {
    Object.assign(this, { width, height, readOnly, items: [], byKey: new Map(), gesture: null, preview: null });
    Object.assign(this, { selectedKey: null, hoverKey: null, fitted: false, loaded: false });
    if (decoded?.complete && decoded.naturalWidth > 0) {
      this.image = decoded;
      queueMicrotask(() => this.image === decoded && this._ready());
    } else {
      const image = new window.Image();
      const signal = this._listeners.signal;
      image.decoding = "async";
      image.addEventListener("load", () => this.image === image && this._ready(), { signal });
      image.addEventListener(
        "error",
        () => this.image === image && this._emit("canvas:error", { message: "The image could not be loaded." }),
        { signal },
      );
      image.src = url;
      this.image = image;
    }
    this._updateCursor();
    this.invalidate();
  }

  _ready() {
    this.loaded = true;
    if (!this.fitted) this.fit();
    this.invalidate();
    this._emit("canvas:ready", { width: this.width, height: this.height });
  }

  // ----------------------------------------------------------------------------- public API

  setItems(items) {
    this.items = items;
    this.byKey = new Map(items.map((item) => [item.key, item]));
    if (this.selectedKey != null && !this._visible(this.byKey.get(this.selectedKey))) this.selectedKey = null;
    this.invalidate();
  }

  select(key, { reveal = false } = {}) {
    this.selectedKey = key;
    if (reveal && key != null) this.reveal(key);
    this.invalidate();
  }

  setMode(mode) {
    this._cancelGesture();
    this._tool()?.cancel(this.toolView());
    this.mode = mode;
    this._updateCursor();
    this.invalidate();
  }

  /** How masks and the image are shown: {opacity, maskMode, filter} (any of them). */
  setDisplay(display) {
    this.display = { ...this.display, ...display };
    this.invalidate();
  }

  setDrawColor(color) {
    this.drawColor = color;
    this.invalidate();
  }

  /** The click-to-segment preview: {polygons, mask, box, points: [[x, y, label], ...], replaces}
   * or null; `replaces` is the key of an item whose mask is being refined: it is not drawn
   * meanwhile, so that the preview is the only mask shown for it. */
  setPreview(preview) {
    this.preview = preview;
    this.invalidate();
  }

  /** A plug-in tool for its `modes`: {modes, cursor, hides(selectedKey), pointerDown(p, view) →
   * true to follow the drag, pointerMove, pointerUp, hover(p | null, view), cancel(view),
   * draw(ctx, view)}; p: image pixels {x, y, altKey}; view: toolView(). */
  setTool(tool) {
    for (const mode of tool.modes) this.tools.set(mode, tool);
  }

  /** What a plug-in tool sees: the mode, the scale, one CSS pixel in image pixels, the selected item. */
  toolView() {
    const selected = this.byKey.get(this.selectedKey) || null;
    return { mode: this.mode, scale: this.scale, px: 1 / this.scale, selected, invalidate: () => this.invalidate() };
  }

  _tool() {
    return this.readOnly ? null : this.tools.get(this.mode) || null;
  }

  setReadOnly(readOnly) {
    this.readOnly = readOnly;
    this._updateCursor();
  }

  /** Fit the whole image in the view, centred. */
  fit() {
    const { w, h } = this._viewSize();
    if (!w || !h) return;
    const scale = Math.min(w / this.width, h / this.height) * 0.98;
    this.scale = scale;
    this.tx = (w - this.width * scale) / 2;
    this.ty = (h - this.height * scale) / 2;
    this.fitted = true;
    this._viewChanged();
  }

  /** Zoom by a factor around a point of the host (CSS pixels; default: the centre). */
  zoomBy(factor, at) {
    const { w, h } = this._viewSize();
    const px = at ? at.x : w / 2;
    const py = at ? at.y : h / 2;
    const minScale = Math.min(w / this.width, h / this.height) * 0.1;
    const scale = Math.min(MAX_SCALE, Math.max(minScale, this.scale * factor));
    Object.assign(this, zoomedView(this, scale, px, py));
    this._viewChanged();
  }

  /** Pan so that an item's box is in view (and zoom out if it does not fit). */
  reveal(key) {
    const item = this.byKey.get(key);
    if (!item) return;
    const [x, y, bw, bh] = item.box;
    const { w, h } = this._viewSize();
    const margin = 24;
    if (bw * this.scale > w - 2 * margin || bh * this.scale > h - 2 * margin) {
      const fitScale = Math.min(w / this.width, h / this.height) * 0.98;
      const wanted = Math.min((w - 2 * margin) / bw, (h - 2 * margin) / bh);
      if (wanted < this.scale) this.scale = Math.max(Math.min(wanted, this.scale), Math.min(fitScale, wanted));
    }
    const left = x * this.scale + this.tx;
    const top = y * this.scale + this.ty;
    const right = (x + bw) * this.scale + this.tx;
    const bottom = (y + bh) * this.scale + this.ty;
    if (left < margin || right > w - margin) this.tx += w / 2 - (left + right) / 2;
    if (top < margin || bottom > h - margin) this.ty += h / 2 - (top + bottom) / 2;
    this._viewChanged();
  }

  /** Image pixels → client (viewport) coordinates, e.g. for tests driving the mouse. */
  toClient(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    const p = imageToView(x, y, this);
    return { x: rect.left + p.x, y: rect.top + p.y };
  }

  /** Client coordinates → image pixels. */
  toImage(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return viewToImage(clientX - rect.left, clientY - rect.top, this);
  }

  invalidate() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._draw();
    });
  }

  /** Stop for good: every listener, the resize observer and the pending frame go. */
  destroy() {
    this._listeners.abort();
    this._dprQuery?.stop.abort();
    this._dprQuery = null;
    this._resizeObserver.disconnect();
    if (this._frame) cancelAnimationFrame(this._frame);
    this._frame = 0;
    this.canvas.remove();
  }

  // ------------------------------------------------------------------------------ internals

  _emit(type, detail) {
    this.host.dispatchEvent(new CustomEvent(type, { detail, bubbles: true }));
  }

  _viewSize() {
    return { w: this.host.clientWidth, h: this.host.clientHeight };
  }

  _viewChanged() {
    this.host.dataset.scale = String(this.scale);
    this.invalidate();
    this._emit("canvas:view", { scale: this.scale });
  }

  _resize() {
    const { w, h } = this._viewSize();
    const dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    this._watchDpr(dpr);
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    if (this.loaded && !this.fitted) this.fit();
    this.invalidate();
  }

  /** Resize again once the ratio is no longer `dpr` (a query that matches this ratio only). */
  _watchDpr(dpr) {
    if (this._dprQuery?.dpr === dpr || typeof window.matchMedia !== "function") return;
    this._dprQuery?.stop.abort();
    const stop = new AbortController();
    const query = window.matchMedia(`(resolution: ${dpr}dppx)`);
    query.addEventListener("change", () => this._resize(), { signal: stop.signal });
    this._dprQuery = { dpr, stop };
  }

  _visible(item) {
    return Boolean(item) && !item.hidden;
  }

  _local(e) {
    const rect = this.canvas.getBoundingClientRect();
    const sx = e.clientX - rect.left;
    const sy = e.clientY - rect.top;
    return { sx, sy, ...viewToImage(sx, sy, this) };
  }

  /** Items under an image point, smallest box first (the one most likely meant). */
  _hits(x, y) {
    const tolerance = 4 / this.scale;
    const hits = [];
    for (const item of this.items) {
      if (item.hidden) continue;
      const [bx, by, bw, bh] = item.box;
      if (x >= bx - tolerance && x <= bx + bw + tolerance && y >= by - tolerance && y <= by + bh + tolerance) {
        hits.push(item);
      }
    }
    hits.sort((a, b) => a.box[2] * a.box[3] - b.box[2] * b.box[3]);
    return hits;
  }

  _handleAt(sx, sy) {
    const item = this.byKey.get(this.selectedKey);
    if (!item || item.hidden || this.readOnly) return -1;
    const [bx, by, bw, bh] = item.box;
    const small = bw * this.scale < 40 || bh * this.scale < 40;
    for (let i = 0; i < HANDLES.length; i++) {
      if (small && (HANDLES[i].fx === 0.5 || HANDLES[i].fy === 0.5)) continue;
      const hx = (bx + HANDLES[i].fx * bw) * this.scale + this.tx;
      const hy = (by + HANDLES[i].fy * bh) * this.scale + this.ty;
      if (Math.abs(sx - hx) <= HANDLE_HIT && Math.abs(sy - hy) <= HANDLE_HIT) return i;
    }
    return -1;
  }

  _inside(item, x, y) {
    const [bx, by, bw, bh] = item.box;
    return x >= bx && x <= bx + bw && y >= by && y <= by + bh;
  }

  _onSpace(e) {
    if (e.code !== "Space" || isFormField(e.target)) return;
    const held = e.type === "keydown";
    if (held) e.preventDefault(); // no page scroll
    if (this.spaceHeld !== held) {
      this.spaceHeld = held;
      this._updateCursor();
    }
  }

  _onPointerDown(e) {
    const p = this._local(e);
    this.canvas.focus?.();
    const pan = e.button === 1 || (e.button === 0 && this.spaceHeld);
    if (pan) {
      e.preventDefault();
      this._startGesture(e, { type: "pan", tx: this.tx, ty: this.ty });
      return;
    }
    const tool = this._tool();
    if (tool && e.button === 0) {
      if (tool.pointerDown({ x: p.x, y: p.y, altKey: e.altKey }, this.toolView())) this._startGesture(e, { type: "tool" });
      return;
    }
    if (this.mode === "segment" && (e.button === 0 || e.button === 2)) {
      this._startGesture(e, { type: "segment", label: e.button === 0 ? 1 : 0, start: p });
      return;
    }
    if (e.button !== 0) return;
    if (this.mode === "draw" && !this.readOnly) {
      this._startGesture(e, { type: "draw", start: p, box: null });
      return;
    }
    // Select mode: a handle of the selected box, the selected box itself, another box, or
    // empty space (which pans when dragged).
    const handle = this._handleAt(p.sx, p.sy);
    const selected = this.byKey.get(this.selectedKey);
    if (handle >= 0) {
      this._startGesture(e, { type: "resize", key: selected.key, handle, before: [...selected.box], start: p });
      return;
    }
    const hits = this._hits(p.x, p.y);
    if (selected && !selected.hidden && hits.includes(selected) && this._inside(selected, p.x, p.y)) {
      // Pressed on the selected box: a drag moves it, a click cycles to the box under it.
      this._startGesture(e, {
        type: "move",
        key: selected.key,
        before: [...selected.box],
        start: p,
        clickCycle: hits,
      });
      return;
    }
    if (hits.length) {
      const item = hits[0];
      this._choose(item.key);
      this._startGesture(e, { type: "move", key: item.key, before: [...item.box], start: p, clickCycle: null });
      return;
    }
    this._startGesture(e, { type: "pan", tx: this.tx, ty: this.ty, deselect: true });
  }

  _startGesture(e, gesture) {
    gesture.pointerId = e.pointerId;
    gesture.startX = e.clientX;
    gesture.startY = e.clientY;
    gesture.dragging = false;
    this.gesture = gesture;
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      // the pointer may already be gone
    }
    this._updateCursor();
  }

  _cancelGesture() {
    const g = this.gesture;
    if (!g) return;
    if (g.type === "tool") this._tool()?.cancel(this.toolView());
    if ((g.type === "move" || g.type === "resize") && g.dragging) {
      const item = this.byKey.get(g.key);
      if (item) item.box = g.before;
    }
    this.gesture = null;
    this._updateCursor();
    this.invalidate();
  }

  _choose(key) {
    if (this.selectedKey === key) return;
    this.selectedKey = key;
    this.invalidate();
    this._emit("canvas:select", { key });
  }

  _onPointerMove(e) {
    const g = this.gesture;
    const p = this._local(e);
    if (!g) {
      if (this._tool()) this._tool().hover({ x: p.x, y: p.y }, this.toolView());
      else this._hover(p);
      return;
    }
    if (g.type === "tool") {
      this._tool()?.pointerMove({ x: p.x, y: p.y }, this.toolView());
      return;
    }
    const dxs = e.clientX - g.startX;
    const dys = e.clientY - g.startY;
    if (!g.dragging && Math.hypot(dxs, dys) < DRAG_START) return;
    g.dragging = true;
    if (g.type === "pan") {
      this.tx = g.tx + dxs;
      this.ty = g.ty + dys;
      this._viewChanged();
    } else if (g.type === "move" && !this.readOnly) {
      const item = this.byKey.get(g.key);
      if (!item) return;
      const [bx, by, bw, bh] = g.before;
      const nx = clamp(bx + dxs / this.scale, 0, Math.max(0, this.width - bw));
      const ny = clamp(by + dys / this.scale, 0, Math.max(0, this.height - bh));
      item.box = [nx, ny, bw, bh];
      this.invalidate();
    } else if (g.type === "resize") {
      const item = this.byKey.get(g.key);
      if (!item) return;
      item.box = this._resized(g.before, HANDLES[g.handle].edges, dxs / this.scale, dys / this.scale);
      this.invalidate();
    } else if (g.type === "draw" || g.type === "segment") {
      g.box = boxFromPoints(g.start, p, this.width, this.height);
      this.invalidate();
    }
  }

  _resized(before, edges, dx, dy) {
    let x0 = before[0];
    let y0 = before[1];
    let x1 = before[0] + before[2];
    let y1 = before[1] + before[3];
    if (edges[0]) x0 = clamp(x0 + dx, 0, x1 - MIN_BOX);
    if (edges[1]) y0 = clamp(y0 + dy, 0, y1 - MIN_BOX);
    if (edges[2]) x1 = clamp(x1 + dx, x0 + MIN_BOX, this.width);
    if (edges[3]) y1 = clamp(y1 + dy, y0 + MIN_BOX, this.height);
    return [x0, y0, x1 - x0, y1 - y0];
  }

  _onPointerUp(e) {
    const g = this.gesture;
    if (!g || e.pointerId !== g.pointerId) return;
    this.gesture = null;
    const p = this._local(e);
    if (g.type === "tool") {
      this._tool()?.pointerUp({ x: p.x, y: p.y }, this.toolView());
    } else if (g.type === "pan") {
      if (!g.dragging && g.deselect && this.selectedKey != null) this._choose(null);
    } else if (g.type === "move" || g.type === "resize") {
      const item = this.byKey.get(g.key);
      if (g.dragging && item && !this.readOnly) {
        const box = item.box.map(round2);
        item.box = box;
        if (box.some((v, i) => v !== g.before[i])) {
          this._emit("canvas:edit", { key: g.key, box, before: g.before, kind: g.type });
        }
      } else if (!g.dragging && g.clickCycle && g.clickCycle.length > 1) {
        const at = g.clickCycle.findIndex((item) => item.key === this.selectedKey);
        this._choose(g.clickCycle[(at + 1) % g.clickCycle.length].key);
      }
    } else if (g.type === "draw") {
      if (g.dragging && g.box && g.box[2] * this.scale >= 3 && g.box[3] * this.scale >= 3) {
        this._emit("canvas:draw", { box: g.box.map(round2) });
      }
    } else if (g.type === "segment") {
      if (g.dragging && g.box && g.box[2] * this.scale >= 4 && g.box[3] * this.scale >= 4) {
        this._emit("canvas:segment-box", { box: g.box.map(round2) });
      } else if (!g.dragging && p.x >= 0 && p.y >= 0 && p.x <= this.width && p.y <= this.height) {
        this._emit("canvas:point", { x: round2(p.x), y: round2(p.y), label: g.label });
      }
    }
    this._updateCursor();
    this._hover(p);
    this.invalidate();
  }

  _onWheel(e) {
    e.preventDefault();
    const p = this._local(e);
    const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    this.zoomBy(Math.exp(-delta * 0.0015), { x: p.sx, y: p.sy });
  }

  _hover(p) {
    if (this.mode !== "select") {
      this._setHover(null);
      this._updateCursor();
      return;
    }
    const handle = this._handleAt(p.sx, p.sy);
    let cursor = "";
    if (handle >= 0) cursor = HANDLES[handle].cursor;
    const hits = this._hits(p.x, p.y);
    this._setHover(hits.length ? hits[0].key : null);
    if (!cursor && hits.length && !this.readOnly) cursor = "move";
    this._updateCursor(cursor);
  }

  _setHover(key) {
    if (this.hoverKey === key) return;
    this.hoverKey = key;
    this.invalidate();
  }

  _updateCursor(hint = "") {
    let cursor = hint || "default";
    if (this.gesture?.type === "pan" && this.gesture.dragging) cursor = "grabbing";
    else if (this.spaceHeld) cursor = "grab";
    else if (this.mode === "draw" && !this.readOnly) cursor = "crosshair";
    else if (this.mode === "segment") cursor = "copy";
    else if (this._tool()) cursor = this._tool().cursor || "crosshair";
    this.canvas.style.cursor = cursor;
  }

  // ------------------------------------------------------------------------------- drawing

  _path(polygons) {
    let path = this._paths.get(polygons);
    if (!path) {
      path = tracePolygons(new Path2D(), polygons);
      this._paths.set(polygons, path);
    }
    return path;
  }

  _bitmap(mask, color) {
    let entry = this._bitmaps.get(mask);
    if (!entry || entry.color !== color) {
      entry = maskBitmap(mask, color);
      if (!entry) return null;
      this._bitmaps.set(mask, entry);
    }
    return entry;
  }

  _draw() {
    const started = performance.now();
    const ctx = this.ctx;
    const dpr = this.dpr; // the ratio the backing store was sized with
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.loaded) return;
    const s = this.scale;
    ctx.setTransform(dpr * s, 0, 0, dpr * s, dpr * this.tx, dpr * this.ty);
    ctx.imageSmoothingEnabled = s < 3;
    ctx.filter = this.display.filter || "none"; // the image's contrast / brightness, not the masks'
    ctx.drawImage(this.image, 0, 0, this.width, this.height);
    ctx.filter = "none";

    // The part of the image in view, to skip what is outside it.
    const { w, h } = this._viewSize();
    const vx0 = -this.tx / s;
    const vy0 = -this.ty / s;
    const vx1 = (w - this.tx) / s;
    const vy1 = (h - this.ty) / s;
    const px = 1 / s; // one CSS pixel in image pixels

    const selected = this.byKey.get(this.selectedKey);
    const tool = this._tool();
    const toolKey = tool ? tool.hides(this.selectedKey) : null; // drawn by the tool
    // While drawing or segmenting, what is there already steps back.
    const dim = this.mode === "select" ? 1 : 0.45;
    const groups = new Map(); // color|style → Path2D of boxes, stroked once
    const { opacity, maskMode } = this.display;
    const numbered = [];
    let drawn = 0;
    let filled = 0;
    let outlined = 0;
    for (const item of this.items) {
      if (item.hidden || (item === selected && this.mode === "select")) continue;
      if (this.preview?.replaces != null && item.key === this.preview.replaces) continue;
      if (toolKey != null && item.key === toolKey) continue;
      const [bx, by, bw, bh] = item.box;
      if (bx > vx1 || by > vy1 || bx + bw < vx0 || by + bh < vy0) continue;
      drawn++;
      const style = item.faint ? "faint" : item.state === "accepted" ? "solid" : "dashed";
      const id = `${item.color}|${style}`;
      let group = groups.get(id);
      if (!group) {
        group = { color: item.color, style, path: new Path2D(), outlines: new Path2D() };
        groups.set(id, group);
      }
      group.path.rect(bx, by, bw, bh);
      if (item.number != null && bw * s >= 14) numbered.push(item);
      // Accepted masks are filled (translucent) and outlined, or outlined only, or not drawn
      // (the display's mask mode); a proposal shows its dashed box only (its mask when
      // selected or hovered), so that piles of overlapping proposals never hide the image.
      if (style === "solid" && maskMode !== "hidden" && (item.polygons?.length || item.mask)) {
        if (item.polygons?.length) {
          group.outlines.addPath(this._path(item.polygons));
          outlined++;
        } else if (maskMode === "outline") {
          this._outlineBitmap(item, dim);
          outlined++;
        }
        if (maskMode === "filled" && opacity > 0) {
          this._fillMask(item, dim * opacity);
          filled++;
        }
      }
    }
    for (const group of groups.values()) {
      ctx.strokeStyle = group.color;
      ctx.globalAlpha = dim * (group.style === "faint" ? 0.35 : 1);
      ctx.lineWidth = 1 * px;
      ctx.setLineDash([]);
      ctx.stroke(group.outlines);
      ctx.lineWidth = (group.style === "solid" ? 2 : 1.5) * px;
      ctx.setLineDash(group.style === "solid" ? [] : [6 * px, 4 * px]);
      ctx.stroke(group.path);
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
    if (numbered.length <= MAX_NUMBERS) this._numbers(numbered, px, dim);

    const hover = this.byKey.get(this.hoverKey);
    if (hover && hover !== selected && !hover.hidden && this.mode === "select") {
      if ((hover.polygons?.length || hover.mask) && maskMode === "filled") this._fillMask(hover, opacity * 0.6);
      ctx.strokeStyle = hover.color;
      ctx.lineWidth = 3 * px;
      ctx.strokeRect(...hover.box);
      this._label(hover, px);
    }
    if (selected && !selected.hidden && this.mode === "select") {
      if ((selected.polygons?.length || selected.mask) && maskMode !== "hidden") {
        if (maskMode === "filled") this._fillMask(selected, Math.min(0.9, opacity + 0.1));
        if (selected.polygons?.length) {
          ctx.lineWidth = 1.5 * px;
          ctx.strokeStyle = selected.color;
          ctx.stroke(this._path(selected.polygons));
        } else if (maskMode === "outline") {
          this._outlineBitmap(selected, 1);
        }
      }
      const [bx, by, bw, bh] = selected.box;
      ctx.lineWidth = 4 * px;
      ctx.strokeStyle = "rgba(255,255,255,0.9)";
      ctx.strokeRect(bx, by, bw, bh);
      ctx.lineWidth = 2 * px;
      ctx.strokeStyle = selected.color;
      ctx.setLineDash(selected.state === "accepted" ? [] : [6 * px, 4 * px]);
      ctx.strokeRect(bx, by, bw, bh);
      ctx.setLineDash([]);
      if (!this.readOnly && this.mode === "select") {
        // A small box gets its corner handles only, so that they do not cover it.
        const small = bw * this.scale < 40 || bh * this.scale < 40;
        for (const handle of HANDLES) {
          if (small && (handle.fx === 0.5 || handle.fy === 0.5)) continue;
          const hx = bx + handle.fx * bw;
          const hy = by + handle.fy * bh;
          ctx.fillStyle = "#fff";
          ctx.fillRect(hx - HANDLE * px, hy - HANDLE * px, 2 * HANDLE * px, 2 * HANDLE * px);
          ctx.lineWidth = 1.5 * px;
          ctx.strokeStyle = selected.color;
          ctx.strokeRect(hx - HANDLE * px, hy - HANDLE * px, 2 * HANDLE * px, 2 * HANDLE * px);
        }
      }
      this._label(selected, px);
      if (selected.number != null) this._numbers([selected], px, 1);
      drawn++;
    }

    if (this.preview) this._drawPreview(px);
    tool?.draw(ctx, this.toolView());
    const g = this.gesture;
    if (g && g.box && g.dragging && (g.type === "draw" || g.type === "segment")) {
      ctx.lineWidth = 2 * px;
      ctx.strokeStyle = this.drawColor;
      ctx.setLineDash([5 * px, 3 * px]);
      ctx.strokeRect(...g.box);
      ctx.setLineDash([]);
      ctx.globalAlpha = 0.12;
      ctx.fillStyle = this.drawColor;
      ctx.fillRect(...g.box);
      ctx.globalAlpha = 1;
    }

    const took = performance.now() - started;
    this.stats.frames++;
    this.stats.lastDrawMs = took;
    this.stats.maxDrawMs = Math.max(this.stats.maxDrawMs, took);
    this.stats.drawn = drawn;
    this.stats.masksFilled = filled;
    this.stats.masksOutlined = outlined;
  }

  /** The outline of a mask without polygons (COCO RLE only), from its bitmap's edge pixels. */
  _outlineBitmap(item, alpha) {
    const bitmap = this._bitmap(item.mask, item.color);
    if (!bitmap) return;
    this.ctx.globalAlpha = alpha;
    this.ctx.drawImage(bitmap.edges, bitmap.x, bitmap.y);
    this.ctx.globalAlpha = 1;
  }

  _fillMask(item, alpha) {
    const ctx = this.ctx;
    ctx.globalAlpha = alpha;
    if (item.polygons?.length) {
      ctx.fillStyle = item.color;
      ctx.fill(this._path(item.polygons), "evenodd");
    } else if (item.mask) {
      const bitmap = this._bitmap(item.mask, item.color);
      if (bitmap) ctx.drawImage(bitmap.canvas, bitmap.x, bitmap.y);
    }
    ctx.globalAlpha = 1;
  }

  /** The list's numbers, in a small tag at each box's bottom-left corner (inside the box). */
  _numbers(items, px, alpha) {
    if (!items.length) return;
    const ctx = this.ctx;
    const size = 10 * px;
    ctx.font = `700 ${size}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    ctx.globalAlpha = alpha;
    for (const item of items) {
      const text = String(item.number);
      const tw = ctx.measureText(text).width + 6 * px;
      const [bx, by, , bh] = item.box;
      const y = by + bh - size * 1.4;
      ctx.fillStyle = item.color;
      ctx.fillRect(bx, y, tw, size * 1.4);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, bx + 3 * px, y + size * 0.75);
    }
    ctx.globalAlpha = 1;
  }

  _label(item, px) {
    if (!item.label) return;
    const ctx = this.ctx;
    const size = 12 * px;
    ctx.font = `600 ${size}px system-ui, sans-serif`;
    const text = item.label; // drawn as pixels: never interpreted as markup
    const tw = ctx.measureText(text).width;
    const [bx, by] = item.box;
    const y = by - size * 1.5 >= -this.ty / this.scale ? by - size * 1.5 : by;
    ctx.fillStyle = item.color;
    ctx.fillRect(bx, y, tw + 8 * px, size * 1.5);
    ctx.fillStyle = "#fff";
    ctx.textBaseline = "middle";
    ctx.fillText(text, bx + 4 * px, y + size * 0.78);
  }

  _drawPreview(px) {
    const ctx = this.ctx;
    const preview = this.preview;
    if (preview.polygons?.length || preview.mask) {
      this._fillMask({ polygons: preview.polygons, mask: preview.mask, color: this.drawColor }, 0.45);
      if (preview.polygons?.length) {
        ctx.lineWidth = 2 * px;
        ctx.strokeStyle = this.drawColor;
        ctx.stroke(this._path(preview.polygons));
      }
    }
    if (preview.box) {
      ctx.lineWidth = 1.5 * px;
      ctx.strokeStyle = this.drawColor;
      ctx.setLineDash([4 * px, 3 * px]);
      ctx.strokeRect(...preview.box);
      ctx.setLineDash([]);
    }
    for (const [x, y, label] of preview.points || []) {
      ctx.beginPath();
      ctx.arc(x, y, 6 * px, 0, Math.PI * 2);
      ctx.fillStyle = label ? "#16a34a" : "#dc2626";
      ctx.fill();
      ctx.lineWidth = 2 * px;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(x - 3 * px, y);
      ctx.lineTo(x + 3 * px, y);
      if (label) {
        ctx.moveTo(x, y - 3 * px);
        ctx.lineTo(x, y + 3 * px);
      }
      ctx.stroke();
    }
  }
}

// ----------------------------------------------------------------------------------- helpers

function maskBitmap(mask, color) {
  let bits;
  try {
    bits = rleDecode(mask);
  } catch {
    return null;
  }
  const [h, w] = mask.size;
  const box = bitsBox(bits, h, w);
  if (!box) return null;
  const [x0, y0, cw, ch] = box;
  const canvas = document.createElement("canvas");
  canvas.width = cw;
  canvas.height = ch;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(cw, ch);
  // The outline: the mask's pixels with a 4-neighbour outside it (for "outline only").
  const edgeCanvas = document.createElement("canvas");
  edgeCanvas.width = cw;
  edgeCanvas.height = ch;
  const edgeCtx = edgeCanvas.getContext("2d");
  const edgeData = edgeCtx.createImageData(cw, ch);
  const on = (col, row) => col >= 0 && row >= 0 && col < w && row < h && bits[col * h + row];
  const [r, g, b] = hexRgb(color);
  for (let col = x0; col < x0 + cw; col++) {
    for (let row = y0; row < y0 + ch; row++) {
      if (!bits[col * h + row]) continue;
      const o = ((row - y0) * cw + (col - x0)) * 4;
      data.data[o] = r;
      data.data[o + 1] = g;
      data.data[o + 2] = b;
      data.data[o + 3] = 255;
      if (!on(col - 1, row) || !on(col + 1, row) || !on(col, row - 1) || !on(col, row + 1)) {
        edgeData.data[o] = r;
        edgeData.data[o + 1] = g;
        edgeData.data[o + 2] = b;
        edgeData.data[o + 3] = 255;
      }
    }
  }
  ctx.putImageData(data, 0, 0);
  edgeCtx.putImageData(edgeData, 0, 0);
  return { canvas, edges: edgeCanvas, x: x0, y: y0, color };
}
