"""Mask editing in a real browser (static/js/mask-tools.js, brush.js, vertices.js): re-segmenting
a selected annotation with a negative click, the brush and the eraser (the saved COCO RLE changes
by the painted pixels), polygon vertex editing, and how a kept mask is labelled in the side list.
On the project of tests/e2e/test_review.py: proposals made by the tiny models."""

from __future__ import annotations

import math

import numpy as np
from playwright.sync_api import expect

from inference.masks import mask_box, polygons_to_mask, rle_to_mask
from labeling.models import Annotation
from tests.e2e.browser import wait_saved
from tests.e2e.test_review import client_point, drag, open_review, selected_id

SEGMENT = "window.labelgpt.review.segment"


def capsule(shape, a, b, r) -> np.ndarray:
    """The pixels whose centre is within r of the segment a–b (image pixels): what a stroke paints."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    px, py = xs + 0.5, ys + 0.5
    d = np.subtract(b, a, dtype=float)
    t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / max(1e-9, d @ d), 0, 1)
    return (px - (a[0] + t * d[0])) ** 2 + (py - (a[1] + t * d[1])) ** 2 <= r * r


def edge_tolerance(a, b, r) -> float:
    """Half a pixel all around the stroke's outline (the round brush edge, the pointer's rounding)."""
    return 0.5 * (2 * math.pi * r + 2 * math.dist(a, b)) + 4


def segment_bodies(page) -> list[dict]:
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/segment/") else None)
    return bodies


def test_a_negative_click_re_segments_the_selected_annotation_and_enter_saves_it(page, login, seeded):
    bodies = segment_bodies(page)
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    before = Annotation.objects.get(pk=target)
    status = page.locator("#segment-status")

    page.keyboard.press("e")  # its box and mask are the prompt
    expect(status).to_contain_text("Refined mask")
    from_mask = page.evaluate(f"{SEGMENT}.result.mask")
    inside = np.argwhere(rle_to_mask(from_mask))
    row, col = inside[len(inside) // 2]
    page.mouse.click(*client_point(page, col + 0.5, row + 0.5), button="right")  # "not this"
    page.wait_for_function(f"() => {SEGMENT}.requests === 2 && !{SEGMENT}.busy")
    expect(status).to_contain_text("Refined mask")
    page.keyboard.press("Enter")
    wait_saved(page)

    assert [body["annotation"] for body in bodies] == [target, target]
    assert bodies[1]["labels"] == [0] and bodies[0]["object"] == bodies[1]["object"]
    after = Annotation.objects.get(pk=target)
    assert after.version == before.version + 1
    assert after.mask != from_mask, "the negative click changed the mask"
    assert after.mask != before.mask
    assert after.original_mask == before.mask, "the model's mask is kept"


def test_the_brush_and_the_eraser_change_the_saved_mask_by_the_painted_pixels(
    page, login, seeded, screenshot
):
    open_review(page, login, seeded.annotator, seeded.project)
    target = selected_id(page)
    image = seeded.images[0]
    shape = (image.height, image.width)
    start = rle_to_mask(Annotation.objects.get(pk=target).mask)
    version = Annotation.objects.get(pk=target).version

    page.keyboard.press("k")
    assert page.evaluate("window.labelgpt.review.mode") == "brush"
    expect(page.locator("#brush-size")).to_have_text("8 px")
    page.keyboard.press("]")
    page.keyboard.press("]")
    expect(page.locator("#brush-size")).to_have_text("13 px")
    expect(page.locator("#mode-hint")).to_contain_text("Brush 13 px")
    # One stroke across the image's upper left part.
    a, b = (40.0, 30.0), (160.0, 70.0)
    drag(page, client_point(page, *a), client_point(page, *b), steps=12)
    screenshot(page, "review-brush")
    wait_saved(page)
    brushed = Annotation.objects.get(pk=target)
    painted = rle_to_mask(brushed.mask)
    expected = capsule(shape, a, b, 13) & ~start
    assert brushed.version == version + 1
    assert not (start & ~painted).any(), "the brush only adds"
    added = int(painted.sum() - start.sum())
    assert abs(added - int(expected.sum())) <= edge_tolerance(a, b, 13), (added, int(expected.sum()))
    assert expected.sum() > 1000
    # The server traced the polygons and the box of the painted mask.
    assert brushed.box == tuple(float(v) for v in mask_box(painted))
    traced = polygons_to_mask(brushed.polygons, *shape)
    assert (traced & painted).sum() / (traced | painted).sum() > 0.95
    assert brushed.state == Annotation.State.ACCEPTED, "fixing a proposal accepts it"

    page.keyboard.press("x")
    page.keyboard.press("[")
    expect(page.locator("#brush-size")).to_have_text("10 px")
    c, d = (60.0, 20.0), (100.0, 60.0)
    drag(page, client_point(page, *c), client_point(page, *d), steps=8)
    wait_saved(page)
    erased = rle_to_mask(Annotation.objects.get(pk=target).mask)
    expected = capsule(shape, c, d, 10) & painted
    assert not (erased & ~painted).any(), "the eraser only removes"
    removed = int(painted.sum() - erased.sum())
    assert abs(removed - int(expected.sum())) <= edge_tolerance(c, d, 10), (removed, int(expected.sum()))

    # One stroke is one undo step.
    page.keyboard.press("Control+z")
    wait_saved(page)
    np.testing.assert_array_equal(rle_to_mask(Annotation.objects.get(pk=target).mask), painted)
    page.keyboard.press("Escape")
    assert page.evaluate("window.labelgpt.review.mode") == "select"


def test_a_polygon_vertex_is_dragged_inserted_and_removed_and_saved(page, login, seeded):
    image = seeded.images[0]
    imported = Annotation.objects.create(
        image=image, label_class=seeded.classes["cat"], x=200, y=100, w=100, h=80, mask=None,
        polygons=[[[200, 100, 300, 100, 300, 180, 200, 180]]],
        source=Annotation.Source.IMPORT, state=Annotation.State.ACCEPTED,
    )  # fmt: skip
    open_review(page, login, seeded.annotator, seeded.project)
    key = page.evaluate(f"window.labelgpt.review.records.find((r) => r.id === {imported.pk}).key")
    page.evaluate(f"window.labelgpt.review.select({key})")
    expect(page.locator(f'.ann-row[data-id="{imported.pk}"] .score')).to_have_text("import")

    page.keyboard.press("g")
    assert page.evaluate("window.labelgpt.review.mode") == "vertices"
    drag(page, client_point(page, 300, 180), client_point(page, 330, 200))
    wait_saved(page)
    moved = Annotation.objects.get(pk=imported.pk)
    ring = moved.polygons[0][0]
    assert len(ring) == 8 and abs(ring[4] - 330) <= 1 and abs(ring[5] - 200) <= 1
    assert ring[:4] == [200, 100, 300, 100] and ring[6:] == [200, 180]
    assert moved.box == (200.0, 100.0, ring[4] - 200, ring[5] - 100), "the box follows the polygon"
    assert moved.mask is None, "an imported polygon keeps no mask it did not have"

    # The midpoint of the top edge dragged up: a fifth vertex.
    drag(page, client_point(page, 250, 100), client_point(page, 250, 80))
    wait_saved(page)
    ring = Annotation.objects.get(pk=imported.pk).polygons[0][0]
    assert len(ring) == 10 and abs(ring[2] - 250) <= 1 and abs(ring[3] - 80) <= 1
    # Alt+click removes it again; Delete removes the chosen one.
    page.keyboard.down("Alt")
    page.mouse.click(*client_point(page, ring[2], ring[3]))
    page.keyboard.up("Alt")
    wait_saved(page)
    assert len(Annotation.objects.get(pk=imported.pk).polygons[0][0]) == 8
    page.mouse.click(*client_point(page, 200, 180))
    page.keyboard.press("Delete")
    wait_saved(page)
    final = Annotation.objects.get(pk=imported.pk)
    assert final.polygons[0][0] == [200, 100, 300, 100, *ring[6:8]]
    assert final.state == Annotation.State.ACCEPTED and final.version == imported.version + 4


def test_a_mask_kept_with_m_is_listed_as_segmented_by_hand(page, login, seeded):
    open_review(page, login, seeded.annotator, seeded.project)
    page.keyboard.press("m")
    page.mouse.click(*client_point(page, 200, 150))
    expect(page.locator("#segment-status")).to_contain_text("Mask ready")
    page.keyboard.press("Enter")
    wait_saved(page)
    kept = Annotation.objects.filter(image=seeded.images[0], source=Annotation.Source.HUMAN).get()
    assert kept.mask is not None
    expect(page.locator(f'.ann-row[data-id="{kept.pk}"] .score')).to_have_text("segmented")
    page.keyboard.press("Escape")
    page.evaluate(
        f"window.labelgpt.review.select(window.labelgpt.review.records.find((r) => r.id === {kept.pk}).key)"
    )
    expect(page.locator("#sel-details")).to_contain_text("segmented by hand")
    expect(page.locator("#sel-details")).not_to_contain_text("drawn")
