"""The review workspace in a real browser (Debian's Chromium, headless) against the live server,
on a project whose proposals were made by the tiny models through a real pre-label job.

What the annotator does all day: triage with the keyboard, fix a box with its handles, draw a
box, click to segment, undo / redo, submit and go on; plus the failure paths: a stale write,
the network failing, an image held by someone else, a class named like markup, and an image
with 1,000 annotations.
"""

from __future__ import annotations

import io
import re
import time

import pytest
from django.db.models import F
from playwright.sync_api import expect

from inference.masks import polygons_are_faithful, rle_to_mask
from labeling.models import Annotation, Image, Project
from labeling.services.images import images_ingest
from labeling.services.projects import project_create
from tests.e2e.browser import crowd, wait_for_review, wait_saved
from tests.e2e.conftest import XSS_NAME
from tests.labeling.conftest import photo_png

SELECTED = "window.labelgpt.review.selected"


def open_review(page, login, user, project) -> int:
    """Log in, press "Start reviewing" on the project's Review tab; the id of the image opened."""
    login(page, user)
    page.goto(f"/projects/{project.pk}/review/")  # the Review tab
    page.locator("#start-reviewing").click()
    page.wait_for_url(re.compile(r"/images/\d+/review/$"))
    wait_for_review(page)
    return int(re.search(r"/images/(\d+)/review/", page.url).group(1))


def selected_id(page) -> int:
    return page.evaluate(f"{SELECTED}.id")


def client_point(page, x: float, y: float) -> tuple[float, float]:
    """An image pixel → where it is on the screen now (through the canvas's view transform)."""
    point = page.evaluate("([x, y]) => window.labelgpt.canvas.toClient(x, y)", [x, y])
    return point["x"], point["y"]


def drag(page, start, end, steps: int = 8) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def message(page):
    return page.locator("#review-messages")


# Triage ----------------------------------------------------------------------------------------


def test_an_annotator_triages_by_key_submits_and_lands_on_the_next_image(page, login, seeded, screenshot):
    first, second = seeded.images
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    assert open_review(page, login, seeded.annotator, seeded.project) == first.pk
    shown = page.evaluate("window.labelgpt.review.visible.length")
    above = first.annotations.filter(score__gte=seeded.project.box_threshold).count()
    assert shown == above > 2, "the proposals above the project's threshold are the ones shown"
    expect(page.locator("#count-shown")).to_have_text(str(shown))

    # The list's first row is selected at once (grouped by class, the first class's most
    # confident proposal): one key decides it.
    accepted = selected_id(page)
    first_row = page.locator(".ann-row").first
    expect(first_row).to_have_attribute("aria-selected", "true")
    assert first_row.get_attribute("data-id") == str(accepted)
    first_class = Annotation.objects.get(pk=accepted).label_class_id
    threshold = seeded.project.box_threshold
    shown_of_class = first.annotations.filter(label_class_id=first_class, score__gte=threshold)
    assert accepted == shown_of_class.order_by("-score").first().pk
    page.keyboard.press("a")
    wait_saved(page)
    assert Annotation.objects.get(pk=accepted).state == Annotation.State.ACCEPTED
    expect(page.locator(f'.ann-row[data-id="{accepted}"] .state')).to_have_text("accepted")

    # The selection moved on to the next undecided proposal; R rejects it.
    rejected = selected_id(page)
    assert rejected != accepted
    page.keyboard.press("r")
    wait_saved(page)
    assert Annotation.objects.get(pk=rejected).state == Annotation.State.REJECTED
    # Rejected proposals are hidden (H shows them, struck through).
    expect(page.locator(f'.ann-row[data-id="{rejected}"]')).to_have_count(0)
    page.keyboard.press("h")
    expect(page.locator(f'.ann-row[data-id="{rejected}"].state-rejected')).to_have_count(1)
    page.keyboard.press("h")

    # Tab / Shift+Tab walk the list; the side list follows the selection.
    before = selected_id(page)
    page.keyboard.press("Tab")
    after_tab = selected_id(page)
    assert after_tab != before
    expect(page.locator(f'.ann-row[data-id="{after_tab}"]')).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Shift+Tab")
    assert selected_id(page) == before

    # A number key (the class's place in the list) changes the class of the selection.
    cat, cup = seeded.classes["cat"], seeded.classes["coffee cup"]
    key, wanted = ("1", cat) if page.evaluate(f"{SELECTED}.class_id") == cup.pk else ("2", cup)
    page.keyboard.press(key)
    wait_saved(page)
    assert Annotation.objects.get(pk=before).label_class_id == wanted.pk

    # The help overlay.
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("accept every visible proposal")
    screenshot(page, "review-help")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    screenshot(page, "review-triage")

    # Enter with undecided proposals asks once more; the second Enter submits.
    page.keyboard.press("Enter")
    expect(message(page)).to_contain_text("press Enter again")
    assert page.url.endswith(f"/images/{first.pk}/review/")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/images/{second.pk}/review/")
    wait_for_review(page)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Image.Status.DONE and first.assignee_id is None
    assert first.reviewed_by_id == seeded.annotator.pk
    assert second.assignee_id == seeded.annotator.pk
    # The decisions stayed; undecided proposals stay proposals.
    assert Annotation.objects.get(pk=accepted).state == Annotation.State.ACCEPTED
    assert first.annotations.filter(state=Annotation.State.PROPOSED).exists()

    # P: back to the image just reviewed.
    page.keyboard.press("p")
    page.wait_for_url(f"**/images/{first.pk}/review/")
    wait_for_review(page)
    assert errors == []


