import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { keyAction } from "../../static/js/keymap.js";
import {
  ENTER_KEY,
  HANDOVER_KEY,
  IN_PLACE_KEY,
  OFF_KEY,
  Prefetcher,
  enterElapsed,
  handOver,
  inPlaceOff,
  markEnter,
  prefetchOff,
  takeHandover,
} from "../../static/js/prefetch.js";

function memoryStorage() {
  const items = new Map();
  return {
    items,
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
  };
}

const NEXT = {
  id: 8,
  version: 3,
  review_url: "/images/8/review/",
  data: {
    image: { id: 8, url: "/images/8/file/", status: "prelabeled", version: 3 },
    annotations: [{ id: 1 }],
    urls: { lease: "/api/v1/images/8/lease/" },
    lease_expires_at: null,
    lease_seconds: null,
  },
};

/** A request() that answers from a list of [method, url] → answer, recording the calls. */
function fakeRequest(answers) {
  const calls = [];
  const request = async (method, url, body) => {
    calls.push({ method, url, body });
    const answer = answers[`${method} ${url}`];
    if (answer instanceof Error) throw answer;
    return answer ?? { status: 404, json: null };
  };
  return { request, calls };
}

function prefetcher(answers, { now = () => 1000, loadBitmap = async () => {} } = {}) {
  const fake = fakeRequest(answers);
  const bitmaps = [];
  const p = new Prefetcher({
    request: fake.request,
    peekUrl: "/api/v1/images/7/peek-next/",
    loadBitmap: (url) => {
      bitmaps.push(url);
      return loadBitmap(url);
    },
    statuses: ["prelabeled", "new"],
    maxAgeMs: 60_000,
    now,
  });
  return { p, calls: fake.calls, bitmaps };
}

describe("Prefetcher: the next image before Enter", () => {
  test("peeks once (a GET), loads the bitmap, and claims with the version it has", async () => {
    const { p, calls, bitmaps } = prefetcher({
      "GET /api/v1/images/7/peek-next/": { status: 200, json: { next: NEXT } },
      "POST /api/v1/images/8/lease/": {
        status: 200,
        json: { unchanged: true, lease_expires_at: "2026-01-01T00:00:00Z", lease_seconds: 900 },
      },
    });
    const peeked = await p.start();
    await p.start();
    assert.equal(peeked.id, 8);
    assert.equal(peeked.bitmap, true);
    assert.deepEqual(bitmaps, ["/images/8/file/"]);
    assert.deepEqual(
      calls.map((c) => c.method),
      ["GET"],
      "peeking writes nothing and happens once",
    );
    const claimed = await p.claim();
    assert.deepEqual(calls[1], { method: "POST", url: "/api/v1/images/8/lease/", body: { version: 3 } });
    assert.equal(claimed.unchanged, true);
    assert.equal(claimed.reviewUrl, "/images/8/review/");
    assert.deepEqual(claimed.data.annotations, [{ id: 1 }], "the peeked data, not fetched again");
    assert.equal(claimed.data.lease_seconds, 900);
  });

  test("a changed image: the claim's fresh data is used", async () => {
    const fresh = { ...NEXT.data, image: { ...NEXT.data.image, version: 4 }, annotations: [] };
    const { p } = prefetcher({
      "GET /api/v1/images/7/peek-next/": { status: 200, json: { next: NEXT } },
      "POST /api/v1/images/8/lease/": { status: 200, json: fresh },
    });
    await p.start();
    const claimed = await p.claim();
    assert.equal(claimed.unchanged, false);
    assert.deepEqual(claimed.data.annotations, []);
  });

  test("taken by someone else, finished meanwhile, an error, or too old: null (the queue goes on)", async () => {
    const done = { ...NEXT.data, image: { ...NEXT.data.image, status: "done" } };
    for (const answer of [
      { status: 409, json: { error: "bob is reviewing", held_by: "bob" } },
      { status: 200, json: done },
      new Error("offline"),
    ]) {
      const { p } = prefetcher({
        "GET /api/v1/images/7/peek-next/": { status: 200, json: { next: NEXT } },
        "POST /api/v1/images/8/lease/": answer,
      });
      await p.start();
      assert.equal(await p.claim(), null);
    }
    let now = 0;
    const { p, calls } = prefetcher(
      { "GET /api/v1/images/7/peek-next/": { status: 200, json: { next: NEXT } } },
      { now: () => now },
    );
    await p.start();
    now = 60_001;
    assert.equal(await p.claim(), null);
    assert.equal(calls.length, 1, "a stale peek is not claimed");
  });

  test("nothing next, or the peek failed: nothing to claim, and the bitmap failing is no error", async () => {
    const none = prefetcher({ "GET /api/v1/images/7/peek-next/": { status: 200, json: { next: null } } });
    assert.equal(await none.p.start(), null);
    assert.equal(await none.p.claim(), null);
    const failing = prefetcher({ "GET /api/v1/images/7/peek-next/": new Error("offline") });
    assert.equal(await failing.p.start(), null);
    const noBitmap = prefetcher(
      { "GET /api/v1/images/7/peek-next/": { status: 200, json: { next: NEXT } } },
      {
        loadBitmap: async () => {
          throw new Error("decode");
        },
      },
    );
    assert.equal((await noBitmap.p.start()).bitmap, false);
  });
});

