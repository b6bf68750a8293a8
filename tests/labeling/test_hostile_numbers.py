"""Hostile numbers and nesting (issue 11, point 4), as one table: each hostile input × each entry
point that takes numbers (the API's JSON bodies, its headers and query, the pages' forms, the
COCO / YOLO / VOC readers) is refused with a 400 (a form error, a FormatError or a report line)
whose message names the field or the JSON path. No timing is asserted (bench/ measures speed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import reverse

from labeling.formats import coco_import, voc_import, yolo_import
from labeling.formats.base import FormatError
from tests.labeling import api_helpers
from tests.labeling.api_helpers import World
from tests.labeling.import_helpers import zip_bytes
from tests.labeling.test_project_pages import PROJECT_FIELDS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls", "clear_throttles")]

# Refused by the JSON parser (labeling.safejson), with the value's JSON path.
PARSER_REFUSED = {
    "400-digit integer": "1" * 400,
    "5000-digit integer": "-" + "1" * 5000,
    "21-digit integer": "1" * 21,
    "past a float": "1e400",
}
# Taken by the parser, refused by the field's range, with the field's name.
FIELD_REFUSED = {
    "20-digit integer": "9" * 20,
    "1e300": "1e300",
}
HOSTILE = {**PARSER_REFUSED, **FIELD_REFUSED}


@dataclass(frozen=True)
class Entry:
    method: str
    url: Callable[[World], str]
    body: Callable[[World, str], str]  # JSON text with the hostile number in it
    path: str  # the number's JSON path, named by the parser's refusal
    field: str  # the field named by the serializer's refusal
    headers: dict | None = None


def _image_url(name: str) -> Callable[[World], str]:
    return lambda w: reverse(name, kwargs={"image_id": w.image.pk})


def _project_url(name: str) -> Callable[[World], str]:
    return lambda w: reverse(name, kwargs={"project_id": w.project.pk})


def _annotation_url(w: World) -> str:
    return reverse("api-annotation", kwargs={"annotation_id": w.proposal.pk})


API_ENTRIES = {
    "annotation create: polygons": Entry(
        "post",
        _image_url("api-image-annotations"),
        lambda w, x: (
            f'{{"class_id": {w.label_class.pk}, "box": [1, 1, 2, 2], "polygons": [[[{x}, 1, 2, 2, 3, 3]]]}}'
        ),
        "polygons[0][0][0]",
        "polygons",
    ),
    "annotation create: box": Entry(
        "post",
        _image_url("api-image-annotations"),
        lambda w, x: f'{{"class_id": {w.label_class.pk}, "box": [1, {x}, 2, 2]}}',
        "box[1]",
        "box",
    ),
    "annotation create: class_id": Entry(
        "post",
        _image_url("api-image-annotations"),
        lambda w, x: f'{{"class_id": {x}, "box": [1, 1, 2, 2]}}',
        "class_id",
        "class_id",
    ),
    "annotation edit: polygons": Entry(
        "patch",
        _annotation_url,
        lambda w, x: f'{{"polygons": [[[1, 1, 2, 2, 3, {x}]]]}}',
        "polygons[0][0][5]",
        "polygons",
        headers={"HTTP_IF_MATCH": '"1"'},
    ),
    "annotation edit: box": Entry(
        "patch",
        _annotation_url,
        lambda w, x: f'{{"box": [{x}, 1, 2, 2]}}',
        "box[0]",
        "box",
        headers={"HTTP_IF_MATCH": '"1"'},
    ),
    "annotation version": Entry(
        "post",
        lambda w: reverse("api-annotation-accept", kwargs={"annotation_id": w.proposal.pk}),
        lambda w, x: f'{{"version": {x}}}',
        "version",
        "version",
    ),
    "project thresholds": Entry(
        "patch",
        _project_url("api-project"),
        lambda w, x: f'{{"box_threshold": {x}}}',
        "box_threshold",
        "box_threshold",
    ),
    "class threshold": Entry(
        "post",
        _project_url("api-project-classes"),
        lambda w, x: f'{{"name": "mug", "box_threshold": {x}}}',
        "box_threshold",
        "box_threshold",
    ),
    "class max_instances": Entry(
        "post",
        _project_url("api-project-classes"),
        lambda w, x: f'{{"name": "mug", "max_instances": {x}}}',
        "max_instances",
        "max_instances",
    ),
    "review threshold": Entry(
        "post",
        _project_url("api-project-threshold"),
        lambda w, x: f'{{"box_threshold": {x}}}',
        "box_threshold",
        "box_threshold",
    ),
    "review threshold: class_id": Entry(
        "post",
        _project_url("api-project-threshold"),
        lambda w, x: f'{{"box_threshold": 0.5, "class_id": {x}}}',
        "class_id",
        "class_id",
    ),
    "export val_ratio": Entry(
        "post",
        _project_url("api-project-exports"),
        lambda w, x: f'{{"format": "yolo_detect", "options": {{"val_ratio": {x}}}}}',
        "options.val_ratio",
        "val_ratio",
    ),
    "export seed": Entry(
        "post",
        _project_url("api-project-exports"),
        lambda w, x: f'{{"format": "yolo_detect", "options": {{"seed": {x}}}}}',
        "options.seed",
        "seed",
    ),
    "export class_ids": Entry(
        "post",
        _project_url("api-project-exports"),
        lambda w, x: f'{{"format": "coco", "options": {{"class_ids": [{x}]}}}}',
        "options.class_ids[0]",
        "class_ids",
    ),
    "job thresholds": Entry(
        "post",
        _project_url("api-project-jobs"),
        lambda w, x: f'{{"text_threshold": {x}}}',
        "text_threshold",
        "text_threshold",
    ),
    "job class_ids": Entry(
        "post",
        _project_url("api-project-jobs"),
        lambda w, x: f'{{"class_ids": [{x}]}}',
        "class_ids[0]",
        "class_ids",
    ),
    "accept above": Entry(
        "post",
        _image_url("api-image-accept-above"),
        lambda w, x: f'{{"min_score": {x}}}',
        "min_score",
        "min_score",
    ),
    "segment points": Entry(
        "post",
        _image_url("api-image-segment"),
        lambda w, x: f'{{"points": [[5, {x}]], "labels": [1]}}',
        "points[0][1]",
        "points",
    ),
    "segment box": Entry(
        "post",
        _image_url("api-image-segment"),
        lambda w, x: f'{{"box": [1, 1, {x}, 2]}}',
        "box[2]",
        "box",
    ),
    "bulk states": Entry(
        "post",
        _image_url("api-image-annotation-states"),
        lambda w, x: f'{{"updates": [{{"id": {w.proposal.pk}, "version": {x}, "state": "accepted"}}]}}',
        "updates[0].version",
        "version",
    ),
}


def _send(client, entry: Entry, w: World, body: str):
    return getattr(client, entry.method)(
        entry.url(w), data=body, content_type="application/json", **(entry.headers or {})
    )


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("entry", sorted(API_ENTRIES))
def test_the_api_refuses_a_hostile_number_naming_where(api_for, world, entry, hostile):
    spec = API_ENTRIES[entry]
    client = api_for("manager")
    before = api_helpers.snapshot()
    response = _send(client, spec, world, spec.body(world, HOSTILE[hostile]))
    assert response.status_code == 400, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert (spec.path if hostile in PARSER_REFUSED else spec.field) in error, error
    assert api_helpers.snapshot() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 100_000, "nested more than 64 levels deep"),
        ('{"box": ' + "[" * 70 + "]" * 70 + "}", "box[0][0][0]"),
        ('{"box": [1, 1, 2, 2], "polygons": [' + "[" * 63 + "]" * 63 + "]}", "nested more than 64"),
        ('{"polygons": [[[' + ",".join(["1"] * 2_000_000) + "]]]}", "more than 200000 coordinates"),
        ('{"polygons": [[' + ",".join(["[1,1,2,2,3,3]"] * 40_000) + "]]}", "more than 200000 coordinates"),
        ('{"box": [NaN, 1, 2, 2]}', "box[0]: NaN is not a JSON number"),
        ('{"box": [Infinity, 1, 2, 2]}', "box[0]: Infinity is not a JSON number"),
    ],
    ids=["10^5 brackets", "70 levels", "65 levels", "2M-value polygon", "40k rings", "NaN", "Infinity"],
)
def test_the_api_refuses_deep_or_huge_bodies(api_for, world, body, message):
    url = reverse("api-image-annotations", kwargs={"image_id": world.image.pk})
    response = api_for("manager").post(url, data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert message in response.json()["error"]


@pytest.mark.parametrize("hostile", ["1" * 400, "1" * 5000, "١", "-3", "0"])
def test_a_hostile_if_match_header_is_a_400_naming_it(api_for, world, hostile):
    url = reverse("api-annotation", kwargs={"annotation_id": world.proposal.pk})
    response = api_for("manager").patch(
        url, data={"state": "accepted"}, format="json", HTTP_IF_MATCH=f'"{hostile}"'
    )
    assert response.status_code == 400
    assert "If-Match" in response.json()["error"]


@pytest.mark.parametrize("hostile", ["1" * 400, "1" * 5000, "9" * 20, "1e400", "-1"])
def test_a_hostile_query_number_is_a_400_naming_it(api_for, world, hostile):
    url = reverse("api-project-images", kwargs={"project_id": world.project.pk})
    response = api_for("manager").get(url, {"class_id": hostile})
    assert response.status_code == 400
    assert "class_id" in response.json()["error"]


# Pages ----------------------------------------------------------------------------------------

PAGE_HOSTILE = ["1" * 400, "1" * 5000, "9" * 20, "1e400", "nan", "-inf", "1e300"]

PROJECT_FORM = {
    **PROJECT_FIELDS,
    "name": "Kitchen",
    "description": "",
    "classes-TOTAL_FORMS": "1",
    "classes-INITIAL_FORMS": "0",
    "classes-MIN_NUM_FORMS": "0",
    "classes-MAX_NUM_FORMS": "1000",
    "classes-0-name": "mug",
    "classes-0-prompt": "",
    "classes-0-color": "#ff0000",
    "classes-0-box_threshold": "",
}


@pytest.mark.parametrize("hostile", PAGE_HOSTILE)
@pytest.mark.parametrize(
    "field", ["box_threshold", "text_threshold", "keep_threshold", "classes-0-box_threshold"]
)
def test_the_project_form_refuses_a_hostile_threshold_as_a_form_error(
    client_for, manager, world, field, hostile
):
    before = api_helpers.snapshot()
    response = client_for(manager).post(
        reverse("project-edit", args=[world.project.pk]), {**PROJECT_FORM, field: hostile}
    )
    assert response.status_code == 400
    if field.startswith("classes-"):
        errors = response.context["formset"].forms[0].errors
    else:
        errors = response.context["form"].errors
    assert field.removeprefix("classes-0-") in errors
    assert api_helpers.snapshot() == before


@pytest.mark.parametrize("hostile", PAGE_HOSTILE)
@pytest.mark.parametrize("field", ["class_id", "box_threshold"])
def test_the_dashboard_threshold_form_refuses_a_hostile_number(client_for, manager, world, field, hostile):
    data = {"class_id": str(world.label_class.pk), "box_threshold": "0.5", field: hostile}
    response = client_for(manager).post(
        reverse("dashboard-apply-threshold", args=[world.project.pk]), data, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert field in response.content.decode()


@pytest.mark.parametrize("hostile", PAGE_HOSTILE)
@pytest.mark.parametrize("field", ["val_ratio", "seed", "classes"])
def test_the_export_form_refuses_a_hostile_number(client_for, manager, world, field, hostile):
    before = api_helpers.snapshot()
    name = field if field == "classes" else f"yolo_detect-{field}"  # a format's own fields
    response = client_for(manager).post(
        reverse("project-export", args=[world.project.pk]), {"format": "yolo_detect", name: hostile}
    )
    assert response.status_code == 400
    assert field.rstrip("es") in response.content.decode()
    assert api_helpers.snapshot() == before


# Dataset readers --------------------------------------------------------------------------------

COCO_HEAD = '{{"images": [{{"id": 1, "file_name": "a.png"}}], "categories": [{{"id": 1, "name": "cat"}}], '
COCO_ANNOTATION = '"annotations": [{{"image_id": 1, "category_id": 1, '
COCO_PLACES = {
    "bbox": (COCO_HEAD + COCO_ANNOTATION + '"bbox": [1, {x}, 3, 4]}}]}}', "annotations[0].bbox[1]"),
    "score": (
        COCO_HEAD + COCO_ANNOTATION + '"bbox": [1, 2, 3, 4], "score": {x}}}]}}',
        "annotations[0].score",
    ),
    "image id": (
        '{{"images": [{{"id": {x}, "file_name": "a.png"}}], "categories": [], "annotations": []}}',
        "images[0].id",
    ),
    "segmentation": (
        COCO_HEAD + COCO_ANNOTATION + '"segmentation": [[1, 1, 2, 2, 3, {x}]]}}]}}',
        "annotations[0].segmentation[0][5]",
    ),
}


@pytest.mark.parametrize("hostile", sorted(PARSER_REFUSED))
@pytest.mark.parametrize("place", sorted(COCO_PLACES))
def test_the_coco_reader_refuses_a_hostile_number_with_its_path(place, hostile):
    template, path = COCO_PLACES[place]
    data = template.format(x=PARSER_REFUSED[hostile]).encode()
    with pytest.raises(FormatError) as refused:
        coco_import.read(io.BytesIO(data), "d.json")
    assert f"d.json: {path}: " in str(refused.value)


@pytest.mark.parametrize(
    "data",
    [b"[" * 100_000, b'{"images": ' + b"[" * 70 + b"]" * 70 + b"}"],
    ids=["10^5 brackets", "70 levels"],
)
def test_the_coco_reader_refuses_deep_nesting(data):
    with pytest.raises(FormatError, match="nested more than 64 levels deep"):
        coco_import.read(io.BytesIO(data), "d.json")


DATA_YAML = "names: [cat, dog]\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 " + " ".join(["0.5"] * 1_000_000), "more than 200000 numbers on one line"),
        ("0 0.5 0.5 " + "1" * 400 + " 0.1", "a number longer than 32 characters"),
        ("1" * 5000 + " 0.5 0.5 0.1 0.1", "a number longer than 32 characters"),
        ("0 0.5 0.5 1e400 0.1", "normalised coordinates must be in [0, 1]"),
        ("0 0.5 0.5 nan 0.1", "normalised coordinates must be in [0, 1]"),
    ],
    ids=["1M-point line", "400-digit value", "5000-digit class", "1e400", "nan"],
)
def test_the_yolo_reader_refuses_a_hostile_line_with_its_location(line, message, settings):
    # A line of a million "0.5"s compresses ~500 times: the zip-bomb ratio cap would refuse the
    # entry before its lines are read; this test is about the line's own caps.
    settings.LABELGPT_ZIP_MAX_RATIO = 10_000
    archive = zip_bytes({"data.yaml": DATA_YAML, "labels/a.txt": f"0 0.5 0.5 0.1 0.1\n{line}\n"})
    dataset = yolo_import.read(io.BytesIO(archive), "y.zip")
    assert any(where == "labels/a.txt line 2" and message in what for where, what in dataset.errors)
    assert len(dataset.annotations) == 1  # the good line


@pytest.mark.parametrize("hostile", ["1" * 400, "1" * 5000, "1e400", "nan"])
def test_the_voc_reader_refuses_a_hostile_box_with_its_location(hostile):
    xml = (
        "<annotation><filename>a.png</filename><object><name>cat</name><bndbox>"
        f"<xmin>{hostile}</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    dataset = voc_import.read(io.BytesIO(zip_bytes({"Annotations/a.xml": xml})), "v.zip")
    assert dataset.errors == [
        ("Annotations/a.xml object 1 (cat) <bndbox>", "needs xmin, ymin, xmax and ymax as numbers.")
    ]
