"""COCO JSON import: geometry kept exactly, images and classes matched, every bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.masks import mask_iou, mask_to_polygons, mask_to_rle, polygons_to_mask, rle_to_mask
from labeling.models import Annotation, Image, LabelClass
from tests.labeling.import_helpers import add_images, disk, do_import, errors_text, png, snapshot, zip_bytes

pytestmark = pytest.mark.django_db


def coco(images, annotations, categories=None) -> dict:
    return {
        "images": images,
        "categories": categories or [{"id": 1, "name": "cat"}, {"id": 2, "name": "Coffee Cup"}],
        "annotations": annotations,
    }


@pytest.fixture
def images(project):
    """The conftest's two images, the first uploaded in a folder: the COCO files here call it a.png."""
    return add_images(project, [("kitchen/a.png", (64, 48)), ("b.png", (80, 60))])


def test_it_imports_boxes_exactly_as_accepted_imports_by_the_user(project, images, manager):
    a, b = images
    data = coco(
        [{"id": 7, "file_name": "a.png", "width": 64, "height": 48}, {"id": 9, "file_name": "B.PNG"}],
        [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1.123456789, 2.5, 10.25, 20.000001]},
            {"id": 2, "image_id": 9, "category_id": 2, "bbox": [0, 0, 80, 60], "score": 0.75},
        ],
    )
    report = do_import(project, data, format="coco", user=manager)
    assert report.ok, errors_text(report)
    assert report.created_annotations == 2
    assert sorted(report.matched_images) == sorted([("a.png", a.pk), ("B.PNG", b.pk)])
    first, second = Annotation.objects.filter(image__project=project).order_by("id")
    assert first.image_id == a.pk and first.label_class.name == "cat"
    assert np.allclose(first.box, (1.123456789, 2.5, 10.25, 20.000001), atol=1e-6, rtol=0)
    assert second.image_id == b.pk and second.label_class.name == "coffee cup"  # case-insensitive
    assert second.box == (0, 0, 80, 60) and second.score == 0.75
    for ann in (first, second):
        assert ann.source == "import" and ann.state == "accepted" and ann.created_by == manager
        assert ann.mask is None


def test_it_keeps_rle_masks_pixel_for_pixel(project, images):
    mask = disk(48, 64, 24, 30, 15, hole=5)
    data = coco(
        [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        [{"image_id": 1, "category_id": 1, "segmentation": mask_to_rle(mask), "bbox": [15, 9, 30, 30]}],
    )
    report = do_import(project, data, format="coco")
    assert report.ok, errors_text(report)
    ann = Annotation.objects.get(image=images[0])
    assert np.array_equal(rle_to_mask(ann.mask), mask)
    assert ann.box == (15, 9, 30, 30)
    assert ann.polygons and len(ann.polygons[0]) == 2  # outer ring and the hole, for the canvas


def test_it_reads_uncompressed_rle_and_takes_the_box_from_the_mask_without_bbox(project, images):
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 5:9] = True
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    data = coco(
        [{"id": 1, "file_name": "a.png"}],
        [
            {
                "image_id": 1,
                "category_id": 1,
                "segmentation": {"size": [48, 64], "counts": counts},
                "iscrowd": 1,
            }
        ],
    )
    report = do_import(project, data, format="coco")
    assert report.ok, errors_text(report)
    ann = Annotation.objects.get(image=images[0])
    assert np.array_equal(rle_to_mask(ann.mask), mask)
    assert isinstance(ann.mask["counts"], str)  # stored compressed
    assert ann.box == (5, 10, 4, 10)


def test_it_rasterises_polygons_faithfully(project, images):
    mask = disk(60, 80, 30, 40, 22)
    rings = [part[0] for part in mask_to_polygons(mask)]
    data = coco(
        [{"id": 3, "file_name": "b.png"}],
        [{"image_id": 3, "category_id": 1, "segmentation": rings, "bbox": [18, 8, 44, 44]}],
    )
    report = do_import(project, data, format="coco")
    assert report.ok, errors_text(report)
    ann = Annotation.objects.get(image=images[1])
    assert mask_iou(rle_to_mask(ann.mask), mask) >= 0.99
    assert mask_iou(polygons_to_mask(ann.polygons, 60, 80), mask) >= 0.99


def test_it_lists_images_that_are_not_in_the_project_and_skips_them(project, images):
    data = coco(
        [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "elsewhere.jpg"}],
        [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5]},
        ],
    )
    report = do_import(project, data, format="coco")
    assert report.ok, errors_text(report)
    assert report.created_annotations == 1
    assert ("elsewhere.jpg", "No image of that name in the project.") in report.skipped


