import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Editor } from "../../static/js/editor.js";
import { SaveQueue, createRequest } from "../../static/js/save-queue.js";
import { ReviewState } from "../../static/js/state.js";
import { answer, fakeFetch, fakeTimers, idle, pageData } from "./support.mjs";

/** An editor over a fake server: `handler` answers every request (default: every write lands). */
function setup({ heldBy = null, locked = null, handler = null } = {}) {
  const data = pageData({ heldBy });
  const state = new ReviewState(data);
  const versions = new Map(state.records.map((r) => [r.id, r.version]));
  const lands = ({ method, url, body }) => {
    if (method === "PATCH") {
      const id = Number(url.match(/\/(\d+)\/$/)[1]);
      versions.set(id, versions.get(id) + 1);
      const r = state.records.find((x) => x.id === id);
      return { status: 200, json: answer(r, body, versions.get(id)) };
    }
    if (method === "DELETE") return { status: 204 };
    if (method === "POST" && url === data.urls.annotations) {
      return { status: 201, json: { id: 100, ...body, source: "human", state: "accepted", version: 1 } };
    }
    const updates = body.updates.map((u) => answer(state.records.find((x) => x.id === u.id), u, u.version + 1));
    return { status: 200, json: { annotations: updates, conflicts: [] } };
  };
  const fetch = fakeFetch((request) => (handler ? handler(request, lands) : lands(request)));
  const queue = new SaveQueue({ timers: fakeTimers() });
  const messages = [];
  const selected = [];
  const editor = new Editor({
    state,
    queue,
    request: createRequest({ fetch }),
    urls: data.urls,
    heldBy,
    locked,
    hooks: {
      notify: (text, kind) => messages.push([kind, text]),
      select: (key) => {
        state.selectedKey = key;
        selected.push(key);
      },
      changed: () => state.refreshVisible(),
    },
  });
  return { state, editor, queue, fetch, messages, selected };
}

const whats = (stack) => stack.map((e) => e.what);

describe("Editor: undo and redo", () => {
  test("undo sends the inverse with the current version; redo sends the edit again", async () => {
    const { state, editor, queue, fetch } = setup();
    const r = state.byKey.get(2);
    editor.edit(r, { state: "rejected" }, "reject");
    await idle(queue);
    editor.undo();
    await idle(queue);
    assert.equal(r.state, "proposed");
    editor.redo();
    await idle(queue);
    assert.equal(r.state, "rejected");
    assert.deepEqual(
      fetch.requests.map((q) => [q.body.state, q.headers["If-Match"]]),
      [
        ["rejected", '"1"'],
        ["proposed", '"2"'],
        ["rejected", '"3"'],
      ],
    );
  });

  test("on a read-only page undo and redo keep both stacks and send nothing", async () => {
    const { state, editor, fetch, messages } = setup({ heldBy: "maria" });
    // Entries made before the page turned read only (or by a test): they must stay.
    const patch = (key, state, what) => ({ kind: "patch", key, before: { state: "proposed" }, after: { state }, what });
    const undoEntry = editor.history.record(patch(2, "accepted", "accept"));
    editor.history.redoStack.push(patch(1, "rejected", "reject"));
    editor.undo();
    editor.redo();
    assert.deepEqual(editor.history.undoStack, [undoEntry]);
    assert.deepEqual(whats(editor.history.redoStack), ["reject"]);
    assert.equal(state.byKey.get(2).state, "proposed");
    assert.equal(fetch.requests.length, 0);
    assert.deepEqual(messages, [
      ["warning", "Read only: maria is reviewing this image."],
      ["warning", "Read only: maria is reviewing this image."],
    ]);
  });

  test("a read-only page makes no edit at all", () => {
    const { state, editor, fetch } = setup({ heldBy: "maria" });
    editor.decide(state.byKey.get(2), "accepted");
    editor.acceptAllVisible();
    assert.equal(editor.create({ class_id: 10, box: [0, 0, 5, 5] }, "draw"), null);
    assert.equal(state.byKey.get(2).state, "proposed");
    assert.equal(editor.history.canUndo, false);
    assert.equal(fetch.requests.length, 0);
  });

  test("a page that could not claim its image is read only and says why", () => {
    const why = "Read only: this image could not be taken for you (the server answered 500).";
    const { state, editor, fetch, messages } = setup({ locked: why });
    assert.equal(editor.readOnly, true);
    editor.decide(state.byKey.get(2), "accepted");
    assert.equal(editor.create({ class_id: 10, box: [0, 0, 5, 5] }, "draw"), null);
    assert.equal(state.byKey.get(2).state, "proposed");
    assert.equal(fetch.requests.length, 0);
    assert.deepEqual(messages, [
      ["warning", why],
      ["warning", why],
    ]);
  });

  test("nothing to undo says so", () => {
    const { editor, messages } = setup();
    editor.undo();
    editor.redo();
    assert.deepEqual(messages, [
      ["info", "Nothing to undo."],
      ["info", "Nothing to redo."],
    ]);
  });
});

