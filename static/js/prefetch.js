// The next image, ready before Enter (no DOM: the page gives the request, the bitmap loader and
// the storage). While an image is reviewed the page asks, read-only, which image the queue would
// hand it next ("peek next": GET data.urls.peek_next, the next image's page data and version;
// nothing is leased, so another annotator may take it meanwhile) and loads its bitmap into the
// browser's cache. On Enter, once the submit is saved, the page claims that image (POST its lease
// with the version it has: the server answers only the lease, "unchanged", when the image is
// still at that version) and hands the data over to the next page through sessionStorage, which
// then builds itself at once instead of claiming again. Anything else (taken by someone else,
// changed, too old, an error): null, and the page goes on through the queue as without prefetch.
//
// With the claimed data (and the decoded bitmap) the page moves to the next image in place
// (review.js's loadImage, history.pushState); the handover through sessionStorage and a page load
// are the fallback, and what it does with localStorage[IN_PLACE_KEY] = "off".
//
// The Enter → next image figure: the time of the key (epoch ms) is kept in sessionStorage and the
// next page reads it once its image is drawn (markEnter / enterElapsed).

export const HANDOVER_KEY = "labelgpt:handover";
export const ENTER_KEY = "labelgpt:enter-at";
/** localStorage[OFF_KEY] = "off" turns prefetch off (bench/review_next.py measures both ways). */
export const OFF_KEY = "labelgpt:prefetch";
/** localStorage[IN_PLACE_KEY] = "off": the next image by a page load, not in place
 * (bench/review_next.py measures both). */
export const IN_PLACE_KEY = "labelgpt:in-place";
export const HANDOVER_MAX_AGE_MS = 30_000;
export const ENTER_MAX_AGE_MS = 60_000;

function safely(run, fallback = null) {
  try {
    return run();
  } catch {
    return fallback; // storage disabled or full: go on without it
  }
}

export function prefetchOff(storage) {
  return safely(() => storage?.getItem(OFF_KEY) === "off", false);
}

export function inPlaceOff(storage) {
  return safely(() => storage?.getItem(IN_PLACE_KEY) === "off", false);
}

export class Prefetcher {
  /** request: save-queue.js's request; peekUrl: data.urls.peek_next; loadBitmap(url): a promise,
   * resolved once the bitmap is loaded (and decoded), with what can be drawn (an Image);
   * statuses: the statuses the queue hands out (a peeked image found in another one is not
   * taken); maxAgeMs: a peek older than this is not used (the lease length: see the claim's
   * `known_version`). */
  constructor({ request, peekUrl, loadBitmap, statuses, maxAgeMs, now = () => Date.now() }) {
    Object.assign(this, { request, peekUrl, loadBitmap, statuses, maxAgeMs, now });
    this.next = null;
    this.started = null;
  }

  /** Peek and load the bitmap (once); the peeked {id, version, review_url, data, bitmap, image}
   * (bitmap: whether it loaded; image: what loadBitmap gave, to draw), or null. */
  start() {
    this.started ??= this.peek();
    return this.started;
  }

  async peek() {
    let answer;
    try {
      answer = await this.request("GET", this.peekUrl);
    } catch {
      return null;
    }
    const next = answer.status === 200 ? answer.json?.next : null;
    if (!next?.data?.image) return null;
    this.next = { ...next, at: this.now(), bitmap: false, image: null };
    try {
      this.next.image = (await this.loadBitmap(next.data.image.url)) ?? null;
      this.next.bitmap = true;
    } catch {
      // the next page loads it itself
    }
    return this.next;
  }

  /** After the submit: take the peeked image (its lease, a POST) and give {data, reviewUrl,
   * unchanged, image}: the data its page is to be built from, and its decoded bitmap when the data
   * is the peeked one; or null (nothing peeked, too old, taken, changed to another status). */
  async claim() {
    const next = this.next;
    if (!next || this.now() - next.at > this.maxAgeMs) return null;
    let answer;
    try {
      answer = await this.request("POST", next.data.urls.lease, { version: next.version });
    } catch {
      return null;
    }
    if (answer.status !== 200 || !answer.json) return null;
    const fresh = answer.json;
    const data = fresh.unchanged
      ? {
          ...next.data,
          lease_expires_at: fresh.lease_expires_at,
          lease_seconds: fresh.lease_seconds,
          held_by_other: null,
        }
      : fresh.image
        ? fresh
        : null;
    if (!data || !this.statuses.includes(data.image.status)) return null;
    const unchanged = Boolean(fresh.unchanged);
    const image = next.image && data.image.url === next.data.image.url ? next.image : null;
    return { data, reviewUrl: next.review_url, unchanged, image };
  }
}

/** Keep the claimed page data for the next page (false when the storage refuses it). */
export function handOver(storage, data, now = Date.now()) {
  return safely(() => {
    storage.setItem(HANDOVER_KEY, JSON.stringify({ id: data.image.id, at: now, data }));
    return true;
  }, false);
}

/** The page data handed over for the image `imageId` (taken: read once), or null when there is
 * none, it is for another image, or it is older than maxAgeMs. */
export function takeHandover(storage, imageId, now = Date.now(), maxAgeMs = HANDOVER_MAX_AGE_MS) {
  return safely(() => {
    const raw = storage.getItem(HANDOVER_KEY);
    if (raw == null) return null;
    storage.removeItem(HANDOVER_KEY);
    const handed = JSON.parse(raw);
    const fresh = handed && handed.id === imageId && now - handed.at >= 0 && now - handed.at <= maxAgeMs;
    return fresh && handed.data?.image?.id === imageId ? handed.data : null;
  });
}

/** Enter was pressed (submit or skip leaves the page) at `epochMs`. */
export function markEnter(storage, epochMs) {
  safely(() => storage.setItem(ENTER_KEY, String(epochMs)));
}

/** Milliseconds from the marked key to `epochMs` (read once), or null without a recent mark. */
export function enterElapsed(storage, epochMs, maxAgeMs = ENTER_MAX_AGE_MS) {
  return safely(() => {
    const raw = storage.getItem(ENTER_KEY);
    if (raw == null) return null;
    storage.removeItem(ENTER_KEY);
    const elapsed = epochMs - Number(raw);
    return Number.isFinite(elapsed) && elapsed >= 0 && elapsed <= maxAgeMs ? elapsed : null;
  });
}
