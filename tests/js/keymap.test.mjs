import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { KEYS, comboEvent, comboLabel, keyAction } from "../../static/js/keymap.js";

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
    assert.equal(action("F6"), "focus-controls");
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

describe("display keys", () => {
  test("O cycles the masks, Shift+H hides the selection, Shift+C its class; H and C alone stay", () => {
    assert.equal(action("o"), "cycle-masks");
    assert.equal(action("O", { shiftKey: false }), "cycle-masks");
    assert.equal(action("H", { shiftKey: true }), "hide-selected");
    assert.equal(action("C", { shiftKey: true }), "hide-class");
    assert.equal(action("h"), "toggle-rejected");
    assert.equal(action("c"), null);
  });
});

describe("KEYS, the help's table", () => {
  const always = { hasClass: () => true };

  test("each combo gives the action the table says", () => {
    for (const entry of KEYS) {
      if (entry.canvas) continue;
      assert.equal(entry.combos.length, entry.actions.length, entry.text);
      entry.combos.forEach((combo, i) => {
        const found = keyAction(comboEvent(combo), { ...always, ...(entry.context || {}) });
        assert.equal(found?.action, entry.actions[i], `${combo} (${entry.text})`);
      });
    }
  });

  test("every action keyAction answers to any key is in the table", () => {
    const listed = new Set(KEYS.flatMap((entry) => entry.actions));
    const keys = [];
    for (let code = 32; code < 127; code++) keys.push(String.fromCharCode(code));
    keys.push("Tab", "Enter", "Escape", "Delete", "Backspace", "Home", "End", "PageUp", "PageDown", "Insert");
    keys.push("ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "F1", "F2", "F5", "F11");
    const modifiers = [{}, { shiftKey: true }, { ctrlKey: true }, { ctrlKey: true, shiftKey: true }, { altKey: true }];
    const contexts = [{}, { mode: "draw" }, { mode: "segment" }, { mode: "segment", segmenting: true }];
    const missing = new Set();
    for (const key of keys) {
      for (const modifier of modifiers) {
        for (const context of contexts) {
          const found = keyAction({ key, ...modifier }, { ...always, ...context });
          if (found && found.action !== "blur" && found.action !== "close-help" && !listed.has(found.action)) {
            missing.add(`${found.action} (${JSON.stringify({ key, ...modifier, ...context })})`);
          }
        }
      }
    }
    assert.deepEqual([...missing], []);
  });

  test("combos read as events and as the help's labels", () => {
    assert.deepEqual(comboEvent("Ctrl+Shift+Z"), { key: "Z", shiftKey: true, ctrlKey: true, altKey: false });
    assert.deepEqual(comboEvent("+"), { key: "+", shiftKey: false, ctrlKey: false, altKey: false });
    assert.equal(comboEvent("Space").key, " ");
    assert.equal(comboLabel("Shift+Tab"), "⇧Tab");
    assert.equal(comboLabel("Ctrl+Shift+Z"), "Ctrl ⇧Z");
    assert.equal(comboLabel("Escape"), "Esc");
    assert.equal(comboLabel("a"), "A");
    assert.equal(comboLabel("+"), "+");
  });
});
