"""The export panel in a real browser: picking a format shows that format's options only, each
check box beside its label, the export's row says which options it used, and the list's polling
leaves the form as it is."""

from __future__ import annotations

import io

from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Export
from labeling.services.images import images_ingest
from labeling.services.projects import project_create
from tests.conftest import image_bytes


def test_picking_yolo_shows_only_yolos_options_with_labels_beside_their_boxes(
    page, login, creator, monkeypatch, screenshot
):
    monkeypatch.setattr("labeling.queues.task_send_on_commit", lambda **kwargs: None)  # no broker
    project = project_create(user=creator, name="Exports", classes=[{"name": "cat"}])
    images_ingest(project=project, files=[("a.png", io.BytesIO(image_bytes()))], user=creator)
    login(page, creator)
    page.goto(reverse("project-export-import", args=[project.pk]))
    page.wait_for_load_state("networkidle")  # the panel's own load (hx-trigger="load") has swapped in
    form = page.locator("#export-form")
    expect(form.locator('input[name="coco-rle"]')).to_be_visible()  # the first format: COCO
    expect(form.locator('[name^="yolo_detect-"]')).to_have_count(0)

    form.locator('select[name="format"]').select_option("yolo_detect")
    expect(form.locator('input[name="yolo_detect-val_ratio"]')).to_have_value("0.1")
    expect(form.locator('[name^="coco-"]')).to_have_count(0)
    expect(form.locator('[name^="voc-"], [name^="yolo_segment-"]')).to_have_count(0)
    expect(form.locator(".export-format-options legend")).to_have_text(["YOLO detect options"])

    box = form.locator('input[name="yolo_detect-val_is_train"]')
    label = form.locator('label:has(input[name="yolo_detect-val_is_train"])')
    expect(label).to_have_text("Use the training images for validation")
    box_at, label_at = box.bounding_box(), label.bounding_box()
    # Beside, not above: the box starts the label's one line, its text to its right.
    assert label_at["height"] < 2.5 * box_at["height"], (box_at, label_at)
    assert abs((box_at["y"] + box_at["height"] / 2) - (label_at["y"] + label_at["height"] / 2)) < 4
    assert label_at["width"] > 4 * box_at["width"]

    screenshot(page, "exports-yolo-form")
    label.click()  # the label ticks its box
    expect(box).to_be_checked()
    form.locator('select[name="images"]').select_option("all")
    form.get_by_role("button", name="Export").click()
    row = page.locator("table.exports tbody tr").first
    expect(row).to_contain_text("All images; accepted annotations only")
    expect(row).to_contain_text("use the training images for validation")
    screenshot(page, "exports-yolo-row")
    # The format stays chosen, and the list's polling (queued: no worker) leaves the form alone.
    expect(form.locator('select[name="format"]')).to_have_value("yolo_detect")
    form.locator('input[name="yolo_detect-seed"]').fill("42")
    panel_url = f"/projects/{project.pk}/exports/"
    with page.expect_response(lambda r: r.url.endswith(panel_url) and r.request.method == "GET"):
        pass
    waiting = page.locator("#export-list .export-waiting")
    expect(waiting).to_contain_text("No worker is running the default queue")
    expect(form.locator('input[name="yolo_detect-seed"]')).to_have_value("42")
    export = Export.objects.get()
    assert export.format == "yolo_detect" and export.options["val_is_train"] is True
    assert export.options["images"] == "all"