describe("Prefetcher: the decoded bitmap for the move in place", () => {
  const decoded = { decoded: "/images/8/file/" };
  const peek = { status: 200, json: { next: NEXT } };

  test("the claim gives what loadBitmap resolved with, for the peeked data", async () => {
    const { p } = prefetcher(
      {
        "GET /api/v1/images/7/peek-next/": peek,
        "POST /api/v1/images/8/lease/": { status: 200, json: { unchanged: true, lease_seconds: 900 } },
      },
      { loadBitmap: async () => decoded },
    );
    assert.equal((await p.start()).image, decoded);
    assert.equal((await p.claim()).image, decoded);
  });

  test("fresh data for another file: no bitmap given (the page loads its file)", async () => {
    const fresh = { ...NEXT.data, image: { ...NEXT.data.image, version: 4, url: "/images/8/file/?v=4" } };
    const { p } = prefetcher(
      { "GET /api/v1/images/7/peek-next/": peek, "POST /api/v1/images/8/lease/": { status: 200, json: fresh } },
      { loadBitmap: async () => decoded },
    );
    await p.start();
    const claimed = await p.claim();
    assert.equal(claimed.data.image.version, 4);
    assert.equal(claimed.image, null);
  });
});

describe("the handover to the next page and the Enter → image figure", () => {
  test("the data is taken once, for its image only, while fresh", () => {
    const storage = memoryStorage();
    assert.equal(handOver(storage, NEXT.data, 1000), true);
    assert.equal(takeHandover(storage, 9, 1500), null, "another image");
    assert.equal(storage.getItem(HANDOVER_KEY), null, "read once");
    handOver(storage, NEXT.data, 1000);
    assert.deepEqual(takeHandover(storage, 8, 1500), NEXT.data);
    assert.equal(takeHandover(storage, 8, 1500), null);
    handOver(storage, NEXT.data, 1000);
    assert.equal(takeHandover(storage, 8, 1000 + 30_001), null, "too old");
    storage.setItem(HANDOVER_KEY, "{not json");
    assert.equal(takeHandover(storage, 8, 1500), null);
  });

  test("a storage that refuses: no handover, no error", () => {
    const refusing = {
      getItem() {
        throw new Error("denied");
      },
      setItem() {
        throw new Error("quota");
      },
      removeItem() {},
    };
    assert.equal(handOver(refusing, NEXT.data), false);
    assert.equal(takeHandover(refusing, 8), null);
    assert.equal(prefetchOff(refusing), false);
  });

  test("Enter's time is read once by the next page", () => {
    const storage = memoryStorage();
    markEnter(storage, 10_000.5);
    assert.equal(storage.getItem(ENTER_KEY), "10000.5");
    assert.equal(enterElapsed(storage, 10_120.5), 120);
    assert.equal(enterElapsed(storage, 10_130), null);
    markEnter(storage, 10_000);
    assert.equal(enterElapsed(storage, 10_000 + 61_000), null, "an old mark is no figure");
  });

  test("localStorage can turn prefetch off", () => {
    const storage = memoryStorage();
    assert.equal(prefetchOff(storage), false);
    storage.setItem(OFF_KEY, "off");
    assert.equal(prefetchOff(storage), true);
  });

  test("localStorage can turn the move in place off (a page load instead)", () => {
    const storage = memoryStorage();
    assert.equal(inPlaceOff(storage), false);
    storage.setItem(IN_PLACE_KEY, "off");
    assert.equal(inPlaceOff(storage), true);
    assert.equal(inPlaceOff(null), false);
  });
});

describe("keymap: J opens the filmstrip and the jump by name", () => {
  test("g and G, not in a text field", () => {
    assert.equal(keyAction({ key: "j" }).action, "jump");
    assert.equal(keyAction({ key: "J", shiftKey: true }).action, "jump");
    assert.equal(keyAction({ key: "g" }, { textField: true }), null);
    assert.equal(keyAction({ key: "g", ctrlKey: true }), null);
  });
});