def test_s_skips_the_image_and_opens_the_next(page, login, seeded):
    first, second = seeded.images
    assert open_review(page, login, seeded.annotator, seeded.project) == first.pk
    page.keyboard.press("s")
    page.wait_for_url(f"**/images/{second.pk}/review/")
    first.refresh_from_db()
    assert first.status == Image.Status.SKIPPED and first.assignee_id is None
    assert not first.annotations.exclude(state=Annotation.State.PROPOSED).exists()


def test_shift_a_accepts_every_visible_proposal_in_one_request(page, login, seeded):
    first = seeded.images[0]
    open_review(page, login, seeded.annotator, seeded.project)
    page.locator("#threshold").fill("0.9")
    visible = set(page.evaluate("window.labelgpt.review.visible.map(r => r.id)"))
    assert visible == set(first.annotations.filter(score__gte=0.9).values_list("pk", flat=True))
    bulk = []
    page.on("request", lambda r: bulk.append(r) if r.url.endswith("/annotations/states/") else None)
    page.keyboard.press("Shift+A")
    wait_saved(page)
    assert len(bulk) == 1
    accepted = set(first.annotations.filter(state=Annotation.State.ACCEPTED).values_list("pk", flat=True))
    assert accepted == visible
    # Undo puts them all back to proposed, in one request too.
    page.keyboard.press("Control+z")
    wait_saved(page)
    assert len(bulk) == 2
    assert not first.annotations.filter(state=Annotation.State.ACCEPTED).exists()


# Editing ------------------------------------------------------------------------------------------


def test_dragging_a_corner_handle_changes_the_stored_box_by_the_dragged_amount(
    page, login, seeded, screenshot
):
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    before = Annotation.objects.get(pk=target)
    x, y, w, h = before.box
    corner = client_point(page, x + w, y + h)

    # Zoom in around the corner (the wheel keeps the point under the cursor where it is).
    fit_scale = page.evaluate("window.labelgpt.canvas.scale")
    page.mouse.move(*corner)
    page.mouse.wheel(0, -240)
    page.wait_for_function(f"() => window.labelgpt.canvas.scale > {fit_scale} * 1.2")
    scale = page.evaluate("window.labelgpt.canvas.scale")
    assert float(page.locator("#stage").get_attribute("data-scale")) == pytest.approx(scale)
    moved_corner = client_point(page, x + w, y + h)
    assert moved_corner == pytest.approx(corner, abs=1.5)

    dx, dy = -90, -60  # screen pixels
    drag(page, corner, (corner[0] + dx, corner[1] + dy))
    wait_saved(page)
    after = Annotation.objects.get(pk=target)
    assert after.x == pytest.approx(x, abs=0.01) and after.y == pytest.approx(y, abs=0.01)
    assert after.w == pytest.approx(w + dx / scale, abs=0.05)
    assert after.h == pytest.approx(h + dy / scale, abs=0.05)
    assert after.version == before.version + 1
    # The model's box is kept for the quality figures; fixing a proposal accepts it.
    assert list(after.original_box) == pytest.approx([x, y, w, h])
    assert after.state == Annotation.State.ACCEPTED
    # The mask went along with the box: the proposal had one (the project segments: SAM gives
    # every proposal a mask), it is kept as the model's, and the new one lies inside the new box.
    assert before.mask is not None and after.mask is not None
    assert after.original_mask == before.mask
    mask = rle_to_mask(after.mask)
    assert mask.any()
    assert not mask[:, int(after.x + after.w) + 1 :].any()
    assert not mask[int(after.y + after.h) + 1 :, :].any()
    screenshot(page, "review-resized")

    # Space + drag pans by the dragged amount; F fits the image again.
    tx = page.evaluate("window.labelgpt.canvas.tx")
    page.keyboard.down("Space")
    drag(page, (300, 500), (400, 540))
    page.keyboard.up("Space")
    assert page.evaluate("window.labelgpt.canvas.tx") == pytest.approx(tx + 100, abs=1)
    assert Annotation.objects.get(pk=target).version == after.version, "panning edits nothing"
    page.keyboard.press("f")
    assert page.evaluate("window.labelgpt.canvas.scale") == pytest.approx(fit_scale)


