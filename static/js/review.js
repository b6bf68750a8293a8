// The review page's entry: reads the page's JSON (#review-data) and wires the modules together.
//
//   state.js       records, classes, thresholds, visibility, selection (no DOM)
//   save-queue.js  requests, the ordered save queue (retry, backoff), annotation writes (no DOM)
//   history.js     undo / redo stacks (no DOM)
//   editor.js      edits: applied at once, queued, recorded for undo (no DOM)
//   keymap.js      key press → action (no DOM)
//   tools.js       click-to-segment and mask refining
//   mask-tools.js  brush and eraser (brush.js), polygon vertices (vertices.js)
//   modes.js       the tool modes (select, draw, segment): buttons, hint, segment status
//   lease.js       the hold on the image, in the header; what the page's claim answered
//   list.js        the side list (virtualised); list-order.js its order, groups and numbers
//   display.js     how things are shown (mask opacity and mode, contrast, hidden ones), kept per user
//   legend.js      the class legend (keys, colours, counts; pick a class, hide a class)
//   help.js        the help dialog's keys, from keymap.js's KEYS
//   panels.js      threshold, counts and selection panels
//   navigation.js  submit, skip, previous
//   prefetch.js    the next image's data and bitmap, ready before Enter; the Enter → next image time
//   filmstrip.js   the filmstrip of the project's images and the jump by name
//   find-more.js   "find more like this" (L): the request to SAM 3 on a worker, polled, merged
//   messages.js    messages and the save status
//   canvas.js      the canvas (isolated: methods in, DOM events out); geometry.js its maths
//
// Every URL comes from the page's data (data.urls). Everything user-supplied is put in the page
// with textContent, never as markup.
//
// The GET that opened the page leased nothing: the page first claims its image with a POST (the
// CSRF header) to data.urls.lease, and is built from the answer: the fresh data with the lease,
// or read-only (409: someone else holds it; or the claim failed). Until then it takes no input.
//
// The page reviews one image after another without a page load: after Enter (the submit saved,
// the prefetched next image claimed) loadImage(next) builds the next image's state from its data
// in place and history.pushState gives it its URL (a reload or Back loads that URL as a page).
// The parts that hold the page's DOM (canvas, list, legend, panels, listeners on document and
// stage) are made and wired once; loadImage gives them each image's state, at the start too. A
// page load stays the way on when nothing was peeked, the claim was refused, or it went wrong.

import { ReviewCanvas } from "./canvas.js";
import { DisplayPanel, DisplayState } from "./display.js";
import { Editor } from "./editor.js";
import { Filmstrip, NameJump } from "./filmstrip.js";
import { FindMore, findMoreBlocked, findMoreMessage, mergeFound } from "./find-more.js";
import { transformGeometry } from "./geometry.js";
import { renderHelp } from "./help.js";
import { KEYS, keyAction } from "./keymap.js";
import { Legend } from "./legend.js";
import { LeaseTimer, claimOutcome } from "./lease.js";
import { MaskTools } from "./mask-tools.js";
import { AnnotationList } from "./list.js";
import { listOrder } from "./list-order.js";
import { Messages, PendingStatus } from "./messages.js";
import { Modes, showSegmentStatus } from "./modes.js";
import { Navigation, postForm, progressText, queueAfter } from "./navigation.js";
import { ThresholdPanel, renderCounts, renderSelection } from "./panels.js";
import {
  Prefetcher,
  enterElapsed,
  handOver,
  inPlaceOff,
  markEnter,
  prefetchOff,
  takeHandover,
} from "./prefetch.js";
import { SaveQueue, createRequest } from "./save-queue.js";
import { ReviewState, fromServer } from "./state.js";
import { SegmentTool } from "./tools.js";

const $ = (id) => document.getElementById(id);
const pageData = JSON.parse($("review-data").textContent); // the first image's, as the GET gave it
const csrfToken = (() => {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
})();
const request = createRequest({ fetch: (...args) => window.fetch(...args), csrfToken });

