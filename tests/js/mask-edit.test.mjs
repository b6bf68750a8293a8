import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DEFAULT_RADIUS, MAX_RADIUS, MIN_RADIUS, bitsBox, brushResize, paintStroke } from "../../static/js/brush.js";
import { sourceLabel, sourceShort } from "../../static/js/sources.js";
import {
  deleteVertex,
  insertVertex,
  midpointAt,
  moveVertex,
  polygonsBox,
  vertexAt,
  VertexTool,
} from "../../static/js/vertices.js";

describe("brush", () => {
  test("[ and ] step the radius by one while small, then by a quarter, within the limits", () => {
    assert.equal(brushResize(DEFAULT_RADIUS, 1), DEFAULT_RADIUS + 2);
    assert.equal(brushResize(3, 1), 4);
    assert.equal(brushResize(3, -1), 2);
    assert.equal(brushResize(40, 1), 50);
    assert.equal(brushResize(MIN_RADIUS, -1), MIN_RADIUS);
    assert.equal(brushResize(MAX_RADIUS, 1), MAX_RADIUS);
    let r = DEFAULT_RADIUS;
    for (let i = 0; i < 10; i++) r = brushResize(r, 1);
    for (let i = 0; i < 10; i++) r = brushResize(r, -1);
    assert.equal(r, DEFAULT_RADIUS, "up and down come back to the start");
  });

  test("a stroke that changes nothing says so, and the eraser only clears", () => {
    const h = 10;
    const w = 10;
    const bits = new Uint8Array(h * w);
    assert.equal(paintStroke(bits, h, w, { x: 5, y: 5 }, { x: 5, y: 5 }, 2, 0), null);
    const painted = paintStroke(bits, h, w, { x: 5, y: 5 }, { x: 5, y: 5 }, 2, 1);
    assert.deepEqual(bitsBox(bits, h, w), [painted.x0, painted.y0, painted.x1 - painted.x0 + 1, painted.y1 - painted.y0 + 1]);
    assert.equal(paintStroke(bits, h, w, { x: 5, y: 5 }, { x: 5, y: 5 }, 2, 1), null, "painting twice changes nothing");
    const erased = paintStroke(bits, h, w, { x: 0, y: 0 }, { x: 10, y: 10 }, 20, 0);
    assert.equal(erased.changed, painted.changed);
    assert.equal(bitsBox(bits, h, w), null);
  });
});

describe("polygon vertices", () => {
  const square = [[[10, 10, 30, 10, 30, 30, 10, 30]], [[50, 50, 60, 50, 55, 60]]];

  test("the nearest vertex or edge midpoint within the tolerance", () => {
    assert.deepEqual(vertexAt(square, 31, 29, 3), { part: 0, ring: 0, index: 2, x: 30, y: 30 });
    assert.equal(vertexAt(square, 20, 20, 3), null);
    assert.deepEqual(vertexAt(square, 55, 59, 2), { part: 1, ring: 0, index: 2, x: 55, y: 60 });
    assert.deepEqual(midpointAt(square, 20, 11, 2), { part: 0, ring: 0, index: 0, x: 20, y: 10 });
    assert.deepEqual(midpointAt(square, 10, 20, 2), { part: 0, ring: 0, index: 3, x: 10, y: 20 }, "the closing edge");
    assert.equal(midpointAt(null, 10, 20, 2), null);
  });

  test("move, insert and delete give new polygons and leave the old ones as they were", () => {
    const at = { part: 0, ring: 0, index: 1 };
    const moved = moveVertex(square, at, 35.123, -4, 100, 100);
    assert.deepEqual(moved[0][0], [10, 10, 35.12, 0, 30, 30, 10, 30], "rounded, inside the image");
    assert.deepEqual(square[0][0], [10, 10, 30, 10, 30, 30, 10, 30]);
    const inserted = insertVertex(square, { part: 0, ring: 0, index: 3 }, 8, 20);
    assert.deepEqual(inserted[0][0], [10, 10, 30, 10, 30, 30, 10, 30, 8, 20]);
    assert.deepEqual(deleteVertex(inserted, { part: 0, ring: 0, index: 4 }), square);
    assert.equal(deleteVertex(square, { part: 1, ring: 0, index: 0 }), null, "a ring keeps three vertices");
  });

  test("the polygons' box", () => {
    assert.deepEqual(polygonsBox(square), [10, 10, 50, 50]);
    assert.equal(polygonsBox([]), null);
  });
});

