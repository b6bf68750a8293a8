// The review page's keyboard shortcuts as a pure function: a key press and where the page stands
// → the name of the action to run (or null). No DOM: the page says whether the help is open, the
// focus is in a text field or on a control, and which mode it is in.
//
// Actions: "close-help", "blur", "undo", "redo", "next", "previous", "accept", "reject",
// "accept-all", "class" (with `index`, the class's place 1–9), "segment-keep", "submit",
// "segment-reset", "select-mode", "deselect", "skip", "previous-image", "fit", "toggle-draw",
// "toggle-segment", "refine", "toggle-rejected", "zoom-in", "zoom-out", "help", "cycle-masks",
// "hide-selected", "hide-class", "focus-controls"; mask editing: "toggle-brush", "toggle-eraser",
// "toggle-vertices", "brush-smaller", "brush-larger" ([ and ] in the brush and eraser modes),
// "vertex-delete" (Delete or Backspace in the vertices mode); "jump" (J: the filmstrip
// and the jump by name); "find-more" (L: more objects like the selected one, by SAM 3).
// `preventDefault` says whether the key's default (scrolling, typing, focus moves) is stopped.

/**
 * @param {{key: string, shiftKey?: boolean, ctrlKey?: boolean, metaKey?: boolean, altKey?: boolean}} event
 * @param {{helpOpen?: boolean, textField?: boolean, onControl?: boolean, mode?: string,
 *          segmenting?: boolean, hasClass?: (index: number) => boolean}} context
 *   `segmenting`: a segment object is in progress (clicks, a box or a refined annotation).
 * @returns {{action: string, index?: number, preventDefault: boolean} | null}
 */
export function keyAction(event, context = {}) {
  const { helpOpen = false, textField = false, onControl = false, mode = "select", segmenting = false } = context;
  const hasClass = context.hasClass || (() => false);
  const key = event.key;
  const act = (action, extra = {}) => ({ action, preventDefault: true, ...extra });
  if (helpOpen) return key === "Escape" || key === "?" ? act("close-help") : null;
  if (textField) return key === "Escape" ? { action: "blur", preventDefault: false } : null;

  const lower = key.length === 1 ? key.toLowerCase() : key;
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && !event.altKey && (lower === "z" || lower === "y")) {
    return act(lower === "y" || event.shiftKey ? "redo" : "undo");
  }
  if (ctrl || event.altKey) return null;
  // A focused button, link or field keeps its own keys.
  if (onControl && (key === "Enter" || key === " " || key === "Tab" || key.startsWith("Arrow"))) return null;

  if (key === "Tab") return act(event.shiftKey ? "previous" : "next");
  if (lower === "a") return act(event.shiftKey ? "accept-all" : "accept");
  if ((key === "Delete" || key === "Backspace") && mode === "vertices") return act("vertex-delete");
  if ((key === "[" || key === "]") && (mode === "brush" || mode === "eraser")) {
    return act(key === "[" ? "brush-smaller" : "brush-larger");
  }
  if (lower === "r" || key === "Delete" || key === "Backspace") return act("reject");
  if (/^[1-9]$/.test(key)) return hasClass(Number(key)) ? act("class", { index: Number(key) }) : null;
  if (key === "Enter") return act(mode === "segment" ? "segment-keep" : "submit");
  if (key === "Escape") {
    if (mode === "segment" && segmenting) return act("segment-reset");
    return act(mode !== "select" ? "select-mode" : "deselect");
  }
  if (event.shiftKey && lower === "h") return act("hide-selected");
  if (event.shiftKey && lower === "c") return act("hide-class");
  const letters = {
    s: "skip",
    p: "previous-image",
    f: "fit",
    b: "toggle-draw",
    m: "toggle-segment",
    e: "refine",
    v: "select-mode",
    h: "toggle-rejected",
    k: "toggle-brush",
    x: "toggle-eraser",
    g: "toggle-vertices",
    o: "cycle-masks",
    j: "jump",
    l: "find-more",
  };
  if (letters[lower]) return act(letters[lower]);
  if (key === "+" || key === "=") return act("zoom-in");
  if (key === "-") return act("zoom-out");
  if (key === "?") return act("help");
  if (key === "F6") return act("focus-controls");
  return null;
}

