// Saving the review page's edits: JSON requests, one ordered queue with retry and backoff, and the
// annotation writes (create, patch, delete, bulk states) with their versions and conflicts.
//
// No DOM: fetch, the timers and what to do with an outcome (a message, a redraw, forgetting a
// refused edit) are given by the caller, so tests run it under node with a fake server.
//
// Every URL comes from the page's data (`urls`), never from here. Edits go one after another:
// each PATCH or DELETE carries the version the previous answer returned (If-Match). A network
// error, a 401, a 429 or a 5xx keeps the edit pending and retries it with backoff (1, 2, 4 ... 30
// s); a stale version (412) is a conflict: the server's copy is shown and never overwritten; any
// other refusal (400, 403, 409, 422 ...) reverts the edit on the page and tells its history entry
// to go (`refused`), as does a 404 or a refused creation for the record's entries (`gone`).

import { fromServer } from "./state.js";

/** A request that may work later: the queue keeps the edit and retries it. */
export class RetryLater extends Error {}

/** The browser's timers and clock; tests give fake ones. */
export const SYSTEM_TIMERS = {
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (id) => clearTimeout(id),
  now: () => Date.now(),
};

/** request(method, url, body, headers, {answered}) → {status, json, response}, with the CSRF
 * header. Network errors, a redirect to the login page, 401, 5xx and 429 throw RetryLater,
 * except the statuses listed in `answered`, which come back like any other answer. */
export function createRequest({ fetch, csrfToken = "", loginPath = "/accounts/login" }) {
  return async function request(method, url, body, headers = {}, { answered = [] } = {}) {
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
    if (response.redirected && new URL(response.url).pathname.startsWith(loginPath)) {
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
  };
}

/** One queue of saves, run in order; a RetryLater failure waits (1, 2, 4 ... 30 s) and tries the
 * same save again; nothing is dropped unless asked (drop). Other errors go to `onError` and the
 * queue goes on. `onChange` is called whenever what it shows (pending, busy, retrying) changes. */
export class SaveQueue {
  constructor({ onChange = () => {}, onError = () => {}, timers = SYSTEM_TIMERS } = {}) {
    this.ops = [];
    this.busy = false;
    this.failures = 0;
    this.retryAt = 0;
    this.timer = null;
    this.lastError = "";
    this.onChange = onChange;
    this.onError = onError;
    this.timers = timers;
    this.waiters = [];
  }

  get pending() {
    return this.ops.length;
  }

  get retrying() {
    return this.timer !== null;
  }

  /** Queue a save: {key, run: async () => ...}. */
  push(op) {
    this.ops.push(op);
    this.onChange();
    this.run();
  }

  /** Pending saves of one annotation (not the one being sent). */
  pendingFor(key) {
    return this.ops.filter((op, i) => op.key === key && !(i === 0 && this.busy)).length;
  }

  /** Forget the pending saves of one annotation (not the one being sent). */
  drop(key) {
    this.ops = this.ops.filter((op, i) => (i === 0 && this.busy) || op.key !== key);
    this.onChange();
  }

  /** Retry at once instead of waiting for the backoff. */
  retryNow() {
    if (!this.timer) return;
    this.timers.clearTimeout(this.timer);
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
          this.retryAt = this.timers.now() + seconds * 1000;
          this.busy = false;
          this.timer = this.timers.setTimeout(() => {
            this.timer = null;
            this.run();
          }, seconds * 1000);
          this.onChange();
          return;
        }
        this.onError(error);
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
      this.timers.setTimeout(() => resolve(!this.ops.length), timeoutMs);
    });
  }
}

/** The annotation writes of the review page, through one SaveQueue.
 *
 * `state` is the ReviewState whose records are written; `urls` holds `annotations` (POST),
 * `annotation` (one annotation, its id written as 0), `bulk`. The hooks (all optional):
 * - notify(text, kind, {sticky, reload, className}): a message for the user (`reload`: offer to
 *   reload the page);
 * - changed(): records changed, draw again;
 * - saved(r): the server took a write (it renews the image's lease);
 * - refused(entry): the server refused the write made for this history entry: forget it;
 * - gone(key): the record does not exist on the server (creation refused, or 404): forget
 *   every history entry of it. */
export class AnnotationSync {
  constructor({ queue, request, urls, state, hooks = {} }) {
    this.queue = queue;
    this.request = request;
    this.urls = urls;
    this.state = state;
    this.hooks = {
      notify: () => {},
      changed: () => {},
      saved: () => {},
      refused: () => {},
      gone: () => {},
      ...hooks,
    };
  }

  annotationUrl(id) {
    return this.urls.annotation.replace(/\/0\/$/, `/${id}/`);
  }

  /** Save `fields` of a record (already applied on the page); `revert` puts it back if refused. */
  patch(r, fields, revert, what, entry = null) {
    this.queue.push({
      key: r.key,
      run: async () => {
        if (r.id == null) return; // its creation was refused or undone
        const res = await this.request("PATCH", this.annotationUrl(r.id), fields, ifMatch(r));
        if (res.status === 200 && res.json) this._merge(r, res.json);
        else if (res.status === 412) this._conflict(r, res.json?.current);
        else this._refused(r, res, revert, what, entry);
        this.hooks.changed();
      },
    });
  }

