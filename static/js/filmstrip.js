// The review page's filmstrip and "jump to an image by name".
//
// Filmstrip: a collapsible strip (a <details>) of the project's images around this one, by id,
// each with its thumbnail and status; filled when first opened (GET data.urls.filmstrip
// ?around=<this id>: a keyset window, never the whole project), more loaded at either end by
// scrolling there or with the end buttons (?before= / ?after= the edge's id).
// Jump by name: a search field; what is typed is a prefix of an image's original name (GET
// data.urls.image_names?prefix=...); Enter opens the first match, a click any of them.
// Opening an image goes through `open(url)` (the page saves its edits first). Names go in with
// textContent, never as markup.

const EDGE_PX = 48;
const TYPE_DELAY_MS = 150;

function tile(image, currentId, doc) {
  const item = doc.createElement("li");
  item.className = `film-tile status-${image.status}`;
  item.dataset.id = String(image.id);
  const link = doc.createElement("a");
  link.href = image.review_url;
  link.title = `${image.name} · ${image.status}${image.in_review ? " · being reviewed" : ""}`;
  if (image.id === currentId) link.setAttribute("aria-current", "true");
  const thumb = doc.createElement("img");
  thumb.src = image.thumbnail;
  thumb.alt = "";
  thumb.loading = "lazy";
  thumb.width = 64;
  thumb.height = 48;
  const name = doc.createElement("span");
  name.className = "film-name";
  name.textContent = image.name;
  const badge = doc.createElement("span");
  badge.className = `badge ${image.status}`;
  badge.textContent = image.in_review && image.id !== currentId ? `${image.status} · in review` : image.status;
  link.append(thumb, name, badge);
  item.append(link);
  return item;
}

export class Filmstrip {
  /** root: the <details>; track: the <ol>; earlier / later: the end buttons; request:
   * save-queue.js's request; url: data.urls.filmstrip; currentId: this image; open(url): go there;
   * notify(text, kind): a message. */
  constructor({ root, track, earlier, later, request, url, currentId, open, notify, doc = globalThis.document }) {
    Object.assign(this, { root, track, earlier, later, request, url, currentId, open, notify, doc });
    this.first = null; // the ids at both ends of what is shown
    this.last = null;
    this.moreBefore = false;
    this.moreAfter = false;
    this.loading = null;
    this.loaded = false;
    root.addEventListener("toggle", () => {
      if (root.open && !this.loaded) this.load({ around: this.currentId });
    });
    track.addEventListener("click", (event) => {
      const link = event.target instanceof Element ? event.target.closest("a") : null;
      if (!link) return;
      event.preventDefault();
      this.open(link.getAttribute("href"));
    });
    track.addEventListener("scroll", () => this.onScroll(), { passive: true });
    earlier.addEventListener("click", () => this.loadBefore());
    later.addEventListener("click", () => this.loadAfter());
  }

  toggle(open) {
    this.root.open = open ?? !this.root.open;
  }

  onScroll() {
    const t = this.track;
    if (t.scrollLeft < EDGE_PX) this.loadBefore();
    else if (t.scrollLeft + t.clientWidth > t.scrollWidth - EDGE_PX) this.loadAfter();
  }

  loadBefore() {
    if (this.moreBefore && this.first != null) this.load({ before: this.first });
  }

  loadAfter() {
    if (this.moreAfter && this.last != null) this.load({ after: this.last });
  }

  /** One window: {around} (the first), {before} or {after} (more). */
  load(query) {
    if (this.loading) return this.loading;
    const [[name, value]] = Object.entries(query);
    this.loading = this.request("GET", `${this.url}?${name}=${encodeURIComponent(value)}`)
      .then((answer) => {
        if (answer.status !== 200) throw new Error(answer.json?.error || `the server answered ${answer.status}`);
        this.show(name, answer.json);
      })
      .catch((error) => this.notify(`The filmstrip could not be loaded: ${error.message}`, "error"))
      .finally(() => {
        this.loading = null;
      });
    return this.loading;
  }

  /** The page moved to the image `id` in place: the strip is loaded again around it when open
   * (the statuses have changed), else when it is opened next. */
  setCurrent(id) {
    Object.assign(this, { currentId: id, first: null, last: null, moreBefore: false, moreAfter: false });
    this.loaded = false;
    this.track.replaceChildren();
    if (this.root.open) this.load({ around: id });
  }

  show(kind, { images, more_before: moreBefore, more_after: moreAfter }) {
    const tiles = images.map((image) => tile(image, this.currentId, this.doc));
    if (kind === "before") {
      const width = this.track.scrollWidth;
      this.track.prepend(...tiles);
      this.track.scrollLeft += this.track.scrollWidth - width; // keep what was in view in view
    } else {
      this.track.append(...tiles);
    }
    if (images.length) {
      if (kind !== "after") this.first = images[0].id;
      if (kind !== "before") this.last = images[images.length - 1].id;
      if (this.first == null) this.first = images[0].id;
    }
    if (moreBefore !== null && moreBefore !== undefined) this.moreBefore = moreBefore;
    if (moreAfter !== null && moreAfter !== undefined) this.moreAfter = moreAfter;
    this.earlier.hidden = !this.moreBefore;
    this.later.hidden = !this.moreAfter;
    if (kind === "around") {
      this.loaded = true;
      this.track.querySelector('[aria-current="true"]')?.scrollIntoView({ block: "nearest", inline: "center" });
    }
  }
}

export class NameJump {
  /** form, input, results (a <ul>): the jump field; url: data.urls.image_names; open(url). */
  constructor({ form, input, results, request, url, open, notify, doc = globalThis.document }) {
    Object.assign(this, { form, input, results, request, url, open, notify, doc });
    this.matches = [];
    this.timer = null;
    this.asked = 0;
    input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(), TYPE_DELAY_MS);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearTimeout(this.timer);
      await this.search();
      if (this.matches.length) this.open(this.matches[0].review_url);
      else if (input.value) this.notify(`No image's name starts with "${input.value}".`, "info");
    });
    results.addEventListener("click", (event) => {
      const link = event.target instanceof Element ? event.target.closest("a") : null;
      if (!link) return;
      event.preventDefault();
      this.open(link.getAttribute("href"));
    });
  }

  focus() {
    this.input.focus();
    this.input.select();
  }

  async search() {
    const prefix = this.input.value;
    const asked = ++this.asked;
    if (!prefix) {
      this.render([]);
      return;
    }
    let answer;
    try {
      answer = await this.request("GET", `${this.url}?prefix=${encodeURIComponent(prefix)}`);
    } catch (error) {
      this.notify(`Could not look for the name: ${error.message}`, "error");
      return;
    }
    if (asked !== this.asked) return; // a later search is on its way
    if (answer.status !== 200) {
      this.notify(answer.json?.error || `The name search answered ${answer.status}.`, "error");
      return;
    }
    this.render(answer.json.images);
  }

  render(images) {
    this.matches = images;
    this.results.replaceChildren(
      ...images.map((image) => {
        const item = this.doc.createElement("li");
        const link = this.doc.createElement("a");
        link.href = image.review_url;
        link.textContent = image.name;
        const badge = this.doc.createElement("span");
        badge.className = `badge ${image.status}`;
        badge.textContent = image.status;
        item.append(link, " ", badge);
        return item;
      }),
    );
  }
}
