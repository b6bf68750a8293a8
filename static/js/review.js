// The review page: reads the page's JSON (#review-data), drives the canvas module through its
// methods and listens to its DOM events, saves every edit at once (fetch, JSON), keeps the side
// list, toolbar, threshold slider, messages and shortcut help in step.
//
// Edits are applied on the page at once and sent through one queue, in order (each PATCH needs
// the version the previous one returned). A network error or a 5xx keeps the edit pending and
// retries with backoff; a stale version (409 / 412) is shown and never overwritten.
// Everything user-supplied is put in the page with textContent, never as markup.

import { ReviewCanvas, transformGeometry } from "./canvas.js";

const data = JSON.parse(document.getElementById("review-data").textContent);
const urls = data.urls;
const readOnly = Boolean(data.held_by_other);
const $ = (id) => document.getElementById(id);
const csrfToken = (() => {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
})();

// ------------------------------------------------------------------------------------ state

const classes = new Map(data.classes.map((c) => [c.id, c]));
const classByIndex = new Map(data.classes.map((c) => [c.index, c]));
const EDITABLE = ["state", "class_id", "box", "mask", "polygons"];
let nextKey = 1;

function fromServer(a) {
  return {
    id: a.id,
    class_id: a.class_id,
    box: a.box.map(Number),
    mask: a.mask || null,
    polygons: a.polygons || null,
    score: a.score ?? null,
    phrase: a.phrase || "",
    source: a.source,
    state: a.state,
    version: a.version,
    edited: Boolean(a.edited),
  };
}

// Model proposals by score (most confident first), then everything else in creation order.
const records = data.annotations
  .map((a) => ({ key: nextKey++, deleted: false, conflict: false, ...fromServer(a) }))
  .sort((a, b) => {
    const sa = a.source === "model" && a.score != null ? a.score : -1;
    const sb = b.source === "model" && b.score != null ? b.score : -1;
    return sb - sa || a.id - b.id;
  });
const byKey = new Map(records.map((r) => [r.key, r]));

const thresholds = new Map(data.classes.map((c) => [c.id, c.box_threshold ?? data.project.box_threshold]));
let thresholdScope = "all";
let showRejected = false;
let visible = [];
let selectedKey = null;
let activeClassId = data.classes.length ? data.classes[0].id : null;
let mode = "select";
let submitArmed = false;
let navigating = false;
const undoStack = [];
const redoStack = [];

function threshold(classId) {
  return thresholds.get(classId) ?? data.project.box_threshold;
}

function isVisible(r) {
  if (r.deleted) return false;
  if (r.state === "rejected") return showRejected;
  if (r.state === "proposed" && r.score != null) return r.score >= threshold(r.class_id) - 1e-9;
  return true;
}

function className(id) {
  return classes.get(id)?.name ?? "?";
}

function classColor(id) {
  return classes.get(id)?.color ?? "#888888";
}

function pick(r, keys) {
  const out = {};
  for (const k of keys) out[k] = r[k];
  return out;
}

// --------------------------------------------------------------------------- server requests

class RetryLater extends Error {}

/** A JSON request. Network errors, 401, 5xx and 429 throw RetryLater, except the statuses
 * listed in `answered`, which come back like any other answer (with their JSON body). */
async function request(method, url, body, headers = {}, { answered = [] } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken, Accept: "application/json", ...headers },
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new RetryLater("the server cannot be reached");
  }
  if (response.redirected && new URL(response.url).pathname.startsWith("/accounts/login")) {
    throw new RetryLater("the session has ended: log in again in another tab");
  }
  if (response.status === 401) throw new RetryLater("you are logged out: log in again in another tab");
  if ((response.status >= 500 || response.status === 429) && !answered.includes(response.status)) {
    throw new RetryLater(`the server answered ${response.status}`);
  }
  let json = null;
  if (response.status !== 204) {
    try {
      json = await response.json();
    } catch {
      json = null;
    }
  }
  return { status: response.status, json, response };
}

/** One queue of saves, sent in order; failures are retried with backoff and nothing is dropped. */
class SaveQueue {
  constructor(onChange) {
    this.ops = [];
    this.busy = false;
    this.failures = 0;
    this.retryAt = 0;
    this.timer = null;
    this.lastError = "";
    this.onChange = onChange;
    this.waiters = [];
  }

  get pending() {
    return this.ops.length;
  }

  get retrying() {
    return this.timer !== null;
  }

  push(op) {
    this.ops.push(op);
    this.onChange();
    this.run();
  }

  /** Pending saves of one annotation (not the one being sent). */
  pendingFor(key) {
    return this.ops.filter((op, i) => op.key === key && !(i === 0 && this.busy)).length;
  }

  drop(key) {
    this.ops = this.ops.filter((op, i) => (i === 0 && this.busy) || op.key !== key);
    this.onChange();
  }

  retryNow() {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.run();
  }

  async run() {
    if (this.busy || this.timer) return;
    this.busy = true;
    this.onChange();
    while (this.ops.length) {
      const op = this.ops[0];
      try {
        await op.run();
        this.failures = 0;
        this.lastError = "";
      } catch (error) {
        if (error instanceof RetryLater) {
          this.failures++;
          const seconds = Math.min(30, 2 ** (this.failures - 1));
          this.lastError = error.message;
          this.retryAt = Date.now() + seconds * 1000;
          this.busy = false;
          this.timer = setTimeout(() => {
            this.timer = null;
            this.run();
          }, seconds * 1000);
          this.onChange();
          return;
        }
        console.error(error);
        flash(`Could not save: ${error.message}`, "error");
      }
      this.ops.shift();
      this.onChange();
    }
    this.busy = false;
    this.onChange();
    for (const resolve of this.waiters.splice(0)) resolve(true);
  }

