// How the review page shows things, never what is saved: the masks' opacity and mode (filled,
// outline only, hidden), the image's contrast and brightness, annotations and classes hidden
// from view, and the side list's order (sort, grouping, collapsed groups).
//
// DisplayState is pure (no DOM): it reads and writes a Storage-like object (localStorage on the
// page, a Map-backed fake in tests) under one key per user. The user-wide settings (opacity, mask
// mode, contrast, brightness, sort, grouping) apply on every project; hidden classes and collapsed
// groups are kept per project (class ids are a project's). Hidden annotations are this page's
// only (an id means nothing on the next image). DisplayPanel wires the side panel's controls.

export const MASK_MODES = ["filled", "outline", "hidden"];
export const SORTS = ["score", "position"];

export const DISPLAY_DEFAULTS = Object.freeze({
  opacity: 0.4, // accepted masks are translucent: the image shows through them
  maskMode: "filled",
  contrast: 1,
  brightness: 1,
  sort: "score",
  group: true,
});

const RANGES = { opacity: [0, 1], contrast: [0.2, 4], brightness: [0.2, 4] };

/** filled → outline → hidden → filled. */
export function nextMaskMode(mode) {
  const at = MASK_MODES.indexOf(mode);
  return MASK_MODES[(at + 1) % MASK_MODES.length];
}

/** The canvas filter of the image (never of the masks): "none" when neither is changed. */
export function imageFilter({ contrast, brightness }) {
  const parts = [];
  if (contrast !== 1) parts.push(`contrast(${contrast})`);
  if (brightness !== 1) parts.push(`brightness(${brightness})`);
  return parts.length ? parts.join(" ") : "none";
}

/** Whatever was stored (old, hand-edited, from another version) → valid settings. */
export function cleanSettings(raw) {
  const out = { ...DISPLAY_DEFAULTS };
  if (!raw || typeof raw !== "object") return out;
  for (const [name, [low, high]] of Object.entries(RANGES)) {
    const value = Number(raw[name]);
    if (raw[name] != null && Number.isFinite(value)) out[name] = Math.min(high, Math.max(low, value));
  }
  if (MASK_MODES.includes(raw.maskMode)) out.maskMode = raw.maskMode;
  if (SORTS.includes(raw.sort)) out.sort = raw.sort;
  if (typeof raw.group === "boolean") out.group = raw.group;
  return out;
}

function idList(value) {
  return Array.isArray(value) ? value.filter((v) => Number.isInteger(v)) : [];
}

export class DisplayState {
  /** storage: {getItem, setItem} (localStorage) or null; user: the user's id (the storage key);
   * project: the project's id (hidden classes and collapsed groups are per project). */
  constructor({ storage = null, user = "", project = "" } = {}) {
    this.storage = storage;
    this.storageKey = `labelgpt:display:${user}`;
    this.project = String(project);
    let stored = {};
    try {
      stored = JSON.parse(storage?.getItem(this.storageKey) || "{}") || {};
    } catch {
      stored = {};
    }
    this.stored = stored && typeof stored === "object" ? stored : {};
    this.settings = cleanSettings(this.stored);
    const mine = this.stored.projects?.[this.project] || {};
    this.hiddenClasses = new Set(idList(mine.hiddenClasses));
    this.collapsed = new Set(idList(mine.collapsed));
    this.hiddenKeys = new Set();
  }

  get filter() {
    return imageFilter(this.settings);
  }

  set(name, value) {
    this.settings = cleanSettings({ ...this.settings, [name]: value });
    this.save();
  }

  cycleMaskMode() {
    this.set("maskMode", nextMaskMode(this.settings.maskMode));
    return this.settings.maskMode;
  }

  /** The reset button: contrast and brightness back to 1. */
  resetImage() {
    this.settings = { ...this.settings, contrast: 1, brightness: 1 };
    this.save();
  }

  /** Hide or show one annotation (by its page key); returns true when it is now hidden. */
  toggleKey(key) {
    if (this.hiddenKeys.has(key)) this.hiddenKeys.delete(key);
    else this.hiddenKeys.add(key);
    return this.hiddenKeys.has(key);
  }

  /** Hide or show a class; returns true when it is now hidden. */
  toggleClass(classId) {
    if (this.hiddenClasses.has(classId)) this.hiddenClasses.delete(classId);
    else this.hiddenClasses.add(classId);
    this.save();
    return this.hiddenClasses.has(classId);
  }

  toggleGroup(classId) {
    if (this.collapsed.has(classId)) this.collapsed.delete(classId);
    else this.collapsed.add(classId);
    this.save();
  }

  /** Hidden from the canvas: by itself or by its class. */
  /** Another image: the annotations hidden one by one were this one's (the classes stay hidden). */
  forgetKeys() {
    this.hiddenKeys.clear();
  }

  isHidden(record) {
    return this.hiddenKeys.has(record.key) || this.hiddenClasses.has(record.class_id);
  }

  save() {
    if (!this.storage) return;
    const projects = { ...(this.stored.projects || {}) };
    projects[this.project] = { hiddenClasses: [...this.hiddenClasses], collapsed: [...this.collapsed] };
    this.stored = { ...this.settings, projects };
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(this.stored));
    } catch {
      // storage full or refused (private mode): the settings hold for this page only
    }
  }
}

/** The side panel's display controls: mask opacity, mask mode, contrast, brightness, reset, and
 * the list's sort and grouping. `onChange()`: redraw. Looks its elements up by id. */
export class DisplayPanel {
  constructor({ display, onChange, doc = document }) {
    this.display = display;
    this.onChange = onChange;
    const $ = (id) => doc.getElementById(id);
    this.el = {
      opacity: $("mask-opacity"),
      opacityValue: $("mask-opacity-value"),
      mode: $("mask-mode"),
      contrast: $("image-contrast"),
      brightness: $("image-brightness"),
      reset: $("image-reset"),
      sort: $("list-sort"),
      group: $("list-group"),
    };
    const slider = (element, name, scale = 1) =>
      element.addEventListener("input", () => {
        display.set(name, Number(element.value) / scale);
        this.render();
        onChange();
      });
    slider(this.el.opacity, "opacity", 100);
    slider(this.el.contrast, "contrast", 100);
    slider(this.el.brightness, "brightness", 100);
    this.el.mode.addEventListener("click", () => this.cycleMaskMode());
    this.el.reset.addEventListener("click", () => {
      display.resetImage();
      this.render();
      onChange();
    });
    this.el.sort.addEventListener("change", () => {
      display.set("sort", this.el.sort.value);
      onChange();
    });
    this.el.group.addEventListener("change", () => {
      display.set("group", this.el.group.checked);
      onChange();
    });
    this.render();
  }

  cycleMaskMode() {
    this.display.cycleMaskMode();
    this.render();
    this.onChange();
  }

  render() {
    const s = this.display.settings;
    this.el.opacity.value = String(Math.round(s.opacity * 100));
    this.el.opacityValue.textContent = `${Math.round(s.opacity * 100)}%`;
    this.el.mode.textContent = `Masks: ${s.maskMode}`;
    this.el.mode.dataset.maskMode = s.maskMode;
    this.el.contrast.value = String(Math.round(s.contrast * 100));
    this.el.brightness.value = String(Math.round(s.brightness * 100));
    this.el.reset.disabled = s.contrast === 1 && s.brightness === 1;
    this.el.sort.value = s.sort;
    this.el.group.checked = s.group;
  }
}
