"""Click-to-segment: POST /api/v1/images/<id>/segment/ (points / labels / box → a mask on the
cached embedding; 202 while the embedding is being computed), as the review page calls it (the
session) and as scripts do (a token)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from inference import registry
from inference.masks import encode_mask, rle_to_mask
from labeling import queues
from labeling.models import Image
from labeling.services import segmentation
from labeling.services.prelabel import embedding_cache
from tests.labeling.conftest import ingest_photos

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models", "task_calls")]


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
    return reverse("api-image-segment", kwargs={"image_id": image.pk})


def post_json(client, image, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(segment_url(image), data=data, content_type="application/json", **extra)


CLICK = {"points": [[200, 150]], "labels": [1]}


# Access --------------------------------------------------------------------------------------------------


def test_an_outsider_gets_404(client_for, outsider, cached, task_calls):
    response = post_json(client_for(outsider), cached, CLICK)
    assert response.status_code == 404
    assert task_calls.calls == []


def test_an_anonymous_click_gets_401_json(client, cached, task_calls):
    response = post_json(client, cached, CLICK)
    assert response.status_code == 401
    assert response.json()["error"]
    assert task_calls.calls == []


def test_an_unknown_image_is_404(client_for, annotator, cached):
    response = client_for(annotator).post(
        reverse("api-image-segment", kwargs={"image_id": cached.pk + 1000}),
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
        ({"box": [10, 10, 50]}, "box must be [x, y, width, height] in pixels"),
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
    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == [([image.pk],)]
    # Asking again while it is computed does not queue it twice.
    assert post_json(client_for(annotator), image, CLICK).status_code == 202
    assert len(task_calls.of(queues.EMBEDDINGS_COMPUTE)) == 1


def test_with_a_cached_embedding_it_answers_the_mask(client_for, annotator, cached, task_calls):
    response = post_json(client_for(annotator), cached, {"points": [[200, 150], [10, 10]], "labels": [1, 0]})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    mask = rle_to_mask(body["mask"])
    assert mask.shape == (300, 451)
    assert body["area"] == int(mask.sum()) > 0
    # Polygons when the mask is clean enough to trace faithfully; [] (RLE only) for the tiny
    # model's fragmented masks.
    assert isinstance(body["polygons"], list)
    assert all(len(ring) >= 6 for part in body["polygons"] for ring in part)
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


def test_a_segmenter_not_in_the_list_answers_503_naming_it(client_for, annotator, image, settings):
    settings.LABELGPT_MODELS = "real"
    image.project.segmenter = "vit_giant"  # stored before the lists existed: save() does not clean
    image.project.save()

    response = post_json(client_for(annotator), image, CLICK)

    assert response.status_code == 503
    assert 'The segmenter "vit_giant" is not available on this server.' in response.json()["error"]


# The interactive queue -------------------------------------------------------------------------------------


def test_review_embeddings_go_to_the_interactive_queue_not_behind_pre_label_batches():
    from webapp.celery import app

    router = app.amqp.router
    assert router.route({}, "labeling.tasks.embeddings_compute")["queue"].name == "interactive"
    assert router.route({}, "labeling.tasks.prelabel_batch_run")["queue"].name == "gpu"
    assert {queue.name for queue in app.conf.task_queues} >= {"default", "gpu", "interactive"}


# Without weights: a clear answer at once, no loop, no download, no encoder ---------------------------------


@pytest.fixture
def spies(monkeypatch):
    """Records any checkpoint download and any SAM image encoder built in this process."""
    from segment_anything.modeling import ImageEncoderViT

    from inference import download

    seen = {"downloads": [], "encoders": 0}

    def no_download(url, *args, **kwargs):
        seen["downloads"].append(url)
        raise AssertionError(f"the web process tried to download {url}")

    real_init = ImageEncoderViT.__init__

    def counting_init(self, *args, **kwargs):
        seen["encoders"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(download, "fetch_checkpoint", no_download)
    monkeypatch.setattr(ImageEncoderViT, "__init__", counting_init)
    return seen


@pytest.fixture
def without_weights(image, settings, tmp_path):
    """A real-size vit_b project on a server where no checkpoint was given (the default)."""
    from inference import registry

    settings.LABELGPT_MODELS = "real"
    settings.LABELGPT_MODELS_DIR = tmp_path / "models"  # empty: nothing downloaded before
    settings.LABELGPT_SAM_CHECKPOINTS = {}
    image.project.segmenter = "vit_b"
    image.project.save()
    registry.clear()
    yield image
    registry.clear()


def test_without_sam_weights_a_click_answers_503_with_what_to_set_at_once(
    client_for, annotator, without_weights, spies, task_calls
):
    client = client_for(annotator)
    answers = [post_json(client, without_weights, CLICK) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [503, 503, 503]  # never 202: no loop
    error = answers[0].json()["error"]
    assert error.startswith("Click-to-segment is not available")
    assert "LABELGPT_SAM_CHECKPOINT_VIT_B" in error
    assert spies == {"downloads": [], "encoders": 0}
    assert task_calls.calls == []  # nothing queued that could only fail


def test_without_sam_weights_the_api_answers_503_too(without_weights, annotator, spies):
    from tests.labeling.api_helpers import token_client

    response = token_client(annotator).post(
        f"/api/v1/images/{without_weights.pk}/segment/", CLICK, format="json"
    )

    assert response.status_code == 503
    assert "LABELGPT_SAM_CHECKPOINT_VIT_B" in response.json()["error"]
    assert spies == {"downloads": [], "encoders": 0}


def test_a_click_on_a_cached_embedding_never_builds_the_image_encoder(client_for, annotator, cached, spies):
    from inference import registry

    registry.clear()  # the decoder is loaded by this click, with the spy in place

    response = post_json(client_for(annotator), cached, CLICK)

    assert response.status_code == 200
    assert spies["encoders"] == 0


# A failed embedding: its reason, once, until it is tried again ---------------------------------------------


def _failing_segmenter(monkeypatch, error):
    from inference import registry

    calls = []

    def refuse(config, name):
        calls.append(name)
        raise error

    monkeypatch.setattr(registry, "get_segmenter", refuse)
    return calls


def test_when_the_worker_cannot_load_sam_the_click_says_why_and_queues_nothing_more(
    client_for, annotator, project, image, monkeypatch, task_calls
):
    from inference.errors import ModelLoadError

    (second,) = ingest_photos(project, [("coffee", "")])
    calls = _failing_segmenter(monkeypatch, ModelLoadError("Checkpoint /srv/sam_vit_b.pth does not exist."))
    assert segmentation.embeddings_compute(image_ids=[image.pk, second.pk]) == 0
    assert len(calls) == 1  # tried once for the whole batch, not once per image
    client = client_for(annotator)

    response = post_json(client, image, CLICK)

    assert response.status_code == 503
    assert "Checkpoint /srv/sam_vit_b.pth does not exist." in response.json()["error"]
    assert post_json(client, second, CLICK).status_code == 503  # every image of that segmenter
    assert task_calls.calls == []
    assert segmentation.embeddings_prefetch(image=image) == []


def test_try_again_forgets_the_failure_and_queues_the_embedding(
    client_for, annotator, image, monkeypatch, task_calls
):
    from inference.errors import ModelLoadError

    _failing_segmenter(monkeypatch, ModelLoadError("no weights"))
    segmentation.embeddings_compute(image_ids=[image.pk])
    client = client_for(annotator)
    assert post_json(client, image, CLICK).status_code == 503

    response = post_json(client, image, {**CLICK, "retry": True})

    assert response.status_code == 202
    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == [([image.pk],)]
    monkeypatch.undo()  # the admin has fixed the weights: the worker's next try works
    assert segmentation.embeddings_compute(image_ids=[image.pk]) == 1
    assert post_json(client, image, CLICK).status_code == 200


def test_a_failure_is_forgotten_after_its_time_to_live(client_for, annotator, image, monkeypatch, task_calls):
    from inference.errors import ModelLoadError

    _failing_segmenter(monkeypatch, ModelLoadError("no weights"))
    segmentation.embeddings_compute(image_ids=[image.pk])
    monkeypatch.setattr(segmentation, "EMBEDDING_FAILURE_TTL", -1)

    assert post_json(client_for(annotator), image, CLICK).status_code == 202
    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == [([image.pk],)]


def test_an_unreadable_image_answers_422_with_the_reason(client_for, annotator, image, task_calls):
    with open(image.file.path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n truncated")
    assert segmentation.embeddings_compute(image_ids=[image.pk]) == 0

    response = post_json(client_for(annotator), image, CLICK)

    assert response.status_code == 422
    assert response.json()["error"].startswith("This image cannot be read to segment it:")
    assert task_calls.calls == []


def test_an_embedding_that_raises_anything_answers_503_with_the_reason(
    client_for, annotator, project, image, monkeypatch
):
    from inference import registry

    coffee, rocket = ingest_photos(project, [("coffee", ""), ("rocket", "")])
    real = registry.get_segmenter(segmentation.model_config(), project.segmenter)
    batches = []

    class OutOfMemory:
        def embed_batch(self, images):
            batches.append(len(images))
            if any(pil.size == (451, 300) for pil in images):  # chelsea
                raise RuntimeError("CUDA out of memory")
            return real.embed_batch(images)

    segmenter = OutOfMemory()
    monkeypatch.setattr(registry, "get_segmenter", lambda config, name: segmenter)
    # The image asked for first, alone; the others in one batch, which fails: then one by one.
    assert segmentation.embeddings_compute(image_ids=[coffee.pk, image.pk, rocket.pk]) == 2
    assert batches == [1, 2, 1, 1]

    response = post_json(client_for(annotator), image, CLICK)

    assert response.status_code == 503
    assert "RuntimeError: CUDA out of memory" in response.json()["error"]
    assert post_json(client_for(annotator), coffee, CLICK).status_code == 200
    assert post_json(client_for(annotator), rocket, CLICK).status_code == 200


def test_embeddings_made_in_a_batch_equal_those_made_one_by_one(project, image, settings, tmp_path):
    from inference.embeddings import EmbeddingCache

    others = ingest_photos(project, [("coffee", ""), ("rocket", "")])
    ids = [image.pk, *(other.pk for other in others)]
    assert segmentation.embeddings_compute(image_ids=ids) == 3  # 1, then a batch of 2
    batched = EmbeddingCache(settings.MEDIA_ROOT / "embeddings")
    settings.LABELGPT_EMBEDDINGS_DIR = str(tmp_path / "one-by-one")
    for pk in ids:
        assert segmentation.embeddings_compute(image_ids=[pk]) == 1
    single = EmbeddingCache(tmp_path / "one-by-one")
    for row in Image.objects.filter(pk__in=ids):
        a, b = batched.get(row.sha256, "tiny"), single.get(row.sha256, "tiny")
        assert a.original_size == b.original_size and a.input_size == b.input_size
        np.testing.assert_allclose(a.features, b.features, atol=2e-3)  # stored as float16


# Click quality: the previous click's mask, refining an annotation ------------------------------------------


class DecoderSpy:
    """The real click segmenter, with the prompts of every mask_from_prompts call recorded."""

    def __init__(self, decoder) -> None:
        self.decoder = decoder
        self.calls: list[dict] = []
        self.predictions: list = []

    def mask_from_prompts(self, embedding, **prompts):
        self.calls.append(prompts)
        prediction = self.decoder.mask_from_prompts(embedding, **prompts)
        self.predictions.append(prediction)
        return prediction

    def mask_input_from_mask(self, embedding, mask):
        return self.decoder.mask_input_from_mask(embedding, mask)


@pytest.fixture
def decoder_spy(monkeypatch, cached):
    from inference import registry

    real = registry.get_click_segmenter
    spy = DecoderSpy(real(segmentation.model_config(), cached.project.segmenter))
    monkeypatch.setattr(registry, "get_click_segmenter", lambda config, name: spy)
    return spy


def test_the_next_click_on_the_same_object_starts_from_the_previous_mask(
    client_for, annotator, manager, cached, decoder_spy
):
    client = client_for(annotator)
    first = post_json(client, cached, {**CLICK, "object": "obj-1"})
    second = post_json(
        client, cached, {"points": [[200, 150], [60, 40]], "labels": [1, 0], "object": "obj-1"}
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert decoder_spy.calls[0]["mask_input"] is None
    fed_back = decoder_spy.calls[1]["mask_input"]
    previous = decoder_spy.predictions[0].low_res_logits
    assert fed_back.ndim == 2 and fed_back.shape == previous.shape  # 256 × 256 for the real models
    np.testing.assert_allclose(fed_back, previous, rtol=1e-3, atol=1e-2)  # kept as float16
    # Another object, or the same token from another user: from scratch.
    post_json(client, cached, {**CLICK, "object": "obj-2"})
    post_json(client_for(manager), cached, {**CLICK, "object": "obj-1"})
    assert decoder_spy.calls[2]["mask_input"] is None
    assert decoder_spy.calls[3]["mask_input"] is None


def test_without_an_object_token_every_click_starts_from_scratch(client_for, annotator, cached, decoder_spy):
    client = client_for(annotator)
    post_json(client, cached, CLICK)
    post_json(client, cached, CLICK)
    assert [call["mask_input"] for call in decoder_spy.calls] == [None, None]


def test_scores_are_never_negative(client_for, annotator, cached, decoder_spy, monkeypatch):
    real = decoder_spy.mask_from_prompts

    def negative(embedding, **prompts):
        prediction = real(embedding, **prompts)
        prediction.score = -0.25
        return prediction

    monkeypatch.setattr(decoder_spy, "mask_from_prompts", negative)
    assert post_json(client_for(annotator), cached, CLICK).json()["score"] == 0.0


def _annotation(image, *, mask=None, box=(120, 60, 200, 180)):
    from inference.masks import mask_to_rle
    from labeling.models import Annotation

    return Annotation.objects.create(
        image=image, label_class=image.project.classes.first(), x=box[0], y=box[1], w=box[2], h=box[3],
        mask=mask_to_rle(mask) if mask is not None else None, score=0.6,
        source=Annotation.Source.MODEL, state=Annotation.State.PROPOSED,
    )  # fmt: skip


def test_refining_an_annotation_starts_from_its_box_and_mask(client_for, annotator, cached, decoder_spy):
    mask = np.zeros((300, 451), dtype=bool)
    mask[80:220, 140:300] = True
    annotation = _annotation(cached, mask=mask)
    client = client_for(annotator)

    response = post_json(client, cached, {"annotation": annotation.pk, "object": "r1"})
    again = post_json(client, cached, {"annotation": annotation.pk, "object": "r1", **CLICK})

    assert response.status_code == again.status_code == 200
    assert response.json()["refined"] == annotation.pk
    first, second = decoder_spy.calls
    assert first["box"] == annotation.box and second["box"] == annotation.box
    expected = decoder_spy.decoder.mask_input_from_mask(embedding_cache().get(cached.sha256, "tiny"), mask)
    np.testing.assert_allclose(first["mask_input"], expected, atol=1e-6)
    # The added click starts from the refined mask, not from the stored one again.
    np.testing.assert_allclose(
        second["mask_input"], decoder_spy.predictions[0].low_res_logits, rtol=1e-3, atol=1e-2
    )
    assert list(second["points"]) == [(200.0, 150.0)]


def test_refining_an_annotation_without_a_mask_starts_from_its_box(
    client_for, annotator, cached, decoder_spy
):
    annotation = _annotation(cached)
    response = post_json(client_for(annotator), cached, {"annotation": annotation.pk})
    assert response.status_code == 200
    assert decoder_spy.calls[0]["box"] == annotation.box
    assert decoder_spy.calls[0]["mask_input"] is None


def test_refining_an_annotation_of_another_image_is_refused(
    client_for, annotator, project, cached, decoder_spy
):
    (other,) = ingest_photos(project, [("coffee", "")])
    annotation = _annotation(other)

    response = post_json(client_for(annotator), cached, {"annotation": annotation.pk})

    assert response.status_code == 400
    assert f"Annotation {annotation.pk} is not on this image" in response.json()["error"]
    assert decoder_spy.calls == []


def test_refining_an_annotation_the_user_cannot_see_is_404(
    client_for, annotator, outsider, cached, decoder_spy
):
    from labeling.services.projects import project_create

    foreign_project = project_create(user=outsider, name="Theirs", classes=[{"name": "dog"}])
    (foreign_image,) = ingest_photos(foreign_project, [("coffee", "")])
    foreign = _annotation(foreign_image)

    page = post_json(client_for(annotator), cached, {"annotation": foreign.pk})
    missing = post_json(client_for(annotator), cached, {"annotation": foreign.pk + 1000})

    assert page.status_code == missing.status_code == 404
    assert decoder_spy.calls == []


def test_the_api_refines_and_reuses_the_previous_mask_too(annotator, cached, decoder_spy):
    from tests.labeling.api_helpers import token_client

    annotation = _annotation(cached)
    api = token_client(annotator)
    url = f"/api/v1/images/{cached.pk}/segment/"

    first = api.post(url, {"annotation": annotation.pk, "object": "a"}, format="json")
    second = api.post(url, {"annotation": annotation.pk, "object": "a", **CLICK}, format="json")
    wrong = api.post(url, {**CLICK, "object": "not a token!"}, format="json")

    assert (first.status_code, second.status_code, wrong.status_code) == (200, 200, 400)
    assert decoder_spy.calls[0]["box"] == annotation.box
    assert decoder_spy.calls[1]["mask_input"] is not None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**CLICK, "object": "has spaces"}, "object must be 1 to 64 letters, digits, - or _."),
        ({**CLICK, "object": 5}, "object must be a string."),
        ({**CLICK, "retry": "yes"}, "retry must be true or false."),
        ({**CLICK, "annotation": "12"}, "annotation must be the id of an annotation of this image."),
        ({**CLICK, "annotation": True}, "annotation must be the id"),
        ({**CLICK, "annotation": 0}, "annotation"),
    ],
)
def test_it_refuses_bad_refine_and_object_input_with_its_reason(client_for, annotator, cached, body, reason):
    response = post_json(client_for(annotator), cached, body)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_the_mask_polygons_stay_inside_the_image_so_that_they_can_be_saved(client_for, annotator, cached):
    # Two clicks whose mask (tiny SAM) touches the image's borders.
    client = client_for(annotator)
    body = post_json(client, cached, {"points": [[200, 150], [40, 40]], "labels": [1, 0]}).json()
    rings = [ring for part in body["polygons"] for ring in part]
    assert all(0 <= v <= 451 for ring in rings for v in ring[0::2])
    assert all(0 <= v <= 300 for ring in rings for v in ring[1::2])

    saved = client.post(
        reverse("api-image-annotations", kwargs={"image_id": cached.pk}),
        data=json.dumps(
            {
                "class_id": cached.project.classes.first().pk,
                "box": body["box"],
                "mask": body["mask"],
                "polygons": body["polygons"],
            }
        ),
        content_type="application/json",
    )
    assert saved.status_code == 201, saved.content


def test_refining_an_image_someone_else_holds_is_refused_with_their_name(
    client_for, annotator, manager, cached, decoder_spy
):
    annotation = _annotation(cached)
    held = timezone.now() + timedelta(minutes=5)
    Image.objects.filter(pk=cached.pk).update(assignee=manager, lease_expires_at=held)

    refused = post_json(client_for(annotator), cached, {"annotation": annotation.pk, **CLICK})
    holder = post_json(client_for(manager), cached, {"annotation": annotation.pk, **CLICK})
    Image.objects.filter(pk=cached.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    expired = post_json(client_for(annotator), cached, {"annotation": annotation.pk, **CLICK})

    assert refused.status_code == 403
    assert f"{manager.username} is reviewing this image" in refused.json()["error"]
    assert (holder.status_code, expired.status_code) == (200, 200)
    assert len(decoder_spy.calls) == 2


def test_the_annotations_mask_is_the_prompt_a_negative_click_starts_from(client_for, annotator, cached):
    """On the tiny SAM: the same box and negative click give another mask with the annotation's
    mask as the prompt than without it (an annotation with no mask), and the refined mask is what
    the decoder makes from that prompt."""
    mask = np.zeros((300, 451), dtype=bool)
    mask[80:220, 140:300] = True
    with_mask, without = _annotation(cached, mask=mask), _annotation(cached)
    client = client_for(annotator)
    negative = {"points": [[220, 150]], "labels": [0]}

    refined = post_json(client, cached, {"annotation": with_mask.pk, **negative}).json()
    plain = post_json(client, cached, {"annotation": without.pk, **negative}).json()

    assert refined["status"] == plain["status"] == "ok"
    assert refined["mask"] != plain["mask"], "the mask prompt changes SAM's answer"
    decoder = registry.get_click_segmenter(segmentation.model_config(), cached.project.segmenter)
    embedding = embedding_cache().get(cached.sha256, "tiny")
    expected = decoder.mask_from_prompts(
        embedding, points=[(220.0, 150.0)], labels=[0], box=with_mask.box,
        mask_input=decoder.mask_input_from_mask(embedding, mask),
    )  # fmt: skip
    assert refined["mask"] == encode_mask(expected.mask).rle