  /** Resolves true once everything is saved, false if saving is failing or takes too long. */
  settled(timeoutMs = 10000) {
    if (!this.ops.length) return Promise.resolve(true);
    if (this.timer) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      setTimeout(() => resolve(!this.ops.length), timeoutMs);
    });
  }
}

const queue = new SaveQueue(renderPending);

function annotationUrl(id) {
  return urls.annotation.replace(/\/0\/$/, `/${id}/`);
}

function ifMatch(r) {
  return { "If-Match": `"${r.version}"` };
}

/** A server answer for an annotation: keep its version; take its fields when nothing else is pending. */
function merge(r, a) {
  leaseRenewed();
  r.id = a.id;
  r.version = a.version;
  if (queue.pendingFor(r.key) === 0) {
    Object.assign(r, fromServer(a));
  }
}

function conflict(r, current) {
  queue.drop(r.key);
  if (current) {
    Object.assign(r, fromServer(current));
    r.deleted = false;
  }
  r.conflict = true;
  flash(
    `“${className(r.class_id)}” #${r.id} was changed by someone else — reload the page to see the latest.`,
    "error",
    { sticky: true, action: { label: "Reload", run: () => window.location.reload() }, className: "conflict" },
  );
  refresh();
}

function refused(r, res, revert, what) {
  const reason = res.json?.error || `the server answered ${res.status}`;
  if (res.status === 409) {
    // Not a stale version: the write cannot be made now (e.g. someone else holds the image).
    if (revert) Object.assign(r, revert);
    flash(`Not saved (${what}): ${reason}`, "error", {
      sticky: true,
      action: { label: "Reload", run: () => window.location.reload() },
      className: "conflict",
    });
  } else if (res.status === 404) {
    r.deleted = true;
    flash(`This annotation no longer exists (${what}).`, "error");
  } else {
    if (revert) Object.assign(r, revert);
    flash(`Could not ${what}: ${reason}`, "error");
  }
  refresh();
}

function queuePatch(r, fields, revert, what) {
  queue.push({
    key: r.key,
    run: async () => {
      if (r.id == null) return; // its creation was refused or undone
      const res = await request("PATCH", annotationUrl(r.id), fields, ifMatch(r));
      if (res.status === 200 && res.json) merge(r, res.json);
      else if (res.status === 412) conflict(r, res.json?.current);
      else refused(r, res, revert, what);
      refresh();
    },
  });
}

function queueCreate(r) {
  queue.push({
    key: r.key,
    run: async () => {
      if (r.deleted) return; // undone before it was sent
      const body = { class_id: r.class_id, box: r.box };
      if (r.mask) body.mask = r.mask;
      if (r.polygons) body.polygons = r.polygons;
      const res = await request("POST", urls.annotations, body);
      if ((res.status === 201 || res.status === 200) && res.json) {
        merge(r, res.json);
      } else {
        r.deleted = true;
        flash(`Could not save the new ${className(r.class_id)}: ${res.json?.error || res.status}`, "error");
      }
      refresh();
    },
  });
}

function queueDelete(r) {
  queue.push({
    key: r.key,
    run: async () => {
      if (r.id == null) return;
      const res = await request("DELETE", annotationUrl(r.id), undefined, ifMatch(r));
      if (res.status === 204 || res.status === 200 || res.status === 404) {
        r.id = null;
        r.version = null;
      } else if (res.status === 412) {
        conflict(r, res.json?.current);
      } else {
        r.deleted = false;
        if (res.status === 409) {
          flash(`Not removed: ${res.json?.error || res.status}`, "error", { sticky: true });
          refresh();
          return;
        }
        flash(`Could not remove the box: ${res.json?.error || res.status}`, "error");
      }
      refresh();
    },
  });
}

/** Several state changes in one request (accept all): states and reverts by key. */
function queueBulk(keys, states, reverts) {
  queue.push({
    key: "bulk",
    run: async () => {
      const targets = keys.map((k) => byKey.get(k)).filter((r) => r && r.id != null && !r.deleted);
      if (!targets.length) return;
      const updates = targets.map((r) => ({ id: r.id, version: r.version, state: states.get(r.key) }));
      const res = await request("POST", urls.bulk, { updates });
      if (res.status !== 200 || !res.json) {
        for (const r of targets) r.state = reverts.get(r.key);
        flash(`Could not change ${targets.length} annotations: ${res.json?.error || res.status}`, "error");
        refresh();
        return;
      }
      const byId = new Map(targets.map((r) => [r.id, r]));
      for (const a of res.json.annotations || []) {
        const r = byId.get(a.id);
        if (r) merge(r, a);
      }
      const conflicts = res.json.conflicts || [];
      const current = new Map((res.json.current || []).map((a) => [a.id, a]));
      for (const id of conflicts) {
        const r = byId.get(id);
        if (!r) continue;
        queue.drop(r.key);
        if (current.has(id)) Object.assign(r, fromServer(current.get(id)));
        else r.state = reverts.get(r.key);
        r.conflict = true;
      }
      if (conflicts.length) {
        flash(
          `${conflicts.length} annotation(s) were changed by someone else — reload the page to see the latest.`,
          "error",
          { sticky: true, action: { label: "Reload", run: () => window.location.reload() }, className: "conflict" },
        );
      }
      refresh();
    },
  });
}