def test_b_draws_a_box_of_the_chosen_class_and_undo_redo_remove_and_restore_it(page, login, seeded):
    image = seeded.images[0]
    open_review(page, login, seeded.annotator, seeded.project)
    cat = seeded.classes["cat"]
    page.locator("#class-select").select_option(str(cat.pk))  # changes the selection's class too
    wait_saved(page)
    page.keyboard.press("Escape")  # nothing selected: the dropdown is the class for new objects

    page.keyboard.press("b")
    assert page.evaluate("window.labelgpt.review.mode") == "draw"
    scale = page.evaluate("window.labelgpt.canvas.scale")
    drag(page, client_point(page, 60, 50), client_point(page, 180, 140))
    wait_saved(page)
    drawn = Annotation.objects.get(image=image, source=Annotation.Source.HUMAN)
    assert drawn.label_class_id == cat.pk
    assert drawn.state == Annotation.State.ACCEPTED
    assert drawn.box == pytest.approx((60, 50, 120, 90), abs=1 / scale + 0.02)
    assert selected_id(page) == drawn.pk
    assert page.evaluate("window.labelgpt.review.mode") == "draw", "Box stays on for the next box"
    page.keyboard.press("Escape")
    assert page.evaluate("window.labelgpt.review.mode") == "select"

    page.keyboard.press("Control+z")
    wait_saved(page)
    assert not Annotation.objects.filter(image=image, source=Annotation.Source.HUMAN).exists()
    page.keyboard.press("Control+Shift+z")
    wait_saved(page)
    redrawn = Annotation.objects.get(image=image, source=Annotation.Source.HUMAN)
    assert redrawn.box == pytest.approx(drawn.box)

    # Undo of a decision sends the inverse with the current version.
    page.keyboard.press("Tab")
    target = selected_id(page)
    state = Annotation.objects.get(pk=target).state
    page.keyboard.press("r")
    wait_saved(page)
    assert Annotation.objects.get(pk=target).state == Annotation.State.REJECTED
    page.keyboard.press("Control+z")
    wait_saved(page)
    restored = Annotation.objects.get(pk=target)
    assert restored.state == state


def test_m_click_to_segment_keeps_the_mask_as_an_annotation(page, login, seeded, screenshot):
    image = seeded.images[0]
    open_review(page, login, seeded.annotator, seeded.project)
    bodies = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/segment/") else None)
    page.keyboard.press("Escape")
    page.keyboard.press("m")
    page.mouse.click(*client_point(page, 200, 150))
    expect(page.locator("#segment-status")).to_contain_text("Mask ready")
    # A right click adds a negative point (and opens no context menu).
    page.mouse.click(*client_point(page, 40, 40), button="right")
    expect(page.locator("#segment-status")).to_contain_text("Mask ready")
    assert bodies[-1]["labels"] == [1, 0]
    assert bodies[-1]["points"] == [pytest.approx([200, 150], abs=0.6), pytest.approx([40, 40], abs=0.6)]
    screenshot(page, "review-segment")

    page.keyboard.press("Enter")
    wait_saved(page)
    kept = Annotation.objects.get(image=image, source=Annotation.Source.HUMAN)
    mask = rle_to_mask(kept.mask)
    assert mask.shape == (image.height, image.width) and mask.any()
    # Polygons faithful to the mask, or none (RLE only) for a mask too fragmented to trace,
    # which the tiny model's often are.
    assert kept.polygons == [] or polygons_are_faithful(mask, kept.polygons)
    rows, cols = mask.any(axis=1).nonzero()[0], mask.any(axis=0).nonzero()[0]
    # The box is the mask's box.
    assert kept.box == pytest.approx(
        (cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]), abs=1
    )
    assert page.evaluate("window.labelgpt.review.mode") == "segment", "ready for the next object"
    assert image.annotations.count() == Annotation.objects.filter(image=image).count()
    page.keyboard.press("Escape")
    assert page.evaluate("window.labelgpt.review.mode") == "select"