describe("where an annotation came from", () => {
  test("a mask kept from click-to-segment is segmented, not drawn, by hand", () => {
    const rle = { size: [2, 2], counts: "0" };
    assert.equal(sourceLabel({ source: "human", mask: rle, polygons: [] }), "segmented by hand");
    assert.equal(sourceLabel({ source: "human", mask: null, polygons: [[[0, 0, 1, 0, 1, 1]]] }), "segmented by hand");
    assert.equal(sourceLabel({ source: "human", mask: null, polygons: null }), "drawn by hand");
    assert.equal(sourceLabel({ source: "model" }), "model proposal");
    assert.equal(sourceLabel({ source: "import" }), "imported");
    assert.equal(sourceShort({ source: "human", mask: rle }), "segmented");
    assert.equal(sourceShort({ source: "human", mask: null, polygons: null }), "drawn");
    assert.equal(sourceShort({ source: "import" }), "import");
  });
});

describe("VertexTool (the canvas plug-in)", () => {
  const item = { key: 7, color: "#ff0000", polygons: [[[10, 10, 30, 10, 30, 30, 10, 30]]] };
  const setup = () => {
    const edits = [];
    const refusals = [];
    const tool = new VertexTool({ width: 100, height: 100, onEdit: (e) => edits.push(e), refuse: (t) => refusals.push(t) });
    const view = { mode: "vertices", scale: 2, px: 0.5, selected: item, invalidate: () => {} };
    return { tool, view, edits, refusals };
  };

  test("a vertex dragged is one edit with the new polygons and their box", () => {
    const { tool, view, edits } = setup();
    assert.equal(tool.pointerDown({ x: 30.5, y: 30.5 }, view), true);
    tool.pointerMove({ x: 35, y: 32 }, view);
    tool.pointerMove({ x: 40, y: 44 }, view);
    assert.equal(edits.length, 0, "nothing is saved while dragging");
    tool.pointerUp({ x: 40, y: 44 }, view);
    assert.deepEqual(edits, [{ key: 7, polygons: [[[10, 10, 30, 10, 40, 44, 10, 30]]], box: [10, 10, 30, 34], kind: "move" }]);
  });

  test("a click on a vertex without a drag saves nothing; Delete then removes it", () => {
    const { tool, view, edits } = setup();
    tool.pointerDown({ x: 10, y: 10 }, view);
    tool.pointerUp({ x: 10, y: 10 }, view);
    assert.equal(edits.length, 0);
    tool.deleteChosen(view);
    assert.deepEqual(edits[0].polygons, [[[30, 10, 30, 30, 10, 30]]]);
    assert.equal(edits[0].kind, "delete");
  });

  test("a midpoint dragged inserts a vertex; Alt+click removes one at once", () => {
    const { tool, view, edits } = setup();
    tool.pointerDown({ x: 20, y: 10 }, view);
    tool.pointerMove({ x: 20, y: 4 }, view);
    tool.pointerUp({ x: 20, y: 4 }, view);
    assert.deepEqual(edits[0].polygons, [[[10, 10, 20, 4, 30, 10, 30, 30, 10, 30]]]);
    assert.equal(edits[0].kind, "insert");
    assert.equal(tool.pointerDown({ x: 10, y: 30, altKey: true }, view), false);
    assert.deepEqual(edits[1].polygons, [[[10, 10, 30, 10, 30, 30]]]);
  });

  test("without a polygon selected it says why and does nothing", () => {
    const { tool, view, edits, refusals } = setup();
    assert.equal(tool.pointerDown({ x: 10, y: 10 }, { ...view, selected: { key: 1, polygons: null } }), false);
    tool.deleteChosen(view);
    assert.equal(edits.length, 0);
    assert.equal(refusals.length, 2);
  });
});