// ----------------------------------------------------------------------------------- edits

function guardEditable() {
  if (!readOnly) return true;
  flash(`Read only: ${data.held_by_other} is reviewing this image.`, "warning");
  return false;
}

function edit(r, after, what) {
  if (!guardEditable() || !r || r.deleted) return;
  const keys = Object.keys(after).filter((k) => EDITABLE.includes(k));
  const before = pick(r, keys);
  if (keys.every((k) => before[k] === after[k])) return;
  Object.assign(r, after);
  r.edited = r.edited || "box" in after || "mask" in after;
  queuePatch(r, after, before, what);
  record({ kind: "patch", key: r.key, before, after, what });
  refresh();
}

function record(entry) {
  undoStack.push(entry);
  if (undoStack.length > 500) undoStack.shift();
  redoStack.length = 0;
}

function createRecord({ class_id, box, mask = null, polygons = null }, what) {
  if (!guardEditable()) return null;
  if (class_id == null) {
    flash("This project has no classes: add one first.", "error");
    return null;
  }
  const r = {
    key: nextKey++,
    id: null,
    class_id,
    box,
    mask,
    polygons,
    score: null,
    phrase: "",
    source: "human",
    state: "accepted",
    version: null,
    edited: false,
    deleted: false,
    conflict: false,
  };
  records.push(r);
  byKey.set(r.key, r);
  queueCreate(r);
  record({ kind: "create", key: r.key, what });
  refresh();
  select(r.key, { reveal: false });
  return r;
}

function setState(r, state) {
  if (!guardEditable()) return;
  if (!r) {
    flash("Select an annotation first (click or Tab).", "info");
    return;
  }
  const advanceFrom = r.key;
  edit(r, { state }, state === "accepted" ? "accept" : state === "rejected" ? "reject" : "reset");
  advance(advanceFrom);
}

function acceptAllVisible() {
  if (!guardEditable()) return;
  const targets = visible.filter((r) => r.state === "proposed");
  if (!targets.length) {
    flash("No visible proposals to accept.", "info");
    return;
  }
  const states = new Map(targets.map((r) => [r.key, "accepted"]));
  const reverts = new Map(targets.map((r) => [r.key, r.state]));
  for (const r of targets) r.state = "accepted";
  queueBulk(
    targets.map((r) => r.key),
    states,
    reverts,
  );
  record({ kind: "bulk", keys: targets.map((r) => r.key), before: reverts, after: states, what: "accept all" });
  flash(`Accepted ${targets.length} proposal${targets.length === 1 ? "" : "s"}.`, "success");
  refresh();
}

function changeClass(classId) {
  if (!classes.has(classId)) return;
  activeClassId = classId;
  const r = byKey.get(selectedKey);
  if (r && mode === "select" && !r.deleted && r.class_id !== classId) edit(r, { class_id: classId }, "change class");
  canvas.setDrawColor(classColor(activeClassId));
  refresh();
}

function undo() {
  const entry = undoStack.pop();
  if (!entry) {
    flash("Nothing to undo.", "info");
    return;
  }
  if (!guardEditable()) return;
  applyHistory(entry, true);
  redoStack.push(entry);
  flash(`Undone: ${entry.what}.`, "info");
}

function redo() {
  const entry = redoStack.pop();
  if (!entry) {
    flash("Nothing to redo.", "info");
    return;
  }
  if (!guardEditable()) return;
  applyHistory(entry, false);
  undoStack.push(entry);
  flash(`Redone: ${entry.what}.`, "info");
}

function applyHistory(entry, backwards) {
  if (entry.kind === "patch") {
    const r = byKey.get(entry.key);
    if (!r || r.deleted) return;
    const target = backwards ? entry.before : entry.after;
    const current = pick(r, Object.keys(target));
    Object.assign(r, target);
    queuePatch(r, target, current, backwards ? `undo ${entry.what}` : `redo ${entry.what}`);
    select(r.key, { reveal: true });
  } else if (entry.kind === "bulk") {
    const states = backwards ? entry.before : entry.after;
    const reverts = backwards ? entry.after : entry.before;
    for (const key of entry.keys) {
      const r = byKey.get(key);
      if (r) r.state = states.get(key);
    }
    queueBulk(entry.keys, states, reverts);
  } else if (entry.kind === "create") {
    const r = byKey.get(entry.key);
    if (!r) return;
    if (backwards) {
      r.deleted = true;
      queueDelete(r);
      if (selectedKey === r.key) select(null);
    } else {
      r.deleted = false;
      r.id = null;
      r.version = null;
      queueCreate(r);
      select(r.key, { reveal: true });
    }
  }
  refresh();
}

// ------------------------------------------------------------------------------- selection

function select(key, { reveal = true } = {}) {
  selectedKey = key;
  const r = byKey.get(key);
  if (r) activeClassId = r.class_id;
  canvas.select(key, { reveal: reveal && key != null });
  canvas.setDrawColor(classColor(activeClassId));
  renderSelection();
  scrollListTo(key);
  renderList();
}

function step(delta) {
  if (!visible.length) return;
  const at = visible.findIndex((r) => r.key === selectedKey);
  const next = at < 0 ? (delta > 0 ? 0 : visible.length - 1) : (at + delta + visible.length) % visible.length;
  select(visible[next].key);
}

