import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { keyAction } from "../../static/js/keymap.js";

const press = (key, modifiers = {}, context = {}) => keyAction({ key, ...modifiers }, context);
const action = (...args) => press(...args)?.action ?? null;

describe("keyAction", () => {
  test("triage keys", () => {
    assert.equal(action("a"), "accept");
    assert.equal(action("A", { shiftKey: true }), "accept-all");
    assert.equal(action("r"), "reject");
    assert.equal(action("Delete"), "reject");
    assert.equal(action("Backspace"), "reject");
    assert.equal(action("Tab"), "next");
    assert.equal(action("Tab", { shiftKey: true }), "previous");
    assert.equal(action("s"), "skip");
    assert.equal(action("p"), "previous-image");
    assert.equal(action("h"), "toggle-rejected");
    assert.equal(action("?"), "help");
    assert.equal(action("q"), null);
  });

  test("mask editing: brush, eraser and vertices; [ and ] size the brush, Delete removes a vertex", () => {
    assert.equal(action("k"), "toggle-brush");
    assert.equal(action("K", { shiftKey: true }), "toggle-brush");
    assert.equal(action("x"), "toggle-eraser");
    assert.equal(action("g"), "toggle-vertices");
    for (const mode of ["brush", "eraser"]) {
      assert.equal(action("[", {}, { mode }), "brush-smaller");
      assert.equal(action("]", {}, { mode }), "brush-larger");
      assert.equal(press("]", {}, { mode }).preventDefault, true);
    }
    assert.equal(action("[", {}, { mode: "select" }), null, "no brush to size outside its modes");
    assert.equal(action("]", {}, { mode: "vertices" }), null);
    assert.equal(action("Delete", {}, { mode: "vertices" }), "vertex-delete");
    assert.equal(action("Backspace", {}, { mode: "vertices" }), "vertex-delete");
    assert.equal(action("Delete", {}, { mode: "brush" }), "reject");
    assert.equal(action("Escape", {}, { mode: "brush" }), "select-mode");
    assert.equal(action("Escape", {}, { mode: "vertices" }), "select-mode");
    assert.equal(action("k", {}, { textField: true }), null);
    assert.equal(action("[", { ctrlKey: true }, { mode: "brush" }), null);
  });

  test("tools and view", () => {
    assert.equal(action("b"), "toggle-draw");
    assert.equal(action("m"), "toggle-segment");
    assert.equal(action("e"), "refine");
    assert.equal(action("v"), "select-mode");
    assert.equal(action("f"), "fit");
    assert.equal(action("+"), "zoom-in");
    assert.equal(action("="), "zoom-in");
    assert.equal(action("-"), "zoom-out");
  });

  test("undo and redo with Ctrl or Cmd; other modified keys are the browser's", () => {
    assert.equal(action("z", { ctrlKey: true }), "undo");
    assert.equal(action("z", { metaKey: true }), "undo");
    assert.equal(action("Z", { ctrlKey: true, shiftKey: true }), "redo");
    assert.equal(action("y", { ctrlKey: true }), "redo");
    assert.equal(action("z", { ctrlKey: true, altKey: true }), null);
    assert.equal(action("a", { ctrlKey: true }), null);
    assert.equal(action("a", { altKey: true }), null);
    assert.equal(press("z", { ctrlKey: true }).preventDefault, true);
  });

  test("number keys pick a class only when the project has that many", () => {
    const hasClass = (index) => index <= 3;
    assert.deepEqual(press("2", {}, { hasClass }), { action: "class", index: 2, preventDefault: true });
    assert.equal(action("7", {}, { hasClass }), null);
    assert.equal(action("0", {}, { hasClass }), null);
  });

  test("Enter submits, or keeps the mask while segmenting", () => {
    assert.equal(action("Enter"), "submit");
    assert.equal(action("Enter", {}, { mode: "segment" }), "segment-keep");
  });

  test("Escape steps back: the segment object, then the mode, then the selection", () => {
    assert.equal(action("Escape", {}, { mode: "segment", segmenting: true }), "segment-reset");
    assert.equal(action("Escape", {}, { mode: "segment" }), "select-mode");
    assert.equal(action("Escape", {}, { mode: "draw" }), "select-mode");
    assert.equal(action("Escape", {}, { mode: "select" }), "deselect");
  });

  test("while the help is open only Escape and ? work, and they close it", () => {
    const helpOpen = { helpOpen: true };
    assert.equal(action("Escape", {}, helpOpen), "close-help");
    assert.equal(action("?", {}, helpOpen), "close-help");
    assert.equal(action("a", {}, helpOpen), null);
    assert.equal(action("z", { ctrlKey: true }, helpOpen), null);
  });

  test("in a text field keys type; Escape leaves the field without stopping the key", () => {
    assert.equal(action("a", {}, { textField: true }), null);
    assert.equal(action("z", { ctrlKey: true }, { textField: true }), null);
    assert.deepEqual(press("Escape", {}, { textField: true }), { action: "blur", preventDefault: false });
  });

  test("a focused control keeps Enter, Space, Tab and the arrows; letters still work", () => {
    const onControl = { onControl: true };
    for (const key of ["Enter", " ", "Tab", "ArrowLeft", "ArrowDown"]) assert.equal(action(key, {}, onControl), null);
    assert.equal(action("a", {}, onControl), "accept");
    assert.equal(action("z", { ctrlKey: true }, onControl), "undo");
  });
});
