"""Pascal VOC zip import: 1-based corners inverted exactly, object masks, unsafe XML refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from inference.masks import rle_to_mask
from labeling.formats.base import voc_palette
from labeling.models import Annotation
from tests.labeling.import_helpers import disk, do_import, errors_text, snapshot, zip_bytes

pytestmark = pytest.mark.django_db


def voc_xml(filename: str, objects, size=(64, 48)) -> str:
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    return (
        f"<annotation><folder>VOC</folder><filename>{filename}</filename>"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{body}</annotation>"
    )


def palette_png(indices: np.ndarray) -> bytes:
    image = PILImage.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_it_inverts_the_one_based_corners_exactly(project, images, manager):
    archive = zip_bytes(
        {
            "Annotations/a.xml": voc_xml(
                "a.png", [("cat", (1, 1, 64, 48)), ("Coffee Cup", (11, 21, 30, 40))]
            ),
            "ImageSets/Main/trainval.txt": "a\n",
        }
    )
    report = do_import(project, archive, format="voc", user=manager)
    assert report.ok, errors_text(report)
    whole, cup = Annotation.objects.filter(image=images[0]).order_by("id")
    assert whole.box == (0, 0, 64, 48) and whole.label_class.name == "cat"
    assert cup.box == (10, 20, 20, 20) and cup.label_class.name == "coffee cup"
    assert cup.source == "import" and cup.state == "accepted" and cup.created_by == manager


def test_it_reads_object_masks_from_segmentation_object_pngs(project, images):
    first = disk(48, 64, 20, 20, 10)
    second = disk(48, 64, 30, 48, 8, hole=3)
    indices = np.zeros((48, 64), dtype=np.uint8)
    indices[first] = 1
    indices[second] = 2
    indices[0, :] = 255  # VOC's "void" border is nobody's
    archive = zip_bytes(
        {
            "VOC/Annotations/a.xml": voc_xml("a.png", [("cat", (11, 11, 30, 30)), ("cat", (41, 23, 56, 38))]),
            "VOC/SegmentationObject/a.png": palette_png(indices),
        }
    )
    report = do_import(project, archive, format="voc")
    assert report.ok, errors_text(report)
    one, two = Annotation.objects.filter(image=images[0]).order_by("id")
    assert np.array_equal(rle_to_mask(one.mask), first)
    assert np.array_equal(rle_to_mask(two.mask), second)
    assert one.box == (10, 10, 20, 20)


def test_it_refuses_a_mask_png_of_another_size(project, images):
    before = snapshot(project)
    archive = zip_bytes(
        {
            "Annotations/a.xml": voc_xml("a.png", [("cat", (1, 1, 5, 5))]),
            "SegmentationObject/a.png": palette_png(np.ones((10, 10))),
        }
    )
    report = do_import(project, archive, format="voc")
    assert "the mask is 10 × 10 pixels, the image 64 × 48" in errors_text(report)
    assert snapshot(project) == before


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<annotation><filename>a.png</filename><object><name>&lol3;</name>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotation><filename>a.png</filename><object><name>&secret;</name>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>"""


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (BILLION_LAUGHS, "entity expansion (billion laughs) is not allowed"),
        (EXTERNAL_ENTITY, "declares an external entity ('secret' → 'file:///etc/passwd')"),
        ("<annotation><filename>a.png</filename><object></annotation>", "malformed XML at line 1, column"),
        ("<notvoc/>", "the root element must be <annotation>"),
    ],
)
def test_it_refuses_unsafe_or_malformed_xml(project, images, xml, message):
    before = snapshot(project)
    archive = zip_bytes(
        {
            "Annotations/a.xml": xml,
            "Annotations/b.xml": voc_xml("b.png", [("cat", (1, 1, 5, 5))], size=(80, 60)),
        }
    )
    report = do_import(project, archive, format="voc")
    assert not report.ok
    [(where, what)] = report.errors
    assert where == "Annotations/a.xml" and message in what, what
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("objects", "where", "message"),
    [
        ([("cat", (0, 1, 5, 5))], "Annotations/a.xml object 1 (cat)", "is outside the image"),
        (
            [("cat", (1, 1, 65, 5))],
            "Annotations/a.xml object 1 (cat)",
            "goes past the image's 64 × 48 pixels",
        ),
        ([("cat", (5, 1, 2, 5))], "Annotations/a.xml object 1 (cat) <bndbox>", "are below xmin/ymin"),
        ([("cat", ("x", 1, 2, 5))], "Annotations/a.xml object 1 (cat) <bndbox>", "needs xmin, ymin"),
        ([("", (1, 1, 2, 5))], "Annotations/a.xml object 1", "<name> (the class) is missing"),
        ([("dog", (1, 1, 2, 5))], "Annotations/a.xml object 1 (dog)", 'Unknown class "dog"'),
    ],
)
def test_it_refuses_bad_objects_naming_file_and_object(project, images, objects, where, message):
    before = snapshot(project)
    report = do_import(project, zip_bytes({"Annotations/a.xml": voc_xml("a.png", objects)}), format="voc")
    assert not report.ok
    [(got_where, what)] = report.errors
    assert got_where == where and message in what, (got_where, what)
    assert snapshot(project) == before


def test_it_refuses_a_size_that_differs_from_the_image(project, images):
    report = do_import(
        project, zip_bytes({"Annotations/a.xml": voc_xml("a.png", [], size=(10, 10))}), format="voc"
    )
    assert "is 10 × 10 pixels but it is 64 × 48" in errors_text(report)


def test_it_refuses_zip_traversal(project, images):
    archive = zip_bytes({"Annotations/../../a.xml": voc_xml("a.png", [])})
    report = do_import(project, archive, format="voc")
    assert 'path with ".."' in errors_text(report)
