// Leaving the review page: submit (Enter), skip (S) and previous (P). Every edit is saved first;
// submit and skip are POSTs whose answer names the review queue ({"next": url}), which the page
// then POSTs to as a form with the CSRF token (postForm): the queue leases the next image and
// answers 303 to it, and never leases on a GET. While leaving, a second press does nothing. A
// page left with unsaved edits asks the browser to confirm.

/** The header's "image k of n" (as review.html writes it) from the page data's progress: null
 * when the data has none. */
export function progressText(progress, queue) {
  if (!progress) return null;
  const text = progress.k ? `Image ${progress.k} of ${progress.n}` : `${progress.done} of ${progress.n} done`;
  return queue === "skipped" ? `${text} · skipped images` : text;
}

/** The skipped queue's URL after the image `imageId` (the page's urls.next names the first
 * image's: ?after=<id>), or null without one. */
export function queueAfter(url, imageId, base = globalThis.location?.href) {
  if (!url) return null;
  const next = new URL(url, base);
  next.searchParams.set("after", String(imageId));
  return next.pathname + next.search;
}

/** Go to `url` by a POST, as a form with the CSRF token does (the browser follows the answer). */
export function postForm(url, csrfToken, doc = globalThis.document) {
  const form = doc.createElement("form");
  form.method = "post";
  form.action = url;
  form.hidden = true;
  const token = doc.createElement("input");
  token.type = "hidden";
  token.name = "csrfmiddlewaretoken";
  token.value = csrfToken;
  form.append(token);
  doc.body.append(form);
  form.submit();
  return form;
}

export class Navigation {
  /** queue: the SaveQueue; request: save-queue.js's request; notify(text, kind): a message;
   * setBusy(busy): disable the submit and skip buttons meanwhile; post(url): go on by a POST
   * (postForm with the page's CSRF token); onLeave(what): called as the page starts leaving;
   * onward(next, what): after a submit or skip, an async hook that may open the next image
   * itself (prefetch.js: true when it did) before the page goes on through the queue `next`. */
  constructor({ queue, request, notify, setBusy, post, onLeave = () => {}, onward = async () => false }) {
    Object.assign(this, { queue, request, notify, setBusy, post, onLeave, onward });
    this.navigating = false;
    this.submitArmed = false; // Enter was pressed once with undecided proposals
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) {
        this.navigating = false; // back from the next page (bfcache): usable again
        setBusy(false);
      }
    });
    window.addEventListener("beforeunload", (event) => {
      if (queue.pending && !this.navigating) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  /** The page moved to the next image in place (onward): usable again, as a new page. */
  arrived() {
    this.navigating = false;
    this.submitArmed = false;
    this.setBusy(false);
  }

  /** Submit, unless `undecided` proposals are visible and Enter was not pressed twice. */
  submit(url, undecided) {
    if (undecided && !this.submitArmed) {
      this.submitArmed = true;
      this.notify(
        `${undecided} visible proposal${undecided === 1 ? " is" : "s are"} not decided yet: press Enter again to submit anyway, or Shift+A to accept them.`,
        "warning",
      );
      return;
    }
    this.submitArmed = false;
    this.leave(url, "submit");
  }

  /** what: "submit" | "skip" (POST url, then POST to its answer's `next`), or "previous" | "open"
   * (go to url). */
  async leave(url, what) {
    if (this.navigating) return;
    this.navigating = true;
    this.onLeave(what);
    this.setBusy(true);
    const done = (text) => {
      if (text) this.notify(text, "error");
      this.navigating = false;
      this.setBusy(false);
    };
    const queue = this.queue;
    if (queue.pending) this.notify("Saving your last edits…", "info");
    const saved = await queue.settled();
    if (!saved) {
      done(`Not ${what === "submit" ? "submitted" : "left"}: ${queue.pending} edit(s) are not saved yet.`);
      return;
    }
    if (what === "previous" || what === "open") {
      window.location.assign(url);
      return;
    }
    let res;
    try {
      res = await this.request("POST", url, {});
    } catch (error) {
      done(`Could not ${what}: ${error.message}. Try again.`);
      return;
    }
    if (res.status === 200 && res.json?.next) {
      let opened = false;
      try {
        opened = await this.onward(res.json.next, what);
      } catch {
        opened = false;
      }
      if (!opened) this.post(res.json.next); // still "navigating": a second Enter does nothing
      return;
    }
    done(`Could not ${what}: ${res.json?.error || `the server answered ${res.status}`}`);
  }
}
