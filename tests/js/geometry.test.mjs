import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  boxFromPoints,
  hexRgb,
  rleCounts,
  rleDecode,
  rleEncode,
  tracePolygons,
  transformGeometry,
} from "../../static/js/geometry.js";

/** A column-major H × W mask with the rectangle [x0, x1) × [y0, y1) set. */
function rect(h, w, [x0, y0, x1, y1]) {
  const bits = new Uint8Array(h * w);
  for (let col = x0; col < x1; col++) for (let row = y0; row < y1; row++) bits[col * h + row] = 1;
  return bits;
}

describe("geometry", () => {
  test("RLE encode and decode are inverse, with COCO's compressed counts", () => {
    const bits = rect(6, 5, [1, 2, 4, 5]);
    const rle = rleEncode(bits, 6, 5);
    assert.deepEqual(rle.size, [6, 5]);
    assert.equal(typeof rle.counts, "string");
    assert.deepEqual(rleDecode(rle), bits);
    assert.deepEqual(rleCounts(rle), [8, 3, 3, 3, 3, 3, 7]);
    assert.deepEqual(rleDecode({ size: [6, 5], counts: [8, 3, 3, 3, 3, 3, 7] }), bits, "plain counts too");
  });

  test("long runs survive the delta coding", () => {
    const h = 300;
    const w = 400;
    const bits = rect(h, w, [10, 20, 390, 280]);
    assert.deepEqual(rleDecode(rleEncode(bits, h, w)), bits);
  });

  test("a moved and scaled box carries its polygons and mask along", () => {
    const h = 20;
    const w = 20;
    const mask = rleEncode(rect(h, w, [2, 2, 6, 6]), h, w);
    const polygons = [[[2, 2, 6, 2, 6, 6, 2, 6]]];
    const moved = transformGeometry({ polygons, mask }, [2, 2, 4, 4], [10, 8, 8, 8], [w, h]);
    assert.deepEqual(moved.polygons, [[[10, 8, 18, 8, 18, 16, 10, 16]]]);
    assert.deepEqual(rleDecode(moved.mask), rect(h, w, [10, 8, 18, 16]));
  });

  test("polygon points stay inside the image", () => {
    const geometry = { polygons: [[[0, 0, 10, 10]]], mask: null };
    const moved = transformGeometry(geometry, [0, 0, 10, 10], [15, 15, 10, 10], [20, 20]);
    assert.deepEqual(moved.polygons, [[[15, 15, 20, 20]]]);
    assert.equal(moved.mask, null);
  });

  test("boxFromPoints orders the corners and clips to the image", () => {
    assert.deepEqual(boxFromPoints({ x: 50, y: 40 }, { x: -5, y: 10 }, 30, 30), [0, 10, 30, 20]);
  });

  test("hexRgb", () => {
    assert.deepEqual(hexRgb("#ff8000"), [255, 128, 0]);
    assert.deepEqual(hexRgb("red"), [79, 70, 229]);
  });
});

describe("tracePolygons", () => {
  test("traces every ring of every part, closed, and skips rings of fewer than 3 points", () => {
    const calls = [];
    const path = {
      moveTo: (x, y) => calls.push(["M", x, y]),
      lineTo: (x, y) => calls.push(["L", x, y]),
      closePath: () => calls.push(["Z"]),
    };
    const polygons = [
      [
        [0, 0, 10, 0, 10, 10, 0, 10],
        [2, 2, 4, 2, 4, 4],
      ],
      [[20, 20, 30, 20], null, [40, 40, 50, 40, 50, 50]],
    ];
    assert.equal(tracePolygons(path, polygons), path);
    assert.deepEqual(calls, [
      ["M", 0, 0], ["L", 10, 0], ["L", 10, 10], ["L", 0, 10], ["Z"],
      ["M", 2, 2], ["L", 4, 2], ["L", 4, 4], ["Z"],
      ["M", 40, 40], ["L", 50, 40], ["L", 50, 50], ["Z"],
    ]);
  });
});
