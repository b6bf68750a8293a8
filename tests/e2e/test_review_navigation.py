"""Moving around the review workspace in a real browser: "image k of n", the filmstrip, jump by
name, P on the first image, the skipped queue, a manager opening a done image from the project
page's grid (and read-only while someone else holds it), and the next image prefetched before
Enter (its data and bitmap asked for while the current one is reviewed, nothing asked again).

The images are plain one-colour files (no model runs): the review page works on images without
proposals, and Enter on such a page submits at once."""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import Annotation, Image, Membership
from labeling.services import review as review_service
from labeling.services.images import images_ingest
from labeling.services.projects import membership_set, project_create
from labeling.views import images as image_views
from tests.conftest import image_bytes, make_user
from tests.e2e.browser import wait_for_review, wait_saved

REVIEW_URL = re.compile(r"/images/(\d+)/review/(\?queue=skipped)?$")


@dataclass
class Plain:
    project: object
    manager: object
    annotator: object
    other: object
    images: list[Image]


@pytest.fixture
def plain(transactional_db, creator, inline_tasks) -> Plain:
    """A project of four plain images (named one.png, two.png, three.png, four.png, new), a
    manager (its creator) and two annotators."""
    project = project_create(user=creator, name="Plain", classes=[{"name": "cat"}])
    annotator, other = make_user("anna"), make_user("bob")
    for user in (annotator, other):
        membership_set(project=project, user=user, role=Membership.Role.ANNOTATOR)
    names = ["one.png", "two.png", "three.png", "four.png"]
    files = [(name, io.BytesIO(image_bytes(color=(40 * i, 90, 160)))) for i, name in enumerate(names)]
    report = images_ingest(project=project, files=files)
    images = list(Image.objects.filter(pk__in=[pk for _, pk in report.created]).order_by("pk"))
    assert [i.original_name for i in images] == names
    return Plain(project=project, manager=creator, annotator=annotator, other=other, images=images)


@pytest.fixture
def served(monkeypatch) -> Counter:
    """How many times the server sent each image's file, by the image's name."""
    count: Counter = Counter()
    real = image_views._serve

    def serve(field_file, *, download_name):
        count[download_name] += 1
        return real(field_file, download_name=download_name)

    monkeypatch.setattr(image_views, "_serve", serve)
    return count


def current_id(page) -> int:
    return int(REVIEW_URL.search(page.url).group(1))


def start(page, login, user, project) -> int:
    login(page, user)
    page.goto(f"/projects/{project.pk}/review/")  # the Review tab
    page.locator("#start-reviewing").click()
    page.wait_for_url(REVIEW_URL)
    wait_for_review(page)
    return current_id(page)


def wait_peeked(page) -> int | None:
    page.wait_for_function("() => window.labelgpt.timing.peeked !== null")
    return page.evaluate("window.labelgpt.timing.peeked")


def submit_and_wait(page, previous_id: int) -> int:
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(id) => !location.pathname.startsWith(`/images/${id}/`) && window.labelgpt"
        " && window.labelgpt.canvas.loaded && window.labelgpt.canvas.stats.frames > 0",
        arg=previous_id,
    )
    page.wait_for_url(REVIEW_URL)
    return current_id(page)


# "Image k of n" ---------------------------------------------------------------------------------


