"""The exported files, read by the formats' own tools: pycocotools, YAML + the YOLO label
convention, defusedxml + Pillow for VOC."""

from __future__ import annotations

import copy
import json
import math
import zipfile

import numpy as np
import pytest
import yaml
from defusedxml import ElementTree
from PIL import Image as PILImage
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.masks import mask_iou, mask_to_polygons, polygons_to_mask, rle_to_mask
from labeling.formats.base import ExportOptions, FormatError, safe_image_names, voc_palette
from labeling.formats.coco import decoded
from labeling.models import Annotation, Image
from labeling.selectors.exports import ExportSource
from labeling.services.exports import export_write
from tests.labeling import export_helpers as h

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(project):
    return h.build(project)


def export(project, tmp_path, fmt="coco", name=None, **options):
    path = tmp_path / (
        name or f"out-{fmt}.{'json' if fmt == 'coco' and not options.get('zip_images') else 'zip'}"
    )
    counts = export_write(project=project, fmt=fmt, options=ExportOptions(**options), out=path)
    return path, counts


def fixture_masks(data) -> dict[int, np.ndarray]:
    """The masks the fixture drew with numpy, by annotation id (the box-only annotation has none)."""
    anns = data["anns"]
    return {
        anns["holed"].pk: h.holed(),
        anns["two_parts"].pk: h.two_parts(),
        anns["disk"].pk: h.disk(24, 30, 12),
    }


def ground_truth(project, masks: dict[int, np.ndarray]) -> COCO:
    """The accepted annotations as a COCO ground truth built from the database rows, without the
    export writer: image ids and sizes from the Image rows, categories numbered here (1, 2, ... by
    class name), boxes from the rows' x / y / w / h, masks from the numpy masks the fixture drew
    (`masks`, encoded by pycocotools)."""
    classes = sorted(project.classes.values_list("name", flat=True))
    category = {name: i for i, name in enumerate(classes, start=1)}
    images = [
        {"id": i.pk, "file_name": i.original_name, "width": i.width, "height": i.height}
        for i in Image.objects.filter(project=project).order_by("pk")
    ]
    annotations = []
    for ann in Annotation.objects.filter(image__project=project, state="accepted").select_related(
        "label_class"
    ):
        entry = {
            "id": ann.pk,
            "image_id": ann.image_id,
            "category_id": category[ann.label_class.name],
            "bbox": [ann.x, ann.y, ann.w, ann.h],
            "area": ann.w * ann.h,
            "iscrowd": 0,
        }
        if ann.pk in masks:
            rle = coco_mask.encode(np.asfortranarray(masks[ann.pk].astype(np.uint8)))
            entry["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            entry["area"] = float(masks[ann.pk].sum())
        annotations.append(entry)
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in category.items()],
    }
    truth.createIndex()
    return truth


def detections(exported: COCO, truth: COCO, iou_type: str) -> list[dict]:
    """The exported annotations as COCO results (score 1.0) in the ground truth's terms: images
    matched by file name, categories by name (so a wrong id in the export is a miss)."""
    image_of = {i["file_name"]: i["id"] for i in truth.dataset["images"]}
    category_of = {c["name"]: c["id"] for c in truth.dataset["categories"]}
    images = {i["id"]: image_of[i["file_name"]] for i in exported.dataset["images"]}
    categories = {c["id"]: category_of[c["name"]] for c in exported.dataset["categories"]}
    results = []
    for ann in exported.dataset["annotations"]:
        result = {
            "id": ann["id"],
            "image_id": images[ann["image_id"]],
            "category_id": categories[ann["category_id"]],
            "bbox": list(ann["bbox"]),
            "score": 1.0,
        }
        if iou_type == "segm":
            result["segmentation"] = exported.annToRLE(ann)
        results.append(result)
    return results