// The claim: the lease (and the page's data as it is now), or read-only. After Enter the previous
// page may have claimed this image already and handed its data over (prefetch.js).
const epochNow = () => performance.timeOrigin + performance.now();
const handedOver = takeHandover(window.sessionStorage, pageData.image.id);
const firstClaim = handedOver
  ? { data: handedOver, heldBy: null, locked: null }
  : claimOutcome(pageData, await request("POST", pageData.urls.lease, {}).catch((error) => error));
const storage = (() => {
  try {
    return window.localStorage;
  } catch {
    return null; // storage refused: the settings hold for this page only
  }
})();

// The image under review: loadImage sets these, at the start and on each move in place.
let claim, data, urls, readOnly, state, editor, seg, lease, prefetcher;
let onwardClaim = null; // the claim of the peeked image, made beside the submit

// ------------------------------------------------------------------- parts (made once)

const first = firstClaim.data;
const display = new DisplayState({ storage, user: $("review").dataset.user || "", project: first.project.id });
const messages = new Messages($("review-messages"));
const reload = { label: "Reload", run: () => window.location.reload() };

/** A message; `reload: true` adds a "Reload" button. */
function flash(text, kind = "info", { reload: withReload = false, ...options } = {}) {
  messages.flash(text, kind, withReload ? { ...options, action: reload } : options);
}
const queue = new SaveQueue({
  onChange: () => pending.render(),
  onError: (error) => {
    console.error(error);
    flash(`Could not save: ${error.message}`, "error");
  },
});
const canvas = new ReviewCanvas($("stage"), { width: first.image.width, height: first.image.height });
const list = new AnnotationList({
  box: $("ann-list"),
  inner: $("ann-rows"),
  empty: $("ann-empty"),
  state: null,
  display,
  onSelect: (key) => select(key),
  onHide: (key) => toggleHidden(key),
  onToggleGroup: (classId) => {
    display.toggleGroup(classId);
    list.render();
  },
});
const legend = new Legend({
  host: $("legend"),
  state: null,
  display,
  onPick: (classId) => changeClass(classId),
  onToggle: (classId) => toggleClassHidden(classId),
});
const displayPanel = new DisplayPanel({ display, onChange: refresh });
const pending = new PendingStatus({
  el: $("pending"),
  text: $("pending-text"),
  retry: $("pending-retry"),
  queue,
  anySaved: () => editor.history.canUndo,
});
const modes = new Modes({ state: null, canvas, segment: null, editor: null });
const maskTools = new MaskTools({
  state: null,
  editor: null,
  canvas,
  modes,
  notify: flash,
  sizeLabel: $("brush-size"),
  width: first.image.width,
  height: first.image.height,
});
Object.assign(modes.hints, maskTools.hints);
const thresholds = new ThresholdPanel({
  classes: first.classes, // every image is of the same project
  request,
  url: first.urls.threshold,
  notify: flash,
  onChange: refresh,
});
const navigation = new Navigation({
  queue,
  request,
  notify: flash,
  setBusy,
  post: (url) => postForm(urls.next || url, csrfToken), // urls.next: the skipped queue
  onLeave: (what) => {
    if (what !== "submit" && what !== "skip") return;
    markEnter(window.sessionStorage, epochNow());
    // The peeked image is claimed now, beside the submit (it is the queue's next one either way).
    onwardClaim = prefetcher ? prefetcher.claim() : null;
  },
  onward: async () => {
    const claimed = onwardClaim ? await onwardClaim : null;
    if (!claimed) return false;
    if (!inPlaceOff(storage) && moveTo(claimed)) return true;
    if (!handOver(window.sessionStorage, claimed.data)) return false;
    window.location.assign(claimed.reviewUrl);
    return true;
  },
});
// For bench/review_next.py and the tests: prefetchUsed, the image's data came from the prefetch;
// inPlace, it was loaded without a page load; enterToImageMs, Enter → this image drawn; pageMs,
// the page load's share (from its navigation's start; null in place); peeked, the next image's
// id once peeked and loaded, false when there is none (or no prefetch), null until then.
const timing = {
  prefetchUsed: handedOver !== null,
  inPlace: false,
  enterToImageMs: null,
  pageMs: null,
  peeked: null,
};
const filmstrip = new Filmstrip({
  root: $("filmstrip"),
  track: $("filmstrip-track"),
  earlier: $("filmstrip-before"),
  later: $("filmstrip-after"),
  request,
  url: first.urls.filmstrip,
  currentId: first.image.id,
  open: (url) => navigation.leave(url, "open"),
  notify: flash,
});
const nameJump = new NameJump({
  form: $("jump-form"),
  input: $("jump-name"),
  results: $("jump-results"),
  request,
  url: first.urls.image_names,
  open: (url) => navigation.leave(url, "open"),
  notify: flash,
});

