import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Editor } from "../../static/js/editor.js";
import { SaveQueue, createRequest } from "../../static/js/save-queue.js";
import { ReviewState } from "../../static/js/state.js";
import { SegmentTool } from "../../static/js/tools.js";
import { fakeFetch, fakeTimers, idle, pageData } from "./support.mjs";

const MASK = { status: "ok", box: [10, 10, 20, 20], mask: { size: [4, 4], counts: "04" }, polygons: [], score: 0.9 };

/** A tool over a fake server whose segment answers are `answers` (in turn). */
function setup(answers) {
  const data = pageData();
  data.urls.segment = "/api/v1/images/7/segment/";
  const state = new ReviewState(data);
  const timers = fakeTimers();
  const fetch = fakeFetch((request) => {
    if (request.url === data.urls.segment) return answers.shift();
    return { status: 201, json: { id: 100, ...request.body, source: "human", state: "accepted", version: 1 } };
  });
  const send = createRequest({ fetch });
  const inflight = new Set();
  const request = (...args) => {
    const answer = send(...args);
    inflight.add(answer);
    answer.finally(() => inflight.delete(answer)).catch(() => {});
    return answer;
  };
  /** Until every request sent is answered and the tool has read the answers. */
  const answered = async () => {
    while (inflight.size) {
      await Promise.allSettled([...inflight]);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const queue = new SaveQueue({ timers });
  const editor = new Editor({ state, queue, request, urls: data.urls });
  const lines = [];
  const previews = [];
  const tool = new SegmentTool({
    request,
    url: data.urls.segment,
    state,
    editor,
    canvas: { setPreview: (preview) => previews.push(preview) },
    status: (text, options = {}) => lines.push({ text, ...options }),
    notify: () => {},
    timers,
  });
  const segmentRequests = () => fetch.requests.filter((q) => q.url === data.urls.segment);
  return { state, tool, timers, queue, lines, previews, segmentRequests, answered };
}

describe("SegmentTool", () => {
  test("each click of one object goes with the same token; the mask is previewed", async () => {
    const { tool, lines, previews, segmentRequests, answered } = setup([
      { status: 200, json: MASK },
      { status: 200, json: MASK },
    ]);
    tool.addPoint(12, 14, 1);
    await answered();
    tool.addPoint(30, 30, 0);
    await answered();
    const [first, second] = segmentRequests().map((q) => q.body);
    assert.deepEqual(first.points, [[12, 14]]);
    assert.deepEqual(second.points, [
      [12, 14],
      [30, 30],
    ]);
    assert.deepEqual(second.labels, [1, 0]);
    assert.equal(first.object, second.object);
    assert.deepEqual(previews.at(-1).box, MASK.box);
    assert.match(lines.at(-1).text, /Mask ready \(predicted IoU 0.90\)/);
    const token = tool.token;
    tool.reset();
    assert.notEqual(tool.token, token, "the next object is a new one");
  });

  test("202 asks again after Retry-After, and gives up after the limit with Try again", async () => {
    const preparing = { status: 202, json: { status: "preparing" }, headers: { "Retry-After": "2" } };
    const { tool, timers, lines, segmentRequests, answered } = setup([preparing, preparing, preparing, preparing]);
    tool.prepareLimitMs = 5000;
    tool.addPoint(1, 1, 1);
    await answered();
    assert.match(lines.at(-1).text, /Preparing/);
    assert.deepEqual(timers.waiting, [2000]);
    for (let i = 0; i < 3; i++) {
      timers.advance(2000);
      await answered();
    }
    assert.equal(segmentRequests().length, 4);
    assert.match(lines.at(-1).text, /still not ready after 6 s/);
    assert.equal(lines.at(-1).retry, true);
    assert.deepEqual(timers.waiting, [], "nothing asked again by itself");
  });

  test("an error (503) is shown at once with Try again, which sends retry", async () => {
    const { tool, lines, segmentRequests, answered } = setup([
      { status: 503, json: { error: "set LABELGPT_SAM_CHECKPOINT_VIT_B" } },
      { status: 200, json: MASK },
    ]);
    tool.addPoint(1, 1, 1);
    await answered();
    assert.deepEqual(lines.at(-1), { text: "No mask: set LABELGPT_SAM_CHECKPOINT_VIT_B", retry: true, failed: true });
    tool.tryAgain();
    await answered();
    assert.equal(segmentRequests().at(-1).body.retry, true);
    assert.match(lines.at(-1).text, /Mask ready/);
  });

  test("Enter keeps the mask as a new annotation of the active class", async () => {
    const { state, tool, queue, answered } = setup([{ status: 200, json: MASK }]);
    state.activeClassId = 12;
    tool.addPoint(12, 14, 1);
    await answered();
    tool.keepResult();
    await idle(queue);
    const kept = state.records.at(-1);
    assert.deepEqual([kept.id, kept.class_id, kept.box, kept.source], [100, 12, [10, 10, 20, 20], "human"]);
    assert.equal(tool.active, false);
  });

  test("refining names the annotation and Enter saves its new mask, accepting the proposal", async () => {
    const { state, tool, segmentRequests, answered } = setup([{ status: 200, json: MASK }]);
    const target = state.byKey.get(2);
    tool.startRefine(target);
    await answered();
    assert.equal(segmentRequests()[0].body.annotation, 2);
    tool.keepResult();
    assert.deepEqual([target.box, target.state, target.edited], [[10, 10, 20, 20], "accepted", true]);
  });
});
