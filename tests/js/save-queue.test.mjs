import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { AnnotationSync, RetryLater, SaveQueue, createRequest } from "../../static/js/save-queue.js";
import { ReviewState } from "../../static/js/state.js";
import { answer, fakeFetch, fakeTimers, idle, pageData } from "./support.mjs";

describe("createRequest", () => {
  test("sends JSON with the CSRF header and reads the JSON answer", async () => {
    const fetch = fakeFetch(() => ({ status: 200, json: { ok: true } }));
    const request = createRequest({ fetch, csrfToken: "tok" });
    const res = await request("PATCH", "/api/v1/annotations/3/", { state: "accepted" }, { "If-Match": '"2"' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { ok: true });
    const [sent] = fetch.requests;
    assert.equal(sent.method, "PATCH");
    assert.equal(sent.headers["X-CSRFToken"], "tok");
    assert.equal(sent.headers["If-Match"], '"2"');
    assert.equal(sent.headers["Content-Type"], "application/json");
    assert.deepEqual(sent.body, { state: "accepted" });
  });

  test("a 204 has no JSON; a 4xx comes back with its error", async () => {
    const answers = [{ status: 204 }, { status: 400, json: { error: "bad box" } }];
    const request = createRequest({ fetch: fakeFetch(() => answers.shift()) });
    assert.equal((await request("DELETE", "/a/")).json, null);
    assert.deepEqual((await request("POST", "/a/", {})).json, { error: "bad box" });
  });

  test("network errors, 401, 429 and 5xx are RetryLater, unless answered", async () => {
    const cases = [
      [() => Promise.reject(new TypeError("Failed to fetch")), /cannot be reached/],
      [() => ({ status: 401 }), /logged out/],
      [() => ({ status: 429 }), /429/],
      [() => ({ status: 503, json: { error: "x" } }), /503/],
    ];
    for (const [handler, message] of cases) {
      const request = createRequest({ fetch: fakeFetch(handler) });
      const retryLater = (error) => error instanceof RetryLater && message.test(error.message);
      await assert.rejects(request("POST", "/a/", {}), retryLater);
    }
    const request = createRequest({ fetch: fakeFetch(() => ({ status: 503, json: { error: "no weights" } })) });
    const res = await request("POST", "/seg/", {}, {}, { answered: [503] });
    assert.deepEqual([res.status, res.json.error], [503, "no weights"]);
  });
});

/** A queue on fake timers and a gate: `held(run)` is a save that runs once `release()` is called. */
function gatedQueue() {
  const queue = new SaveQueue({ timers: fakeTimers() });
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  return { queue, release, held: (run) => async () => (await gate, run()) };
}

describe("SaveQueue", () => {
  test("runs saves one after another, in order", async () => {
    const { queue, release, held } = gatedQueue();
    const log = [];
    queue.push({ key: 1, run: held(() => log.push("first")) });
    queue.push({ key: 2, run: async () => log.push("second") });
    assert.equal(queue.pending, 2);
    assert.equal(queue.pendingFor(1), 0, "the one being sent is not pending");
    await idle({ busy: false });
    assert.deepEqual(log, [], "the second waits for the first");
    release();
    await idle(queue);
    assert.deepEqual(log, ["first", "second"]);
    assert.equal(queue.pending, 0);
  });

  test("retries with backoff (1, 2, 4 s ... 30 s) and keeps the save meanwhile", async () => {
    const timers = fakeTimers();
    const queue = new SaveQueue({ timers });
    let failures = 7;
    let runs = 0;
    queue.push({
      key: 1,
      run: async () => {
        runs++;
        if (failures-- > 0) throw new RetryLater("the server answered 503");
      },
    });
    const delays = [];
    for (;;) {
      await idle(queue);
      if (!queue.retrying) break;
      assert.equal(queue.pending, 1);
      assert.equal(queue.lastError, "the server answered 503");
      assert.equal(await queue.settled(), false, "failing: not settled");
      delays.push(timers.waiting[0]);
      timers.advance(timers.waiting[0]);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    assert.equal(runs, 8);
    assert.equal(queue.pending, 0);
    assert.equal(queue.failures, 0);
  });

  test("retryNow does not wait for the backoff", async () => {
    const timers = fakeTimers();
    const queue = new SaveQueue({ timers });
    let fail = true;
    queue.push({
      key: 1,
      run: async () => {
        if (fail) throw new RetryLater("down");
      },
    });
    await idle(queue);
    assert.equal(queue.retrying, true);
    fail = false;
    queue.retryNow();
    await idle(queue);
    assert.equal(queue.pending, 0);
    assert.deepEqual(timers.waiting, []);
  });

  test("another error is reported and the queue goes on", async () => {
    const errors = [];
    const queue = new SaveQueue({ timers: fakeTimers(), onError: (error) => errors.push(error.message) });
    const done = [];
    queue.push({
      key: 1,
      run: async () => {
        throw new Error("bug");
      },
    });
    queue.push({ key: 2, run: async () => done.push(2) });
    const settled = queue.settled();
    await idle(queue);
    assert.equal(await settled, true);
    assert.deepEqual(errors, ["bug"]);
    assert.deepEqual(done, [2]);
  });

  test("drop forgets the pending saves of one annotation, not the one in flight", async () => {
    const { queue, release, held } = gatedQueue();
    const done = [];
    queue.push({ key: 1, run: held(() => done.push("1a")) });
    queue.push({ key: 1, run: async () => done.push("1b") });
    queue.push({ key: 2, run: async () => done.push("2") });
    queue.drop(1);
    release();
    await idle(queue);
    assert.deepEqual(done, ["1a", "2"]);
  });
});

/** A sync over a fake server whose PATCH answers come from `handler`. */
function setup(handler) {
  const state = new ReviewState(pageData());
  const fetch = fakeFetch(handler);
  const queue = new SaveQueue({ timers: fakeTimers() });
  const events = { notify: [], refused: [], gone: [], saved: 0 };
  const sync = new AnnotationSync({
    queue,
    request: createRequest({ fetch }),
    urls: pageData().urls,
    state,
    hooks: {
      notify: (text, kind, options = {}) => events.notify.push({ text, kind, ...options }),
      refused: (entry) => events.refused.push(entry),
      gone: (key) => events.gone.push(key),
      saved: () => events.saved++,
    },
  });
  return { state, fetch, queue, sync, events };
}

describe("AnnotationSync", () => {
  test("each PATCH carries the version the previous answer returned", async () => {
    const versions = new Map([[2, 1]]);
    const { state, fetch, queue, sync } = setup(({ url, headers, body }) => {
      const id = Number(url.match(/\/(\d+)\/$/)[1]);
      assert.equal(headers["If-Match"], `"${versions.get(id)}"`);
      versions.set(id, versions.get(id) + 1);
      return { status: 200, json: answer(state.byKey.get(2), body, versions.get(id)) };
    });
    const r = state.byKey.get(2);
    r.state = "accepted";
    sync.patch(r, { state: "accepted" }, { state: "proposed" }, "accept");
    r.class_id = 11;
    sync.patch(r, { class_id: 11 }, { class_id: 10 }, "change class");
    await idle(queue);
    assert.deepEqual(
      fetch.requests.map((q) => [q.method, q.url, q.headers["If-Match"]]),
      [
        ["PATCH", "/api/v1/annotations/2/", '"1"'],
        ["PATCH", "/api/v1/annotations/2/", '"2"'],
      ],
    );
    assert.equal(r.version, 3);
    assert.deepEqual([r.state, r.class_id], ["accepted", 11]);
  });

  test("a stale version (412) shows the server's copy and drops this page's pending writes", async () => {
    const current = {
      id: 2,
      class_id: 10,
      box: [5, 5, 10, 10],
      score: 0.9,
      source: "model",
      state: "rejected",
      version: 4,
    };
    const { state, fetch, queue, sync, events } = setup(() => ({ status: 412, json: { error: "stale", current } }));
    const r = state.byKey.get(2);
    r.state = "accepted";
    sync.patch(r, { state: "accepted" }, { state: "proposed" }, "accept", { kind: "patch" });
    sync.patch(r, { class_id: 11 }, { class_id: 10 }, "change class", { kind: "patch" });
    await idle(queue);
    assert.equal(fetch.requests.length, 1, "the second write of it is not sent");
    assert.deepEqual([r.state, r.version, r.conflict], ["rejected", 4, true]);
    assert.equal(events.notify.length, 1);
    assert.match(events.notify[0].text, /changed by someone else/);
    assert.equal(events.notify[0].reload, true);
    assert.deepEqual(events.refused, [], "a conflict is not a refusal");
  });

  test("a refused PATCH reverts the record and names its history entry", async () => {
    for (const [status, message] of [
      [400, /Could not accept: bad state/],
      [403, /Could not accept: bad state/],
      [409, /Not saved \(accept\): bad state/],
    ]) {
      const { state, queue, sync, events } = setup(() => ({ status, json: { error: "bad state" } }));
      const r = state.byKey.get(2);
      const entry = { kind: "patch", key: r.key };
      r.state = "accepted";
      sync.patch(r, { state: "accepted" }, { state: "proposed" }, "accept", entry);
      await idle(queue);
      assert.equal(r.state, "proposed", `${status} reverts`);
      assert.deepEqual(events.refused, [entry]);
      assert.match(events.notify[0].text, message);
    }
  });

  test("a 404 marks the record deleted and all of its history gone", async () => {
    const { state, queue, sync, events } = setup(() => ({ status: 404, json: { error: "not found" } }));
    const r = state.byKey.get(2);
    sync.patch(r, { state: "accepted" }, { state: "proposed" }, "accept", { kind: "patch" });
    await idle(queue);
    assert.equal(r.deleted, true);
    assert.deepEqual(events.gone, [r.key]);
  });

  test("a network error or a 5xx keeps the write and sends it again", async () => {
    const answers = [{ status: 503 }, { status: 200 }];
    const { state, fetch, queue, sync, events } = setup(({ body }) => {
      const next = answers.shift();
      return next.status === 200 ? { status: 200, json: answer(state.byKey.get(2), body, 2) } : next;
    });
    const r = state.byKey.get(2);
    r.state = "accepted";
    sync.patch(r, { state: "accepted" }, { state: "proposed" }, "accept", { kind: "patch" });
    await idle(queue);
    assert.equal(queue.pending, 1);
    assert.equal(r.state, "accepted", "kept on the page meanwhile");
    queue.retryNow();
    await idle(queue);
    assert.equal(fetch.requests.length, 2);
    assert.deepEqual([r.state, r.version, queue.pending], ["accepted", 2, 0]);
    assert.deepEqual(events.refused, []);
    assert.equal(events.saved, 1);
  });

  test("create posts to urls.annotations and takes the id; a refusal deletes it", async () => {
    const answers = [
      {
        status: 201,
        json: { id: 50, class_id: 12, box: [1, 2, 3, 4], source: "human", state: "accepted", version: 1 },
      },
      { status: 400, json: { error: "box outside the image" } },
    ];
    const { state, fetch, queue, sync, events } = setup(() => answers.shift());
    const made = state.addRecord({ class_id: 12, box: [1, 2, 3, 4] });
    const refused = state.addRecord({ class_id: 12, box: [900, 2, 3, 4] });
    sync.create(made);
    sync.create(refused);
    await idle(queue);
    assert.deepEqual(fetch.requests[0], {
      method: "POST",
      url: "/api/v1/images/7/annotations/",
      headers: fetch.requests[0].headers,
      body: { class_id: 12, box: [1, 2, 3, 4] },
    });
    assert.deepEqual([made.id, made.version], [50, 1]);
    assert.equal(refused.deleted, true);
    assert.deepEqual(events.gone, [refused.key]);
    assert.match(events.notify[0].text, /Could not save the new dog: box outside the image/);
  });

  test("bulk sends every state in one request and shows per-annotation conflicts", async () => {
    const { state, fetch, queue, sync, events } = setup(({ body }) => ({
      status: 200,
      json: {
        annotations: [answer(state.byKey.get(2), { state: "accepted" }, 2)],
        conflicts: [1],
        current: [
          { id: 1, class_id: 10, box: [0, 0, 10, 10], score: 0.4, source: "model", state: "rejected", version: 9 },
        ],
        sent: body,
      },
    }));
    const keys = [2, 1];
    for (const key of keys) state.byKey.get(key).state = "accepted";
    const states = new Map(keys.map((k) => [k, "accepted"]));
    const reverts = new Map(keys.map((k) => [k, "proposed"]));
    sync.bulk(keys, states, reverts, { kind: "bulk" });
    await idle(queue);
    assert.equal(fetch.requests.length, 1);
    assert.deepEqual(fetch.requests[0].body, {
      updates: [
        { id: 2, version: 1, state: "accepted" },
        { id: 1, version: 1, state: "accepted" },
      ],
    });
    assert.deepEqual([state.byKey.get(2).state, state.byKey.get(2).version], ["accepted", 2]);
    const conflicted = state.byKey.get(1);
    assert.deepEqual([conflicted.state, conflicted.version, conflicted.conflict], ["rejected", 9, true]);
    assert.match(events.notify[0].text, /1 annotation\(s\) were changed by someone else/);
  });

  test("a refused bulk reverts every state and names its history entry", async () => {
    const { state, queue, sync, events } = setup(() => ({ status: 400, json: { error: "no" } }));
    const keys = [2, 1];
    for (const key of keys) state.byKey.get(key).state = "accepted";
    const entry = { kind: "bulk", keys };
    sync.bulk(keys, new Map(keys.map((k) => [k, "accepted"])), new Map(keys.map((k) => [k, "proposed"])), entry);
    await idle(queue);
    assert.deepEqual(
      keys.map((k) => state.byKey.get(k).state),
      ["proposed", "proposed"],
    );
    assert.deepEqual(events.refused, [entry]);
  });

  test("the annotation URL comes from urls.annotation, whatever its prefix", () => {
    const { sync } = setup(() => ({ status: 200 }));
    assert.equal(sync.annotationUrl(42), "/api/v1/annotations/42/");
    sync.urls = { annotation: "/images/annotations/0/" };
    assert.equal(sync.annotationUrl(42), "/images/annotations/42/");
  });
});