/** After a decision: the next undecided visible proposal (in list order, wrapping). */
function advance(fromKey) {
  const order = records.filter((r) => isVisible(r) || r.key === fromKey);
  const at = order.findIndex((r) => r.key === fromKey);
  for (let i = 1; i <= order.length; i++) {
    const r = order[(at + i) % order.length];
    if (r.key !== fromKey && r.state === "proposed" && isVisible(r)) {
      select(r.key);
      return;
    }
  }
  const r = byKey.get(fromKey);
  select(r && isVisible(r) ? fromKey : null);
  flash("Every visible proposal is decided — press Enter to submit.", "success");
}

// ------------------------------------------------------------------------------ segmenting

// One object at a time: its clicks (and box) go to the server with a token naming the object, so
// that the server starts each click from the previous click's mask. Esc or Enter starts a new
// object (a new token). Refining an annotation (E) names it: its box and mask are the start.
// While the image's embedding is prepared the server answers 202 and the click is asked again,
// for at most SEG_PREPARE_LIMIT_MS; an error (the segmenter is not set up, the embedding failed)
// is shown at once with a "Try again" button, and nothing is asked again by itself.
const SEG_PREPARE_LIMIT_MS = 60000;
const seg = {
  points: [],
  labels: [],
  box: null,
  result: null,
  seq: 0,
  timer: null,
  busy: false,
  keep: false,
  token: newToken(),
  refine: null, // key of the record being refined
  preparingSince: null,
  prepareLimitMs: SEG_PREPARE_LIMIT_MS,
  requests: 0,
};

function newToken() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function segReset() {
  clearTimeout(seg.timer);
  Object.assign(seg, {
    points: [],
    labels: [],
    box: null,
    result: null,
    timer: null,
    busy: false,
    keep: false,
    token: newToken(),
    refine: null,
    preparingSince: null,
  });
  seg.seq++;
  canvas.setPreview(null);
  segStatus("");
  if (mode === "segment") renderModeHint();
}

function segPreview() {
  const pts = seg.points.map(([x, y], i) => [x, y, seg.labels[i]]);
  const r = seg.result;
  canvas.setPreview({
    points: pts,
    polygons: r?.polygons || null,
    mask: r?.polygons ? null : r?.mask || null,
    box: r?.box || seg.box,
    replaces: seg.refine,
  });
}

/** The status line over the image; `retry` shows its "Try again" button, `failed` its error look. */
function segStatus(text, { retry = false, failed = false } = {}) {
  const el = $("segment-status");
  $("segment-status-text").textContent = text;
  $("segment-retry").hidden = !retry;
  el.classList.toggle("failed", failed);
  el.hidden = !text;
}

function segFailed(text, { retry }) {
  clearTimeout(seg.timer);
  seg.timer = null;
  seg.busy = false;
  seg.keep = false;
  seg.preparingSince = null;
  segStatus(text, { retry, failed: true });
}

async function segRequest({ retry = false } = {}) {
  const seq = ++seg.seq;
  clearTimeout(seg.timer);
  seg.timer = null;
  seg.busy = true;
  segPreview();
  if (!seg.preparingSince) segStatus(seg.refine != null ? "Refining…" : "Segmenting…");
  const body = { points: seg.points, labels: seg.labels, object: seg.token };
  if (seg.box) body.box = seg.box;
  const target = seg.refine != null ? byKey.get(seg.refine) : null;
  if (target) body.annotation = target.id;
  if (retry) body.retry = true;
  let res;
  seg.requests++;
  try {
    res = await request("POST", urls.segment, body, {}, { answered: [500, 503] });
  } catch (error) {
    if (seq !== seg.seq) return;
    segFailed(`No mask: ${error.message}.`, { retry: true });
    return;
  }
  if (seq !== seg.seq) return;
  if (res.status === 200 && res.json?.status === "ok") {
    seg.busy = false;
    seg.preparingSince = null;
    seg.result = res.json;
    segPreview();
    const what = target ? `Refined mask of “${className(target.class_id)}”` : "Mask ready";
    if (!res.json.box) {
      segStatus("No object found there: click elsewhere.");
    } else if (seg.keep) {
      segKeep();
    } else {
      // The score is SAM's own estimate of the mask's IoU (0 to 1).
      const iou = Math.max(0, Number(res.json.score)).toFixed(2);
      segStatus(`${what} (predicted IoU ${iou}) — Enter ${target ? "saves" : "keeps"} it, Esc cancels.`);
    }
  } else if (res.status === 202) {
    const now = Date.now();
    if (!seg.preparingSince) seg.preparingSince = now;
    if (now - seg.preparingSince >= seg.prepareLimitMs) {
      const waited = Math.round((now - seg.preparingSince) / 1000);
      segFailed(
        `The image embedding is still not ready after ${waited} s: the workers may be busy or none is running on the “interactive” queue.`,
        { retry: true },
      );
      return;
    }
    const after = Math.max(0.25, Number(res.response.headers.get("Retry-After")) || 1);
    segStatus("Preparing… the image embedding is being computed.");
    seg.timer = setTimeout(() => {
      if (seq === seg.seq) segRequest();
    }, after * 1000);
  } else {
    // 503: the segmenter cannot load or the embedding failed (fixable: try again later);
    // 422: the image cannot be read; 400: a click the server refused (reason given).
    const reason = res.json?.error || `the server answered ${res.status}`;
    segFailed(`No mask: ${reason}`, { retry: res.status >= 500 });
  }
}

function segTryAgain() {
  seg.preparingSince = null;
  if (!seg.points.length && !seg.box && seg.refine == null) {
    segStatus("");
    return;
  }
  segRequest({ retry: true });
}

