"""Round trips: export (labeling.services.exports.export_write, the export engineer's writers) → import into a
fresh project with the same images → the same boxes and masks, within each format's precision.

COCO: boxes within 1e-6 px; RLE masks identical pixels; polygon masks IoU ≥ 0.99.
YOLO detect: boxes within 1e-6 px (normalised floats written with %.10g).
YOLO segment: one annotation per part, holes left out: the union of a class's masks on an image
has IoU ≥ 0.99 with the source's outer rings; a box-only annotation comes back as its box.
VOC: integer pixel boxes (floor / ceil of the source's box); masks identical pixels.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from inference.masks import mask_iou, polygons_to_mask, rle_to_mask
from labeling.formats.base import ExportOptions
from labeling.models import Annotation, Image
from labeling.services.exports import export_write
from labeling.services.images import images_ingest
from labeling.services.projects import project_create
from tests.labeling.export_helpers import add
from tests.labeling.import_helpers import do_import, errors_text, png, snapshot

pytestmark = pytest.mark.django_db

SPECS = [("a.png", (64, 48)), ("b.png", (80, 60)), ("empty.png", (40, 30))]
IMAGE_BYTES = {name: png(size, color=(30 + 50 * i, 60, 90)) for i, (name, size) in enumerate(SPECS)}


def rect(height, width, top, left, bottom, right) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def disk(height, width, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r


def ingest(project) -> dict[str, Image]:
    files = [(name, io.BytesIO(data)) for name, data in IMAGE_BYTES.items()]
    report = images_ingest(project=project, files=files)
    assert not report.errors and not report.duplicates
    return {image.original_name: image for image in Image.objects.filter(project=project)}


def fresh_project(manager, *, with_images: bool = True):
    project = project_create(user=manager, name="Copy", classes=[{"name": "cat"}, {"name": "coffee cup"}])
    return project, (ingest(project) if with_images else {})


@pytest.fixture
def source(project):
    """Masks that never overlap (VOC's object PNG keeps one object per pixel)."""
    images = ingest(project)
    Image.objects.filter(project=project).update(status=Image.Status.DONE)
    cat, cup = list(project.classes.all())
    holed = rect(48, 64, 4, 4, 20, 30)
    holed[8:16, 10:24] = False
    two_parts = rect(48, 64, 26, 4, 40, 20) | rect(48, 64, 26, 40, 44, 60)
    specs = [
        ("holed", images["a.png"], cat, holed, None),
        ("two_parts", images["a.png"], cup, two_parts, None),
        ("box", images["a.png"], cat, None, (33.25, 2.5, 20.125, 10.75)),
        ("disk", images["b.png"], cat, disk(60, 80, 30, 30, 14), None),
        ("edge_box", images["b.png"], cup, None, (60.0, 40.0, 20.0, 20.0)),
    ]
    anns = {}
    for key, image, label_class, mask, box in specs:
        anns[key] = add(image, label_class, mask=mask, box=box)
    return project, anns


def export_then_import(tmp_path, project, fmt, target, manager, *, create_classes=False, **options):
    out = tmp_path / f"export-{fmt}"
    export_write(project=project, fmt=fmt, options=ExportOptions(**options), out=out)
    import_format = "yolo" if fmt.startswith("yolo") else fmt
    report = do_import(
        target,
        out.read_bytes(),
        format=import_format,
        user=manager,
        name=out.name,
        create_classes=create_classes,
    )
    assert report.ok, errors_text(report)
    return report


def imported_by_key(project) -> dict[tuple[str, str], list[Annotation]]:
    out: dict[tuple[str, str], list[Annotation]] = {}
    for ann in Annotation.objects.filter(image__project=project).select_related("image", "label_class"):
        out.setdefault((ann.image.original_name, ann.label_class.name), []).append(ann)
    for anns in out.values():
        anns.sort(key=lambda a: a.pk)
    for ann in Annotation.objects.filter(image__project=project):
        assert ann.source == "import" and ann.state == "accepted"
    return out


def key_of(ann: Annotation) -> tuple[str, str]:
    return (ann.image.original_name, ann.label_class.name)


def paired(anns: dict[str, Annotation], target, *, parts: bool = False):
    """(name, source annotation, its imported annotations): in order within an image and class,
    as the exporters write them; with `parts`, one imported annotation per part (YOLO segment)."""
    got = imported_by_key(target)
    taken: dict[tuple[str, str], int] = {}
    for key, ann in sorted(anns.items(), key=lambda item: item[1].pk):
        count = len(ann.polygons) if parts and ann.polygons else 1
        start = taken.get(key_of(ann), 0)
        taken[key_of(ann)] = start + count
        yield key, ann, got[key_of(ann)][start : start + count]
    assert taken == {k: len(v) for k, v in got.items()}  # nothing more came back


def mask_of(ann: Annotation) -> np.ndarray:
    return rle_to_mask(ann.mask)


def test_coco_round_trip_keeps_boxes_exactly_and_masks(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager)
    report = export_then_import(tmp_path, project, "coco", target, manager)
    assert report.created_annotations == 5 and len(report.matched_images) == 3 and not report.created_images
    for key, ann, [back] in paired(anns, target):
        assert np.allclose(back.box, ann.box, atol=1e-6, rtol=0), key
        if ann.mask is None:
            assert back.mask is None, key
        elif key == "holed":  # holes: written as RLE, identical pixels
            assert np.array_equal(mask_of(back), mask_of(ann))
        else:  # written as polygons
            assert mask_iou(mask_of(back), mask_of(ann)) >= 0.99, key


def test_coco_boxes_without_a_segmentation_key_come_back_as_boxes(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager)
    report = export_then_import(tmp_path, project, "coco", target, manager, box_segmentation="none")
    assert report.created_annotations == 5
    for key, ann, [back] in paired(anns, target):
        assert np.allclose(back.box, ann.box, atol=1e-6, rtol=0), key
        assert (back.mask is None) == (ann.mask is None), key


def test_coco_rle_round_trip_gives_identical_pixels(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager)
    export_then_import(tmp_path, project, "coco", target, manager, rle=True)
    for key, ann, [back] in paired(anns, target):
        assert np.allclose(back.box, ann.box, atol=1e-6, rtol=0), key
        if ann.mask is not None:
            assert np.array_equal(mask_of(back), mask_of(ann)), key


def test_coco_zip_brings_its_images_into_an_empty_project(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager, with_images=False)
    report = export_then_import(tmp_path, project, "coco", target, manager, zip_images=True, rle=True)
    assert sorted(name for name, _ in report.created_images) == ["a.png", "b.png", "empty.png"]
    sizes = {i.original_name: (i.width, i.height) for i in Image.objects.filter(project=target)}
    assert sizes == {name: size for name, size in SPECS}
    for key, ann, [back] in paired(anns, target):
        assert np.allclose(back.box, ann.box, atol=1e-6, rtol=0), key


def test_yolo_detect_round_trip_keeps_boxes(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager)
    report = export_then_import(tmp_path, project, "yolo_detect", target, manager, val_ratio=0.5, seed=3)
    assert report.created_annotations == 5 and not report.created_images  # the images: same sha256
    assert len(report.matched_images) == 3
    for key, ann, [back] in paired(anns, target):
        assert np.allclose(back.box, ann.box, atol=1e-6, rtol=0), key
        assert back.mask is None


def test_yolo_segment_round_trip_keeps_one_instance_per_annotation(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager)
    report = export_then_import(tmp_path, project, "yolo_segment", target, manager, val_is_train=True)
    assert report.created_annotations == 5  # the two-part mask comes back as one annotation
    for key, ann, [back] in paired(anns, target):
        if ann.mask is None:
            assert np.allclose(back.box, ann.box, atol=1e-6, rtol=0), key
            continue
        height, width = ann.mask["size"]
        outer = polygons_to_mask([[part[0]] for part in ann.polygons], height, width)  # no holes in YOLO
        assert mask_iou(mask_of(back), outer) >= 0.97, key  # a merged mask: its bridge, a thin line
        assert np.allclose(back.box, ann.box, atol=1.0), key


def test_voc_round_trip_keeps_integer_boxes_and_identical_masks(tmp_path, source, manager):
    project, anns = source
    target, _ = fresh_project(manager)
    report = export_then_import(tmp_path, project, "voc", target, manager)
    assert report.created_annotations == 5 and not report.created_images
    for key, ann, [back] in paired(anns, target):
        x0, y0 = math.floor(ann.x), math.floor(ann.y)
        expected = (x0, y0, math.ceil(ann.x + ann.w) - x0, math.ceil(ann.y + ann.h) - y0)
        assert back.box == expected, key
        if ann.mask is None:
            assert back.mask is None, key
        else:
            assert np.array_equal(mask_of(back), mask_of(ann)), key


def test_voc_round_trip_into_an_empty_project_creates_images_and_classes(tmp_path, source, manager):
    project, anns = source
    target = project_create(user=manager, name="Empty", classes=[])
    before = snapshot(target)
    out = tmp_path / "voc.zip"
    export_write(project=project, fmt="voc", options=ExportOptions(), out=out)
    refused = do_import(target, out.read_bytes(), format="voc", user=manager, name="voc.zip")
    assert not refused.ok and 'Unknown class "cat"' in errors_text(refused)
    assert snapshot(target) == before  # not even the images brought along
    report = export_then_import(tmp_path, project, "voc", target, manager, create_classes=True)
    assert sorted(report.created_classes) == ["cat", "coffee cup"]
    assert len(report.created_images) == 3
    for key, ann, [back] in paired(anns, target):
        if ann.mask is not None:
            assert np.array_equal(mask_of(back), mask_of(ann)), key