describe("Editor: an edit the server refused leaves the history", () => {
  for (const status of [400, 403, 409, 422]) {
    test(`a PATCH refused with ${status} is reverted and cannot be undone`, async () => {
      const { state, editor, queue, fetch, messages } = setup({
        handler: (request, lands) =>
          request.body?.class_id === 11 ? { status, json: { error: "refused" } } : lands(request),
      });
      const r = state.byKey.get(2);
      editor.edit(r, { state: "accepted" }, "accept");
      editor.edit(r, { class_id: 11 }, "change class");
      assert.deepEqual(whats(editor.history.undoStack), ["accept", "change class"]);
      await idle(queue);
      assert.deepEqual([r.class_id, r.state], [10, "accepted"], "the refused edit is reverted, the other kept");
      assert.deepEqual(whats(editor.history.undoStack), ["accept"], "only the edit that landed can be undone");
      assert.ok(messages.some(([kind, text]) => kind === "error" && text.includes("refused")));
      // Undo now undoes the accept (not the refused class change).
      editor.undo();
      await idle(queue);
      assert.equal(r.state, "proposed");
      assert.deepEqual(fetch.requests.at(-1).body, { state: "proposed" });
    });
  }

  test("an undo the server refused is restored and cannot be redone", async () => {
    let refuse = false;
    const { state, editor, queue } = setup({
      handler: (request, lands) => (refuse ? { status: 409, json: { error: "held by maria" } } : lands(request)),
    });
    const r = state.byKey.get(2);
    editor.edit(r, { state: "rejected" }, "reject");
    await idle(queue);
    refuse = true;
    editor.undo();
    assert.equal(r.state, "proposed", "applied at once");
    await idle(queue);
    assert.equal(r.state, "rejected", "back to what the server has");
    assert.equal(editor.history.canUndo, false);
    assert.equal(editor.history.canRedo, false);
  });

  test("a refused accept-all is reverted and leaves the history", async () => {
    const { state, editor, queue, fetch } = setup({
      handler: (request, lands) =>
        request.url.endsWith("/bulk/") ? { status: 400, json: { error: "no" } } : lands(request),
    });
    editor.acceptAllVisible();
    assert.deepEqual(
      state.visible.filter((r) => r.source === "model").map((r) => r.state),
      ["accepted", "accepted"],
    );
    await idle(queue);
    assert.equal(fetch.requests.length, 1);
    assert.deepEqual(
      state.records.filter((r) => r.source === "model").map((r) => r.state),
      ["proposed", "proposed", "proposed"],
    );
    assert.equal(editor.history.canUndo, false);
  });

  test("a refused new box is removed with every entry of it", async () => {
    const { state, editor, queue } = setup({
      handler: (request, lands) =>
        request.method === "POST" ? { status: 400, json: { error: "too small" } } : lands(request),
    });
    const r = editor.create({ class_id: 10, box: [0, 0, 1, 1] }, "draw a box");
    editor.edit(r, { class_id: 11 }, "change class");
    await idle(queue);
    assert.equal(r.deleted, true);
    assert.equal(editor.history.canUndo, false);
    assert.equal(state.visible.includes(r), false);
  });

  test("a write that fails for now (5xx) stays pending and on the undo stack", async () => {
    let down = true;
    const { state, editor, queue } = setup({
      handler: (request, lands) => (down ? { status: 503 } : lands(request)),
    });
    const r = state.byKey.get(2);
    editor.edit(r, { state: "accepted" }, "accept");
    await idle(queue);
    assert.equal(queue.retrying, true);
    assert.deepEqual(whats(editor.history.undoStack), ["accept"]);
    down = false;
    queue.retryNow();
    await idle(queue);
    assert.deepEqual([r.state, r.version, queue.pending], ["accepted", 2, 0]);
    assert.deepEqual(whats(editor.history.undoStack), ["accept"]);
  });
});

describe("Editor: edits", () => {
  test("decide accepts and moves to the next undecided proposal", async () => {
    const { state, editor, queue, selected } = setup();
    editor.decide(state.byKey.get(2), "accepted");
    assert.deepEqual(selected, [1]);
    editor.decide(state.byKey.get(1), "rejected");
    assert.deepEqual(selected, [1, null], "nothing left to decide, the rejected one is hidden");
    await idle(queue);
    assert.deepEqual([state.byKey.get(2).state, state.byKey.get(1).state], ["accepted", "rejected"]);
  });

  test("an edit that changes nothing is not recorded", () => {
    const { state, editor, fetch } = setup();
    editor.edit(state.byKey.get(2), { state: "proposed", class_id: 10 }, "nothing");
    assert.equal(editor.history.canUndo, false);
    assert.equal(fetch.requests.length, 0);
  });

  test("undo of a new box deletes it; redo creates it again", async () => {
    const { state, editor, queue, fetch } = setup();
    const r = editor.create({ class_id: 12, box: [1, 1, 5, 5] }, "draw a box");
    await idle(queue);
    assert.equal(r.id, 100);
    editor.undo();
    await idle(queue);
    assert.deepEqual([r.deleted, r.id], [true, null]);
    editor.redo();
    await idle(queue);
    assert.deepEqual([r.deleted, r.id], [false, 100]);
    assert.deepEqual(
      fetch.requests.map((q) => [q.method, q.url]),
      [
        ["POST", "/api/v1/images/7/annotations/"],
        ["DELETE", "/api/v1/annotations/100/"],
        ["POST", "/api/v1/images/7/annotations/"],
      ],
    );
    assert.equal(state.visible.includes(r), true);
  });

  test("a new box without a class is refused on the page", () => {
    const { editor, messages } = setup();
    assert.equal(editor.create({ class_id: null, box: [0, 0, 5, 5] }, "draw a box"), null);
    assert.deepEqual(messages, [["error", "This project has no classes: add one first."]]);
  });
});
