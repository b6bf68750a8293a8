// Helpers for the JS unit tests (not a test file: node --test runs *.test.mjs only).

/** A page's JSON like the review view's: three classes and three model proposals. */
export function pageData({ heldBy = null, annotations = null } = {}) {
  return {
    project: { box_threshold: 0.35 },
    classes: [
      { id: 10, index: 1, name: "cat", color: "#ff0000", box_threshold: null },
      { id: 11, index: 2, name: "cup", color: "#00ff00", box_threshold: 0.5 },
      { id: 12, index: 3, name: "dog", color: "#0000ff", box_threshold: null },
    ],
    annotations: annotations ?? [
      { id: 1, class_id: 10, box: [0, 0, 10, 10], score: 0.4, source: "model", state: "proposed", version: 1 },
      { id: 2, class_id: 10, box: [5, 5, 10, 10], score: 0.9, source: "model", state: "proposed", version: 1 },
      { id: 3, class_id: 11, box: [9, 9, 10, 10], score: 0.45, source: "model", state: "proposed", version: 3 },
      { id: 4, class_id: 12, box: [1, 1, 4, 4], score: null, source: "human", state: "accepted", version: 1 },
    ],
    urls: {
      annotations: "/api/v1/images/7/annotations/",
      annotation: "/api/v1/annotations/0/",
      bulk: "/api/v1/images/7/annotations/bulk/",
    },
    held_by_other: heldBy,
  };
}

/** A fetch that answers with `handler({method, url, headers, body})` → {status, json, headers}
 * (or throws, like a network error); every request is kept in `fetch.requests`. */
export function fakeFetch(handler) {
  const fetch = async (url, init = {}) => {
    const request = {
      method: init.method || "GET",
      url,
      headers: init.headers || {},
      body: init.body === undefined ? undefined : JSON.parse(init.body),
    };
    fetch.requests.push(request);
    const answer = await handler(request);
    const body = answer.status === 204 || answer.json === undefined ? null : JSON.stringify(answer.json);
    return new Response(body, { status: answer.status, headers: answer.headers || {} });
  };
  fetch.requests = [];
  return fetch;
}

/** Timers that run only when told (advance), with their own clock. */
export function fakeTimers() {
  let now = 1_700_000_000_000; // a real-looking clock (0 would read as "not set")
  let next = 1;
  const pending = new Map();
  return {
    now: () => now,
    setTimeout(run, ms) {
      const id = next++;
      pending.set(id, { at: now + ms, run });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    /** The delays (ms from now) of the timers waiting. */
    get waiting() {
      return [...pending.values()].map((t) => t.at - now);
    },
    advance(ms) {
      now += ms;
      for (const [id, t] of [...pending]) {
        if (t.at <= now) {
          pending.delete(id);
          t.run();
        }
      }
    },
  };
}

/** Until the queue has nothing in flight (done, or waiting for a retry). */
export async function idle(queue) {
  do {
    await new Promise((resolve) => setImmediate(resolve));
  } while (queue.busy);
}

/** An annotation as the server answers it (the fields the page sends back, one version on). */
export function answer(r, fields, version) {
  return {
    id: r.id,
    class_id: fields.class_id ?? r.class_id,
    box: fields.box ?? r.box,
    score: r.score,
    source: r.source,
    state: fields.state ?? r.state,
    version,
  };
}