/** Start refining the selected annotation's mask (E): its box and mask are the starting point. */
function segRefine() {
  if (!guardEditable()) return;
  const r = byKey.get(selectedKey);
  if (!r || r.deleted) {
    flash("Select the annotation to refine first (click it or Tab), then press E.", "info");
    return;
  }
  if (r.id == null) {
    flash("This annotation is still being saved: refine it in a moment.", "info");
    return;
  }
  if (mode !== "segment") setMode("segment");
  segReset();
  seg.refine = r.key;
  renderModeHint();
  segRequest();
}

function segKeep() {
  const result = seg.result;
  if (!result?.box) {
    if (seg.busy) {
      seg.keep = true; // kept as soon as the mask arrives
      segStatus("Keeping the mask as soon as it is ready…");
    } else {
      flash("Click the object first (left: add, right: remove).", "info");
    }
    return;
  }
  const target = seg.refine != null ? byKey.get(seg.refine) : null;
  if (target && !target.deleted) {
    const after = { box: result.box.map(Number), mask: result.mask, polygons: result.polygons };
    // Fixing a proposal's mask is accepting it (the model's mask is kept for the quality figures).
    if (target.state === "proposed") after.state = "accepted";
    edit(target, after, "refine mask");
    segReset();
    flash(`Refined the mask of “${className(target.class_id)}”.`, "success");
    return;
  }
  const r = createRecord(
    { class_id: activeClassId, box: result.box.map(Number), mask: result.mask, polygons: result.polygons },
    "segment",
  );
  segReset();
  if (r) flash(`Kept the mask as “${className(r.class_id)}”.`, "success");
}

// ----------------------------------------------------------------------------------- modes

function setMode(next) {
  if (readOnly && next !== "select") {
    guardEditable();
    return;
  }
  if (mode === "segment" && next !== "segment") segReset();
  mode = next;
  canvas.setMode(next);
  for (const button of document.querySelectorAll("[data-mode]")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
  }
  $("stage").dataset.mode = mode;
  renderModeHint();
}

function renderModeHint() {
  const refining = mode === "segment" && seg.refine != null ? byKey.get(seg.refine) : null;
  const hints = {
    select: "",
    draw: `Drag to draw a “${className(activeClassId)}” box. Esc: back.`,
    segment: refining
      ? `Refining “${className(refining.class_id)}”: left click adds · right click removes · Enter saves · Esc cancels.`
      : `Left click: add · right click: remove · drag: box · Enter keeps it as “${className(activeClassId)}” · E refines the selection · Esc cancels.`,
  };
  $("mode-hint").textContent = hints[mode];
  $("mode-hint").hidden = !hints[mode];
}

// ------------------------------------------------------------------------------ navigation

async function leave(url, what) {
  if (navigating) return;
  navigating = true;
  setBusy(true);
  const done = (text) => {
    if (text) flash(text, "error");
    navigating = false;
    setBusy(false);
  };
  if (queue.pending) flash("Saving your last edits…", "info");
  const saved = await queue.settled();
  if (!saved) {
    done(`Not ${what === "submit" ? "submitted" : "left"}: ${queue.pending} edit(s) are not saved yet.`);
    return;
  }
  if (what === "previous") {
    window.location.assign(url);
    return;
  }
  let res;
  try {
    res = await request("POST", url, {});
  } catch (error) {
    done(`Could not ${what}: ${error.message}. Try again.`);
    return;
  }
  if (res.status === 200 && res.json?.next) {
    window.location.assign(res.json.next); // still "navigating": a second Enter does nothing
    return;
  }
  done(`Could not ${what}: ${res.json?.error || `the server answered ${res.status}`}`);
}

function submit() {
  if (!guardEditable()) return;
  const undecided = visible.filter((r) => r.state === "proposed").length;
  if (undecided && !submitArmed) {
    submitArmed = true;
    flash(
      `${undecided} visible proposal${undecided === 1 ? " is" : "s are"} not decided yet: press Enter again to submit anyway, or Shift+A to accept them.`,
      "warning",
    );
    return;
  }
  submitArmed = false;
  leave(urls.submit, "submit");
}

function setBusy(busy) {
  for (const id of ["submit-button", "skip-button"]) {
    const el = $(id);
    if (el) el.disabled = busy || readOnly;
  }
}

// ---------------------------------------------------------------------------------- lease

// The image is ours for a while after opening it, and again after every saved write (the server
// renews the lease on each). Shown in the header; a warning once it has run out.
const leaseMs = !readOnly && data.lease_seconds ? data.lease_seconds * 1000 : 0;
let leaseUntil = leaseMs > 0 ? Date.now() + leaseMs : 0;
let leaseWarned = false;

function leaseRenewed() {
  if (leaseMs > 0) {
    leaseUntil = Date.now() + leaseMs;
    leaseWarned = false;
    renderLease();
  }
}

function renderLease() {
  const el = $("lease");
  if (!leaseUntil) return;
  const left = leaseUntil - Date.now();
  el.hidden = false;
  el.classList.toggle("expired", left <= 0);
  if (left > 0) {
    el.textContent = `· yours for ${Math.max(1, Math.round(left / 60000))} min`;
    el.title = `Nobody else gets this image until ${new Date(leaseUntil).toLocaleTimeString()}; every edit renews it.`;
  } else {
    el.textContent = "· hold expired";
    if (!leaseWarned) {
      leaseWarned = true;
      flash(
        "Your hold on this image has run out: someone else may open it now. Your next edit takes it back if nobody has.",
        "warning",
        { sticky: true },
      );
    }
  }
}