/** P: the previous image, or a message on the first one (no reload). */
async function goPrevious() {
  let answer;
  try {
    answer = await request("GET", urls.previous_check);
  } catch (error) {
    flash(`Could not go back: ${error.message}`, "error");
    return;
  }
  if (answer.status === 200 && answer.json && answer.json.previous === null) {
    flash("This is the first image.", "info");
    return;
  }
  navigation.leave(answer.json?.previous?.review_url || urls.previous, "previous");
}

// ------------------------------------------------------------------------------- selection

function select(key, { reveal = true } = {}) {
  state.selectedKey = key;
  const r = state.byKey.get(key);
  if (r) state.activeClassId = r.class_id;
  canvas.select(key, { reveal: reveal && key != null });
  canvas.setDrawColor(state.classColor(state.activeClassId));
  renderSelection(state);
  if (r && display.settings.group && display.collapsed.has(r.class_id)) {
    display.toggleGroup(r.class_id);
    list.render();
  } else {
    list.redraw();
  }
  list.scrollTo(key);
  if (modes.hints[modes.mode]) modes.renderHint(); // a mask tool's hint names the selection
  legend.markActive();
}

/** Shift+H or a row's eye: hide or show one annotation on the canvas. */
function toggleHidden(key) {
  if (key == null || !state.byKey.has(key)) {
    flash("Select the annotation to hide first (click it or Tab), then press Shift+H.", "info");
    return;
  }
  display.toggleKey(key);
  refresh();
}

/** Shift+C or the legend's eye: hide or show every annotation of a class on the canvas. */
function toggleClassHidden(classId) {
  if (!state.classes.has(classId)) return;
  const hidden = display.toggleClass(classId);
  flash(`${hidden ? "Hid" : "Showing"} every “${state.className(classId)}”.`, "info");
  refresh();
}

function changeClass(classId) {
  if (!state.classes.has(classId)) return;
  state.activeClassId = classId;
  const r = state.selected;
  if (r && modes.mode === "select" && !r.deleted && r.class_id !== classId) {
    editor.edit(r, { class_id: classId }, "change class");
  }
  canvas.setDrawColor(state.classColor(state.activeClassId));
  refresh();
}

// ---------------------------------------------------------------------------------- tools

/** E: refine the selected annotation's mask. */
function refineSelected() {
  if (!editor.guard()) return;
  const r = state.selected;
  if (!r || r.deleted) {
    flash("Select the annotation to refine first (click it or Tab), then press E.", "info");
    return;
  }
  if (r.id == null) {
    flash("This annotation is still being saved: refine it in a moment.", "info");
    return;
  }
  if (modes.mode !== "segment") modes.set("segment");
  seg.startRefine(r);
}

/** L: find more objects like the selected annotation (SAM 3 on a worker), added as proposals. */
const finder = new FindMore({ request });
let findingOn = null; // the image id a search runs on

