import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { FindMore, findMoreBlocked, findMoreMessage, mergeFound } from "../../static/js/find-more.js";
import { ReviewState, fromServer } from "../../static/js/state.js";

const available = { available: true, detector: "sam3", reason: "" };
const selected = { key: 1, id: 7, deleted: false };

describe("findMoreBlocked", () => {
  test("says why it is unavailable, in the server's words first", () => {
    const reason = "Find more needs a SAM 3 model: ask a manager to choose one in the project settings.";
    assert.equal(findMoreBlocked({ availability: { available: false, reason }, selected }), reason);
    assert.match(findMoreBlocked({ availability: undefined, selected }), /not available/);
    assert.match(findMoreBlocked({ availability: available, selected, readOnly: true }), /read-only/);
    assert.match(findMoreBlocked({ availability: available, selected, running: true }), /already searching/);
    assert.match(findMoreBlocked({ availability: available, selected: null }), /Select an annotation first/);
    assert.match(findMoreBlocked({ availability: available, selected: { ...selected, deleted: true } }), /Select/);
    assert.match(findMoreBlocked({ availability: available, selected: { ...selected, id: null } }), /still being saved/);
    assert.equal(findMoreBlocked({ availability: available, selected }), null);
  });
});

describe("findMoreMessage", () => {
  test("found, nothing new, below the threshold, failed", () => {
    assert.deepEqual(findMoreMessage({ status: "succeeded", created: 3 }, 3), { text: "Found 3 more.", kind: "success" });
    assert.deepEqual(findMoreMessage({ status: "succeeded", created: 0 }), { text: "Nothing new found.", kind: "info" });
    assert.equal(
      findMoreMessage({ status: "succeeded", created: 3 }, 2).text,
      "Found 3 more (1 below the review threshold: lower the slider to see it).",
    );
    assert.match(findMoreMessage({ status: "succeeded", created: 4 }, 1).text, /3 below .* see them/);
    assert.deepEqual(findMoreMessage({ status: "failed", error: "no worker" }), { text: "Find more failed: no worker", kind: "error" });
  });
});

const annotation = (id, extra = {}) => ({
  id,
  class_id: 1,
  box: [1, 2, 3, 4],
  mask: null,
  polygons: null,
  score: 0.5,
  phrase: "cat",
  source: "model",
  state: "proposed",
  version: 1,
  ...extra,
});

describe("mergeFound", () => {
  test("adds the new proposals as records once, with fresh keys", () => {
    const state = new ReviewState({
      project: { box_threshold: 0.3 },
      classes: [{ id: 1, name: "cat", color: "#000000", index: 1, box_threshold: 0.3 }],
      annotations: [annotation(1)],
    });
    const added = mergeFound(state, [annotation(1), annotation(2, { score: 0.9 }), annotation(3, { score: 0.1 })], fromServer);
    assert.deepEqual(added.map((r) => r.id), [2, 3]);
    assert.equal(new Set(state.records.map((r) => r.key)).size, 3);
    assert.equal(state.byKey.get(added[0].key), added[0]);
    assert.deepEqual(mergeFound(state, [annotation(2)], fromServer), [], "a second answer adds nothing");
    state.refreshVisible();
    assert.deepEqual(state.visible.map((r) => r.id).sort(), [1, 2], "the one below the threshold is not shown");
  });
});

function fakeServer(answers) {
  const calls = [];
  const request = async (method, url, body) => {
    calls.push([method, url, body]);
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return next;
  };
  return { request, calls };
}

describe("FindMore", () => {
  test("posts the annotation, polls until the request has ended, and answers it", async () => {
    const queued = { id: 5, status: "queued", status_url: "/api/v1/find-more/5/" };
    const { request, calls } = fakeServer([
      { status: 202, json: queued },
      { status: 200, json: { ...queued, status: "running" } },
      new Error("the server cannot be reached"),
      { status: 200, json: { ...queued, status: "succeeded", created: 2, annotations: [] } },
    ]);
    const slept = [];
    const finder = new FindMore({ request, sleep: async (ms) => slept.push(ms), intervalMs: 10 });
    const done = await finder.run("/api/v1/images/1/find-more/", 7);
    assert.equal(done.status, "succeeded");
    assert.equal(done.created, 2);
    assert.deepEqual(calls[0], ["POST", "/api/v1/images/1/find-more/", { annotation: 7 }]);
    assert.deepEqual(calls.slice(1).map((c) => c[1]), Array(3).fill("/api/v1/find-more/5/"));
    assert.deepEqual(slept, [10, 10, 10]);
    assert.equal(finder.running, false);
  });

  test("a refused request ends at once with the server's reason", async () => {
    const { request } = fakeServer([{ status: 409, json: { error: "Find more needs a SAM 3 model." } }]);
    const done = await new FindMore({ request, sleep: async () => {} }).run("/u/", 1);
    assert.deepEqual(done, { status: "failed", error: "Find more needs a SAM 3 model." });
  });

  test("one search at a time; a search that never ends gives up after maxPolls", async () => {
    const queued = { status: "queued", status_url: "/s/" };
    const { request } = fakeServer([{ status: 202, json: queued }, ...Array(5).fill({ status: 200, json: queued })]);
    let release;
    const gate = new Promise((done) => (release = done));
    const finder = new FindMore({ request, sleep: () => gate, maxPolls: 3 });
    const first = finder.run("/u/", 1);
    assert.match((await finder.run("/u/", 1)).error, /already searching/);
    release();
    assert.match((await first).error, /no answer from the workers/);
  });
});