def test_a_click_before_the_embedding_is_ready_says_preparing_and_retries_by_itself(
    page, login, seeded, inline_tasks
):
    from labeling.services import segmentation
    from tests.labeling.conftest import ingest_photos

    Image.objects.filter(project=seeded.project).update(status=Image.Status.DONE)
    (fresh,) = ingest_photos(seeded.project, [("rocket", "mirror")])  # never embedded this session
    Image.objects.filter(pk=fresh.pk).update(status=Image.Status.PRELABELED)
    answers = []
    page.on("response", lambda r: answers.append(r.status) if r.url.endswith("/segment/") else None)
    assert open_review(page, login, seeded.annotator, seeded.project) == fresh.pk
    assert (fresh.pk,) in inline_tasks, "opening the page queued its embedding"
    page.keyboard.press("m")
    page.mouse.click(*client_point(page, 300, 200))
    expect(page.locator("#segment-status")).to_contain_text("Preparing")
    assert answers == [202]
    # The gpu worker's part, done here; the page asks again after Retry-After by itself.
    assert segmentation.embeddings_compute(image_ids=[fresh.pk]) == 1
    expect(page.locator("#segment-status")).to_contain_text("Mask ready", timeout=6000)
    assert answers[-1] == 200


def _segment_requests(page) -> list[tuple[int, dict]]:
    """(status, request body) of every answered segment request of the page, as they come."""
    seen: list[tuple[int, dict]] = []
    page.on(
        "response",
        lambda r: seen.append((r.status, r.request.post_data_json)) if r.url.endswith("/segment/") else None,
    )
    return seen


def test_without_sam_weights_a_click_shows_what_to_set_and_the_page_stops_asking(
    page, login, seeded, settings, tmp_path, screenshot
):
    from inference import registry

    settings.LABELGPT_MODELS = "real"
    settings.LABELGPT_MODELS_DIR = tmp_path / "models"
    settings.LABELGPT_SAM_CHECKPOINTS = {}
    Project.objects.filter(pk=seeded.project.pk).update(segmenter="vit_b")
    registry.clear()
    seen = _segment_requests(page)
    open_review(page, login, seeded.annotator, seeded.project)
    page.keyboard.press("Escape")
    page.keyboard.press("m")
    page.mouse.click(*client_point(page, 200, 150))

    status = page.locator("#segment-status")
    expect(status).to_contain_text("LABELGPT_SAM_CHECKPOINT_VIT_B")
    expect(page.locator("#segment-retry")).to_be_visible()
    screenshot(page, "review-segment-unavailable")
    time.sleep(3)  # what the page would ask by itself meanwhile: nothing
    assert [answer for answer, _ in seen] == [503]
    page.locator("#segment-retry").click()
    expect(status).to_contain_text("LABELGPT_SAM_CHECKPOINT_VIT_B")
    time.sleep(1)
    assert [answer for answer, _ in seen] == [503, 503]
    assert seen[-1][1]["retry"] is True
    registry.clear()


def _fresh_image(seeded, variant: str) -> Image:
    """An image of the project, the next one to review, whose embedding was never made (the
    embeddings folder lives as long as the session: one variant per test)."""
    from tests.labeling.conftest import ingest_photos

    Image.objects.filter(project=seeded.project).update(status=Image.Status.DONE)
    (fresh,) = ingest_photos(seeded.project, [("rocket", variant)])
    Image.objects.filter(pk=fresh.pk).update(status=Image.Status.PRELABELED)
    return fresh


