// The RLE codec, the brush and the view transforms against fixtures written by pycocotools and
// numpy (tests/js/make_fixtures.py → tests/js/fixtures/coco.json): no expected value here is typed
// by hand. tests/test_js_fixtures.py checks that the committed fixtures are what the script makes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { bitsArea, bitsBox, paintStroke } from "../../static/js/brush.js";
import {
  imageToView,
  rleCounts,
  rleDecode,
  rleEncode,
  rleString,
  transformGeometry,
  viewToImage,
  zoomedView,
} from "../../static/js/geometry.js";

const fixtures = JSON.parse(readFileSync(new URL("./fixtures/coco.json", import.meta.url), "utf8"));

const pixelString = (bits) => Array.from(bits, (v) => (v ? "1" : "0")).join("");

describe("COCO RLE, as pycocotools writes it", () => {
  assert.ok(fixtures.rle.length >= 8);
  for (const c of fixtures.rle) {
    test(`${c.name}: compressed counts decode to the run lengths and the pixels`, () => {
      const rle = { size: c.size, counts: c.counts };
      assert.deepEqual(rleCounts(rle), c.runs);
      const bits = rleDecode(rle);
      assert.equal(bits.length, c.size[0] * c.size[1]);
      assert.equal(bitsArea(bits), c.area);
      assert.deepEqual(bitsBox(bits, c.size[0], c.size[1]), c.bbox);
      if (c.pixels) assert.equal(pixelString(bits), c.pixels, "column-major order");
    });

    test(`${c.name}: plain run lengths decode the same, and encoding gives pycocotools' counts`, () => {
      const bits = rleDecode({ size: c.size, counts: c.runs });
      assert.deepEqual(bits, rleDecode({ size: c.size, counts: c.counts }));
      assert.deepEqual(rleEncode(bits, c.size[0], c.size[1]), { size: c.size, counts: c.counts });
      assert.equal(rleString(c.runs), c.counts);
    });
  }
});

describe("brush strokes, as numpy paints them", () => {
  for (const c of fixtures.brush) {
    test(`${c.name}: the pixels within the radius of the stroke change, and only those`, () => {
      const [h, w] = c.before.size;
      const bits = rleDecode(c.before);
      const done = paintStroke(bits, h, w, { x: c.a[0], y: c.a[1] }, { x: c.b[0], y: c.b[1] }, c.radius, c.value);
      assert.equal(done ? done.changed : 0, c.changed);
      assert.deepEqual(rleEncode(bits, h, w), { size: c.after.size, counts: c.after.counts });
    });
  }
});

describe("a mask carried along with its box", () => {
  for (const c of fixtures.move) {
    test(`${c.from} → ${c.to}`, () => {
      const { mask } = transformGeometry({ polygons: null, mask: { size: c.mask.size, counts: c.mask.counts } }, c.from, c.to);
      assert.equal(mask.counts, c.moved.counts);
      assert.equal(pixelString(rleDecode(mask)), c.moved.pixels);
    });
  }
});

describe("image ↔ view coordinates at a zoom and a pan", () => {
  const close = (a, b) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${a} ≉ ${b}`);
  for (const c of fixtures.views) {
    test(`scale ${c.view.scale}, pan ${c.view.tx}, ${c.view.ty}`, () => {
      c.image.forEach(([x, y], i) => {
        const s = imageToView(x, y, c.view);
        close(s.x, c.screen[i][0]);
        close(s.y, c.screen[i][1]);
        const back = viewToImage(c.screen[i][0], c.screen[i][1], c.view);
        close(back.x, x);
        close(back.y, y);
      });
      const zoomed = zoomedView(c.view, c.zoom.scale, c.zoom.at[0], c.zoom.at[1]);
      close(zoomed.scale, c.zoom.view.scale);
      close(zoomed.tx, c.zoom.view.tx);
      close(zoomed.ty, c.zoom.view.ty);
      // The image point under the anchor stays under it.
      const before = viewToImage(c.zoom.at[0], c.zoom.at[1], c.view);
      const after = viewToImage(c.zoom.at[0], c.zoom.at[1], zoomed);
      close(after.x, before.x);
      close(after.y, before.y);
    });
  }
});