setInterval(renderLease, 20000);

// ---------------------------------------------------------------------------- rendering

const canvas = new ReviewCanvas($("stage"), {
  imageUrl: data.image.url,
  width: data.image.width,
  height: data.image.height,
  readOnly,
});

function canvasItems() {
  return visible.map((r) => ({
    key: r.key,
    box: r.box,
    polygons: r.polygons,
    mask: r.mask,
    color: classColor(r.class_id),
    state: r.state,
    faint: r.state === "rejected",
    label: `${className(r.class_id)}${r.score != null ? ` ${r.score.toFixed(2)}` : ""}`,
  }));
}

function refresh() {
  visible = records.filter(isVisible);
  canvas.setItems(canvasItems());
  if (selectedKey != null && !visible.some((r) => r.key === selectedKey)) {
    selectedKey = null;
    canvas.select(null);
  }
  renderCounts();
  renderList();
  renderSelection();
  renderHistory();
}

function renderCounts() {
  let below = 0;
  let proposed = 0;
  let accepted = 0;
  let rejected = 0;
  for (const r of records) {
    if (r.deleted) continue;
    if (r.state === "proposed") {
      if (isVisible(r)) proposed++;
      else below++;
    } else if (r.state === "accepted") accepted++;
    else rejected++;
  }
  $("count-shown").textContent = String(visible.length);
  $("count-proposed").textContent = String(proposed);
  $("count-accepted").textContent = String(accepted);
  $("count-rejected").textContent = String(rejected);
  $("count-below").textContent = String(below);
}

// The side list is virtualised: only the rows in view (and a few around) are in the DOM.
const ROW = 30;
const listBox = $("ann-list");
const listInner = $("ann-rows");
let listRendered = "";

function renderList() {
  const n = visible.length;
  listInner.style.height = `${n * ROW}px`;
  const top = listBox.scrollTop;
  const height = listBox.clientHeight || 400;
  const first = Math.max(0, Math.floor(top / ROW) - 6);
  const last = Math.min(n, Math.ceil((top + height) / ROW) + 6);
  const rows = [];
  for (let i = first; i < last; i++) rows.push(listRow(visible[i], i));
  listInner.replaceChildren(...rows);
  $("ann-empty").hidden = n > 0;
  listRendered = `${first}-${last}`;
}

function listRow(r, index) {
  const row = document.createElement("div");
  row.className = `ann-row state-${r.state}${r.conflict ? " conflict" : ""}`;
  row.style.top = `${index * ROW}px`;
  row.setAttribute("role", "option");
  row.setAttribute("aria-selected", String(r.key === selectedKey));
  row.dataset.key = String(r.key);
  if (r.id != null) row.dataset.id = String(r.id);
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = classColor(r.class_id);
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = className(r.class_id);
  name.title = r.phrase ? `${className(r.class_id)} — “${r.phrase}”` : className(r.class_id);
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = r.score != null ? r.score.toFixed(2) : r.source === "human" ? "drawn" : r.source;
  const state = document.createElement("span");
  state.className = `state badge ${r.state}`;
  state.textContent = r.id == null ? "saving" : r.state;
  row.append(swatch, name, score, state);
  if (r.edited) {
    const mark = document.createElement("span");
    mark.className = "edited";
    mark.title = "edited";
    mark.textContent = "✎";
    row.append(mark);
  }
  return row;
}

function scrollListTo(key) {
  const index = visible.findIndex((r) => r.key === key);
  if (index < 0) return;
  const top = index * ROW;
  const height = listBox.clientHeight;
  if (top < listBox.scrollTop) listBox.scrollTop = top;
  else if (top + ROW > listBox.scrollTop + height) listBox.scrollTop = top + ROW - height;
}

listBox.addEventListener("scroll", () => {
  const first = Math.max(0, Math.floor(listBox.scrollTop / ROW) - 6);
  const last = Math.min(visible.length, Math.ceil((listBox.scrollTop + listBox.clientHeight) / ROW) + 6);
  if (`${first}-${last}` !== listRendered) renderList();
});
listInner.addEventListener("click", (event) => {
  const row = event.target.closest(".ann-row");
  if (row) select(Number(row.dataset.key));
});

function renderSelection() {
  const r = byKey.get(selectedKey);
  const box = $("selection");
  const select_ = $("class-select");
  select_.value = String(r ? r.class_id : activeClassId);
  $("class-label").textContent = r ? "Class of the selection" : "Class for new objects";
  if (!r || r.deleted) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  $("sel-class").textContent = className(r.class_id);
  $("sel-swatch").style.background = classColor(r.class_id);
  $("sel-state").textContent = r.state;
  $("sel-state").className = `badge ${r.state}`;
  const details = [];
  if (r.score != null) details.push(`score ${r.score.toFixed(3)}`);
  details.push(r.source === "model" ? "model proposal" : r.source === "human" ? "drawn by hand" : "imported");
  if (r.edited) details.push("edited");
  details.push(`${Math.round(r.box[2])} × ${Math.round(r.box[3])} px`);
  if (r.mask || r.polygons) details.push("mask");
  $("sel-details").textContent = details.join(" · ");
  $("sel-phrase").textContent = r.phrase ? `“${r.phrase}”` : "";
  $("sel-phrase").hidden = !r.phrase;
}