def test_a_failed_embedding_shows_its_reason_once_and_try_again_gets_the_mask(
    page, login, seeded, monkeypatch
):
    from inference import registry
    from inference.errors import ModelLoadError
    from labeling.services import segmentation

    fresh = _fresh_image(seeded, "flip")
    seen = _segment_requests(page)
    assert open_review(page, login, seeded.annotator, seeded.project) == fresh.pk
    page.keyboard.press("m")
    page.mouse.click(*client_point(page, 300, 200))
    expect(page.locator("#segment-status")).to_contain_text("Preparing")

    # The worker's part: the segmenter does not load there.
    def weights_gone(config, name):
        raise ModelLoadError("weights gone")

    with monkeypatch.context() as patched:
        patched.setattr(registry, "get_segmenter", weights_gone)
        assert segmentation.embeddings_compute(image_ids=[fresh.pk]) == 0

    status = page.locator("#segment-status")
    expect(status).to_contain_text("weights gone", timeout=6000)
    asked = len(seen)
    time.sleep(3)
    assert len(seen) == asked and [answer for answer, _ in seen][-1] == 503
    # Fixed by the admin: "Try again" queues the embedding again, the worker makes it, the mask comes.
    page.locator("#segment-retry").click()
    expect(status).to_contain_text("Preparing")
    assert seen[-1][1]["retry"] is True and seen[-1][0] == 202
    assert segmentation.embeddings_compute(image_ids=[fresh.pk]) == 1
    expect(status).to_contain_text("Mask ready", timeout=6000)
    assert seen[-1][0] == 200


def test_waiting_for_an_embedding_gives_up_after_the_limit_with_try_again(page, login, seeded):
    fresh = _fresh_image(seeded, "rot90")
    seen = _segment_requests(page)
    assert open_review(page, login, seeded.annotator, seeded.project) == fresh.pk
    page.evaluate("() => { window.labelgpt.review.segment.prepareLimitMs = 2500; }")
    page.keyboard.press("m")
    page.mouse.click(*client_point(page, 300, 200))

    expect(page.locator("#segment-status")).to_contain_text("still not ready", timeout=8000)
    expect(page.locator("#segment-retry")).to_be_visible()
    asked = len(seen)
    assert 2 <= asked <= 4  # asked again every Retry-After (2 s) until the limit
    time.sleep(3)
    assert len(seen) == asked
    assert {answer for answer, _ in seen} == {202}


def test_e_refines_the_selected_proposal_and_enter_saves_its_new_mask(page, login, seeded, screenshot):
    image = seeded.images[0]
    seen = _segment_requests(page)
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    before = Annotation.objects.get(pk=target)
    assert before.state == Annotation.State.PROPOSED

    page.keyboard.press("e")
    status = page.locator("#segment-status")
    expect(status).to_contain_text("Refined mask")
    expect(page.locator("#mode-hint")).to_contain_text("Refining")
    assert page.evaluate("window.labelgpt.review.mode") == "segment"
    x, y, w, h = before.box
    page.mouse.click(*client_point(page, x + w / 2, y + h / 2))
    expect(status).to_contain_text("Refined mask")
    bodies = [body for _, body in seen]
    assert [body["annotation"] for body in bodies] == [target, target]
    assert bodies[0]["object"] == bodies[1]["object"], "both clicks refine the same object"
    assert len(bodies[1]["points"]) == 1
    screenshot(page, "review-segment-refine")

    page.keyboard.press("Enter")
    wait_saved(page)
    after = Annotation.objects.get(pk=target)
    assert after.version == before.version + 1
    assert after.state == Annotation.State.ACCEPTED
    mask = rle_to_mask(after.mask)
    assert mask.shape == (image.height, image.width) and mask.any()
    assert after.original_box is not None, "the model's box is kept for the quality figures"
    assert Annotation.objects.filter(image=image).count() == image.annotations.count()
    # The next object is a new one.
    expect(page.locator("#mode-hint")).not_to_contain_text("Refining")
    page.mouse.click(*client_point(page, 40, 40))
    expect(status).to_contain_text("Mask ready")
    assert "annotation" not in seen[-1][1] and seen[-1][1]["object"] != bodies[0]["object"]


# Failures -----------------------------------------------------------------------------------------


