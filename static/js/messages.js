// The review page's messages (a short list under the page, newest last) and the save status in
// its header ("Saving 2…", "1 unsaved — retrying in 3 s", "All changes saved").
// Text only (textContent): a message never carries markup.

const KEEP = 5; // messages shown at most

export class Messages {
  /** list: the #review-messages list. */
  constructor(list) {
    this.list = list;
  }

  /** Show a message: kind "info" | "success" | "warning" | "error"; `sticky` ones stay until
   * dismissed; `action` {label, run} adds a button. */
  flash(text, kind = "info", { sticky = false, action = null, className: extra = "" } = {}) {
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
    this.list.append(item);
    while (this.list.children.length > KEEP) this.list.firstElementChild.remove();
  }
}

export class PendingStatus {
  /** el: #pending; text: #pending-text; retry: the "Retry now" button; queue: the SaveQueue;
   * anySaved(): whether this page made an edit yet (then "All changes saved" is shown). */
  constructor({ el, text, retry, queue, anySaved }) {
    Object.assign(this, { el, text, retry, queue, anySaved });
    this.ticker = null;
  }

  render() {
    const { el, text, retry, queue } = this;
    const count = queue.pending;
    el.dataset.pending = String(count);
    if (!count) {
      el.className = "pending saved";
      text.textContent = this.anySaved() ? "All changes saved" : "";
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
    // While retrying, the countdown goes on every second.
    if (queue.retrying && !this.ticker) this.ticker = setInterval(() => this.render(), 1000);
    if (!queue.retrying && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }
}