function renderHistory() {
  $("undo-button").disabled = readOnly || !undoStack.length;
  $("redo-button").disabled = readOnly || !redoStack.length;
}

let pendingTicker = null;

function renderPending() {
  const el = $("pending");
  const count = queue.pending;
  const text = $("pending-text");
  const retry = $("pending-retry");
  el.dataset.pending = String(count);
  if (!count) {
    el.className = "pending saved";
    text.textContent = undoStack.length ? "All changes saved" : "";
    retry.hidden = true;
  } else if (queue.retrying) {
    el.className = "pending failing";
    const seconds = Math.max(0, Math.ceil((queue.retryAt - Date.now()) / 1000));
    text.textContent = `${count} unsaved — ${queue.lastError}; retrying in ${seconds} s`;
    retry.hidden = false;
  } else {
    el.className = "pending saving";
    text.textContent = `Saving ${count}…`;
    retry.hidden = true;
  }
  if (queue.retrying && !pendingTicker) pendingTicker = setInterval(renderPending, 1000);
  if (!queue.retrying && pendingTicker) {
    clearInterval(pendingTicker);
    pendingTicker = null;
  }
}

function flash(text, kind = "info", { sticky = false, action = null, className: extra = "" } = {}) {
  const list = $("review-messages");
  const item = document.createElement("li");
  item.className = `msg ${kind} ${extra}`.trim();
  const span = document.createElement("span");
  span.textContent = text;
  item.append(span);
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action.label;
    button.addEventListener("click", action.run);
    item.append(button);
  }
  if (sticky) {
    const close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => item.remove());
    item.append(close);
  } else {
    setTimeout(() => item.remove(), kind === "error" ? 8000 : 3500);
  }
  list.append(item);
  while (list.children.length > 5) list.firstElementChild.remove();
}

// ------------------------------------------------------------------------------- threshold

const slider = $("threshold");
const scopeSelect = $("threshold-scope");

function renderThreshold() {
  const value = thresholdScope === "all" ? data.project.box_threshold : threshold(Number(thresholdScope));
  slider.value = String(value);
  $("threshold-value").textContent = Number(value).toFixed(2);
}

slider.addEventListener("input", () => {
  const value = Number(slider.value);
  $("threshold-value").textContent = value.toFixed(2);
  if (thresholdScope === "all") {
    for (const id of classes.keys()) thresholds.set(id, value);
    data.project.box_threshold = value;
  } else {
    thresholds.set(Number(thresholdScope), value);
  }
  refresh();
});
scopeSelect.addEventListener("change", () => {
  thresholdScope = scopeSelect.value;
  renderThreshold();
  const save = $("threshold-save");
  if (save) save.textContent = thresholdScope === "all" ? "Save as project threshold" : "Save for this class";
  scopeSelect.blur();
});
$("threshold-save")?.addEventListener("click", async (event) => {
  event.currentTarget.blur();
  const body = { box_threshold: Number(slider.value) };
  if (thresholdScope !== "all") body.class_id = Number(thresholdScope);
  let res;
  try {
    res = await request("POST", urls.threshold, body);
  } catch (error) {
    flash(`Could not save the threshold: ${error.message}`, "error");
    return;
  }
  if (res.status >= 200 && res.status < 300) {
    const target = thresholdScope === "all" ? "the project" : `“${className(Number(thresholdScope))}”`;
    flash(`Saved ${body.box_threshold.toFixed(2)} as the threshold of ${target}.`, "success");
  } else {
    flash(`Could not save the threshold: ${res.json?.error || res.status}`, "error");
  }
});
$("show-rejected").addEventListener("change", (event) => {
  showRejected = event.currentTarget.checked;
  event.currentTarget.blur();
  refresh();
});

// --------------------------------------------------------------------------------- wiring

const stage = $("stage");
stage.addEventListener("canvas:select", (event) => select(event.detail.key, { reveal: false }));
stage.addEventListener("canvas:edit", (event) => {
  const { key, box, before } = event.detail;
  const r = byKey.get(key);
  if (!r) return;
  const after = { box };
  if (r.mask || r.polygons) {
    const moved = transformGeometry({ polygons: r.polygons, mask: r.mask }, before, box, [
      data.image.width,
      data.image.height,
    ]);
    if (r.polygons) after.polygons = moved.polygons;
    if (r.mask) after.mask = moved.mask;
  }
  // Fixing a proposal's box is accepting it (the model's box is kept for the quality figures).
  if (r.state === "proposed") after.state = "accepted";
  edit(r, after, event.detail.kind === "move" ? "move" : "resize");
});
stage.addEventListener("canvas:draw", (event) => {
  createRecord({ class_id: activeClassId, box: event.detail.box }, "draw a box");
  setMode("select");
});
stage.addEventListener("canvas:point", (event) => {
  if (readOnly) return;
  seg.points.push([event.detail.x, event.detail.y]);
  seg.labels.push(event.detail.label);
  seg.result = seg.result && { ...seg.result };
  segRequest();
});
stage.addEventListener("canvas:segment-box", (event) => {
  if (readOnly) return;
  seg.box = event.detail.box;
  segRequest();
});
stage.addEventListener("canvas:view", (event) => {
  $("zoom-level").textContent = `${Math.round(event.detail.scale * 100)}%`;
});
stage.addEventListener("canvas:error", (event) => flash(event.detail.message, "error", { sticky: true }));