def test_image_k_of_n_is_shown_and_advances_with_each_submit(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    assert first == plain.images[0].pk
    expect(page.locator("#review-progress")).to_have_text("Image 1 of 4")
    second = submit_and_wait(page, first)
    assert second == plain.images[1].pk
    expect(page.locator("#review-progress")).to_have_text("Image 2 of 4")
    third = submit_and_wait(page, second)
    expect(page.locator("#review-progress")).to_have_text("Image 3 of 4")
    assert Image.objects.get(pk=third).status == Image.Status.NEW
    assert Image.objects.get(pk=first).status == Image.Status.DONE


# The next image, prefetched ---------------------------------------------------------------------


def test_the_next_image_is_prefetched_before_enter_and_not_asked_for_again(page, login, plain, served):
    api_calls: list[tuple[str, str]] = []
    page.on("request", lambda r: api_calls.append((r.method, r.url)) if "/api/v1/" in r.url else None)
    first = start(page, login, plain.annotator, plain.project)
    following = plain.images[1].pk
    assert wait_peeked(page) == following
    # Before Enter: the next image's data (the peek, a GET) and its bitmap were asked for, and it
    # is not leased (a peek writes nothing).
    assert ("GET", f"/api/v1/images/{first}/peek-next/") in [
        (m, re.sub(r"^https?://[^/]+", "", u)) for m, u in api_calls
    ]
    assert served["two.png"] == 1
    assert Image.objects.get(pk=following).assignee_id is None
    before_enter = len(api_calls)

    assert submit_and_wait(page, first) == following
    assert page.evaluate("window.labelgpt.timing.prefetchUsed") is True
    assert page.evaluate("typeof window.labelgpt.timing.enterToImageMs") == "number"
    # After Enter: one claim of the peeked image (made with the version it had), and nothing
    # asked again: no second claim by the new page, no second download of the bitmap.
    after = api_calls[before_enter:]
    claims = [(m, u) for m, u in after if u.endswith(f"/images/{following}/lease/")]
    assert [m for m, _ in claims] == ["POST"], after
    assert served["two.png"] == 1
    assert Image.objects.get(pk=following).assignee_id == plain.annotator.pk


def test_a_peeked_image_another_annotator_took_meanwhile_falls_back_to_the_queue(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    assert wait_peeked(page) == plain.images[1].pk
    # Bob takes the peeked image before Enter.
    assert review_service.image_lease_next(project=plain.project, user=plain.other) == plain.images[1].pk
    landed = submit_and_wait(page, first)
    assert landed == plain.images[2].pk, "the queue handed out the next free image"
    assert page.evaluate("window.labelgpt.timing.prefetchUsed") is False
    expect(page.locator("#held-banner")).to_be_hidden()
    expect(page.locator("#submit-button")).to_be_enabled()


# The next image in place (no page load) ---------------------------------------------------------


def mark_page(page) -> None:
    """A property of this document: it survives a move in place, not a page load."""
    page.evaluate("() => { window.sameDocument = true; }")


def same_document(page) -> bool:
    return page.evaluate("() => window.sameDocument === true")


def draw_box(page, box=(10, 10, 40, 30)) -> None:
    """B, then a drag over the image pixels `box` (x0, y0, x1, y1), then wait until it is saved."""
    page.keyboard.press("b")
    page.mouse.move(*client_point(page, box[0], box[1]))
    page.mouse.down()
    page.mouse.move(*client_point(page, box[2], box[3]), steps=6)
    page.mouse.up()
    page.keyboard.press("Escape")
    wait_saved(page)


def client_point(page, x: float, y: float) -> tuple[float, float]:
    point = page.evaluate("([x, y]) => window.labelgpt.canvas.toClient(x, y)", [x, y])
    return point["x"], point["y"]


def test_enter_moves_to_the_next_image_in_place_with_its_url_title_header_and_filmstrip(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    page.keyboard.press("j")  # the filmstrip, open: its current mark follows the move
    expect(page.locator("#filmstrip-track [aria-current='true']")).to_have_count(1)
    page.keyboard.press("Escape")
    page.locator("#stage").click(position={"x": 5, "y": 5})
    following = wait_peeked(page)
    mark_page(page)
    assert submit_and_wait(page, first) == following == plain.images[1].pk
    assert same_document(page), "the page was not loaded again"
    assert page.evaluate("window.labelgpt.timing.inPlace") is True
    assert page.evaluate("window.labelgpt.review.imageId") == following
    expect(page).to_have_title(re.compile(r"^Review two\.png · "))
    expect(page.locator("#review .image-name")).to_have_text("two.png")
    expect(page.locator("#image-status")).to_have_text("new")
    expect(page.locator("#review-progress")).to_have_text("Image 2 of 4")
    expect(page.locator("#previous-link")).to_have_attribute("href", f"/images/{following}/previous/")
    current_tile = page.locator("#filmstrip-track [aria-current='true']")
    expect(current_tile).to_have_attribute("href", re.compile(rf"/images/{following}/review/"))
    # And on: the next image is peeked again from the new one, and Enter moves in place again.
    assert wait_peeked(page) == plain.images[2].pk
    assert submit_and_wait(page, following) == plain.images[2].pk
    assert same_document(page)
    assert [i.status for i in Image.objects.filter(pk__in=[first, following])] == [Image.Status.DONE] * 2


def test_back_and_reload_after_a_move_in_place_show_the_right_image(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    wait_peeked(page)
    following = submit_and_wait(page, first)
    page.reload()
    wait_for_review(page)
    assert current_id(page) == following
    assert page.evaluate("window.labelgpt.review.imageId") == following
    expect(page.locator("#review .image-name")).to_have_text("two.png")
    page.go_back()  # the history entry of the page load before the reload: the first image
    page.wait_for_url(re.compile(rf"/images/{first}/review/$"))
    wait_for_review(page)
    assert page.evaluate("window.labelgpt.review.imageId") == first
    expect(page.locator("#review .image-name")).to_have_text("one.png")


def test_back_right_after_a_move_in_place_loads_the_previous_image(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    wait_peeked(page)
    submit_and_wait(page, first)
    mark_page(page)
    page.go_back()
    page.wait_for_function("(id) => window.labelgpt && window.labelgpt.review.imageId === id", arg=first)
    wait_for_review(page)
    assert not same_document(page), "Back loads the URL it shows"
    expect(page.locator("#review .image-name")).to_have_text("one.png")


def test_a_move_in_place_holds_the_new_image_and_keeps_no_undo_of_the_last_one(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    draw_box(page)
    assert Annotation.objects.filter(image_id=first).count() == 1
    expect(page.locator("#undo-button")).to_be_enabled()
    wait_peeked(page)
    mark_page(page)
    following = submit_and_wait(page, first)
    assert same_document(page)
    # The undo history is the new image's: empty; Ctrl+Z does nothing to the last image.
    assert page.evaluate("window.labelgpt.review.history.canUndo") is False
    expect(page.locator("#undo-button")).to_be_disabled()
    page.keyboard.press("Control+z")
    wait_saved(page)
    assert Annotation.objects.filter(image_id=first).count() == 1
    # The new image is leased to the annotator: another annotator's claim is refused.
    held = Image.objects.get(pk=following)
    assert held.assignee_id == plain.annotator.pk and held.lease_expires_at > timezone.now()
    bob = Client()
    bob.force_login(plain.other)
    answer = bob.post(f"/api/v1/images/{following}/lease/", {}, content_type="application/json")
    assert answer.status_code == 409, answer.content
    # An edit on the new image is saved on it, not on the last one.
    draw_box(page, (5, 5, 30, 20))
    assert Annotation.objects.filter(image_id=following).count() == 1
    assert Annotation.objects.filter(image_id=first).count() == 1
    expect(page.locator("#undo-button")).to_be_enabled()


def test_a_peeked_image_taken_meanwhile_goes_on_by_a_page_load(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    assert wait_peeked(page) == plain.images[1].pk
    review_service.image_lease_next(project=plain.project, user=plain.other)
    mark_page(page)
    assert submit_and_wait(page, first) == plain.images[2].pk
    assert not same_document(page), "the queue's image came by a page load"
    assert page.evaluate("window.labelgpt.timing.inPlace") is False
    assert Image.objects.get(pk=plain.images[2].pk).assignee_id == plain.annotator.pk


# The filmstrip and jump by name -----------------------------------------------------------------


def test_the_filmstrip_shows_the_images_with_their_status_and_opens_the_one_clicked(
    page, login, plain, screenshot
):
    Image.objects.filter(pk=plain.images[3].pk).update(status=Image.Status.DONE)
    first = start(page, login, plain.annotator, plain.project)
    page.keyboard.press("j")
    tiles = page.locator("#filmstrip-track .film-tile")
    expect(tiles).to_have_count(4)
    expect(page.locator(f'#filmstrip-track [data-id="{first}"] a')).to_have_attribute("aria-current", "true")
    expect(page.locator(f'#filmstrip-track [data-id="{plain.images[3].pk}"] .badge')).to_have_text("done")
    screenshot(page, "review-filmstrip")
    page.locator(f'#filmstrip-track [data-id="{plain.images[2].pk}"] a').click()
    page.wait_for_url(re.compile(rf"/images/{plain.images[2].pk}/review/$"))
    wait_for_review(page)
    expect(page.locator(".image-name")).to_have_text("three.png")


def test_jump_by_name_opens_the_image_whose_name_starts_with_what_is_typed(page, login, plain):
    start(page, login, plain.annotator, plain.project)
    page.keyboard.press("j")
    expect(page.locator("#jump-name")).to_be_focused()
    page.keyboard.type("fo")
    expect(page.locator("#jump-results li")).to_have_count(1)
    expect(page.locator("#jump-results a")).to_have_text("four.png")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/images/{plain.images[3].pk}/review/$"))
    wait_for_review(page)
    expect(page.locator(".image-name")).to_have_text("four.png")
    assert Image.objects.get(pk=plain.images[0].pk).status == Image.Status.NEW, (
        "Enter in the field submits nothing"
    )


# Previous on the first image --------------------------------------------------------------------


def test_p_on_the_first_image_says_so_instead_of_reloading(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    page.evaluate("window.__stayed = true")
    page.keyboard.press("p")
    expect(page.locator("#review-messages")).to_contain_text("This is the first image")
    assert page.evaluate("window.__stayed") is True, "the page was not reloaded"
    assert current_id(page) == first
    # From the second image, P goes back to the first.
    second = submit_and_wait(page, first)
    page.keyboard.press("p")
    page.wait_for_url(re.compile(rf"/images/{first}/review/$"))
    wait_for_review(page)
    assert second != first


# The skipped queue ------------------------------------------------------------------------------


def test_the_skipped_filter_revisits_a_skipped_image(page, login, plain):
    first = start(page, login, plain.annotator, plain.project)
    page.keyboard.press("s")
    page.wait_for_url(re.compile(rf"/images/{plain.images[1].pk}/review/$"))
    wait_for_review(page)
    assert Image.objects.get(pk=first).status == Image.Status.SKIPPED
    # The usual queue leaves it out; the skipped queue hands it out again.
    page.locator("#filmstrip summary").click()
    page.locator("#review-skipped").click()
    page.wait_for_url(re.compile(rf"/images/{first}/review/\?queue=skipped$"))
    wait_for_review(page)
    expect(page.locator("#review-progress")).to_contain_text("skipped images")
    expect(page.locator("#submit-button")).to_be_enabled()
    # Submitted: done, and the skipped queue is empty.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/projects/\d+/review/\?status=skipped$"))
    expect(page.locator("#review-done")).to_contain_text("No skipped image left")
    assert Image.objects.get(pk=first).status == Image.Status.DONE


# Quality control from the project page's grid ---------------------------------------------------


def test_a_manager_opens_a_done_image_from_the_grid_and_may_edit_it(page, login, plain):
    done = plain.images[0]
    Image.objects.filter(pk=done.pk).update(status=Image.Status.DONE, reviewed_by=plain.annotator)
    login(page, plain.manager)
    page.goto(plain.project.get_absolute_url())
    page.locator(f'a.tile-open[href="/images/{done.pk}/review/"]').click()
    page.wait_for_url(re.compile(rf"/images/{done.pk}/review/$"))
    wait_for_review(page)
    expect(page.locator("#held-banner")).to_be_hidden()
    expect(page.locator("#submit-button")).to_be_enabled()
    expect(page.locator("#review-progress")).to_have_text("1 of 4 done")
    done.refresh_from_db()
    assert (done.assignee_id, done.status) == (plain.manager.pk, Image.Status.DONE)


def test_a_manager_sees_a_done_image_read_only_while_another_user_holds_it(page, login, plain):
    done = plain.images[0]
    Image.objects.filter(pk=done.pk).update(status=Image.Status.DONE, reviewed_by=plain.annotator)
    done.refresh_from_db()
    review_service.image_lease_claim(image=done, user=plain.annotator, can_manage=False)  # fixing their own
    login(page, plain.manager)
    page.goto(plain.project.get_absolute_url())
    page.locator(f'a.tile-open[href="/images/{done.pk}/review/"]').click()
    wait_for_review(page)
    expect(page.locator("#held-banner")).to_be_visible()
    expect(page.locator("#held-banner")).to_contain_text("anna is reviewing this image")
    expect(page.locator("#submit-button")).to_be_disabled()
    expect(page.locator("#skip-button")).to_be_disabled()
    done.refresh_from_db()
    assert done.assignee_id == plain.annotator.pk


def test_an_annotator_sees_a_done_image_of_someone_else_read_only(page, login, plain):
    done = plain.images[0]
    Image.objects.filter(pk=done.pk).update(status=Image.Status.DONE, reviewed_by=plain.other)
    login(page, plain.annotator)
    page.goto(f"/images/{done.pk}/review/")
    wait_for_review(page)
    expect(page.locator("#review-messages")).to_contain_text("only the project's managers reopen it")
    expect(page.locator("#submit-button")).to_be_disabled()
    done.refresh_from_db()
    assert done.assignee_id is None
