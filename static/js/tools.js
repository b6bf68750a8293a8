// The click-to-segment tool of the review page (mode "segment", and E to refine a mask).
//
// One object at a time: its clicks (and box) go to the server with a token naming the object, so
// that the server starts each click from the previous click's mask. Esc or Enter starts a new
// object (a new token). Refining an annotation (E) names it: its box and mask are the start.
// While the image's embedding is prepared the server answers 202 and the click is asked again,
// for at most `prepareLimitMs`; an error (the segmenter is not set up, the embedding failed) is
// shown at once with a "Try again" button, and nothing is asked again by itself.
//
// No DOM of its own: the status line, the canvas preview and the edits go through what the page
// gives it.

import { SYSTEM_TIMERS } from "./save-queue.js";

export const SEG_PREPARE_LIMIT_MS = 60000;

function newToken() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class SegmentTool {
  /**
   * request: save-queue.js's request; url: the segment URL (data.urls.segment); state: the
   * ReviewState; editor: the Editor (edits and new annotations); canvas: {setPreview};
   * status(text, {retry, failed}): the status line; notify(text, kind): a message;
   * onChange(): the mode hint may have changed (a refine started or ended); timers: like
   * SaveQueue's (setTimeout, clearTimeout, now).
   */
  constructor({ request, url, state, editor, canvas, status, notify, onChange = () => {}, timers = SYSTEM_TIMERS }) {
    this.request = request;
    this.url = url;
    this.state = state;
    this.editor = editor;
    this.canvas = canvas;
    this.status = status;
    this.notify = notify;
    this.onChange = onChange;
    this.timers = timers;
    this.prepareLimitMs = SEG_PREPARE_LIMIT_MS;
    this.requests = 0;
    this.seq = 0;
    this._clear();
  }

  _clear() {
    this.points = [];
    this.labels = [];
    this.box = null;
    this.result = null;
    this.timer = null;
    this.busy = false;
    this.keep = false;
    this.token = newToken();
    this.refine = null; // key of the record being refined
    this.preparingSince = null;
  }

  /** Something is in progress: clicks, a box or a refined annotation. */
  get active() {
    return Boolean(this.points.length || this.box || this.refine != null);
  }

  /** Forget the current object (a new token for the next one). */
  reset() {
    this.timers.clearTimeout(this.timer);
    this._clear();
    this.seq++;
    this.canvas.setPreview(null);
    this.status("");
    this.onChange();
  }

  addPoint(x, y, label) {
    this.points.push([x, y]);
    this.labels.push(label);
    this.result = this.result && { ...this.result };
    this.send();
  }

  setBox(box) {
    this.box = box;
    this.send();
  }

  preview() {
    const pts = this.points.map(([x, y], i) => [x, y, this.labels[i]]);
    const r = this.result;
    this.canvas.setPreview({
      points: pts,
      polygons: r?.polygons || null,
      mask: r?.polygons ? null : r?.mask || null,
      box: r?.box || this.box,
      replaces: this.refine,
    });
  }

  _failed(text, { retry }) {
    this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.busy = false;
    this.keep = false;
    this.preparingSince = null;
    this.status(text, { retry, failed: true });
  }

  /** Ask the server for the current object's mask. */
  async send({ retry = false } = {}) {
    const seq = ++this.seq;
    this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.busy = true;
    this.preview();
    if (!this.preparingSince) this.status(this.refine != null ? "Refining…" : "Segmenting…");
    const body = { points: this.points, labels: this.labels, object: this.token };
    if (this.box) body.box = this.box;
    const target = this.refine != null ? this.state.byKey.get(this.refine) : null;
    if (target) body.annotation = target.id;
    if (retry) body.retry = true;
    let res;
    this.requests++;
    try {
      res = await this.request("POST", this.url, body, {}, { answered: [500, 503] });
    } catch (error) {
      if (seq !== this.seq) return;
      this._failed(`No mask: ${error.message}.`, { retry: true });
      return;
    }
    if (seq !== this.seq) return;
    if (res.status === 200 && res.json?.status === "ok") {
      this.busy = false;
      this.preparingSince = null;
      this.result = res.json;
      this.preview();
      const what = target ? `Refined mask of “${this.state.className(target.class_id)}”` : "Mask ready";
      if (!res.json.box) {
        this.status("No object found there: click elsewhere.");
      } else if (this.keep) {
        this.keepResult();
      } else {
        // The score is SAM's own estimate of the mask's IoU (0 to 1).
        const iou = Math.max(0, Number(res.json.score)).toFixed(2);
        this.status(`${what} (predicted IoU ${iou}) — Enter ${target ? "saves" : "keeps"} it, Esc cancels.`);
      }
    } else if (res.status === 202) {
      const now = this.timers.now();
      if (!this.preparingSince) this.preparingSince = now;
      if (now - this.preparingSince >= this.prepareLimitMs) {
        const waited = Math.round((now - this.preparingSince) / 1000);
        this._failed(
          `The image embedding is still not ready after ${waited} s: the workers may be busy or none is running on the “interactive” queue.`,
          { retry: true },
        );
        return;
      }
      const after = Math.max(0.25, Number(res.response.headers.get("Retry-After")) || 1);
      this.status("Preparing… the image embedding is being computed.");
      this.timer = this.timers.setTimeout(() => {
        if (seq === this.seq) this.send();
      }, after * 1000);
    } else {
      // 503: the segmenter cannot load or the embedding failed (fixable: try again later);
      // 422: the image cannot be read; 400: a click the server refused (reason given).
      const reason = res.json?.error || `the server answered ${res.status}`;
      this._failed(`No mask: ${reason}`, { retry: res.status >= 500 });
    }
  }

  /** The "Try again" button: ask again (the server queues a failed embedding again). */
  tryAgain() {
    this.preparingSince = null;
    if (!this.active) {
      this.status("");
      return;
    }
    this.send({ retry: true });
  }

  /** Start refining a record's mask (E): its box and mask are the starting point. The page has
   * switched to mode "segment". */
  startRefine(r) {
    this.reset();
    this.refine = r.key;
    this.onChange();
    this.send();
  }

  /** Enter: keep the mask as a new annotation, or save it as the refined annotation's mask. */
  keepResult() {
    const result = this.result;
    if (!result?.box) {
      if (this.busy) {
        this.keep = true; // kept as soon as the mask arrives
        this.status("Keeping the mask as soon as it is ready…");
      } else {
        this.notify("Click the object first (left: add, right: remove).", "info");
      }
      return;
    }
    const { state, editor } = this;
    const target = this.refine != null ? state.byKey.get(this.refine) : null;
    const geometry = { box: result.box.map(Number), mask: result.mask, polygons: result.polygons };
    if (target && !target.deleted) {
      const after = { ...geometry };
      // Fixing a proposal's mask is accepting it (the model's mask is kept for the quality figures).
      if (target.state === "proposed") after.state = "accepted";
      editor.edit(target, after, "refine mask");
      this.reset();
      this.notify(`Refined the mask of “${state.className(target.class_id)}”.`, "success");
      return;
    }
    const r = editor.create({ class_id: state.activeClassId, ...geometry }, "segment");
    this.reset();
    if (r) this.notify(`Kept the mask as “${state.className(r.class_id)}”.`, "success");
  }
}