def test_it_reports_ambiguous_names_and_writes_nothing(project):
    add_images(project, [("one/a.png", (64, 48)), ("two/A.png", (64, 48)), ("three/A.png", (64, 48))])
    before = snapshot(project)
    report = do_import(
        project,
        coco([{"id": 1, "file_name": "A.png"}], [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]),
        format="coco",
    )
    assert not report.ok
    assert "matches 2 images" in errors_text(report) and "images[0]" in errors_text(report)
    assert snapshot(project) == before


def test_it_reports_unknown_classes_or_creates_them_on_request(project, images, manager):
    data = coco(
        [{"id": 1, "file_name": "a.png"}],
        [{"image_id": 1, "category_id": 5, "bbox": [0, 0, 5, 5]}],
        categories=[{"id": 5, "name": "Toaster"}],
    )
    before = snapshot(project)
    report = do_import(project, data, format="coco", user=manager)
    assert not report.ok
    assert 'annotations[0]: Unknown class "Toaster"' in errors_text(report)
    assert snapshot(project) == before

    report = do_import(project, data, format="coco", user=manager, create_classes=True)
    assert report.ok, errors_text(report)
    assert report.created_classes == ["Toaster"]
    toaster = LabelClass.objects.get(project=project, name="Toaster")
    assert Annotation.objects.get(image=images[0]).label_class == toaster
    assert toaster.order == 2 and toaster.prompt == "Toaster"


def test_it_brings_images_along_in_a_zip_and_matches_duplicates(project, images, manager):
    existing = images[0]
    with existing.file.open("rb") as handle:
        existing_bytes = handle.read()
    new_bytes = png((32, 32), color=(1, 2, 3))
    data = coco(
        [{"id": 1, "file_name": "renamed.png"}, {"id": 2, "file_name": "new.png", "width": 32, "height": 32}],
        [
            {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"image_id": 2, "category_id": 2, "bbox": [2, 2, 30, 30]},
        ],
    )
    archive = zip_bytes(
        {
            "annotations.json": json.dumps(data),
            "images/renamed.png": existing_bytes,
            "images/new.png": new_bytes,
        }
    )
    report = do_import(project, archive, format="coco", user=manager, name="coco.zip")
    assert report.ok, errors_text(report)
    assert report.matched_images == [("renamed.png", existing.pk)]
    [(name, new_id)] = report.created_images
    new = Image.objects.get(pk=new_id)
    assert name == "new.png" and new.original_name == "new.png" and (new.width, new.height) == (32, 32)
    assert new.uploaded_by == manager and new.file.storage.exists(new.file.name)
    assert Annotation.objects.get(image=new).box == (2, 2, 30, 30)
    assert Annotation.objects.get(image=existing).box == (1, 1, 5, 5)


def test_a_failed_import_leaves_no_image_files_behind(project, images):
    data = coco(
        [{"id": 1, "file_name": "new.png"}],
        [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 500, 5]}],  # past the 32 px image
    )
    archive = zip_bytes({"annotations.json": json.dumps(data), "images/new.png": png((32, 32), (9, 9, 9))})
    before = snapshot(project)
    report = do_import(project, archive, format="coco", name="coco.zip")
    assert not report.ok
    text = errors_text(report)
    assert "annotations[0]" in text and "new.png" in text and "goes past the image's 32 × 32" in text
    assert snapshot(project) == before


def test_it_refuses_malformed_json_with_line_and_column(project, images):
    before = snapshot(project)
    report = do_import(project, '{"images": [\n  {"id": 1,, }\n]}', format="coco")
    assert not report.ok
    assert "malformed JSON at line 2, column 12" in errors_text(report)
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("annotation", "where"),
    [
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, "5", 5]}, "annotations[1].bbox"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5]}, "annotations[1].bbox"),
        ({"image_id": "1", "category_id": 1, "bbox": [0, 0, 5, 5]}, "annotations[1].image_id"),
        ({"image_id": 1, "category_id": None, "bbox": [0, 0, 5, 5]}, "annotations[1].category_id"),
        (
            {"image_id": 1, "category_id": 1, "segmentation": [[1, 2, "x", 4, 5, 6]]},
            "annotations[1].segmentation[0]",
        ),
        (
            {"image_id": 1, "category_id": 1, "segmentation": {"size": [48], "counts": "x"}},
            "annotations[1].segmentation.size",
        ),
        ({"image_id": 1, "category_id": 1, "segmentation": 5}, "annotations[1].segmentation"),
        ({"image_id": 1, "category_id": 1}, "annotations[1]"),
    ],
)
def test_it_refuses_wrong_types_naming_the_json_path(project, images, annotation, where):
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}
    before = snapshot(project)
    report = do_import(project, coco([{"id": 1, "file_name": "a.png"}], [good, annotation]), format="coco")
    assert not report.ok
    assert any(w == where for w, _ in report.errors), errors_text(report)
    assert snapshot(project) == before


