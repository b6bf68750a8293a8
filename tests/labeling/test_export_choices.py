"""What an export writes under its choices, read back by the tools that use it: the images
choice (done / done and pre-labeled / all), COCO's box-only annotations under pycocotools'
segm evaluation, YOLO's val split and one line per instance, and the export panel (options in
words, the chosen format's options, managers-only downloads, what a queued export waits for)."""

from __future__ import annotations

import copy
import html
import json
import zipfile

import numpy as np
import pytest
import yaml
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeling.formats.base import ExportOptions, FormatError
from labeling.formats.coco_import import is_box_polygon
from labeling.formats.registry import export_options, option_words
from labeling.formats.yolo import closest_vertices, merge_rings, ring_area
from labeling.models import Annotation, Export, Image, WorkerBeat
from labeling.services import exports
from labeling.services.exports import export_write
from tests.conftest import plain_images
from tests.labeling import export_helpers as h
from tests.labeling.api_helpers import token_client

pytestmark = pytest.mark.django_db


def write(project, tmp_path, fmt, options: ExportOptions, name="out"):
    path = tmp_path / name
    counts = export_write(project=project, fmt=fmt, options=options, out=path)
    return path, counts


def statuses(project) -> dict[str, Image]:
    """One image per status, each with one accepted box (the new one's too: an import can do that)."""
    images = plain_images(project, 5)
    cat = project.classes.first()
    named = dict(zip(["new", "prelabeled", "done", "skipped", "done_empty"], images, strict=True))
    for status, image in named.items():
        Image.objects.filter(pk=image.pk).update(status=status.replace("_empty", ""))
        if status != "done_empty":
            h.add(image, cat, box=(1, 1, 8, 8))
    return named


def coco_image_ids(path) -> set[int]:
    return {i["id"] for i in json.loads(path.read_text())["images"]}


# The images choice ---------------------------------------------------------------------------------


def test_done_only_is_the_default_and_leaves_out_pre_labeled_new_and_skipped_images(project, tmp_path):
    named = statuses(project)
    assert ExportOptions().images == "done" and export_options("coco", {}).images == "done"
    path, (images, annotations) = write(project, tmp_path, "coco", ExportOptions())
    assert coco_image_ids(path) == {named["done"].pk, named["done_empty"].pk}
    assert (images, annotations) == (2, 1)  # the done image without annotations: a true negative


def test_done_and_pre_labeled_adds_the_pre_labeled_images(project, tmp_path):
    named = statuses(project)
    path, _ = write(project, tmp_path, "coco", ExportOptions(images="done_prelabeled"))
    assert coco_image_ids(path) == {named["done"].pk, named["done_empty"].pk, named["prelabeled"].pk}


def test_all_images_writes_negatives_only_when_they_are_asked_for(project, tmp_path):
    named = statuses(project)
    Annotation.objects.filter(image=named["new"]).delete()  # a new image with nothing on it
    path, _ = write(project, tmp_path, "coco", ExportOptions(images="all"), name="all.json")
    assert coco_image_ids(path) == {image.pk for image in named.values()}  # negatives included
    path, _ = write(
        project, tmp_path, "coco", ExportOptions(images="all", include_empty=False), name="no-empty.json"
    )
    assert coco_image_ids(path) == {named[s].pk for s in ("prelabeled", "done", "skipped")}
    # The default never writes the unreviewed new image, whatever include_empty says.
    path, _ = write(project, tmp_path, "coco", ExportOptions(include_empty=True), name="done.json")
    assert named["new"].pk not in coco_image_ids(path)


def test_a_bad_images_choice_is_refused_with_the_reason():
    with pytest.raises(FormatError, match="images must be one of done, done_prelabeled, all"):
        ExportOptions.from_json({"images": "everything"})


def test_the_coco_reader_takes_back_only_a_box_polygon_as_a_box():
    box = [2.5, 3.0, 10.0, 4.0]
    as_written = {"polygons": [[[2.5, 3.0, 12.5, 3.0, 12.5, 7.0, 2.5, 7.0]]]}
    assert is_box_polygon(as_written, box)
    rotated = {"polygons": [[[3.0, 3.0, 12.5, 4.0, 12.0, 7.0, 2.5, 6.0]]]}
    other_order = {"polygons": [[[2.5, 3.0, 2.5, 7.0, 12.5, 7.0, 12.5, 3.0]]]}
    two_parts = {"polygons": [*as_written["polygons"], *as_written["polygons"]]}
    for geometry in (rotated, other_order, two_parts, {}, {"rle": {"size": [8, 8], "counts": "0"}}):
        assert not is_box_polygon(geometry, box), geometry


