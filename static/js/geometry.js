// Geometry of the review page in image pixels, with no DOM: boxes, COCO RLE masks (decode,
// encode) and carrying a mask along when its box moves. Shared by the canvas and the page, and
// importable by tests under node.

export function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

export function round2(v) {
  return Math.round(v * 100) / 100;
}

/** The box between two image points, inside the image (width × height): [x, y, w, h]. */
export function boxFromPoints(a, b, width, height) {
  const x0 = clamp(Math.min(a.x, b.x), 0, width);
  const y0 = clamp(Math.min(a.y, b.y), 0, height);
  const x1 = clamp(Math.max(a.x, b.x), 0, width);
  const y1 = clamp(Math.max(a.y, b.y), 0, height);
  return [x0, y0, x1 - x0, y1 - y0];
}

// The view transform (zoom and pan): view (CSS pixels of the canvas) = image * scale + t --------

/** An image point → the view, under {scale, tx, ty}. */
export function imageToView(x, y, { scale, tx, ty }) {
  return { x: x * scale + tx, y: y * scale + ty };
}

/** A view point → image pixels, under {scale, tx, ty} (the inverse of imageToView). */
export function viewToImage(sx, sy, { scale, tx, ty }) {
  return { x: (sx - tx) / scale, y: (sy - ty) / scale };
}

/** The view after zooming to `scale` around the view point (px, py): the image point under it
 * stays under it. */
export function zoomedView({ scale, tx, ty }, newScale, px, py) {
  const ix = (px - tx) / scale;
  const iy = (py - ty) / scale;
  return { scale: newScale, tx: px - ix * newScale, ty: py - iy * newScale };
}

// COCO RLE (column-major run lengths; "counts" in COCO's compressed ASCII form) -----------------

/** The run lengths of a COCO RLE (compressed string or plain list). */
export function rleCounts(rle) {
  if (Array.isArray(rle.counts)) return rle.counts.slice();
  const s = rle.counts;
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/** Run lengths → COCO's compressed counts string. */
export function rleString(counts) {
  let s = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = 1;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** A COCO RLE → Uint8Array of H × W in column-major order (index = col * H + row). */
export function rleDecode(rle) {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  let at = 0;
  let value = 0;
  for (const run of rleCounts(rle)) {
    if (value) out.fill(1, at, Math.min(at + run, out.length));
    at += run;
    value ^= 1;
  }
  return out;
}

/** Column-major Uint8Array → COCO RLE with compressed counts. */
export function rleEncode(bits, h, w) {
  const counts = [];
  let value = 0;
  let run = 0;
  for (let i = 0; i < bits.length; i++) {
    if (bits[i] !== value) {
      counts.push(run);
      run = 0;
      value = bits[i];
    }
    run++;
  }
  counts.push(run);
  return { size: [h, w], counts: rleString(counts) };
}

/** "#rrggbb" → [r, g, b] (the page's indigo for anything else). */
export function hexRgb(color) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color || "");
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [79, 70, 229];
}

/**
 * A mask carried along when its box is moved or resized: the polygons and the RLE mapped from
 * the old box onto the new one (scaled and shifted; nearest pixel for the RLE), so that the
 * box and the mask keep matching; polygon points stay inside the image (width × height).
 * Returns {polygons, mask} (either may be null).
 */
export function transformGeometry({ polygons, mask }, from, to, [width, height] = [Infinity, Infinity]) {
  const sx = to[2] / from[2];
  const sy = to[3] / from[3];
  const mapX = (x) => clamp(round2(to[0] + (x - from[0]) * sx), 0, width);
  const mapY = (y) => clamp(round2(to[1] + (y - from[1]) * sy), 0, height);
  const newPolygons = polygons
    ? polygons.map((part) => part.map((ring) => ring.map((v, i) => (i % 2 === 0 ? mapX(v) : mapY(v)))))
    : null;
  let newMask = null;
  if (mask && mask.size) {
    const [h, w] = mask.size;
    const bits = rleDecode(mask);
    const out = new Uint8Array(h * w);
    const c0 = Math.max(0, Math.floor(to[0]));
    const c1 = Math.min(w, Math.ceil(to[0] + to[2]));
    const r0 = Math.max(0, Math.floor(to[1]));
    const r1 = Math.min(h, Math.ceil(to[1] + to[3]));
    for (let col = c0; col < c1; col++) {
      const srcCol = Math.floor(from[0] + (col + 0.5 - to[0]) / sx);
      if (srcCol < 0 || srcCol >= w) continue;
      for (let row = r0; row < r1; row++) {
        const srcRow = Math.floor(from[1] + (row + 0.5 - to[1]) / sy);
        if (srcRow < 0 || srcRow >= h) continue;
        out[col * h + row] = bits[srcCol * h + srcRow];
      }
    }
    newMask = rleEncode(out, h, w);
  }
  return { polygons: newPolygons, mask: newMask };
}

/** Trace polygon rings ([[x0, y0, x1, y1, ...], ...] per part, image pixels) into `path`
 * (a Path2D, or anything with moveTo / lineTo / closePath), skipping rings of fewer than 3
 * points; returns `path`. Fill it with "evenodd" so holes stay holes. */
export function tracePolygons(path, polygons) {
  for (const part of polygons) {
    for (const ring of part) {
      if (!ring || ring.length < 6) continue;
      path.moveTo(ring[0], ring[1]);
      for (let i = 2; i < ring.length; i += 2) path.lineTo(ring[i], ring[i + 1]);
      path.closePath();
    }
  }
  return path;
}

/** The tight box [x, y, w, h] around the set pixels of a column-major mask, or null. */
export function bitsBox(bits, h, w) {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let col = 0; col < w; col++) {
    const base = col * h;
    for (let row = 0; row < h; row++) {
      if (!bits[base + row]) continue;
      if (col < x0) x0 = col;
      x1 = col;
      if (row < y0) y0 = row;
      if (row > y1) y1 = row;
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}
