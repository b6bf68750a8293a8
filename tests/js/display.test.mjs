import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  DISPLAY_DEFAULTS,
  DisplayState,
  cleanSettings,
  imageFilter,
  nextMaskMode,
} from "../../static/js/display.js";

/** A Storage-like object over a Map (what localStorage offers the page). */
function fakeStorage(initial = {}) {
  const map = new Map(Object.entries(initial));
  return {
    map,
    getItem: (key) => (map.has(key) ? map.get(key) : null),
    setItem: (key, value) => map.set(key, String(value)),
  };
}

describe("the mask mode cycle", () => {
  test("filled → outline → hidden → filled", () => {
    assert.equal(nextMaskMode("filled"), "outline");
    assert.equal(nextMaskMode("outline"), "hidden");
    assert.equal(nextMaskMode("hidden"), "filled");
    assert.equal(nextMaskMode("nonsense"), "filled");
  });

  test("cycleMaskMode steps and stores each step", () => {
    const storage = fakeStorage();
    const display = new DisplayState({ storage, user: 3, project: 9 });
    assert.deepEqual([1, 2, 3].map(() => display.cycleMaskMode()), ["outline", "hidden", "filled"]);
    assert.equal(JSON.parse(storage.getItem("labelgpt:display:3")).maskMode, "filled");
  });
});

describe("display settings", () => {
  test("accepted masks are translucent by default: the image shows through", () => {
    const display = new DisplayState();
    assert.equal(display.settings.maskMode, "filled");
    assert.ok(display.settings.opacity >= 0.3 && display.settings.opacity <= 0.45);
    assert.equal(display.filter, "none");
  });

  test("contrast and brightness make the image's filter; reset puts both back", () => {
    assert.equal(imageFilter({ contrast: 1, brightness: 1 }), "none");
    assert.equal(imageFilter({ contrast: 1.5, brightness: 1 }), "contrast(1.5)");
    const display = new DisplayState({ storage: fakeStorage() });
    display.set("contrast", 2);
    display.set("brightness", 1.4);
    assert.equal(display.filter, "contrast(2) brightness(1.4)");
    display.resetImage();
    assert.equal(display.filter, "none");
  });

  test("settings persist per user; hidden classes and folds per project", () => {
    const storage = fakeStorage();
    const mine = new DisplayState({ storage, user: 1, project: 5 });
    mine.set("opacity", 0.7);
    mine.set("sort", "position");
    mine.toggleClass(12);
    mine.toggleGroup(10);
    const again = new DisplayState({ storage, user: 1, project: 5 });
    assert.equal(again.settings.opacity, 0.7);
    assert.equal(again.settings.sort, "position");
    assert.deepEqual([...again.hiddenClasses], [12]);
    assert.deepEqual([...again.collapsed], [10]);
    const otherProject = new DisplayState({ storage, user: 1, project: 6 });
    assert.equal(otherProject.settings.opacity, 0.7, "user-wide");
    assert.deepEqual([...otherProject.hiddenClasses], [], "per project");
    const otherUser = new DisplayState({ storage, user: 2, project: 5 });
    assert.equal(otherUser.settings.opacity, DISPLAY_DEFAULTS.opacity);
    assert.deepEqual([...otherUser.hiddenClasses], []);
  });

  test("what was stored is checked: out of range clamped, junk dropped, broken JSON ignored", () => {
    assert.deepEqual(cleanSettings({ opacity: 7, contrast: -1, maskMode: "x", sort: 3, group: "yes" }), {
      ...DISPLAY_DEFAULTS,
      opacity: 1,
      contrast: 0.2,
    });
    const broken = new DisplayState({ storage: fakeStorage({ "labelgpt:display:1": "{nope" }), user: 1 });
    assert.deepEqual(broken.settings, { ...DISPLAY_DEFAULTS });
    const refusing = new DisplayState({
      storage: { getItem: () => null, setItem: () => { throw new Error("quota"); } },
      user: 1,
    });
    refusing.set("opacity", 0.2);
    assert.equal(refusing.settings.opacity, 0.2, "the page keeps it when storage refuses");
  });

  test("hide one annotation, hide a class: both hide from the canvas, each toggles back", () => {
    const display = new DisplayState();
    const a = { key: 1, class_id: 10 };
    const b = { key: 2, class_id: 11 };
    assert.equal(display.toggleKey(1), true);
    assert.equal(display.isHidden(a), true);
    assert.equal(display.isHidden(b), false);
    assert.equal(display.toggleClass(11), true);
    assert.equal(display.isHidden(b), true);
    assert.equal(display.toggleKey(1), false);
    assert.equal(display.toggleClass(11), false);
    assert.equal(display.isHidden(a) || display.isHidden(b), false);
  });
});