def test_it_refuses_a_document_of_the_wrong_shape(project, images):
    report = do_import(project, {"images": {}, "annotations": [], "categories": []}, format="coco")
    assert "images must be a list" in errors_text(report)
    report = do_import(project, "[1, 2]", format="coco")
    assert "top level must be a JSON object" in errors_text(report)


def test_it_refuses_unknown_image_and_category_ids(project, images):
    before = snapshot(project)
    data = coco(
        [{"id": 1, "file_name": "a.png"}],
        [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
            {"image_id": 42, "category_id": 1, "bbox": [0, 0, 5, 5]},
            {"image_id": 1, "category_id": 99, "bbox": [0, 0, 5, 5]},
        ],
    )
    report = do_import(project, data, format="coco")
    errors = dict(report.errors)
    assert "unknown image id 42" in errors["annotations[1].image_id"]
    assert "unknown category id 99" in errors["annotations[2].category_id"]
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"bbox": [-1, 0, 5, 5]}, "Box corner (-1.0, 0.0) is outside the image"),
        ({"bbox": [60, 0, 5, 5]}, "goes past the image's 64 × 48 pixels"),
        ({"bbox": [0, 0, 0, 5]}, "must be positive"),
        ({"segmentation": [[0, 0, 70, 0, 70, 10]]}, "a polygon goes outside the 64 × 48 image"),
        (
            {"segmentation": {"size": [10, 10], "counts": [100]}},
            "is not the image's [height, width] = [48, 64]",
        ),
        ({"segmentation": {"size": [48, 64], "counts": [5, 3]}}, "the runs cover 8 pixels"),
        ({"segmentation": {"size": [48, 64], "counts": "@@@"}}, "not a valid COCO RLE"),
    ],
)
def test_it_refuses_geometry_outside_its_image_naming_annotation_and_image(
    project, images, annotation, message
):
    before = snapshot(project)
    data = coco([{"id": 1, "file_name": "a.png"}], [{"image_id": 1, "category_id": 1, **annotation}])
    report = do_import(project, data, format="coco")
    assert not report.ok
    [(where, what)] = report.errors
    assert where == "annotations[0]"
    assert message in what and "a.png" in what
    assert snapshot(project) == before


def test_it_refuses_an_image_whose_declared_size_differs(project, images):
    data = coco(
        [{"id": 1, "file_name": "a.png", "width": 48, "height": 64}],
        [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],
    )
    report = do_import(project, data, format="coco")
    assert "is 48 × 64 pixels but it is 64 × 48" in errors_text(report)


def test_it_refuses_zip_traversal_and_zip_bombs(project, images, settings):
    before = snapshot(project)
    data = json.dumps(coco([{"id": 1, "file_name": "a.png"}], []))
    report = do_import(
        project, zip_bytes({"annotations.json": data, "../evil.png": png()}), format="coco", name="x.zip"
    )
    assert 'path with ".."' in errors_text(report) and "../evil.png" in errors_text(report)
    report = do_import(
        project, zip_bytes({"annotations.json": data, "/etc/evil.png": png()}), format="coco", name="x.zip"
    )
    assert "absolute path" in errors_text(report)

    settings.LABELGPT_ZIP_MAX_TOTAL_BYTES = 50_000
    bomb = zip_bytes({"annotations.json": data, "images/zeros.png": b"\0" * 200_000})
    assert len(bomb) < 5_000
    report = do_import(project, bomb, format="coco", name="bomb.zip")
    assert "zip bomb protection" in errors_text(report)
    # A bomb in the JSON itself (declared size within the limit is not trusted either).
    report = do_import(
        project, zip_bytes({"annotations.json": " " * 60_000 + data}), format="coco", name="b.zip"
    )
    assert "zip bomb protection" in errors_text(report)
    assert snapshot(project) == before


def test_it_refuses_a_file_over_the_import_limit(project, images, settings):
    settings.LABELGPT_MAX_IMPORT_BYTES = 100
    report = do_import(project, coco([{"id": 1, "file_name": "a.png"}], []), format="coco")
    assert not report.ok and "over the limit" in errors_text(report)


def test_it_refuses_a_brought_image_that_is_not_an_image(project, images):
    before = snapshot(project)
    data = coco(
        [{"id": 1, "file_name": "fake.png"}], [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]
    )
    archive = zip_bytes({"annotations.json": json.dumps(data), "images/fake.png": b"not an image at all"})
    report = do_import(project, archive, format="coco", name="c.zip")
    assert not report.ok and "fake.png" in errors_text(report) and "Not an image" in errors_text(report)
    assert snapshot(project) == before


def test_it_refuses_an_archive_over_the_import_limit(project, images, settings):
    archive = zip_bytes({"annotations.json": json.dumps(coco([{"id": 1, "file_name": "a.png"}], []))})
    settings.LABELGPT_MAX_IMPORT_BYTES = len(archive) - 1
    report = do_import(project, archive, format="coco", name="big.zip")
    assert not report.ok and "the limit is" in errors_text(report)