def test_a_write_on_an_image_someone_else_took_over_shows_their_name(page, login, seeded):
    from datetime import timedelta

    from django.utils import timezone

    image = seeded.images[0]
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    # The lease ran out and the manager took the image meanwhile.
    Image.objects.filter(pk=image.pk).update(
        assignee=seeded.manager, lease_expires_at=timezone.now() + timedelta(minutes=30)
    )
    page.keyboard.press("a")
    refused = message(page).locator(".msg.conflict")
    expect(refused).to_contain_text(f"{seeded.manager.username} is reviewing this image")
    wait_saved(page)
    assert Annotation.objects.get(pk=target).state == Annotation.State.PROPOSED
    assert page.evaluate(f"window.labelgpt.review.records.find(r => r.id === {target}).state") == "proposed"


def test_a_stale_write_shows_the_conflict_and_overwrites_nothing(page, login, seeded, screenshot):
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    # Someone else changes it behind the page's back.
    Annotation.objects.filter(pk=target).update(version=F("version") + 1, state=Annotation.State.REJECTED)
    page.keyboard.press("a")
    conflict = message(page).locator(".msg.conflict")
    expect(conflict).to_contain_text("changed by someone else — reload")
    expect(conflict.get_by_role("button", name="Reload")).to_be_visible()
    wait_saved(page)
    assert Annotation.objects.get(pk=target).state == Annotation.State.REJECTED
    # The page now shows the annotation as it is on the server.
    assert page.evaluate(f"window.labelgpt.review.records.find(r => r.id === {target}).state") == "rejected"
    screenshot(page, "review-conflict")


def test_a_failed_save_stays_pending_and_is_retried_until_it_lands(page, login, seeded):
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    # The saves fail (a reset connection, then 503s) until the test has seen the pending state and
    # at least one retry: no race with the retry's back-off on a slow machine.
    server = {"down": True, "failed": 0}

    def flaky(route):
        if route.request.method == "PATCH" and server["down"]:
            server["failed"] += 1
            if server["failed"] == 1:
                route.abort("connectionreset")
            else:
                route.fulfill(status=503, body="down for a moment")
            return
        route.continue_()

    page.route("**/annotations/*/", flaky)
    page.keyboard.press("a")
    expect(page.locator("#pending")).to_contain_text("1 unsaved")
    expect(page.locator("#pending")).to_have_class(re.compile("failing"))
    assert Annotation.objects.get(pk=target).state == Annotation.State.PROPOSED
    # Retried after 1 s (a 503 this time), then after 2 s, once the server is back: it lands.
    for _ in range(150):
        if server["failed"] >= 2:
            break
        page.wait_for_timeout(100)
    assert server["failed"] >= 2, "the failed save was not retried"
    expect(page.locator("#pending")).to_contain_text("1 unsaved")
    server["down"] = False
    page.wait_for_function("() => window.labelgpt.review.queue.pending === 0", timeout=15_000)
    assert Annotation.objects.get(pk=target).state == Annotation.State.ACCEPTED
    expect(page.locator("#pending")).to_contain_text("All changes saved")


def test_an_image_someone_else_holds_opens_read_only(page, login, seeded):
    image = seeded.images[0]
    from labeling.services import review

    assert review.image_lease_next(project=seeded.project, user=seeded.manager) == image.pk
    login(page, seeded.annotator)
    page.goto(f"/images/{image.pk}/review/")
    wait_for_review(page)
    expect(page.locator(".banner")).to_contain_text(f"{seeded.manager.username} is reviewing this image")
    page.keyboard.press("Tab")
    page.keyboard.press("a")
    expect(message(page)).to_contain_text("Read only")
    assert not image.annotations.exclude(state=Annotation.State.PROPOSED).exists()
    expect(page.locator("#submit-button")).to_be_disabled()


def test_the_page_opened_by_its_url_claims_its_image_by_a_post(page, login, seeded):
    image = seeded.images[1]
    login(page, seeded.annotator)
    claims = []
    page.on(
        "request", lambda r: claims.append(r.method) if r.url.endswith(f"/images/{image.pk}/lease/") else None
    )
    page.goto(f"/images/{image.pk}/review/")
    wait_for_review(page)
    assert claims == ["POST"]
    image.refresh_from_db()
    assert image.assignee_id == seeded.annotator.pk
    expect(page.locator("#lease")).to_contain_text("yours for 30 min")
    expect(page.locator("#held-banner")).to_be_hidden()
    expect(page.locator("#submit-button")).to_be_enabled()


