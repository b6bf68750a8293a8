"""YOLO detect / segment zip import: normalised geometry back to pixels, stems, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from inference.masks import mask_iou, mask_to_polygons, rle_to_mask
from labeling.models import Annotation, Image, LabelClass
from tests.labeling.import_helpers import disk, do_import, errors_text, png, snapshot, zip_bytes

pytestmark = pytest.mark.django_db

DATA_YAML = "path: .\ntrain: images\nval: images\nnc: 2\nnames:\n  0: cat\n  1: coffee cup\n"


def test_it_imports_detect_boxes_in_pixels(project, images, manager):
    a, b = images
    archive = zip_bytes(
        {
            "data.yaml": DATA_YAML,
            # x = 8, y = 12, w = 16, h = 24 on 64 × 48; then the whole of b.
            "labels/train/a.txt": f"0 {16 / 64:.10g} {24 / 48:.10g} {16 / 64:.10g} {24 / 48:.10g}\n\n",
            "labels/val/b.txt": "1 0.5 0.5 1 1\n",
        }
    )
    report = do_import(project, archive, format="yolo", user=manager)
    assert report.ok, errors_text(report)
    assert report.created_annotations == 2
    first = Annotation.objects.get(image=a)
    assert np.allclose(first.box, (8, 12, 16, 24), atol=1e-6, rtol=0)
    assert first.label_class.name == "cat" and first.source == "import" and first.state == "accepted"
    second = Annotation.objects.get(image=b)
    assert second.box == (0, 0, 80, 60) and second.label_class.name == "coffee cup"


def test_it_imports_segment_lines_as_masks(project, images):
    mask = disk(48, 64, 20, 30, 12)
    ring = mask_to_polygons(mask)[0][0]
    values = " ".join(f"{v / (64 if i % 2 == 0 else 48):.10g}" for i, v in enumerate(ring))
    archive = zip_bytes({"data.yaml": DATA_YAML, "labels/a.txt": f"0 {values}\n"})
    report = do_import(project, archive, format="yolo")
    assert report.ok, errors_text(report)
    ann = Annotation.objects.get(image=images[0])
    assert mask_iou(rle_to_mask(ann.mask), mask) >= 0.99
    assert ann.polygons and len(ann.polygons) == 1


def test_it_brings_images_along_matched_by_stem(project, images, manager):
    new = png((20, 10), color=(5, 5, 5))
    archive = zip_bytes(
        {
            "ds/data.yaml": "names: [cat, dog]\n",
            "ds/images/train/new.png": new,
            "ds/labels/train/new.txt": "1 0.5 0.5 0.5 0.5\n",
            "ds/images/train/empty.png": png((12, 12), color=(6, 6, 6)),
        }
    )
    report = do_import(project, archive, format="yolo", user=manager, create_classes=True)
    assert report.ok, errors_text(report)
    assert report.created_classes == ["dog"]
    assert sorted(name for name, _ in report.created_images) == ["empty.png", "new.png"]
    image = Image.objects.get(project=project, original_name="new.png")
    assert Annotation.objects.get(image=image).box == (5, 2.5, 10, 5)
    assert LabelClass.objects.get(project=project, name="dog")


def test_it_reports_a_class_index_missing_from_names(project, images):
    before = snapshot(project)
    archive = zip_bytes({"data.yaml": DATA_YAML, "labels/a.txt": "0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n"})
    report = do_import(project, archive, format="yolo")
    assert report.errors == [("labels/a.txt line 2", "class index 7 is not in data.yaml's names (0–1).")]
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.1", "got 3 numbers"),
        ("cat 0.5 0.5 0.1 0.1", "expected a class index and numbers"),
        ("0 0.5 0.5 1.5 0.1", "normalised coordinates must be in [0, 1] (got 1.5)"),
        ("0 0.95 0.5 0.2 0.2", "goes past the image's 64 × 48 pixels"),
        ("0 nan 0.5 0.2 0.2", "must be in [0, 1]"),
    ],
)
def test_it_refuses_bad_lines_naming_file_and_line(project, images, line, message):
    before = snapshot(project)
    archive = zip_bytes({"data.yaml": DATA_YAML, "labels/train/a.txt": f"0 0.5 0.5 0.1 0.1\n{line}\n"})
    report = do_import(project, archive, format="yolo")
    assert not report.ok
    [(where, what)] = report.errors
    assert where == "labels/train/a.txt line 2" and message in what, what
    assert snapshot(project) == before


def test_it_needs_a_data_yaml_that_parses(project, images):
    report = do_import(project, zip_bytes({"labels/a.txt": "0 0.5 0.5 0.1 0.1\n"}), format="yolo")
    assert "no data.yaml" in errors_text(report)
    report = do_import(project, zip_bytes({"data.yaml": "names: [a, b\n"}), format="yolo")
    assert "data.yaml: malformed YAML at line" in errors_text(report)
    report = do_import(project, b"not a zip", format="yolo")
    assert "is a .zip archive" in errors_text(report)


def test_it_skips_label_files_of_unknown_images(project, images):
    archive = zip_bytes({"data.yaml": DATA_YAML, "labels/ghost.txt": "0 0.5 0.5 0.1 0.1\n"})
    report = do_import(project, archive, format="yolo")
    assert report.ok and report.created_annotations == 0
    assert ("ghost", "No image of that name in the project.") in report.skipped


def test_a_failed_import_stores_none_of_the_brought_images(project, images):
    before = snapshot(project)
    archive = zip_bytes(
        {
            "data.yaml": DATA_YAML,
            "images/new.png": png((20, 10), color=(5, 5, 5)),
            "labels/new.txt": "0 0.5 0.5 0.5 0.5\n",
            "labels/a.txt": "5 0.5 0.5 0.5 0.5\n",
        }
    )
    report = do_import(project, archive, format="yolo")
    assert not report.ok and "labels/a.txt line 1" in errors_text(report)
    assert snapshot(project) == before
