// The review page's keyboard shortcuts as a pure function: a key press and where the page stands
// → the name of the action to run (or null). No DOM: the page says whether the help is open, the
// focus is in a text field or on a control, and which mode it is in.
//
// Actions: "close-help", "blur", "undo", "redo", "next", "previous", "accept", "reject",
// "accept-all", "class" (with `index`, the class's place 1–9), "segment-keep", "submit",
// "segment-reset", "select-mode", "deselect", "skip", "previous-image", "fit", "toggle-draw",
// "toggle-segment", "refine", "toggle-rejected", "zoom-in", "zoom-out", "help", "jump" (G: the
// filmstrip and the jump by name).
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
  if (lower === "r" || key === "Delete" || key === "Backspace") return act("reject");
  if (/^[1-9]$/.test(key)) return hasClass(Number(key)) ? act("class", { index: Number(key) }) : null;
  if (key === "Enter") return act(mode === "segment" ? "segment-keep" : "submit");
  if (key === "Escape") {
    if (mode === "segment" && segmenting) return act("segment-reset");
    return act(mode !== "select" ? "select-mode" : "deselect");
  }
  const letters = {
    s: "skip",
    p: "previous-image",
    f: "fit",
    b: "toggle-draw",
    m: "toggle-segment",
    e: "refine",
    v: "select-mode",
    h: "toggle-rejected",
    g: "jump",
  };
  if (letters[lower]) return act(letters[lower]);
  if (key === "+" || key === "=") return act("zoom-in");
  if (key === "-") return act("zoom-out");
  if (key === "?") return act("help");
  return null;
}