  /** Create a record on the server (skipped if it was removed on the page meanwhile). */
  create(r) {
    this.queue.push({
      key: r.key,
      run: async () => {
        if (r.deleted) return; // undone before it was sent
        const body = { class_id: r.class_id, box: r.box };
        if (r.mask) body.mask = r.mask;
        if (r.polygons) body.polygons = r.polygons;
        const res = await this.request("POST", this.urls.annotations, body);
        if ((res.status === 201 || res.status === 200) && res.json) {
          this._merge(r, res.json);
        } else {
          r.deleted = true;
          this.hooks.gone(r.key);
          this.hooks.notify(
            `Could not save the new ${this.state.className(r.class_id)}: ${res.json?.error || res.status}`,
            "error",
          );
        }
        this.hooks.changed();
      },
    });
  }

  /** Delete a record on the server (already marked deleted on the page). */
  remove(r, entry = null) {
    this.queue.push({
      key: r.key,
      run: async () => {
        if (r.id == null) return;
        const res = await this.request("DELETE", this.annotationUrl(r.id), undefined, ifMatch(r));
        if (res.status === 204 || res.status === 200 || res.status === 404) {
          r.id = null;
          r.version = null;
        } else if (res.status === 412) {
          this._conflict(r, res.json?.current);
        } else {
          r.deleted = false;
          if (entry) this.hooks.refused(entry);
          if (res.status === 409) {
            this.hooks.notify(`Not removed: ${res.json?.error || res.status}`, "error", { sticky: true });
          } else {
            this.hooks.notify(`Could not remove the box: ${res.json?.error || res.status}`, "error");
          }
        }
        this.hooks.changed();
      },
    });
  }

  /** Several state changes in one request (accept all): `states` and `reverts` by key. */
  bulk(keys, states, reverts, entry = null) {
    const byKey = this.state.byKey;
    this.queue.push({
      key: "bulk",
      run: async () => {
        const targets = keys.map((k) => byKey.get(k)).filter((r) => r && r.id != null && !r.deleted);
        if (!targets.length) return;
        const updates = targets.map((r) => ({ id: r.id, version: r.version, state: states.get(r.key) }));
        const res = await this.request("POST", this.urls.bulk, { updates });
        if (res.status !== 200 || !res.json) {
          for (const r of targets) r.state = reverts.get(r.key);
          if (entry) this.hooks.refused(entry);
          this.hooks.notify(
            `Could not change ${targets.length} annotations: ${res.json?.error || res.status}`,
            "error",
          );
          this.hooks.changed();
          return;
        }
        const byId = new Map(targets.map((r) => [r.id, r]));
        for (const a of res.json.annotations || []) {
          const r = byId.get(a.id);
          if (r) this._merge(r, a);
        }
        const conflicts = res.json.conflicts || [];
        const current = new Map((res.json.current || []).map((a) => [a.id, a]));
        for (const id of conflicts) {
          const r = byId.get(id);
          if (!r) continue;
          this.queue.drop(r.key);
          if (current.has(id)) Object.assign(r, fromServer(current.get(id)));
          else r.state = reverts.get(r.key);
          r.conflict = true;
        }
        if (conflicts.length) {
          this.hooks.notify(
            `${conflicts.length} annotation(s) were changed by someone else — reload the page to see the latest.`,
            "error",
            { sticky: true, reload: true, className: "conflict" },
          );
        }
        this.hooks.changed();
      },
    });
  }

  /** A server answer for an annotation: keep its version; take its fields when nothing else is pending. */
  _merge(r, a) {
    this.hooks.saved(r);
    r.id = a.id;
    r.version = a.version;
    if (this.queue.pendingFor(r.key) === 0) Object.assign(r, fromServer(a));
  }

  /** A stale version (412): the server's copy is shown, this page's pending writes of it go. */
  _conflict(r, current) {
    this.queue.drop(r.key);
    if (current) {
      Object.assign(r, fromServer(current));
      r.deleted = false;
    }
    r.conflict = true;
    this.hooks.notify(
      `“${this.state.className(r.class_id)}” #${r.id} was changed by someone else — reload the page to see the latest.`,
      "error",
      { sticky: true, reload: true, className: "conflict" },
    );
  }

  /** Any other refusal of a PATCH: undo it on the page and forget it in the history. */
  _refused(r, res, revert, what, entry) {
    const reason = res.json?.error || `the server answered ${res.status}`;
    if (res.status === 404) {
      r.deleted = true;
      this.hooks.gone(r.key);
      this.hooks.notify(`This annotation no longer exists (${what}).`, "error");
      return;
    }
    if (revert) Object.assign(r, revert);
    if (entry) this.hooks.refused(entry);
    if (res.status === 409) {
      // Not a stale version: the write cannot be made now (e.g. someone else holds the image).
      this.hooks.notify(`Not saved (${what}): ${reason}`, "error", {
        sticky: true,
        reload: true,
        className: "conflict",
      });
    } else {
      this.hooks.notify(`Could not ${what}: ${reason}`, "error");
    }
  }
}

function ifMatch(r) {
  return { "If-Match": `"${r.version}"` };
}
