// The hold on the image, shown in the review page's header: the image is ours for a while after
// the page has claimed it (a POST: opening the page with GET takes nothing), and again after every
// saved write (the server renews the lease on each). Once it has run out the page says so, once,
// until the next write renews it. claimOutcome: what the page is built from after its claim.

export class LeaseTimer {
  /** element: the header's #lease; seconds: the lease length (0: no lease shown, e.g. read
   * only); notify(text, kind, options): a message. */
  constructor({ element, seconds, notify, now = () => Date.now() }) {
    this.element = element;
    this.ms = seconds > 0 ? seconds * 1000 : 0;
    this.notify = notify;
    this.now = now;
    this.until = this.ms > 0 ? now() + this.ms : 0;
    this.warned = false;
    this.ticker = null;
  }

  /** Redraw every `everyMs` (20 s) from now on. */
  start(everyMs = 20000) {
    this.render();
    if (this.until && !this.ticker) this.ticker = setInterval(() => this.render(), everyMs);
  }

  /** No more redraws (the page moved to another image). */
  stop() {
    clearInterval(this.ticker);
    this.ticker = null;
  }

  /** A write was saved: the lease runs again from now. */
  renewed() {
    if (!this.ms) return;
    this.until = this.now() + this.ms;
    this.warned = false;
    this.render();
  }

  render() {
    const el = this.element;
    if (!this.until) return;
    const left = this.until - this.now();
    el.hidden = false;
    el.classList.toggle("expired", left <= 0);
    if (left > 0) {
      el.textContent = `· yours for ${Math.max(1, Math.round(left / 60000))} min`;
      el.title = `Nobody else gets this image until ${new Date(this.until).toLocaleTimeString()}; every edit renews it.`;
      return;
    }
    el.textContent = "· hold expired";
    if (!this.warned) {
      this.warned = true;
      this.notify(
        "Your hold on this image has run out: someone else may open it now. Your next edit takes it back if nobody has.",
        "warning",
        { sticky: true },
      );
    }
  }
}

/** What the page is built from once it has claimed its image (POST data.urls.lease): the GET
 * gave `pageData` and took no lease; `answer` is request()'s {status, json}, or the Error it threw.
 *   200: the answer is the page's data, fresh, with the lease: editable.
 *   409: someone else holds the image: the GET's data, read-only, naming them (`heldBy`).
 *   403 with a reason: a done image an annotator did not review: read-only, with the reason.
 *   anything else: the GET's data, read-only, with why (`locked`); reloading tries again.
 * Returns { data, heldBy, locked } (heldBy and locked are null when the page is editable). */
export function claimOutcome(pageData, answer) {
  if (!(answer instanceof Error) && answer.status === 200 && answer.json?.image) {
    return { data: answer.json, heldBy: null, locked: null };
  }
  if (!(answer instanceof Error) && answer.status === 409) {
    const heldBy = answer.json?.held_by || pageData.held_by_other || "someone else";
    const data = {
      ...pageData,
      held_by_other: heldBy,
      lease_expires_at: answer.json?.lease_expires_at ?? pageData.lease_expires_at ?? null,
      lease_seconds: null,
    };
    return { data, heldBy, locked: null };
  }
  if (!(answer instanceof Error) && answer.status === 403 && answer.json?.error) {
    // A done image someone else reviewed (annotators look at it, managers reopen it).
    return { data: { ...pageData, lease_seconds: null }, heldBy: null, locked: `Read only: ${answer.json.error}` };
  }
  const why =
    answer instanceof Error ? answer.message : answer.json?.error || `the server answered ${answer.status}`;
  return {
    data: { ...pageData, lease_seconds: null },
    heldBy: null,
    locked: `Read only: this image could not be taken for you (${why}). Reload the page to try again.`,
  };
}