for (const button of document.querySelectorAll("[data-mode]")) {
  button.addEventListener("click", () => setMode(button.dataset.mode));
}
const actions = {
  "fit-button": () => canvas.fit(),
  "zoom-in": () => canvas.zoomBy(1.25),
  "zoom-out": () => canvas.zoomBy(0.8),
  "undo-button": undo,
  "redo-button": redo,
  "accept-button": () => setState(byKey.get(selectedKey), "accepted"),
  "reject-button": () => setState(byKey.get(selectedKey), "rejected"),
  "accept-all-button": acceptAllVisible,
  "submit-button": () => {
    submitArmed = true; // a click is deliberate: no second confirmation
    submit();
  },
  "skip-button": () => guardEditable() && leave(urls.skip, "skip"),
  "help-button": () => toggleHelp(),
  "help-close": () => toggleHelp(false),
  "pending-retry": () => queue.retryNow(),
  "segment-retry": segTryAgain,
  "refine-button": segRefine,
};
for (const [id, run] of Object.entries(actions)) {
  $(id)?.addEventListener("click", (event) => {
    if (event.detail > 0) event.currentTarget.blur(); // a mouse click: keys go back to the canvas
    run();
  });
}
$("previous-link").addEventListener("click", (event) => {
  event.preventDefault();
  leave(urls.previous, "previous");
});
$("class-select").addEventListener("change", (event) => {
  changeClass(Number(event.currentTarget.value));
  event.currentTarget.blur();
});

function toggleHelp(open) {
  const help = $("help");
  const show = open ?? help.hidden;
  help.hidden = !show;
  if (show) $("help-close").focus();
}

function isTextField(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(target.type);
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing) return;
  const target = event.target;
  if (!$("help").hidden) {
    if (event.key === "Escape" || event.key === "?") {
      event.preventDefault();
      toggleHelp(false);
    }
    return;
  }
  if (isTextField(target)) {
    if (event.key === "Escape") target.blur();
    return;
  }
  const onControl = target instanceof HTMLElement && target.closest("button, a, input, select, [role=toolbar]");
  const key = event.key;
  const lower = key.length === 1 ? key.toLowerCase() : key;
  const ctrl = event.ctrlKey || event.metaKey;
  if (key !== "Enter") submitArmed = false;

  if (ctrl && !event.altKey && (lower === "z" || lower === "y")) {
    event.preventDefault();
    if (lower === "y" || event.shiftKey) redo();
    else undo();
    return;
  }
  if (ctrl || event.altKey) return;
  if (onControl && (key === "Enter" || key === " " || key === "Tab" || key.startsWith("Arrow"))) return;

  let handled = true;
  if (key === "Tab") step(event.shiftKey ? -1 : 1);
  else if (lower === "a" && event.shiftKey) acceptAllVisible();
  else if (lower === "a") setState(byKey.get(selectedKey), "accepted");
  else if (lower === "r" || key === "Delete" || key === "Backspace") setState(byKey.get(selectedKey), "rejected");
  else if (/^[1-9]$/.test(key)) {
    const c = classByIndex.get(Number(key));
    if (c) changeClass(c.id);
    else handled = false;
  } else if (key === "Enter") {
    if (mode === "segment") segKeep();
    else submit();
  } else if (key === "Escape") {
    if (mode === "segment" && (seg.points.length || seg.box || seg.refine != null)) segReset();
    else if (mode !== "select") setMode("select");
    else select(null);
  } else if (lower === "s") guardEditable() && leave(urls.skip, "skip");
  else if (lower === "p") leave(urls.previous, "previous");
  else if (lower === "f") canvas.fit();
  else if (lower === "b") setMode(mode === "draw" ? "select" : "draw");
  else if (lower === "m") setMode(mode === "segment" ? "select" : "segment");
  else if (lower === "e") segRefine();
  else if (lower === "v") setMode("select");
  else if (lower === "h") {
    showRejected = !showRejected;
    $("show-rejected").checked = showRejected;
    refresh();
  } else if (key === "+" || key === "=") canvas.zoomBy(1.25);
  else if (key === "-") canvas.zoomBy(0.8);
  else if (key === "?") toggleHelp(true);
  else handled = false;
  if (handled) event.preventDefault();
});

window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    navigating = false; // back from the next page (bfcache): usable again
    setBusy(false);
  }
});
window.addEventListener("beforeunload", (event) => {
  if (queue.pending && !navigating) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// ------------------------------------------------------------------------------------ start

for (const c of data.classes) {
  const option = document.createElement("option");
  option.value = String(c.id);
  option.textContent = c.index <= 9 ? `${c.index} · ${c.name}` : c.name;
  $("class-select").append(option);
  const scope = document.createElement("option");
  scope.value = String(c.id);
  scope.textContent = c.name;
  scopeSelect.append(scope);
}
if (readOnly) {
  for (const el of root().querySelectorAll("[data-edit]")) el.disabled = true;
}
setBusy(false);
renderThreshold();
renderLease();
refresh();
setMode("select");
canvas.setDrawColor(classColor(activeClassId));
const first = visible.find((r) => r.state === "proposed");
if (first && !readOnly) select(first.key, { reveal: false });
renderPending();

function root() {
  return $("review");
}

// For tests and the console: the canvas (scale, toClient) and the page's state.
window.labelgpt = {
  canvas,
  review: {
    records,
    queue,
    thresholds,
    get visible() {
      return visible;
    },
    get selected() {
      return byKey.get(selectedKey) || null;
    },
    get mode() {
      return mode;
    },
    select,
    segment: seg,
  },
};
document.documentElement.dataset.reviewReady = "true";