async function findMoreSelected() {
  const blocked = findMoreBlocked({
    availability: data.find_more,
    selected: state.selected,
    readOnly,
    running: finder.running,
  });
  if (blocked) {
    flash(blocked, "info");
    return;
  }
  const imageId = data.image.id;
  findingOn = imageId;
  renderFindMore();
  flash("Looking for more like it…", "info");
  const done = await finder.run(urls.find_more, state.selected.id);
  findingOn = null;
  if (data.image.id !== imageId) return; // moved on meanwhile: that image's page loads them
  const added = done.status === "succeeded" ? mergeFound(state, done.annotations, fromServer) : [];
  const message = findMoreMessage(done, added.filter((r) => state.isVisible(r)).length);
  flash(message.text, message.kind, message.kind === "error" ? { sticky: true } : {});
  refresh();
  renderFindMore();
}

/** The find-more button: disabled with the reason while it cannot run on this image. */
function renderFindMore() {
  const button = $("find-more-button");
  const note = $("find-more-reason");
  if (!button) return;
  const availability = data.find_more;
  const reason = !availability?.available ? findMoreBlocked({ availability }) : readOnly ? findMoreBlocked({ availability, readOnly }) : null;
  const busy = findingOn === data.image.id;
  button.disabled = Boolean(reason) || busy;
  button.title = reason || "Find more objects like this one (L)";
  button.setAttribute("aria-busy", String(busy));
  button.firstChild.textContent = busy ? "Finding more… " : "Find more like this ";
  note.hidden = !reason;
  note.textContent = reason || "";
}

// ------------------------------------------------------------------------------ navigation

function submit() {
  if (editor.guard()) navigation.submit(urls.submit, state.visible.filter((r) => r.state === "proposed").length);
}

function skip() {
  if (editor.guard()) navigation.leave(urls.skip, "skip");
}

function setBusy(busy) {
  for (const id of ["submit-button", "skip-button"]) {
    const el = $(id);
    if (el) el.disabled = busy || readOnly;
  }
}

// ---------------------------------------------------------------------------- rendering

function refresh() {
  // The records in the list's order (sort, groups): Tab, A / R's next proposal and the numbers follow it.
  const { sort, group } = display.settings;
  const ordered = listOrder(state.records, { sort, group, classOrder: state.classList.map((c) => c.id) });
  state.records.splice(0, state.records.length, ...ordered);
  if (state.refreshVisible()) canvas.select(null);
  canvas.setDisplay({ opacity: display.settings.opacity, maskMode: display.settings.maskMode, filter: display.filter });
  canvas.setItems(
    state.visible.map((r, i) => ({
      key: r.key,
      box: r.box,
      polygons: r.polygons,
      mask: r.mask,
      color: state.classColor(r.class_id),
      state: r.state,
      faint: r.state === "rejected",
      hidden: display.isHidden(r),
      number: i + 1,
      label: `${state.className(r.class_id)}${r.score != null ? ` ${r.score.toFixed(2)}` : ""}`,
    })),
  );
  canvas.select(state.selectedKey); // setItems drops a hidden selection; shown again, it is selected again
  renderCounts(state);
  list.render();
  legend.render();
  renderSelection(state);
  $("undo-button").disabled = readOnly || !editor.history.canUndo;
  $("redo-button").disabled = readOnly || !editor.history.canRedo;
}

function toggleHelp(open) {
  const help = $("help");
  const show = open ?? help.hidden;
  help.hidden = !show;
  if (show) $("help-close").focus();
}

// --------------------------------------------------------------------------------- wiring