def evaluate(truth: COCO, results: list[dict], iou_type: str) -> COCOeval:
    # loadRes renumbers the results' ids in place: give it a copy.
    evaluator = COCOeval(truth, truth.loadRes(copy.deepcopy(results)), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


# Recall points where precision stays 1 when 2 of a class's 3 objects are found first: COCOeval
# reads precision at recall 0, 0.01, ..., 1; 0.00 to 0.66 are at most 2/3: 67 of the 101.
TWO_OF_THREE_AP = 67 / 101


# COCO --------------------------------------------------------------------------------------------


def test_coco_export_scores_perfect_ap_against_a_ground_truth_built_from_the_rows(project, data, tmp_path):
    path, (images, annotations) = export(project, tmp_path)
    exported = COCO(str(path))
    assert (images, annotations) == (4, 4)  # accepted only: holed, two parts, disk, box
    assert len(exported.dataset["images"]) == 4
    assert {c["name"] for c in exported.dataset["categories"]} == {"cat", "coffee cup"}
    for ann in exported.dataset["annotations"]:
        assert ann["iscrowd"] == 0
    box = exported.anns[data["anns"]["box"].pk]
    assert box["bbox"] == [3.25, 5.5, 10.125, 7.75]
    assert box["segmentation"] == [[3.25, 5.5, 13.375, 5.5, 13.375, 13.25, 3.25, 13.25]]  # the box
    truth = ground_truth(project, fixture_masks(data))
    assert len(truth.dataset["annotations"]) == 4

    evaluator = evaluate(truth, detections(exported, truth, "bbox"), "bbox")

    assert evaluator.stats[0] == pytest.approx(1.0)  # AP over IoU 0.50:0.95
    assert evaluator.stats[8] == pytest.approx(1.0)  # AR with 100 detections: none missing


def test_the_ap_check_sees_a_dropped_box_and_a_shifted_one(project, data, tmp_path):
    """What the check above gives when the export loses or moves a box, worked out by hand: the
    ground truth has 3 cats and 1 cup."""
    path, _ = export(project, tmp_path)
    exported = COCO(str(path))
    truth = ground_truth(project, fixture_masks(data))
    results = detections(exported, truth, "bbox")
    anns = data["anns"]

    # One cat missing at every IoU threshold: cat AP 67/101, cup AP 1.
    dropped = [r for r in results if r["id"] != anns["disk"].pk]
    assert evaluate(truth, dropped, "bbox").stats[0] == pytest.approx((TWO_OF_THREE_AP + 1) / 2)

    # The fractional box moved right by w / 5: IoU (w - w/5) / (w + w/5) = 2/3, a match at the
    # thresholds 0.50, 0.55, 0.60, 0.65 only. At the 6 others it is a false positive; scored lower
    # than the two true cats it comes last, so precision stays 1 up to recall 2/3.
    shifted = []
    for result in results:
        if result["id"] == anns["box"].pk:
            x, y, w, h_ = result["bbox"]
            result = {**result, "bbox": [x + w / 5, y, w, h_], "score": 0.5}
        shifted.append(result)
    stats = evaluate(truth, shifted, "bbox").stats
    cat_ap = (4 * 1.0 + 6 * TWO_OF_THREE_AP) / 10
    assert stats[0] == pytest.approx((cat_ap + 1) / 2)
    assert stats[1] == pytest.approx(1.0)  # AP at IoU 0.50
    assert stats[2] == pytest.approx((TWO_OF_THREE_AP + 1) / 2)  # AP at IoU 0.75


def test_coco_segm_ap_against_the_fixture_masks_is_perfect_and_masks_are_faithful(project, data, tmp_path):
    data["anns"]["box"].delete()  # COCOeval's segm needs a segmentation on every object
    path, _ = export(project, tmp_path)
    exported = COCO(str(path))
    truth = ground_truth(project, fixture_masks(data))
    assert len(truth.dataset["annotations"]) == 3

    evaluator = evaluate(truth, detections(exported, truth, "segm"), "segm")

    assert evaluator.stats[0] == pytest.approx(1.0)
    assert evaluator.stats[8] == pytest.approx(1.0)
    for pk, mask in fixture_masks(data).items():
        ann = exported.anns[pk]
        assert mask_iou(exported.annToMask(ann).astype(bool), mask) >= 0.99
        assert ann["area"] == mask.sum()


def test_coco_mask_with_a_hole_goes_out_as_rle_with_identical_pixels(project, data, tmp_path):
    path, _ = export(project, tmp_path)
    document = json.loads(path.read_text())
    ann = next(a for a in document["annotations"] if a["id"] == data["anns"]["holed"].pk)
    assert isinstance(ann["segmentation"], dict) and ann["iscrowd"] == 0
    assert np.array_equal(rle_to_mask(ann["segmentation"]), h.holed())


def test_coco_two_part_mask_goes_out_as_two_polygons(project, data, tmp_path):
    path, _ = export(project, tmp_path)
    coco = COCO(str(path))
    ann = coco.anns[data["anns"]["two_parts"].pk]
    assert isinstance(ann["segmentation"], list) and len(ann["segmentation"]) == 2
    assert np.array_equal(coco.annToMask(ann).astype(bool), h.two_parts())


def test_coco_rle_option_writes_every_mask_as_rle(project, data, tmp_path):
    path, _ = export(project, tmp_path, rle=True)
    coco = COCO(str(path))
    for key, mask in {"holed": h.holed(), "two_parts": h.two_parts()}.items():
        ann = coco.anns[data["anns"][key].pk]
        assert isinstance(ann["segmentation"], dict)
        assert np.array_equal(coco.annToMask(ann).astype(bool), mask)


def test_coco_zip_with_images(project, data, tmp_path):
    path, _ = export(project, tmp_path, zip_images=True)
    with zipfile.ZipFile(path) as zf:
        document = json.loads(zf.read("annotations.json"))
        names = {i["file_name"] for i in document["images"]}
        assert {f"images/{n}" for n in names} <= set(zf.namelist())
        first = document["images"][0]
        with zf.open(f"images/{first['file_name']}") as handle:
            assert PILImage.open(handle).size == (first["width"], first["height"])


def test_names_are_safe_and_unique():
    names = safe_image_names(
        [(1, "a/cat.jpg"), (2, "cat.png"), (3, "../x y.png"), (4, "CAT.jpg"), (5, ".hidden")]
    )
    assert names == {1: "cat.jpg", 2: "cat-2.png", 3: "x_y.png", 4: "CAT-4.jpg", 5: "hidden"}


# Options -----------------------------------------------------------------------------------------


def ids(path):
    return {a["id"] for a in json.loads(path.read_text())["annotations"]}


def test_states_option(project, data, tmp_path):
    anns = data["anns"]
    accepted = {anns[k].pk for k in ("holed", "two_parts", "disk", "box")}
    assert ids(export(project, tmp_path)[0]) == accepted
    with_proposals, _ = export(project, tmp_path, name="p.json", states=("accepted", "proposed"))
    assert ids(with_proposals) == accepted | {anns["proposal_high"].pk}
    data["cat"].box_threshold = 0.05  # the class's own threshold lets the 0.1 proposal through
    data["cat"].save()
    lower, _ = export(project, tmp_path, name="q.json", states=("accepted", "proposed"))
    assert ids(lower) == accepted | {anns["proposal_high"].pk, anns["proposal_low"].pk}


def test_classes_option(project, data, tmp_path):
    path, _ = export(project, tmp_path, class_ids=(data["cup"].pk,))
    document = json.loads(path.read_text())
    assert ids(path) == {data["anns"]["two_parts"].pk}
    assert [c["name"] for c in document["categories"]] == ["coffee cup"]


def test_empty_images_option(project, data, tmp_path):
    path, _ = export(project, tmp_path)
    assert len(json.loads(path.read_text())["images"]) == 4
    path, (images, _) = export(project, tmp_path, name="e.json", include_empty=False)
    kept = {i["id"] for i in json.loads(path.read_text())["images"]}
    assert images == 2 and kept == {data["images"][0].pk, data["images"][1].pk}


@pytest.mark.parametrize(
    "bad",
    [
        {"states": ["proposed"]},
        {"states": ["accepted", "deleted"]},
        {"val_ratio": 1.5},
        {"include_empty": "maybe"},
        {"class_ids": ["x"]},
        {"colour": "red"},
    ],
)
def test_bad_options_are_refused_with_the_reason(bad):
    with pytest.raises(FormatError, match="ption"):
        ExportOptions.from_json(bad)


def test_unknown_class_is_refused(project, data, tmp_path):
    with pytest.raises(FormatError, match="unknown class"):
        export(project, tmp_path, class_ids=(999999,))


# YOLO --------------------------------------------------------------------------------------------


def read_labels(zf, name):
    return [line.split() for line in zf.read(name).decode().splitlines()]


def test_yolo_detect_layout_and_normalisation(project, data, tmp_path):
    path, (images, annotations) = export(project, tmp_path, "yolo_detect", val_is_train=True)
    assert (images, annotations) == (4, 4)
    with zipfile.ZipFile(path) as zf:
        spec = yaml.safe_load(zf.read("data.yaml"))
        assert spec["names"] == {0: "cat", 1: "coffee cup"} and spec["nc"] == 2
        names = zf.namelist()
        assert sum(n.startswith("labels/train/") for n in names) == 4
        assert sum(n.startswith("images/train/") for n in names) == 4
        image = data["images"][1]
        lines = read_labels(zf, f"labels/train/{image.original_name.rsplit('.', 1)[0]}.txt")
    assert len(lines) == 2
    by_class_box = {}
    for parts in lines:
        values = [float(v) for v in parts[1:]]
        assert len(values) == 4 and all(0.0 <= v <= 1.0 for v in values)
        cx, cy, w, h_ = values
        box = ((cx - w / 2) * image.width, (cy - h_ / 2) * image.height, w * image.width, h_ * image.height)
        by_class_box.setdefault(int(parts[0]), []).append(box)
    original = data["anns"]["box"]
    reproduced = min(by_class_box[0], key=lambda b: abs(b[0] - original.x))
    for got, want in zip(reproduced, (original.x, original.y, original.w, original.h), strict=True):
        assert got == pytest.approx(want, rel=1e-6)


def segment_ring(parts, image) -> list[float]:
    values = [float(v) for v in parts[1:]]
    assert len(values) % 2 == 0 and len(values) >= 6 and all(0 <= v <= 1 for v in values)
    return [v * (image.width if i % 2 == 0 else image.height) for i, v in enumerate(values)]


def test_yolo_segment_merges_a_two_part_mask_into_one_line(project, data, tmp_path):
    path, _ = export(project, tmp_path, "yolo_segment", class_ids=(data["cup"].pk,), val_is_train=True)
    image = data["images"][0]
    with zipfile.ZipFile(path) as zf:
        lines = read_labels(zf, f"labels/train/{image.original_name.rsplit('.', 1)[0]}.txt")
        assert yaml.safe_load(zf.read("data.yaml"))["names"][1] == "coffee cup"  # indices stay stable
    assert len(lines) == 1 and lines[0][0] == "1"  # one instance, one line
    ring = segment_ring(lines[0], image)
    merged = polygons_to_mask([[ring]], image.height, image.width)
    parts = h.two_parts()
    # The bridge is walked there and back (no area): the parts' pixels, and at most a thin line more.
    assert np.all(merged[parts]) and (merged & ~parts).sum() <= 30
    # Every vertex of both parts is on the one ring.
    points = {(round(x, 6), round(y, 6)) for x, y in zip(ring[0::2], ring[1::2], strict=True)}
    for part in mask_to_polygons(parts):
        outer = part[0]
        assert {(round(x, 6), round(y, 6)) for x, y in zip(outer[0::2], outer[1::2], strict=True)} <= points


def test_yolo_segment_largest_part_option(project, data, tmp_path):
    path, _ = export(
        project,
        tmp_path,
        "yolo_segment",
        class_ids=(data["cup"].pk,),
        val_is_train=True,
        segment_parts="largest",
    )
    image = data["images"][0]
    with zipfile.ZipFile(path) as zf:
        lines = read_labels(zf, f"labels/train/{image.original_name.rsplit('.', 1)[0]}.txt")
    assert len(lines) == 1
    kept = polygons_to_mask([[segment_ring(lines[0], image)]], image.height, image.width)
    assert np.array_equal(kept, h.rect(28, 36, 44, 60))  # 16 × 24 beats 16 × 16


def split_of(path):
    with zipfile.ZipFile(path) as zf:
        return {
            split: sorted(n for n in zf.namelist() if n.startswith(f"labels/{split}/"))
            for split in ("train", "val")
        }


def test_yolo_split_is_seeded_and_respects_the_ratio(project, data, tmp_path):
    h.bare_images(project, 0)
    a, _ = export(project, tmp_path, "yolo_detect", name="a.zip", val_ratio=0.5, seed=7)
    b, _ = export(project, tmp_path, "yolo_detect", name="b.zip", val_ratio=0.5, seed=7)
    first, second = split_of(a), split_of(b)
    assert first == second
    assert len(first["val"]) == 2 and len(first["train"]) == 2
    with zipfile.ZipFile(a) as zf:
        spec = yaml.safe_load(zf.read("data.yaml"))
        assert (spec["train"], spec["val"]) == ("images/train", "images/val")
        for split, labels in first.items():
            for label in labels:
                stem = label.rsplit("/", 1)[1][:-4]
                assert any(n.startswith(f"images/{split}/{stem}.") for n in zf.namelist())
    ratios = {}
    for seed in range(5):
        path, _ = export(project, tmp_path, "yolo_detect", name=f"s{seed}.zip", val_ratio=0.25, seed=seed)
        ratios[seed] = len(split_of(path)["val"])
    assert set(ratios.values()) == {1}


# VOC ---------------------------------------------------------------------------------------------


def test_voc_xml_has_the_fields_voc_readers_need(project, data, tmp_path):
    path, _ = export(project, tmp_path, "voc")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert sum(n.startswith("Annotations/") for n in names) == 4
        assert sum(n.startswith("JPEGImages/") for n in names) == 4
        trainval = zf.read("ImageSets/Main/trainval.txt").decode().split()
        assert len(trainval) == 4 and zf.read("ImageSets/Main/train.txt").decode().split() == trainval
        image = data["images"][1]
        stem = image.original_name.rsplit(".", 1)[0]
        root = ElementTree.fromstring(zf.read(f"Annotations/{stem}.xml"))
    assert root.tag == "annotation" and root.findtext("folder") == "VOC"
    assert root.findtext("filename") == image.original_name
    size = root.find("size")
    assert (int(size.findtext("width")), int(size.findtext("height")), int(size.findtext("depth"))) == (
        64,
        48,
        3,
    )
    assert root.findtext("segmented") == "1"
    objects = root.findall("object")
    assert [o.findtext("name") for o in objects] == ["cat", "cat"]
    for obj in objects:
        assert obj.findtext("pose") == "Unspecified"
        assert obj.findtext("truncated") == "0" and obj.findtext("difficult") == "0"
        box = {k: int(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")}
        assert 1 <= box["xmin"] <= box["xmax"] <= 64 and 1 <= box["ymin"] <= box["ymax"] <= 48
    frac = data["anns"]["box"]
    box_obj = objects[1].find("bndbox")
    assert int(box_obj.findtext("xmin")) == math.floor(frac.x) + 1
    assert int(box_obj.findtext("xmax")) == math.ceil(frac.x + frac.w)
    disk_box = data["anns"]["disk"]
    assert int(objects[0].find("bndbox").findtext("xmin")) == int(disk_box.x) + 1
    assert int(objects[0].find("bndbox").findtext("xmax")) == int(disk_box.x + disk_box.w)


def test_voc_segmentation_pngs(project, data, tmp_path):
    path, _ = export(project, tmp_path, "voc")
    image = data["images"][0]
    stem = image.original_name.rsplit(".", 1)[0]
    with zipfile.ZipFile(path) as zf:
        with zf.open(f"SegmentationObject/{stem}.png") as handle:
            objects = PILImage.open(handle)
            objects.load()
        with zf.open(f"SegmentationClass/{stem}.png") as handle:
            classes = PILImage.open(handle)
            classes.load()
        plain = data["images"][3].original_name.rsplit(".", 1)[0]
        assert f"SegmentationObject/{plain}.png" not in zf.namelist()
    for png in (objects, classes):
        assert png.mode == "P" and png.size == (64, 48)
        assert png.getpalette()[: 3 * 4] == voc_palette()[: 3 * 4]
    objects, classes = np.asarray(objects), np.asarray(classes)
    first = h.holed() & ~h.two_parts()  # later objects paint over earlier ones
    assert np.array_equal(objects == 1, first) and np.array_equal(objects == 2, h.two_parts())
    assert np.array_equal(classes == 1, first) and np.array_equal(classes == 2, h.two_parts())
    assert np.array_equal(objects == 0, ~(h.holed() | h.two_parts()))


def test_raw_json_rows_decode_to_what_the_orm_gives(project, data):
    """The COCO writer reads mask and polygons as stored JSON text (raw_json) and decodes them
    with orjson: the rows must be the ones Django's JSONField gives, box-only rows included."""
    source = ExportSource(project, ExportOptions(states=("accepted", "proposed")))
    raw = {}
    for _, by_image in source.chunks(raw_json=True):
        raw.update((a.id, a) for anns in by_image.values() for a in anns)
    seen = 0
    for _, by_image in source.chunks():
        for ann in (a for anns in by_image.values() for a in anns):
            assert isinstance(raw[ann.id].polygons, str | None)
            assert decoded(raw[ann.id]) == ann
            seen += 1
    assert seen == 5 and any(a.mask is None for a in raw.values())
