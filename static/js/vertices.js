// Polygon vertex editing (mode "vertices"), for annotations whose geometry is polygons (COCO
// imports can bring polygons without a mask; SAM's masks are traced to polygons too): drag a
// vertex; drag (or click) an edge's midpoint to insert a vertex there; Alt+click a vertex, or
// select it and press Delete, to remove it (a ring keeps at least three). Each change is handed
// to the page (`onEdit`), which saves the polygons with the annotation's version as one edit
// (one undo step); the server rasterises the mask again and derives the box.
//
// Polygons are parts, each a list of rings [x0, y0, x1, y1, ...] (outer ring first, then holes),
// in image pixels. The maths are pure functions, tested under node; VertexTool is the canvas's
// plug-in for the mode (canvas.js `setTool`).

import { clamp, round2 } from "./geometry.js";

const VERTEX = 4; // half size of a vertex handle, CSS pixels
const HIT = 8; // how close to a handle counts as on it, CSS pixels

/** Every vertex as {part, ring, index, x, y}. */
function* vertices(polygons) {
  for (let p = 0; p < polygons.length; p++) {
    for (let r = 0; r < polygons[p].length; r++) {
      const ring = polygons[p][r];
      for (let i = 0; i + 1 < ring.length; i += 2) yield { part: p, ring: r, index: i / 2, x: ring[i], y: ring[i + 1] };
    }
  }
}

/** Every edge's midpoint as {part, ring, index (the edge from vertex index to index + 1), x, y}. */
function* midpoints(polygons) {
  for (let p = 0; p < polygons.length; p++) {
    for (let r = 0; r < polygons[p].length; r++) {
      const ring = polygons[p][r];
      const n = ring.length / 2;
      if (n < 3) continue;
      for (let i = 0; i < n; i++) {
        const j = (i + 1) % n;
        yield { part: p, ring: r, index: i, x: (ring[2 * i] + ring[2 * j]) / 2, y: (ring[2 * i + 1] + ring[2 * j + 1]) / 2 };
      }
    }
  }
}

function nearest(points, x, y, tolerance) {
  let best = null;
  let bestD = tolerance * tolerance;
  for (const point of points) {
    const d = (point.x - x) ** 2 + (point.y - y) ** 2;
    if (d <= bestD) {
      best = point;
      bestD = d;
    }
  }
  return best;
}

/** The vertex within `tolerance` (image pixels) of (x, y), nearest first: {part, ring, index}, or null. */
export function vertexAt(polygons, x, y, tolerance) {
  return nearest(vertices(polygons || []), x, y, tolerance);
}

/** The edge midpoint within `tolerance` of (x, y): {part, ring, index} (of the edge's first vertex), or null. */
export function midpointAt(polygons, x, y, tolerance) {
  return nearest(midpoints(polygons || []), x, y, tolerance);
}

function copy(polygons) {
  return polygons.map((part) => part.map((ring) => ring.slice()));
}

/** New polygons with vertex `at` moved to (x, y), kept inside the width × height image. */
export function moveVertex(polygons, at, x, y, width = Infinity, height = Infinity) {
  const out = copy(polygons);
  const ring = out[at.part][at.ring];
  ring[2 * at.index] = round2(clamp(x, 0, width));
  ring[2 * at.index + 1] = round2(clamp(y, 0, height));
  return out;
}

/** New polygons with a vertex (x, y) inserted after vertex `at.index` of its ring; the new
 * vertex is {part, ring, index: at.index + 1}. */
export function insertVertex(polygons, at, x, y) {
  const out = copy(polygons);
  out[at.part][at.ring].splice(2 * (at.index + 1), 0, round2(x), round2(y));
  return out;
}

/** New polygons without vertex `at`, or null when its ring would keep fewer than three. */
export function deleteVertex(polygons, at) {
  if (polygons[at.part][at.ring].length / 2 <= 3) return null;
  const out = copy(polygons);
  out[at.part][at.ring].splice(2 * at.index, 2);
  return out;
}

/** The box [x, y, w, h] around every vertex, or null. */
export function polygonsBox(polygons) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const { x, y } of vertices(polygons || [])) {
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
  }
  return x1 < x0 ? null : [x0, y0, round2(x1 - x0), round2(y1 - y0)];
}

// ------------------------------------------------------------------------- the canvas plug-in

export class VertexTool {
  /** width, height: the image's; onEdit({key, polygons, box, kind: "move" | "insert" | "delete"});
   * refuse(text): a press or a key that cannot do anything, and why. */
  constructor({ width, height, onEdit, refuse = () => {} }) {
    Object.assign(this, { width, height, onEdit, refuse });
    this.modes = ["vertices"];
    this.cursor = "";
    this.drag = null; // {key, at, polygons, kind, moved}
    this.chosen = null; // {key, at}: the vertex Delete removes
  }