const stage = $("stage");
stage.addEventListener("canvas:select", (event) => select(event.detail.key, { reveal: false }));
stage.addEventListener("canvas:edit", (event) => {
  const { key, box, before } = event.detail;
  const r = state.byKey.get(key);
  if (!r) return;
  const after = { box };
  if (r.mask || r.polygons) {
    const size = [data.image.width, data.image.height];
    const moved = transformGeometry({ polygons: r.polygons, mask: r.mask }, before, box, size);
    if (r.polygons) after.polygons = moved.polygons;
    if (r.mask) after.mask = moved.mask;
  }
  // Fixing a proposal's box is accepting it (the model's box is kept for the quality figures).
  if (r.state === "proposed") after.state = "accepted";
  editor.edit(r, after, event.detail.kind === "move" ? "move" : "resize");
});
stage.addEventListener("canvas:draw", (event) => {
  // Box stays on for the next box (Esc or V goes back to Select).
  editor.create({ class_id: state.activeClassId, box: event.detail.box }, "draw a box");
});
stage.addEventListener("canvas:point", (event) => {
  if (!readOnly) seg.addPoint(event.detail.x, event.detail.y, event.detail.label);
});
stage.addEventListener("canvas:segment-box", (event) => {
  if (!readOnly) seg.setBox(event.detail.box);
});
stage.addEventListener("canvas:view", (event) => {
  $("zoom-level").textContent = `${Math.round(event.detail.scale * 100)}%`;
});
stage.addEventListener("canvas:ready", () => {
  const drawn = prefetcher; // this image's
  requestAnimationFrame(() => {
    // Drawn: the Enter → next image time (for bench/review_next.py), then the next image's prefetch.
    timing.enterToImageMs = enterElapsed(window.sessionStorage, epochNow());
    timing.pageMs = timing.inPlace ? null : performance.now(); // a page load's share, from its start
    document.documentElement.dataset.enterToImageMs = String(timing.enterToImageMs ?? "");
    if (drawn && drawn === prefetcher) {
      drawn.start().then((next) => drawn === prefetcher && (timing.peeked = next ? next.id : false));
    }
  });
});
stage.addEventListener("canvas:error", (event) => flash(event.detail.message, "error", { sticky: true }));

const buttons = {
  "fit-button": () => canvas.fit(),
  "zoom-in": () => canvas.zoomBy(1.25),
  "zoom-out": () => canvas.zoomBy(0.8),
  "undo-button": () => editor.undo(),
  "redo-button": () => editor.redo(),
  "accept-button": () => editor.decide(state.selected, "accepted"),
  "reject-button": () => editor.decide(state.selected, "rejected"),
  "accept-all-button": () => editor.acceptAllVisible(),
  "submit-button": () => {
    navigation.submitArmed = true; // a click is deliberate: no second confirmation
    submit();
  },
  "skip-button": skip,
  "help-button": () => toggleHelp(),
  "help-close": () => toggleHelp(false),
  "pending-retry": () => queue.retryNow(),
  "segment-retry": () => seg.tryAgain(),
  "refine-button": refineSelected,
  "find-more-button": findMoreSelected,
};
for (const [id, run] of Object.entries(buttons)) {
  $(id)?.addEventListener("click", (event) => {
    if (event.detail > 0) event.currentTarget.blur(); // a mouse click: keys go back to the canvas
    run();
  });
}
$("previous-link").addEventListener("click", (event) => {
  event.preventDefault();
  goPrevious();
});
$("class-select").addEventListener("change", (event) => {
  changeClass(Number(event.currentTarget.value));
  event.currentTarget.blur();
});