# COCO: box-only annotations ---------------------------------------------------------------------


@pytest.fixture
def data(project):
    return h.build(project)


def self_evaluation(path, iou_type: str) -> COCOeval:
    exported = COCO(str(path))
    results = []
    for ann in exported.dataset["annotations"]:
        result = {k: copy.deepcopy(ann[k]) for k in ("image_id", "category_id", "bbox")}
        result["score"] = 1.0
        if iou_type == "segm":
            result["segmentation"] = exported.annToRLE(ann)
        results.append(result)
    evaluator = COCOeval(exported, exported.loadRes(results), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


def test_coco_with_hand_drawn_boxes_loads_and_segm_evaluation_runs(project, data, tmp_path):
    path, (_, annotations) = write(project, tmp_path, "coco", ExportOptions(), name="boxes.json")
    document = json.loads(path.read_text())
    assert annotations == 4 and all(a["segmentation"] for a in document["annotations"])  # never []
    box = next(a for a in document["annotations"] if a["id"] == data["anns"]["box"].pk)
    x, y, w, hh = box["bbox"]
    assert box["segmentation"] == [[x, y, x + w, y, x + w, y + hh, x, y + hh]]
    assert box["area"] == pytest.approx(w * hh)
    evaluator = self_evaluation(path, "segm")
    assert evaluator.stats[0] == pytest.approx(1.0)  # every annotation, the box too, matches itself


def test_coco_box_without_segmentation_key_when_chosen(project, data, tmp_path):
    options = export_options("coco", {"box_segmentation": "none"})
    path, _ = write(project, tmp_path, "coco", options, name="nokey.json")
    document = json.loads(path.read_text())
    box = next(a for a in document["annotations"] if a["id"] == data["anns"]["box"].pk)
    assert "segmentation" not in box
    assert all(a["segmentation"] for a in document["annotations"] if a["id"] != box["id"])
    assert self_evaluation(path, "bbox").stats[0] == pytest.approx(1.0)  # detection still loads
    # Why the polygon is the default: pycocotools' segm evaluation needs every annotation's key.
    with pytest.raises(KeyError, match="segmentation"):
        self_evaluation(path, "segm")


# YOLO: the split and one line per instance --------------------------------------------------------


def ten_done_images(project) -> list[Image]:
    images = plain_images(project, 10)
    Image.objects.filter(project=project).update(status="done")
    cat, cup = list(project.classes.all())
    for i, image in enumerate(images):
        h.add(image, cat, box=(1, 1, 8 + i, 8))
        if i % 3 == 0:
            h.add(image, cup, mask=h.two_parts())  # a mask in two parts: one instance
    return images


def yolo_layout(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        spec_text = zf.read("data.yaml").decode()
        labels = {n: zf.read(n).decode().splitlines() for n in names if n.startswith("labels/")}
    return {"names": names, "yaml": spec_text, "spec": yaml.safe_load(spec_text), "labels": labels}


@pytest.mark.parametrize("fmt", ["yolo_detect", "yolo_segment"])
def test_yolo_default_holds_out_a_seeded_tenth_and_writes_one_line_per_instance(project, tmp_path, fmt):
    images = ten_done_images(project)
    options = export_options(fmt, {})
    assert (options.val_ratio, options.val_is_train) == (0.1, False)
    path, (count, annotations) = write(project, tmp_path, fmt, options, name="a.zip")
    layout = yolo_layout(path)
    assert (layout["spec"]["train"], layout["spec"]["val"]) == ("images/train", "images/val")
    train = {n.rsplit("/", 1)[1] for n in layout["names"] if n.startswith("images/train/")}
    val = {n.rsplit("/", 1)[1] for n in layout["names"] if n.startswith("images/val/")}
    assert len(val) == 1 and len(train) == 9 and not train & val
    assert layout["yaml"].startswith("# 1 of 10 images held out for validation (val ratio 0.1, seed 0)")
    assert "val and train are disjoint" in layout["yaml"]
    lines = [line for text in layout["labels"].values() for line in text]
    assert annotations == len(lines) == 10 + 4  # N annotations, N lines (the two-part masks too)
    assert count == len(images)
    again, _ = write(project, tmp_path, fmt, options, name="b.zip")
    assert yolo_layout(again)["names"] == layout["names"]  # the same seed, the same split


def test_yolo_refuses_val_equal_to_train_unless_asked(project, tmp_path):
    ten_done_images(project)
    with pytest.raises(FormatError, match=r"YOLO needs validation images.*Use the training images"):
        write(project, tmp_path, "yolo_detect", export_options("yolo_detect", {"val_ratio": 0}))
    options = export_options("yolo_detect", {"val_is_train": True})
    path, _ = write(project, tmp_path, "yolo_detect", options, name="same.zip")
    layout = yolo_layout(path)
    assert (layout["spec"]["train"], layout["spec"]["val"]) == ("images/train", "images/train")
    assert layout["yaml"].startswith("# val = train, asked for explicitly")
    assert not any(n.startswith(("images/val", "labels/val")) for n in layout["names"])


def test_yolo_on_a_tiny_project_says_why_there_is_no_val_image(project, data, tmp_path):
    with pytest.raises(FormatError, match=r"val ratio of 0.1 of 4 image\(s\) gives no validation image"):
        write(project, tmp_path, "yolo_segment", export_options("yolo_segment", {}))
    with pytest.raises(FormatError, match="leaves no training image"):
        write(project, tmp_path, "yolo_segment", export_options("yolo_segment", {"val_ratio": 0.95}))


def test_a_yolo_export_without_a_split_is_refused_at_its_start_with_the_reason(
    project, data, manager, client_for
):
    with pytest.raises(ValidationError, match="gives no validation image"):
        exports.export_start(
            project=project, user=manager, fmt="yolo_detect", options=export_options("yolo_detect", {})
        )
    url = reverse("project-export", args=[project.pk])
    response = client_for(manager).post(url, {"format": "yolo_detect"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "gives no validation image" in html.unescape(response.content.decode())
    assert not Export.objects.exists()
    # Started when it could be made, run once the images have changed: it fails, saying why.
    export = Export.objects.create(
        project=project, format="yolo_detect", options=export_options("yolo_detect", {}).to_json()
    )
    assert exports.export_run(export_id=export.pk) is True
    export.refresh_from_db()
    assert export.status == "failed" and "gives no validation image" in export.error


# The panel ------------------------------------------------------------------------------------------


def panel(client, project) -> str:
    response = client.get(reverse("project-exports", args=[project.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_each_row_lists_the_options_it_used_in_words(project, manager, client_for):
    ten_done_images(project)
    options = export_options("yolo_segment", {"val_ratio": 0.2, "seed": 5, "states": "accepted,proposed"})
    exports.export_start(project=project, user=manager, fmt="yolo_segment", options=options)
    exports.export_start(
        project=project,
        user=manager,
        fmt="coco",
        options=export_options("coco", {"images": "all", "rle": True, "include_empty": False}),
    )
    html = panel(client_for(manager), project)
    assert "Done images only; accepted annotations + proposals; with images without annotations" in html
    assert "val split 20% (seed 5)" in html and "a mask in several parts: merged into one polygon" in html
    assert "All images; accepted annotations only; only images with annotations" in html
    assert "every mask as RLE" in html and "a box without a mask: its box as a 4-point polygon" in html


def test_options_stored_before_the_images_choice_read_as_all_images():
    words = option_words("voc", {"states": ["accepted"], "val_ratio": 0.0})
    assert words[:2] == ["All images", "accepted annotations only"] and "no val split" in words


def test_the_form_shows_the_chosen_formats_options_only_with_labels_next_to_boxes(
    project, manager, annotator, client_for
):
    client = client_for(manager)
    html = panel(client, project)
    assert 'name="coco-rle"' in html and 'name="coco-box_segmentation"' in html
    assert "yolo_detect-val_ratio" not in html and "voc-val_ratio" not in html
    assert (
        '<label class="pick"><input type="checkbox" name="coco-rle" value="1"> Every mask as RLE</label>'
        in html
    )
    assert "Done only: the images a reviewer submitted" in html  # the images choice's help
    url = reverse("project-export-options", args=[project.pk])
    html = client.get(url, {"format": "yolo_segment"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'name="yolo_segment-val_ratio"' in html and 'value="0.1"' in html
    assert 'name="yolo_segment-segment_parts"' in html and "coco-rle" not in html
    assert (
        '<label class="pick"><input type="checkbox" name="yolo_segment-val_is_train" value="1">'
        " Use the training images for validation</label>"
    ) in html
    assert client_for(annotator).get(url, {"format": "coco"}, HTTP_HX_REQUEST="true").status_code == 403


def test_without_javascript_the_form_page_groups_every_formats_options(project, manager, client_for):
    client = client_for(manager)
    url = reverse("project-export", args=[project.pk])
    html = client.get(url).content.decode()
    for fmt in ("coco", "yolo_detect", "yolo_segment", "voc"):
        assert f'data-format="{fmt}"' in html
    assert "(used when YOLO detect is the format)" in html
    response = client.post(url, {"format": "yolo_detect", "yolo_detect-val_ratio": "1.5"})
    assert response.status_code == 400 and "Export not started" in response.content.decode()
    assert 'data-format="voc"' in response.content.decode()
    response = client.post(url, {"format": "yolo_detect", "yolo_detect-val_is_train": "1", "coco-rle": "1"})
    assert response.status_code == 302
    export = Export.objects.get()
    assert export.options["val_is_train"] is True and export.options["rle"] is False  # COCO's: not read


def test_a_queued_export_says_what_it_waits_for(project, manager, client_for):
    exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions())
    client = client_for(manager)
    assert "No worker is running the default queue" in panel(client, project)
    now = timezone.now()
    WorkerBeat.objects.create(hostname="w1@host", queues="default,interactive", seen_at=now, started_at=now)
    html = panel(client, project)
    assert "Waiting for a worker on the default queue (1 running)" in html and "No worker" not in html


def test_only_managers_download_on_the_page(project, data, manager, annotator, client_for):
    export = exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions())
    exports.export_run(export_id=export.pk)
    download = reverse("export-download", args=[export.pk])
    assert download in panel(client_for(manager), project)
    annotator_panel = panel(client_for(annotator), project)
    assert f'data-export="{export.pk}"' in annotator_panel and download not in annotator_panel
    assert client_for(annotator).get(download).status_code == 403
    response = client_for(manager).get(download)
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"{")


def test_the_api_gives_the_download_url_to_managers_only(project, data, manager, annotator):
    export = exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions())
    exports.export_run(export_id=export.pk)
    url = reverse("api-export-download", kwargs={"export_id": export.pk})
    for user, expected in ((manager, url), (annotator, None)):
        client = token_client(user)
        listed = client.get(f"/api/v1/projects/{project.pk}/exports/").json()["results"]
        assert [e["download_url"] for e in listed] == [expected]
        assert client.get(f"/api/v1/exports/{export.pk}/").json()["download_url"] == expected
    assert token_client(annotator).get(url).status_code == 403


def test_closest_vertices_matches_a_brute_force_search_across_row_chunks():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1000, (700, 2)), rng.uniform(0, 1000, (300, 2))
    i, j = closest_vertices(a, b)
    distances = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    assert distances[i, j] == distances.min()


def test_merged_rings_walk_each_bridge_there_and_back():
    squares = [[0, 0, 2, 0, 2, 2, 0, 2], [5, 0, 7, 0, 7, 2, 5, 2], [10, 0, 12, 0, 12, 2]]
    ring = merge_rings(squares)
    points = list(zip(ring[0::2], ring[1::2], strict=True))
    assert points == [
        (0, 0), (2, 0),  # part 0 up to its bridge vertex
        (5, 0), (7, 0),  # across; part 1 up to its bridge vertex
        (10, 0), (12, 0), (12, 2), (10, 0),  # across; part 2 all round, back to its entry
        (7, 0), (7, 2), (5, 2), (5, 0),  # back across; the rest of part 1, back to its entry
        (2, 0), (2, 2), (0, 2),  # back across; the rest of part 0 (closed implicitly)
    ]  # fmt: skip
    assert ring_area(ring) == pytest.approx(sum(ring_area(s) for s in squares))