def test_a_failed_claim_leaves_the_page_read_only_and_says_why(page, login, seeded):
    image = seeded.images[0]
    login(page, seeded.annotator)
    page.route("**/lease/", lambda route: route.fulfill(status=404, json={"error": "No such image."}))
    page.goto(f"/images/{image.pk}/review/")
    wait_for_review(page)
    expect(message(page)).to_contain_text("could not be taken for you (No such image.)")
    expect(page.locator("#submit-button")).to_be_disabled()
    page.keyboard.press("Tab")
    page.keyboard.press("a")
    assert not image.annotations.exclude(state=Annotation.State.PROPOSED).exists()
    image.refresh_from_db()
    assert image.assignee_id is None


def test_markup_in_a_class_and_file_name_shows_as_text_and_runs_nothing(page, login, seeded, screenshot):
    image = seeded.images[0]
    Image.objects.filter(pk=image.pk).update(original_name=f"{XSS_NAME}.png")
    odd = seeded.classes[XSS_NAME]
    assert image.annotations.filter(label_class=odd, score__gte=seeded.project.box_threshold).exists()
    open_review(page, login, seeded.annotator, seeded.project)
    expect(page.locator(".image-name")).to_have_text(f"{XSS_NAME}.png")
    expect(page.locator(".ann-row .name", has_text=XSS_NAME).first).to_have_text(XSS_NAME)
    expect(page.locator("#class-select option", has_text=XSS_NAME)).to_have_text(f"3 · {XSS_NAME}")
    select_first_of_class = (
        "id => window.labelgpt.review.select(window.labelgpt.review.visible.find(r => r.class_id === id).key)"
    )
    page.evaluate(select_first_of_class, odd.pk)
    expect(page.locator("#sel-class")).to_have_text(XSS_NAME)
    page.wait_for_timeout(300)
    screenshot(page, "review-markup-class")
    assert page.locator("img[src=x]").count() == 0
    assert page.dialogs == []


# Speed --------------------------------------------------------------------------------------------


def photo_image(project: Project, name: str = "coffee") -> Image:
    report = images_ingest(project=project, files=[(f"{name}.png", io.BytesIO(photo_png(name)))])
    return Image.objects.get(pk=report.created[0][1])


def test_five_correct_and_two_wrong_proposals_take_eight_key_presses(
    page, login, creator, tiny_models_settings, inline_tasks, screenshot
):
    project = project_create(user=creator, name="Cups", classes=[{"name": "cup"}, {"name": "saucer"}])
    image = photo_image(project)
    cup, saucer = project.classes.order_by("order", "id")
    boxes = [(20, 30, 120, 90), (170, 40, 110, 100), (320, 60, 130, 90), (60, 200, 150, 120),
             (260, 210, 120, 110), (420, 220, 140, 120), (470, 40, 100, 80)]  # fmt: skip
    wrong = {2, 5}  # by rank of score
    rows = [
        Annotation.objects.create(
            image=image,
            label_class=saucer if i in wrong else cup,
            x=x,
            y=y,
            w=w,
            h=h,
            score=0.95 - 0.05 * i,
            phrase="cup",
            source=Annotation.Source.MODEL,
        )
        for i, (x, y, w, h) in enumerate(boxes)
    ]
    Image.objects.filter(pk=image.pk).update(status=Image.Status.PRELABELED)
    open_review(page, login, creator, project)
    screenshot(page, "review-seven-proposals")

    # The keys follow the side list's order (grouped by class, most confident first): what the
    # annotator sees top to bottom. No pointer action at all.
    listed = page.evaluate("window.labelgpt.review.visible.map(r => r.id)")
    assert sorted(listed) == sorted(r.pk for r in rows)
    rank = {r.pk: i for i, r in enumerate(rows)}
    keys = ["r" if rank[pk] in wrong else "a" for pk in listed] + ["Enter"]
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_url(re.compile(r"/projects/\d+/review/$|/review/$"))
    expect(page.locator("main h2").first).to_have_text("Every image is done or skipped")
    states = dict(Annotation.objects.filter(image=image).values_list("pk", "state"))
    assert [states[r.pk] for r in rows] == ["rejected" if i in wrong else "accepted" for i in range(7)]
    image.refresh_from_db()
    assert image.status == Image.Status.DONE
    assert len(keys) == 8