// What each keymap action does on this page.
const keyActions = {
  "close-help": () => toggleHelp(false),
  undo: () => editor.undo(),
  redo: () => editor.redo(),
  next: () => selectStep(1),
  previous: () => selectStep(-1),
  "accept-all": () => editor.acceptAllVisible(),
  accept: () => editor.decide(state.selected, "accepted"),
  reject: () => editor.decide(state.selected, "rejected"),
  class: ({ index }) => changeClass(state.classByIndex.get(index).id),
  "segment-keep": () => seg.keepResult(),
  submit,
  "segment-reset": () => seg.reset(),
  "select-mode": () => modes.set("select"),
  deselect: () => select(null),
  skip,
  "previous-image": goPrevious,
  jump: () => {
    filmstrip.toggle(true);
    nameJump.focus();
  },
  fit: () => canvas.fit(),
  "toggle-draw": () => modes.toggle("draw"),
  "toggle-segment": () => modes.toggle("segment"),
  "toggle-brush": () => maskTools.toggle("brush"),
  "toggle-eraser": () => maskTools.toggle("eraser"),
  "toggle-vertices": () => maskTools.toggle("vertices"),
  "brush-smaller": () => maskTools.resize(-1),
  "brush-larger": () => maskTools.resize(1),
  "vertex-delete": () => maskTools.deleteVertex(),
  refine: refineSelected,
  "find-more": findMoreSelected,
  "toggle-rejected": () => thresholds.toggleRejected(),
  "zoom-in": () => canvas.zoomBy(1.25),
  "zoom-out": () => canvas.zoomBy(0.8),
  help: () => toggleHelp(true),
  "cycle-masks": () => displayPanel.cycleMaskMode(),
  "hide-selected": () => toggleHidden(state.selectedKey),
  "focus-controls": () => cycleFocus(),
  "hide-class": () => toggleClassHidden(state.selected ? state.selected.class_id : state.activeClassId),
};

/** F6: the keyboard goes to the toolbar, then to the side panel, then back to the image (where
 * Tab walks the annotations); on a control, Tab walks the controls. */
function cycleFocus() {
  const focusable = "button:not([disabled]), select:not([disabled]), input:not([disabled]), summary, a[href]";
  const active = document.activeElement;
  const toolbar = document.querySelector(".toolbar");
  const side = document.querySelector(".side");
  if (toolbar.contains(active)) side.querySelector(focusable)?.focus();
  else if (side.contains(active)) active.blur();
  else toolbar.querySelector(focusable)?.focus();
}

function selectStep(delta) {
  const key = state.stepKey(delta);
  if (key != null) select(key);
}

function isTextField(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(target.type);
}

// Back or forward after a move in place: the URL shown is another image's, loaded as a page.
window.addEventListener("popstate", () => window.location.reload());

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing) return;
  const target = event.target;
  const helpOpen = !$("help").hidden;
  const textField = isTextField(target);
  if (!helpOpen && !textField && event.key !== "Enter") navigation.submitArmed = false;
  const found = keyAction(event, {
    helpOpen,
    textField,
    onControl: Boolean(target instanceof HTMLElement && target.closest("button, a, input, select, summary, [role=toolbar]")),
    mode: modes.mode,
    segmenting: seg.active,
    hasClass: (index) => state.classByIndex.has(index),
  });
  if (!found) return;
  if (found.action === "blur") {
    target.blur();
    return;
  }
  if (found.preventDefault) event.preventDefault();
  keyActions[found.action](found);
});

// ------------------------------------------------------------------------ one image

/** Review the image of `claimed` ({data, heldBy, locked}: claimOutcome's): at the start, and on
 * each move in place (`decoded`: its bitmap, loaded already). Everything of the last image goes:
 * its state, undo history, segment tool, lease timer and prefetch. */