// Every key of the page, for the help dialog (static/js/help.js renders it from this table, so
// it cannot drift from keyAction: tests/js/keymap.test.mjs checks that each combo gives its
// action and that every action keyAction can answer is listed here). A combo is "Shift+Tab",
// "Ctrl+z", "Escape"...; `context` is the page's state the combo needs (keyAction's context);
// `canvas: true` marks a key the canvas handles itself (not keyAction). `column`: 0 triage and
// navigation, 1 tools and view.
export const KEYS = [
  { combos: ["Tab", "Shift+Tab"], actions: ["next", "previous"], text: "next / previous annotation (list order)", column: 0 },
  { combos: ["a"], actions: ["accept"], text: "accept, then go to the next proposal", column: 0 },
  { combos: ["r", "Delete", "Backspace"], actions: ["reject", "reject", "reject"], text: "reject, then go to the next proposal", column: 0 },
  { combos: ["Shift+A"], actions: ["accept-all"], text: "accept every visible proposal", column: 0 },
  { combos: ["1", "9"], actions: ["class", "class"], range: true, text: "class of the selection (or of new objects); the legend's rows do the same", column: 0 },
  { combos: ["Enter"], actions: ["submit"], text: "submit and open the next image", column: 0 },
  { combos: ["s", "p"], actions: ["skip", "previous-image"], text: "skip / previous image", column: 0 },
  { combos: ["j"], actions: ["jump"], text: "the filmstrip: the project's images; jump to one by name", column: 0 },
  { combos: ["Ctrl+z", "Ctrl+Shift+Z", "Ctrl+y"], actions: ["undo", "redo", "redo"], text: "undo / redo", column: 0 },
  { combos: ["Escape"], actions: ["deselect"], text: "clear the selection (in a tool: back to Select)", column: 0 },
  { combos: ["?"], actions: ["help"], text: "this help (Esc or ? closes it)", column: 0 },
  { combos: ["h"], actions: ["toggle-rejected"], text: "show / hide rejected", column: 0 },
  { combos: ["Shift+H"], actions: ["hide-selected"], text: "hide / show the selected annotation (the eye on its row does the same)", column: 0 },
  { combos: ["Shift+C"], actions: ["hide-class"], text: "hide / show every annotation of the selection's class (or the legend's eye)", column: 0 },
  { combos: ["o"], actions: ["cycle-masks"], text: "masks: filled → outline only → hidden", column: 0 },
  { combos: ["v"], actions: ["select-mode"], text: "select, move and resize (back from a tool)", column: 1 },
  { combos: ["b"], actions: ["toggle-draw"], text: "draw boxes: stays on for the next box until Esc or V", column: 1 },
  { combos: ["m"], actions: ["toggle-segment"], text: "click to segment: left click adds, right click removes, drag gives a box; stays on until Esc or V", column: 1 },
  { combos: ["Enter"], actions: ["segment-keep"], context: { mode: "segment" }, text: "(segmenting) keep the mask; with E: save the refined mask", column: 1 },
  { combos: ["Escape"], actions: ["segment-reset"], context: { mode: "segment", segmenting: true }, text: "(segmenting) cancel the object; a second Esc goes back to Select", column: 1 },
  { combos: ["e"], actions: ["refine"], text: "refine the selected annotation's mask with clicks", column: 1 },
  { combos: ["l"], actions: ["find-more"], text: "find more like the selected annotation (SAM 3): the other objects like it become proposals of its class; rejected ones of the class count as “not like this”", column: 1 },
  { combos: ["k", "x"], actions: ["toggle-brush", "toggle-eraser"], text: "brush / eraser on the selected annotation's mask (each stroke saved, one undo step)", column: 1 },
  { combos: ["[", "]"], actions: ["brush-smaller", "brush-larger"], context: { mode: "brush" }, text: "(brush, eraser) smaller / larger brush", column: 1 },
  { combos: ["g"], actions: ["toggle-vertices"], text: "polygon vertices: drag one; drag an edge's midpoint to add one; Alt+click removes", column: 1 },
  { combos: ["Delete", "Backspace"], actions: ["vertex-delete", "vertex-delete"], context: { mode: "vertices" }, text: "(vertices) remove the chosen vertex", column: 1 },
  { combos: ["f", "+", "-"], actions: ["fit", "zoom-in", "zoom-out"], text: "fit, zoom in, zoom out (or the wheel)", column: 1 },
  { combos: ["F6"], actions: ["focus-controls"], text: "keyboard to the toolbar, then the side panel, then back (Tab walks their controls)", column: 1 },
  { combos: ["Space"], actions: [], canvas: true, text: "hold and drag to pan (or drag with the middle button, or on empty space)", column: 1 },
];

/** A combo of KEYS ("Ctrl+Shift+Z") → the key event it stands for. */
export function comboEvent(combo) {
  const parts = combo === "+" ? ["+"] : combo.split("+");
  const key = parts.pop();
  return {
    key: key === "Space" ? " " : key,
    shiftKey: parts.includes("Shift"),
    ctrlKey: parts.includes("Ctrl"),
    altKey: parts.includes("Alt"),
  };
}

/** A combo as the help shows it ("⇧Tab", "Ctrl ⇧Z", "Esc"). */
export function comboLabel(combo) {
  const names = { Escape: "Esc", Delete: "Del", Backspace: "⌫" };
  const parts = combo === "+" ? ["+"] : combo.split("+");
  const key = parts.pop();
  const shown = names[key] || (key.length === 1 ? key.toUpperCase() : key);
  return parts.map((p) => (p === "Shift" ? "⇧" : `${p} `)).join("") + shown;
}