  hides(selectedKey) {
    return selectedKey;
  }

  _polygons(view) {
    const item = view.selected;
    return item && !item.hidden && item.polygons?.length ? item : null;
  }

  pointerDown(p, view) {
    const item = this._polygons(view);
    if (!item) {
      this.refuse("Select an annotation with polygons first: vertex editing works on polygons.");
      return false;
    }
    const tolerance = HIT * view.px;
    const vertex = vertexAt(item.polygons, p.x, p.y, tolerance);
    if (vertex && p.altKey) {
      this.chosen = { key: item.key, at: vertex };
      this.deleteChosen(view);
      return false;
    }
    if (vertex) {
      this.chosen = { key: item.key, at: vertex };
      this.drag = { key: item.key, at: vertex, polygons: item.polygons, kind: "move", moved: false };
      view.invalidate();
      return true;
    }
    const middle = midpointAt(item.polygons, p.x, p.y, tolerance);
    if (middle) {
      const polygons = insertVertex(item.polygons, middle, middle.x, middle.y);
      const at = { part: middle.part, ring: middle.ring, index: middle.index + 1 };
      this.chosen = { key: item.key, at };
      this.drag = { key: item.key, at, polygons, kind: "insert", moved: true };
      view.invalidate();
      return true;
    }
    this.chosen = null;
    view.invalidate();
    return false;
  }

  pointerMove(p, view) {
    const d = this.drag;
    if (!d) return;
    d.polygons = moveVertex(d.polygons, d.at, p.x, p.y, this.width, this.height);
    d.moved = true;
    view.invalidate();
  }

  pointerUp(p, view) {
    const d = this.drag;
    this.drag = null;
    if (d?.moved) this.onEdit({ key: d.key, polygons: d.polygons, box: polygonsBox(d.polygons), kind: d.kind });
    view.invalidate();
  }

  cancel(view) {
    this.drag = null;
    view?.invalidate();
  }

  /** Delete (or Alt+click): remove the chosen vertex. */
  deleteChosen(view) {
    const item = view.selected;
    const chosen = this.chosen;
    if (!chosen || !item || item.key !== chosen.key || !item.polygons?.length) {
      this.refuse("Click a vertex first (Alt+click removes one at once).");
      return;
    }
    const polygons = deleteVertex(item.polygons, chosen.at);
    if (!polygons) {
      this.refuse("A ring keeps at least three vertices.");
      return;
    }
    this.chosen = null;
    this.onEdit({ key: item.key, polygons, box: polygonsBox(polygons), kind: "delete" });
    view.invalidate();
  }

  hover() {}

  draw(ctx, view) {
    const item = view.selected;
    if (!item || item.hidden) return;
    const polygons = this.drag && this.drag.key === item.key ? this.drag.polygons : item.polygons;
    if (!polygons?.length) return;
    const px = view.px;
    const path = new Path2D();
    for (const part of polygons) {
      for (const ring of part) {
        if (ring.length < 6) continue;
        path.moveTo(ring[0], ring[1]);
        for (let i = 2; i < ring.length; i += 2) path.lineTo(ring[i], ring[i + 1]);
        path.closePath();
      }
    }
    ctx.globalAlpha = 0.3;
    ctx.fillStyle = item.color;
    ctx.fill(path, "evenodd");
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1.5 * px;
    ctx.strokeStyle = item.color;
    ctx.stroke(path);
    for (const m of midpoints(polygons)) {
      ctx.beginPath();
      ctx.arc(m.x, m.y, 2.5 * px, 0, Math.PI * 2);
      ctx.fillStyle = "rgba(255,255,255,0.8)";
      ctx.fill();
    }
    const chosen = this.chosen?.key === item.key ? this.chosen.at : null;
    for (const v of vertices(polygons)) {
      const on = chosen && v.part === chosen.part && v.ring === chosen.ring && v.index === chosen.index;
      ctx.fillStyle = on ? item.color : "#fff";
      ctx.fillRect(v.x - VERTEX * px, v.y - VERTEX * px, 2 * VERTEX * px, 2 * VERTEX * px);
      ctx.lineWidth = 1.5 * px;
      ctx.strokeStyle = on ? "#fff" : item.color;
      ctx.strokeRect(v.x - VERTEX * px, v.y - VERTEX * px, 2 * VERTEX * px, 2 * VERTEX * px);
    }
  }
}
