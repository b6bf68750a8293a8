import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { ReviewCanvas } from "../../static/js/canvas.js";
import { installDom } from "./fake-dom.mjs";

let dom;

beforeEach(() => {
  dom = installDom({ width: 800, height: 600, dpr: 1 });
});

afterEach(() => dom.uninstall());

function loadedCanvas() {
  const canvas = new ReviewCanvas(dom.host, { imageUrl: "/media/a.png", width: 400, height: 300 });
  dom.images[0].dispatchEvent(new Event("load"));
  dom.flushFrames();
  return canvas;
}

/** The device pixels per CSS pixel the last frame drew the image with. */
function drawnRatio(canvas) {
  const transforms = canvas.ctx.transforms;
  const [a] = transforms.at(-1); // the image transform: dpr * scale
  return a / canvas.scale;
}

describe("ReviewCanvas devicePixelRatio", () => {
  test("frames draw with the ratio the backing store was sized with", () => {
    const canvas = loadedCanvas();
    assert.equal(canvas.canvas.width, 800);
    assert.equal(drawnRatio(canvas), 1);
    // The ratio changes (browser zoom, another screen) but nothing resized the store yet.
    dom.window.devicePixelRatio = 2;
    canvas.invalidate();
    dom.flushFrames();
    assert.equal(canvas.canvas.width, 800);
    assert.equal(drawnRatio(canvas), 1, "one value for the store and the frame");
  });

  test("a change of the ratio (matchMedia) resizes the store and the next frames use it", () => {
    const canvas = loadedCanvas();
    assert.deepEqual(
      dom.queries.map((q) => q.media),
      ["(resolution: 1dppx)"],
    );
    dom.window.devicePixelRatio = 2;
    dom.queries[0].dispatchEvent(new Event("change"));
    dom.flushFrames();
    assert.deepEqual([canvas.canvas.width, canvas.canvas.height], [1600, 1200]);
    assert.deepEqual([canvas.canvas.style.width, canvas.canvas.style.height], ["800px", "600px"]);
    assert.equal(canvas.dpr, 2);
    assert.equal(drawnRatio(canvas), 2);
    // Now watching the new ratio, and no longer the old one.
    assert.equal(dom.queries.at(-1).media, "(resolution: 2dppx)");
    const before = dom.queries[0].calls;
    dom.queries[0].dispatchEvent(new Event("change"));
    assert.equal(dom.queries[0].calls, before, "the old query's listener is gone");
  });

  test("a resize re-reads the ratio", () => {
    const canvas = loadedCanvas();
    dom.window.devicePixelRatio = 1.5;
    dom.host.clientWidth = 1000;
    dom.observers[0].callback([]);
    dom.flushFrames();
    assert.equal(canvas.canvas.width, 1500);
    assert.equal(drawnRatio(canvas), 1.5);
  });
});

describe("ReviewCanvas.destroy", () => {
  test("removes every listener it added, stops observing and drawing", () => {
    const canvas = loadedCanvas();
    dom.window.devicePixelRatio = 2;
    dom.queries[0].dispatchEvent(new Event("change")); // a second media query
    canvas.invalidate(); // a frame pending
    const element = canvas.canvas;
    const targets = [dom.window, element, dom.images[0], ...dom.queries];
    assert.ok(dom.window.types.has("blur") && dom.window.types.has("keydown") && dom.window.types.has("keyup"));
    assert.equal(element.types.size, 9, [...element.types].join(" "));

    canvas.destroy();
    for (const target of targets) {
      const before = target.calls;
      for (const type of target.types) target.dispatchEvent(new Event(type));
      assert.equal(target.calls, before, `no listener left on ${target.tagName ?? target.media ?? "window"}`);
    }
    assert.equal(dom.observers[0].observing, false);
    assert.equal(dom.frames.size, 0);
    assert.equal(dom.host.children.includes(element), false);
  });
});

describe("ReviewCanvas.load: another image in place", () => {
  test("a decoded image is shown at once, with the last image's items, selection and view gone", async () => {
    const canvas = loadedCanvas();
    canvas.setItems([{ key: 1, box: [10, 10, 50, 50], color: "#f00", state: "proposed" }]);
    canvas.select(1);
    canvas.zoomBy(2);
    const ready = [];
    dom.host.addEventListener("canvas:ready", (event) => ready.push(event.detail));
    const decoded = new dom.window.Image();
    Object.assign(decoded, { complete: true, naturalWidth: 200 });
    canvas.load({ url: "/media/b.png", width: 200, height: 100, decoded });
    assert.equal(canvas.loaded, false);
    assert.deepEqual([canvas.items, canvas.selectedKey], [[], null]);
    await Promise.resolve();
    assert.deepEqual(ready, [{ width: 200, height: 100 }]);
    assert.equal(canvas.image, decoded);
    assert.equal(canvas.loaded, true);
    assert.equal(canvas.scale, Math.min(800 / 200, 600 / 100) * 0.98, "fitted to the new size");
  });

  test("without a decoded image the file is loaded; the last image's late load is ignored", () => {
    const canvas = new ReviewCanvas(dom.host, { imageUrl: "/media/a.png", width: 400, height: 300 });
    const ready = [];
    dom.host.addEventListener("canvas:ready", (event) => ready.push(event.detail));
    canvas.load({ url: "/media/b.png", width: 200, height: 100 });
    dom.images[0].dispatchEvent(new Event("load")); // the first image, too late
    assert.deepEqual(ready, []);
    assert.equal(dom.images[1].src, "/media/b.png");
    dom.images[1].dispatchEvent(new Event("load"));
    assert.deepEqual(ready, [{ width: 200, height: 100 }]);
  });
});
