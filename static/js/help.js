// The help dialog's list of keys, built from keymap.js's KEYS table (so that it lists every key
// keyAction knows, and nothing it does not). Text goes in with textContent only.

import { KEYS, comboLabel } from "./keymap.js";

/** Fill `host` (the help's columns) with one <dl> per column of KEYS. */
export function renderHelp(host, keys = KEYS) {
  const columns = [];
  for (const entry of keys) {
    const at = entry.column || 0;
    if (!columns[at]) {
      columns[at] = document.createElement("dl");
    }
    const dt = document.createElement("dt");
    const separator = entry.range ? "–" : " ";
    entry.combos.forEach((combo, i) => {
      if (i) dt.append(separator);
      const kbd = document.createElement("kbd");
      kbd.dataset.combo = combo;
      kbd.textContent = comboLabel(combo);
      dt.append(kbd);
    });
    const dd = document.createElement("dd");
    dd.textContent = entry.text;
    columns[at].append(dt, dd);
  }
  host.replaceChildren(...columns.filter(Boolean));
}
