"""Mask editing through the API (static/js/brush.js, static/js/vertices.js): a painted mask sent
alone has its polygons and box derived on the server, edited polygons sent alone have the mask
rasterised again and their box derived; an empty result is refused with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from inference.masks import mask_to_rle, polygons_to_mask, rle_to_mask
from labeling.models import Annotation
from tests.labeling.review_helpers import HEIGHT, WIDTH, add_annotation, annotation_url, call, rle_of_box

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client_for, annotator):
    return client_for(annotator)


def stored(annotation: Annotation) -> Annotation:
    annotation.refresh_from_db()
    return annotation


def test_a_painted_mask_alone_gets_its_polygons_and_box_from_the_server(api, image):
    annotation = add_annotation(image, box=(4, 5, 20, 10), mask=rle_of_box((4, 5, 20, 10)),
                                polygons=[[[4, 5, 24, 5, 24, 15, 4, 15]]])  # fmt: skip
    painted = rle_to_mask(rle_of_box((4, 5, 20, 10)))
    painted[20:30, 30:40] = True  # a second part, brushed in
    painted[6:8, 6:8] = False  # a small hole, erased: kept (the painted pixels are the truth)
    rle = mask_to_rle(painted)

    response = call(api, "patch", annotation_url(annotation.pk), {"mask": rle, "polygons": None}, version=1)

    assert response.status_code == 200, response.content
    saved = stored(annotation)
    np.testing.assert_array_equal(rle_to_mask(saved.mask), painted)
    assert saved.box == (4.0, 5.0, 36.0, 25.0)
    assert len(saved.polygons) == 2
    traced = polygons_to_mask(saved.polygons, HEIGHT, WIDTH)
    assert (traced & painted).sum() / (traced | painted).sum() > 0.97
    assert response.json()["polygons"] == saved.polygons and response.json()["box"] == list(saved.box)


def test_edited_polygons_alone_rasterise_the_mask_again_and_give_the_box(api, image):
    annotation = add_annotation(image, box=(4, 5, 20, 10), mask=rle_of_box((4, 5, 20, 10)),
                                polygons=[[[4, 5, 24, 5, 24, 15, 4, 15]]])  # fmt: skip
    moved = [[[4, 5, 24, 5, 30, 20, 4, 15]]]  # one vertex dragged down and right

    response = call(api, "patch", annotation_url(annotation.pk), {"polygons": moved}, version=1)

    assert response.status_code == 200, response.content
    saved = stored(annotation)
    assert saved.polygons == moved
    assert saved.box == (4.0, 5.0, 26.0, 15.0)
    np.testing.assert_array_equal(rle_to_mask(saved.mask), polygons_to_mask(moved, HEIGHT, WIDTH))
    assert saved.original_mask == rle_of_box((4, 5, 20, 10)), "the model's mask is kept"


def test_polygons_of_an_imported_annotation_without_a_mask_stay_without_one(api, image):
    annotation = add_annotation(image, box=(4, 5, 20, 10), polygons=[[[4, 5, 24, 5, 24, 15, 4, 15]]],
                                source=Annotation.Source.IMPORT, state=Annotation.State.ACCEPTED)  # fmt: skip
    moved = [[[2, 3, 24, 5, 24, 15, 4, 15]]]
    response = call(api, "patch", annotation_url(annotation.pk), {"polygons": moved}, version=1)
    assert response.status_code == 200
    saved = stored(annotation)
    assert (saved.mask, saved.polygons, saved.box) == (None, moved, (2.0, 3.0, 22.0, 12.0))


def test_a_box_given_with_the_geometry_is_kept(api, image):
    annotation = add_annotation(image, box=(4, 5, 20, 10), mask=rle_of_box((4, 5, 20, 10)))
    body = {"mask": rle_of_box((4, 5, 10, 10)), "box": [1, 1, 30, 30]}
    assert call(api, "patch", annotation_url(annotation.pk), body, version=1).status_code == 200
    assert stored(annotation).box == (1.0, 1.0, 30.0, 30.0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"mask": mask_to_rle(np.zeros((HEIGHT, WIDTH), dtype=bool))}, "The mask is empty"),
        ({"polygons": [[[70, 60, 80, 60, 80, 70]]]}, "goes outside"),
        ({"polygons": [[[4, 5, 4, 5, 4, 5]]]}, "The polygons are empty"),
    ],
)
def test_an_edit_that_leaves_nothing_is_refused_with_its_reason(api, image, body, reason):
    annotation = add_annotation(image, box=(4, 5, 20, 10), mask=rle_of_box((4, 5, 20, 10)))
    response = call(api, "patch", annotation_url(annotation.pk), body, version=1)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert stored(annotation).version == 1
