"""Click-to-segment: POST /images/<id>/segment/ (points / labels / box → a mask on the cached
embedding; 202 while the embedding is being computed)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from inference.masks import rle_to_mask
from labeling import segmentation
from tests.labeling.conftest import ingest_photos

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models", "task_calls")]

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def image(project):
    """chelsea: 451 × 300."""
    (image,) = ingest_photos(project, [("chelsea", "")])
    assert (image.width, image.height) == (451, 300)
    return image


@pytest.fixture
def cached(image):
    assert segmentation.embeddings_compute(image_ids=[image.pk]) == 1
    return image


def segment_url(image) -> str:
    return reverse("image-segment", kwargs={"image_id": image.pk})


def post_json(client, image, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(segment_url(image), data=data, content_type="application/json", **extra)


CLICK = {"points": [[200, 150]], "labels": [1]}


# Access --------------------------------------------------------------------------------------------------


def test_an_outsider_gets_404(client_for, outsider, cached, task_calls):
    response = post_json(client_for(outsider), cached, CLICK)
    assert response.status_code == 404
    assert task_calls.calls == []


def test_an_anonymous_click_goes_to_the_login_page(client, cached):
    response = post_json(client, cached, CLICK)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == reverse("login")


def test_an_unknown_image_is_404(client_for, annotator, cached):
    response = client_for(annotator).post(
        reverse("image-segment", kwargs={"image_id": cached.pk + 1000}),
        data=json.dumps(CLICK),
        content_type="application/json",
    )
    assert response.status_code == 404


def test_it_needs_a_post(client_for, annotator, cached):
    assert client_for(annotator).get(segment_url(cached)).status_code == 405


# Refused input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"points": [[1, 2]', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[[1, 2]]", "must be a JSON object"),
        ({**CLICK, "color": "red"}, "Unknown field(s): color."),
        ({"points": [[500, 10]], "labels": [1]}, "Point (500, 10) is outside the 451 × 300 image."),
        ({"points": [[10, -1]], "labels": [1]}, "outside"),
        ({"points": [[10, 10], [20, 20]], "labels": [1]}, "Give one label per point."),
        ({"points": [[10, 10]]}, "Give one label per point."),
        ({"points": [[10, 10]], "labels": [2]}, "labels must be a list of 1 (positive) and 0 (negative)."),
        ({"points": [[10, 10]], "labels": [True]}, "labels must be"),
        ({"points": [[10, "x"]], "labels": [1]}, "points must be a list of [x, y] pairs of numbers."),
        ({"points": [[10, 10, 3]], "labels": [1]}, "points must be"),
        ({}, "Give at least one point or a box."),
        ({"points": [], "labels": []}, "Give at least one point or a box."),
        ({"box": [400, 10, 100, 50]}, "goes past the image's 451 × 300 pixels"),
        ({"box": [10, 10, 0, 50]}, "must be positive"),
        ({"box": [10, 10, 50]}, "box must be [x, y, width, height] in pixels."),
    ],
)
def test_it_refuses_bad_input_with_its_reason(client_for, annotator, cached, task_calls, body, reason):
    response = post_json(client_for(annotator), cached, body)

    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert task_calls.calls == []


# Answers ---------------------------------------------------------------------------------------------------


def test_without_an_embedding_it_answers_202_and_queues_the_embedding(
    client_for, annotator, image, task_calls
):
    response = post_json(client_for(annotator), image, CLICK)

    assert response.status_code == 202
    assert response["Retry-After"] == "2"
    assert response.json()["status"] == "preparing"
    assert task_calls.of("gpu_embed_images") == [([image.pk],)]
    # Asking again while it is computed does not queue it twice.
    assert post_json(client_for(annotator), image, CLICK).status_code == 202
    assert len(task_calls.of("gpu_embed_images")) == 1


def test_with_a_cached_embedding_it_answers_the_mask(client_for, annotator, cached, task_calls):
    response = post_json(client_for(annotator), cached, {"points": [[200, 150], [10, 10]], "labels": [1, 0]})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    mask = rle_to_mask(body["mask"])
    assert mask.shape == (300, 451)
    assert body["area"] == int(mask.sum()) > 0
    assert body["polygons"] and all(len(ring) >= 6 for part in body["polygons"] for ring in part)
    x, y, w, h = body["box"]
    assert x >= 0 and y >= 0 and x + w <= 451 and y + h <= 300
    assert isinstance(body["score"], float)
    assert task_calls.calls == []


def test_a_box_alone_gives_a_mask_too(client_for, annotator, cached):
    response = post_json(client_for(annotator), cached, {"box": [100, 50, 200, 150]})
    assert response.status_code == 200
    assert rle_to_mask(response.json()["mask"]).shape == (300, 451)


def test_form_fields_work_like_json(client_for, annotator, cached):
    as_json = post_json(client_for(annotator), cached, CLICK).json()
    as_form = client_for(annotator).post(segment_url(cached), {"points": "[[200, 150]]", "labels": "[1]"})

    assert as_form.status_code == 200
    assert as_form.json()["mask"] == as_json["mask"]


def test_an_htmx_click_gets_the_mask_as_svg(client_for, annotator, cached):
    response = post_json(client_for(annotator), cached, CLICK, **HTMX)

    assert response.status_code == 200
    text = response.content.decode().strip()
    assert text.startswith('<svg class="segment-result" viewBox="0 0 451 300"')
    assert re.search(r'data-area="[1-9]\d*"', text)
    assert re.search(r'<path fill-rule="evenodd" d="M[\d.]+,[\d.]+ ', text)


def test_an_unusable_segmenter_answers_503_with_the_reason(client_for, annotator, image, settings):
    settings.LABELGPT_MODELS = "real"
    image.project.segmenter = "vit_giant"
    image.project.save()

    response = post_json(client_for(annotator), image, CLICK)

    assert response.status_code == 503
    assert 'Unknown segmenter "vit_giant"' in response.json()["error"]