function loadImage(claimed, { decoded = null } = {}) {
  lease?.stop();
  seg?.reset();
  claim = claimed;
  data = claimed.data;
  urls = { ...data.urls, next: queueAfter(pageData.urls.next, data.image.id) }; // next: the skipped queue's
  readOnly = claim.heldBy !== null || claim.locked !== null;
  state = new ReviewState(data);
  editor = new Editor({
    state,
    queue,
    request,
    urls,
    heldBy: claim.heldBy,
    locked: claim.locked,
    hooks: { notify: flash, changed: refresh, select, saved: () => lease.renewed() },
  });
  seg = new SegmentTool({
    request,
    url: urls.segment,
    state,
    editor,
    canvas,
    status: showSegmentStatus,
    notify: flash,
    onChange: () => modes.renderHint(),
  });
  lease = new LeaseTimer({ element: $("lease"), seconds: readOnly ? 0 : data.lease_seconds || 0, notify: flash });
  // The next image, peeked and loaded once this one is drawn (not for a read-only page).
  prefetcher =
    readOnly || prefetchOff(storage)
      ? null
      : new Prefetcher({
          request,
          peekUrl: urls.peek_next + (pageData.queue ? `?queue=${encodeURIComponent(pageData.queue)}` : ""),
          loadBitmap: (url) => {
            const bitmap = new Image();
            bitmap.src = url;
            return bitmap.decode().then(() => bitmap);
          },
          statuses: pageData.queue === "skipped" ? ["skipped"] : ["prelabeled", "new"],
          maxAgeMs: (data.lease_seconds || 60) * 500,
        });
  onwardClaim = null;
  timing.peeked = prefetcher ? null : false;

  list.state = state;
  legend.state = state;
  Object.assign(modes, { state, editor, segment: seg });
  maskTools.use({ state, editor, width: data.image.width, height: data.image.height });
  thresholds.use(state);
  display.forgetKeys();
  canvas.load({ url: data.image.url, width: data.image.width, height: data.image.height, readOnly, decoded });
  renderHead();
  for (const el of $("review").querySelectorAll("[data-edit]")) el.disabled = readOnly;
  renderFindMore();
  if (claim.locked) flash(claim.locked, "error", { sticky: true, reload: true });
  setBusy(false);
  lease.start();
  refresh();
  modes.set("select");
  canvas.setDrawColor(state.classColor(state.activeClassId));
  const proposal = state.visible.find((r) => r.state === "proposed");
  if (proposal && !readOnly) select(proposal.key, { reveal: false });
  pending.render();
}

/** The header and the title: what review.html writes for the image. */
function renderHead() {
  const { image } = data;
  document.title = document.title.replace(/^Review .*( · [^·]+)$/, `Review ${image.name}$1`);
  $("held-banner").hidden = claim.heldBy === null;
  $("held-by").textContent = claim.heldBy || "";
  const name = document.querySelector("#review .image-name");
  name.textContent = image.name;
  name.title = image.name;
  $("image-status").className = `badge ${image.status}`;
  $("image-status").textContent = image.status;
  $("image-size").textContent = `${image.width} × ${image.height}`;
  $("stage").setAttribute("aria-label", `Image ${image.name} with its annotations`);
  $("previous-link").href = urls.previous;
  const progress = progressText(data.progress, pageData.queue);
  if (progress) $("review-progress").textContent = progress;
}

/** After Enter: the claimed next image ({data, reviewUrl, image}: Prefetcher.claim's) in place,
 * under its own URL. False when that went wrong (the page then goes there by a page load). */
function moveTo(claimed) {
  try {
    window.history.pushState({ imageId: claimed.data.image.id }, "", claimed.reviewUrl);
    Object.assign(timing, { prefetchUsed: true, inPlace: true, enterToImageMs: null, pageMs: null });
    loadImage({ data: claimed.data, heldBy: null, locked: null }, { decoded: claimed.image });
    filmstrip.setCurrent(data.image.id);
    navigation.arrived();
    return true;
  } catch (error) {
    console.error(error);
    return false;
  }
}

// ------------------------------------------------------------------------------------ start

for (const c of first.classes) {
  const option = document.createElement("option");
  option.value = String(c.id);
  option.textContent = c.index <= 9 ? `${c.index} · ${c.name}` : c.name;
  $("class-select").append(option);
}
renderHelp($("help-keys"));
loadImage(firstClaim);

// For tests and the console: the canvas (scale, toClient) and the page's state (the image's now).
window.labelgpt = {
  canvas,
  display,
  keys: KEYS,
  review: {
    get records() {
      return state.records;
    },
    queue,
    get thresholds() {
      return state.thresholds;
    },
    get visible() {
      return state.visible;
    },
    get selected() {
      return state.selected;
    },
    get mode() {
      return modes.mode;
    },
    get imageId() {
      return data.image.id;
    },
    get history() {
      return editor.history;
    },
    select,
    get segment() {
      return seg;
    },
    get findingMore() {
      return finder.running;
    },
  },
  timing,
};
document.documentElement.dataset.reviewReady = "true";