def test_an_image_with_1000_annotations_lists_a_screenful_handles_every_key_and_draws_all(
    page, login, creator, tiny_models_settings, inline_tasks, screenshot
):
    project = project_create(user=creator, name="Crowd", classes=[{"name": "bean"}, {"name": "cup"}])
    image = photo_image(project)
    classes = list(project.classes.all())
    annotations = [
        Annotation(image=image, label_class=classes[i % 2], source=Annotation.Source.MODEL, **fields)
        for i, fields in enumerate(crowd(1000, image.width, image.height))
    ]
    Annotation.objects.bulk_create(annotations)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.PRELABELED)
    open_review(page, login, creator, project)
    order = page.evaluate("window.labelgpt.review.visible.map(r => r.id)")
    assert sorted(order) == sorted(a.pk for a in annotations)
    # The side list is virtualised: a screenful of rows in the DOM, not 1,000.
    assert page.locator(".ann-row").count() < 80

    # 30 Tab presses and an accept, dispatched in one go: each key is handled, in order (how long
    # they take is measured by bench/review_keys.py, not here).
    start = order.index(selected_id(page))
    target, after = order[(start + 30) % len(order)], order[(start + 31) % len(order)]
    page.evaluate(
        """() => {
          const press = (key) => document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
          for (let i = 0; i < 30; i++) press("Tab");
          press("a");
        }"""
    )
    wait_saved(page)
    accepted = Annotation.objects.filter(image=image, state=Annotation.State.ACCEPTED)
    assert list(accepted.values_list("pk", flat=True)) == [target]
    assert selected_id(page) == after  # accepting moves on to the next proposal

    # Zoom and pan redraw the canvas; F fits the image again, with every annotation drawn.
    fit_scale = page.evaluate("window.labelgpt.canvas.scale")
    frames = page.evaluate("window.labelgpt.canvas.stats.frames")
    stage = page.locator("#stage").bounding_box()
    page.mouse.move(stage["x"] + 300, stage["y"] + 300)
    for _ in range(5):
        page.mouse.wheel(0, -120)
    page.wait_for_function(f"() => window.labelgpt.canvas.scale > {fit_scale} * 1.5")
    page.keyboard.press("f")
    assert page.evaluate("window.labelgpt.canvas.scale") == pytest.approx(fit_scale)
    # Frames are drawn on animation frames: wait for one after the zoom that drew all 1,000.
    page.wait_for_function(
        f"() => window.labelgpt.canvas.stats.frames > {frames} + 1"
        " && window.labelgpt.canvas.stats.drawn === 1000"
    )
    screenshot(page, "review-1000")


# Threshold ----------------------------------------------------------------------------------------


def test_the_threshold_slider_hides_proposals_live_and_a_manager_saves_it(page, login, seeded):
    image = seeded.images[0]
    open_review(page, login, seeded.manager, seeded.project)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    slider = page.locator("#threshold")
    for value in ("0.9", "0.2"):
        slider.fill(value)
        expected = image.annotations.filter(state="proposed", score__gte=float(value)).count()
        expect(page.locator("#count-shown")).to_have_text(str(expected))
    assert requests == [], "the slider works in the browser: no request"

    # Per class: only that class's proposals move.
    cat = seeded.classes["cat"]
    page.locator("#threshold-scope").select_option(str(cat.pk))
    slider.fill("1")
    others = image.annotations.exclude(label_class=cat).filter(score__gte=0.2).count()
    expect(page.locator("#count-shown")).to_have_text(str(others))

    page.locator("#threshold-scope").select_option("all")
    slider.fill("0.6")
    page.locator("#threshold-save").click()
    expect(message(page)).to_contain_text("Saved 0.60 as the threshold of the project")
    seeded.project.refresh_from_db()
    assert seeded.project.box_threshold == pytest.approx(0.6)


def test_an_annotator_has_no_save_threshold_button(page, login, seeded):
    open_review(page, login, seeded.annotator, seeded.project)
    expect(page.locator("#threshold")).to_be_visible()
    expect(page.locator("#threshold-save")).to_have_count(0)
