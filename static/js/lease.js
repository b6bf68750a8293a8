// The hold on the image, shown in the review page's header: the image is ours for a while after
// opening it, and again after every saved write (the server renews the lease on each). Once it
// has run out the page says so, once, until the next write renews it.

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
