// "Find more like this" (L): the selected annotation's box is SAM 3's example, the image's rejected
// annotations of its class the counter-examples; a worker finds the other instances and adds them
// as proposals. The page POSTs the request, polls it until it has ended, then adds the new
// proposals to the image's records in place. No DOM here: the page gives `request` (save-queue.js's
// createRequest), `sleep` and what to say; tests run it under node.

/** Why find-more cannot run now (a sentence), or null when it can.
 * `availability`: the page data's find_more ({available, reason}); `selected`: the selected record. */
export function findMoreBlocked({ availability, selected, readOnly = false, running = false }) {
  if (!availability || !availability.available) {
    return (availability && availability.reason) || "Find more is not available on this project.";
  }
  if (readOnly) return "This image is read-only for you: find more is for whoever reviews it.";
  if (running) return "Find more is already searching this image: wait for its answer.";
  if (!selected || selected.deleted) return "Select an annotation first (click it or Tab), then press L to find more like it.";
  if (selected.id == null) return "This annotation is still being saved: find more like it in a moment.";
  return null;
}

/** What to tell once a request has ended ({text, kind}); `shown`: how many of the new proposals
 * pass the review threshold (the others are below the slider). */
export function findMoreMessage(body, shown = null) {
  if (body.status === "failed") return { text: `Find more failed: ${body.error || "unknown error"}`, kind: "error" };
  const created = body.created || 0;
  if (created === 0) return { text: "Nothing new found.", kind: "info" };
  const below = shown == null ? 0 : created - shown;
  const tail = below > 0 ? ` (${below} below the review threshold: lower the slider to see ${below === 1 ? "it" : "them"})` : "";
  return { text: `Found ${created} more${tail}.`, kind: "success" };
}

/** Add the server's annotations the records do not hold yet (by id) to `state` (a ReviewState);
 * returns the records added. */
export function mergeFound(state, annotations, fromServer) {
  const known = new Set(state.records.filter((r) => r.id != null).map((r) => r.id));
  const added = [];
  for (const a of annotations || []) {
    if (known.has(a.id)) continue;
    const r = { key: state.nextKey++, deleted: false, conflict: false, ...fromServer(a) };
    state.records.push(r);
    state.byKey.set(r.key, r);
    known.add(a.id);
    added.push(r);
  }
  return added;
}

const ENDED = new Set(["succeeded", "failed", "cancelled"]);

/** One search at a time: POST, then GET its status_url every `intervalMs` until it has ended
 * (at most `maxPolls` times). Resolves with the request's last answer (its `status` "succeeded"
 * or "failed"); a refused POST or a broken poll resolves {status: "failed", error}. */
export class FindMore {
  constructor({ request, sleep = (ms) => new Promise((done) => setTimeout(done, ms)), intervalMs = 1000, maxPolls = 600 }) {
    Object.assign(this, { request, sleep, intervalMs, maxPolls });
    this.running = false;
  }

  async run(url, annotationId) {
    if (this.running) return { status: "failed", error: "Find more is already searching this image." };
    this.running = true;
    try {
      return await this._run(url, annotationId);
    } finally {
      this.running = false;
    }
  }

  async _run(url, annotationId) {
    let answer;
    try {
      answer = await this.request("POST", url, { annotation: annotationId });
    } catch (error) {
      return { status: "failed", error: error.message };
    }
    if (answer.status !== 202) return { status: "failed", error: answer.json?.error || `the server answered ${answer.status}` };
    let body = answer.json;
    for (let polls = 0; !ENDED.has(body.status); polls++) {
      if (polls >= this.maxPolls) return { status: "failed", error: "no answer from the workers yet; try again later." };
      await this.sleep(this.intervalMs);
      try {
        answer = await this.request("GET", body.status_url);
      } catch (error) {
        continue; // the network blinked: ask again
      }
      if (answer.status !== 200) return { status: "failed", error: answer.json?.error || `the server answered ${answer.status}` };
      body = answer.json;
    }
    return body;
  }
}
