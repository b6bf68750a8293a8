""" "Find more like this" (labeling.services.find_more and its API): the exemplars a request is
made of, who may ask and the refusals, the worker's run (on the tiny SAM 3, and on a crafted
detector for the deduplication), the counts it leaves, and the project setting that names the
SAM 3 model of a Grounding DINO project."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from inference.boxes import box_iou
from inference.masks import mask_iou, mask_to_rle, stored_mask
from inference.protocols import Detection
from labeling import model_choices, queues
from labeling.forms import ProjectForm
from labeling.models import Annotation, FindMoreRequest, Image, JobStatus
from labeling.services import find_more
from labeling.services.find_more import DUPLICATE_IOU, Conflict, Unavailable
from tests.conftest import make_user, plain_images
from tests.labeling.conftest import ingest_photos

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls")]

DETECTORS = {
    "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "sam3": "facebook/sam3",
}


@pytest.fixture(autouse=True)
def _detectors(settings):
    settings.LABELGPT_DETECTORS = DETECTORS


@pytest.fixture
def sam3_project(project):
    project.detector = "sam3"
    project.box_threshold = 0.3
    project.keep_threshold = 0.2
    project.full_clean()
    project.save()
    return project


@pytest.fixture
def picture(project):
    """One real 64 × 48 image file, leased to nobody."""
    return plain_images(project, 1)[0]


def add(
    image, label_class, box, *, state=Annotation.State.PROPOSED, source=Annotation.Source.MODEL, mask=None
):
    x, y, w, h = box
    return Annotation.objects.create(
        image=image, label_class=label_class, x=x, y=y, w=w, h=h, state=state, source=source, mask=mask,
        score=0.9 if source == Annotation.Source.MODEL else None,
    )  # fmt: skip


def classes(project):
    return list(project.classes.order_by("id"))


class Crafted:
    """An ExemplarDetector whose answer the test writes (and which records what it was asked)."""

    name = "crafted"

    def __init__(self, found):
        self.found = found
        self.asked = []

    def find_similar(self, image, *, text, positive_boxes, negative_boxes=(), keep_threshold):
        self.asked.append(
            {"size": image.size, "text": text, "positive": positive_boxes, "negative": negative_boxes}
        )
        return self.found


@pytest.fixture
def crafted(monkeypatch):
    def use(found):
        detector = Crafted(found)
        monkeypatch.setattr(find_more.registry, "get_detector", lambda config, name: detector)
        return detector

    return use


def box_mask(box, height=48, width=64):
    x, y, w, h = box
    mask = np.zeros((height, width), bool)
    mask[y : y + h, x : x + w] = True
    return mask


def detection(box, score, mask=None):
    return Detection(class_index=0, box=tuple(float(v) for v in box), score=score, phrase="cat", mask=mask)


def start(image, user, annotation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return find_more.find_more_start(image=image, user=user, annotation_id=annotation.pk)


# Asking --------------------------------------------------------------------------------------------


def test_the_selected_box_is_the_positive_exemplar_and_rejected_ones_of_its_class_the_negatives(
    sam3_project, picture, annotator, task_calls, django_capture_on_commit_callbacks
):
    cat, cup = classes(sam3_project)
    selected = add(
        picture, cat, (4, 4, 10, 10), state=Annotation.State.ACCEPTED, source=Annotation.Source.HUMAN
    )
    rejected = add(picture, cat, (30, 20, 8, 8), state=Annotation.State.REJECTED)
    add(picture, cat, (40, 5, 6, 6))  # proposed: no exemplar
    add(picture, cup, (20, 30, 9, 9), state=Annotation.State.REJECTED)  # another class: no exemplar
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    assert request.status == JobStatus.QUEUED and request.detector == "sam3"
    assert request.positive_boxes == [[4.0, 4.0, 10.0, 10.0]]
    assert request.negative_boxes == [[rejected.x, rejected.y, rejected.w, rejected.h]]
    assert request.label_class_id == cat.pk and request.user == annotator
    assert task_calls.of(queues.FIND_MORE_RUN) == [(request.pk,)]
    assert queues.FIND_MORE_RUN.queue == queues.INTERACTIVE
    picture.refresh_from_db()
    assert picture.assignee == annotator  # the asker's lease, as every write takes


def test_a_grounding_dino_project_needs_a_sam3_model_chosen_in_its_settings(
    project, picture, annotator, task_calls, django_capture_on_commit_callbacks
):
    selected = add(picture, classes(project)[0], (4, 4, 10, 10))
    with pytest.raises(Unavailable) as refused:
        start(picture, annotator, selected, django_capture_on_commit_callbacks)
    assert refused.value.status == 409
    assert "Find more needs a SAM 3 model: ask a manager to choose one in the project settings" in str(
        refused.value
    )
    assert not FindMoreRequest.objects.exists() and not task_calls.calls
    project.exemplar_detector = "sam3"
    project.full_clean()
    project.save()
    picture.refresh_from_db(fields=["project"])
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    assert request.detector == "sam3" and task_calls.of(queues.FIND_MORE_RUN) == [(request.pk,)]


def test_a_sam3_model_the_server_no_longer_lists_makes_it_unavailable(
    project, picture, annotator, settings, django_capture_on_commit_callbacks
):
    selected = add(picture, classes(project)[0], (4, 4, 10, 10))
    project.exemplar_detector = "sam3"
    project.save()
    picture.refresh_from_db(fields=["project"])
    settings.LABELGPT_DETECTORS = {"IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny"}
    with pytest.raises(Unavailable):
        start(picture, annotator, selected, django_capture_on_commit_callbacks)


def test_only_the_lease_holder_asks_and_the_refusal_names_them(
    sam3_project, picture, annotator, manager, django_capture_on_commit_callbacks
):
    selected = add(picture, classes(sam3_project)[0], (4, 4, 10, 10))
    Image.objects.filter(pk=picture.pk).update(
        assignee=manager, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    with pytest.raises(PermissionDenied, match="manny is reviewing this image"):
        start(picture, annotator, selected, django_capture_on_commit_callbacks)
    assert not FindMoreRequest.objects.exists()
    assert start(picture, manager, selected, django_capture_on_commit_callbacks).status == JobStatus.QUEUED


def test_an_annotation_of_another_image_is_refused(
    sam3_project, annotator, django_capture_on_commit_callbacks
):
    first, second = plain_images(sam3_project, 2)
    elsewhere = add(second, classes(sam3_project)[0], (4, 4, 10, 10))
    with pytest.raises(ValidationError, match="not on this image"):
        start(first, annotator, elsewhere, django_capture_on_commit_callbacks)


def test_one_search_at_a_time_per_image_until_it_ends_or_is_old(
    sam3_project, picture, annotator, django_capture_on_commit_callbacks
):
    selected = add(picture, classes(sam3_project)[0], (4, 4, 10, 10))
    first = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    with pytest.raises(Conflict, match="already searching"):
        start(picture, annotator, selected, django_capture_on_commit_callbacks)
    FindMoreRequest.objects.filter(pk=first.pk).update(created_at=timezone.now() - find_more.ACTIVE_FOR * 2)
    assert start(picture, annotator, selected, django_capture_on_commit_callbacks).pk != first.pk


def test_a_broker_that_cannot_be_reached_fails_the_request_with_the_reason(
    sam3_project, picture, annotator, monkeypatch, django_capture_on_commit_callbacks
):
    def down(**kwargs):
        raise queues.QueueUnavailable()

    monkeypatch.setattr(queues, "task_send", down)
    selected = add(picture, classes(sam3_project)[0], (4, 4, 10, 10))
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    request.refresh_from_db()
    assert request.status == JobStatus.FAILED and "task queue could not be reached" in request.error


# Running: deduplication ------------------------------------------------------------------------------


def test_a_found_instance_that_duplicates_an_existing_one_is_never_added(
    sam3_project, picture, annotator, crafted, django_capture_on_commit_callbacks
):
    cat, cup = classes(sam3_project)
    selected = add(picture, cat, (2, 2, 12, 12), state=Annotation.State.ACCEPTED)
    accepted = add(
        picture, cat, (30, 2, 12, 12), state=Annotation.State.ACCEPTED, source=Annotation.Source.HUMAN
    )
    rejected = add(picture, cat, (2, 30, 12, 12), state=Annotation.State.REJECTED)
    proposed = add(picture, cat, (48, 30, 12, 12))
    add(picture, cup, (20, 20, 10, 10))  # another class: a cat there is not its duplicate
    detector = crafted(
        [
            detection((3, 2, 12, 12), 0.95),  # the exemplar again
            detection((31, 3, 12, 12), 0.9),  # the accepted one
            detection((2, 31, 12, 11), 0.85),  # the rejected one: rejected stays rejected
            detection((48, 31, 12, 11), 0.8),  # the proposal already there
            detection((20, 20, 10, 10), 0.75),  # new (only the cup is there)
            detection((21, 20, 10, 10), 0.7),  # the new one again, worse: not twice
        ]
    )
    before = Image.objects.values_list("annotation_count", "proposal_count", "version").get(pk=picture.pk)
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    assert find_more.find_more_run(request_id=request.pk) is True
    request.refresh_from_db()
    assert request.status == JobStatus.SUCCEEDED and request.error == ""
    assert (request.found_count, request.created_count) == (6, 1)
    (new,) = Annotation.objects.filter(pk__in=request.annotation_ids)
    assert new.box == (20.0, 20.0, 10.0, 10.0) and new.label_class == cat
    assert (new.source, new.state, new.score, new.job) == ("model", "proposed", 0.75, None)
    assert detector.asked == [
        {
            "size": (64, 48),
            "text": "cat",
            "positive": [[2.0, 2.0, 12.0, 12.0]],
            "negative": [[2.0, 30.0, 12.0, 12.0]],
        }
    ]
    for other in (selected, accepted, rejected, proposed):
        other.refresh_from_db()
        assert other.version == 1  # untouched
    after = Image.objects.values_list("annotation_count", "proposal_count", "version").get(pk=picture.pk)
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)
    counts = sam3_project.counts
    counts.refresh_from_db()
    assert (
        counts.annotations_proposed
        == Annotation.objects.filter(image__project=sam3_project, state="proposed").count()
    )
    # Nothing created overlaps anything of its class at the duplicate line.
    boxes = [a.box for a in Annotation.objects.filter(image=picture, label_class=cat).exclude(pk=new.pk)]
    assert float(box_iou(new.box, boxes).max()) < DUPLICATE_IOU


def test_masks_decide_when_both_sides_have_one(
    sam3_project, picture, annotator, crafted, django_capture_on_commit_callbacks
):
    """Two thin objects side by side in one box: their boxes overlap (IoU 1), their masks do not."""
    cat = classes(sam3_project)[0]
    selected = add(picture, cat, (40, 30, 10, 10))
    left, right = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
    left[4:34, 4:10], right[4:34, 16:22] = True, True  # 180 pixels each: above the speck size
    add(picture, cat, (4, 4, 18, 30), mask=mask_to_rle(left))  # its box spans both strips
    crafted(
        [
            detection((4, 4, 18, 30), 0.9, mask=right),  # same box, another object: kept
            detection((4, 4, 18, 30), 0.8, mask=left),  # the same object: dropped
        ]
    )
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    find_more.find_more_run(request_id=request.pk)
    request.refresh_from_db()
    assert request.created_count == 1
    (new,) = Annotation.objects.filter(pk__in=request.annotation_ids)
    assert new.mask is not None and new.box == (16.0, 4.0, 6.0, 30.0)  # the box traced from its mask


def test_a_failing_model_fails_the_request_with_its_reason_and_adds_nothing(
    sam3_project, picture, annotator, monkeypatch, django_capture_on_commit_callbacks
):
    selected = add(picture, classes(sam3_project)[0], (4, 4, 10, 10))

    class Broken(Crafted):
        def find_similar(self, image, **kwargs):
            raise RuntimeError("the accelerator fell over")

    monkeypatch.setattr(find_more.registry, "get_detector", lambda config, name: Broken([]))
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    count = Annotation.objects.count()
    find_more.find_more_run(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == JobStatus.FAILED and "the accelerator fell over" in request.error
    assert Annotation.objects.count() == count
    assert find_more.find_more_run(request_id=request.pk) is False  # ended: never run again


@pytest.mark.usefixtures("tiny_models")
def test_a_detector_without_exemplar_prompts_fails_with_the_reason(
    sam3_project, picture, annotator, django_capture_on_commit_callbacks
):
    selected = add(picture, classes(sam3_project)[0], (4, 4, 10, 10))
    request = start(picture, annotator, selected, django_capture_on_commit_callbacks)
    FindMoreRequest.objects.filter(pk=request.pk).update(detector="IDEA-Research/grounding-dino-tiny")
    find_more.find_more_run(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == JobStatus.FAILED and "takes no example boxes" in request.error


# Running: the tiny SAM 3, to the end -----------------------------------------------------------------


@pytest.mark.usefixtures("tiny_models")
def test_the_tiny_sam3_adds_proposals_of_the_class_with_masks_and_no_duplicates(
    sam3_project, annotator, django_capture_on_commit_callbacks
):
    (photo,) = ingest_photos(sam3_project, [("chelsea", "")])
    cat = classes(sam3_project)[0]
    selected = add(photo, cat, (50, 40, 120, 90), state=Annotation.State.ACCEPTED)
    add(photo, cat, (200, 150, 60, 50), state=Annotation.State.REJECTED)
    request = start(photo, annotator, selected, django_capture_on_commit_callbacks)
    assert find_more.find_more_run(request_id=request.pk) is True
    request.refresh_from_db()
    assert request.status == JobStatus.SUCCEEDED, request.error
    assert request.found_count >= request.created_count > 0
    created = list(Annotation.objects.filter(pk__in=request.annotation_ids))
    assert len(created) == request.created_count
    assert all(
        a.label_class == cat and a.source == "model" and a.state == "proposed" and a.score > 0.2
        for a in created
    )
    assert any(a.mask is not None for a in created)
    before = Annotation.objects.filter(image=photo, label_class=cat).exclude(pk__in=request.annotation_ids)
    for index, a in enumerate(created):  # none duplicates what was there, nor another new one
        for other in [*before, *created[:index]]:
            assert _iou(a, other, photo) < DUPLICATE_IOU
    assert find_more.find_more_run(request_id=request.pk) is False  # a second delivery does nothing


def _iou(a: Annotation, b: Annotation, image: Image) -> float:
    """Mask IoU when both have a mask, else box IoU: the service's rule, computed here."""
    if a.mask and b.mask:
        return mask_iou(
            stored_mask(a.mask, None, image.height, image.width),
            stored_mask(b.mask, None, image.height, image.width),
        )
    return float(box_iou(a.box, [b.box])[0])


# The project setting ---------------------------------------------------------------------------------


def test_the_settings_offer_only_the_listed_sam3_models_or_none(project):
    assert model_choices.exemplar_detector_choices() == [
        ("", "None (find more is unavailable)"),
        ("sam3", "sam3"),
    ]
    form = ProjectForm(instance=project)
    assert [value for value, _ in form.fields["exemplar_detector"].choices] == ["", "sam3"]
    project.exemplar_detector = "IDEA-Research/grounding-dino-tiny"
    with pytest.raises(ValidationError) as refused:
        project.full_clean()
    assert "exemplar_detector" in refused.value.message_dict


def test_managers_choose_it_through_the_api(api_for, project, clear_throttles):
    manager = api_for("manager")
    url = f"/api/v1/projects/{project.pk}/"
    assert (
        manager.patch(url, {"exemplar_detector": "sam3"}, format="json").json()["exemplar_detector"] == "sam3"
    )
    refused = manager.patch(url, {"exemplar_detector": "IDEA-Research/grounding-dino-tiny"}, format="json")
    assert refused.status_code == 400 and "exemplar_detector" in refused.json()["fields"]
    assert manager.patch(url, {"exemplar_detector": ""}, format="json").json()["exemplar_detector"] == ""


# The API -------------------------------------------------------------------------------------------------


def test_the_api_queues_a_search_and_answers_its_progress_then_its_proposals(
    api_for, sam3_project, picture, crafted, clear_throttles, django_capture_on_commit_callbacks
):
    cat = classes(sam3_project)[0]
    selected = add(picture, cat, (2, 2, 12, 12))
    crafted([detection((30, 20, 10, 10), 0.8)])
    client = api_for("annotator")
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            f"/api/v1/images/{picture.pk}/find-more/", {"annotation": selected.pk}, format="json"
        )
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["status"] == "queued" and answer["Location"] == body["status_url"]
    assert body["exemplars"] == {"positive": [[2.0, 2.0, 12.0, 12.0]], "negative": []}
    assert client.get(body["status_url"]).json()["status"] == "queued"
    find_more.find_more_run(request_id=body["id"])
    done = client.get(body["status_url"]).json()
    assert done["status"] == "succeeded" and done["created"] == 1
    (new,) = done["annotations"]
    assert new["box"] == [30.0, 20.0, 10.0, 10.0] and new["state"] == "proposed" and new["class_id"] == cat.pk


def test_the_api_refuses_with_reasons(api_for, project, manager, picture, clear_throttles):
    cat = classes(project)[0]
    selected = add(picture, cat, (2, 2, 12, 12))
    (other,) = plain_images(project, 2)  # the first has the bytes of `picture`: not added again
    elsewhere = add(other, cat, (2, 2, 12, 12))
    client = api_for("annotator")
    url = f"/api/v1/images/{picture.pk}/find-more/"
    no_sam3 = client.post(url, {"annotation": selected.pk}, format="json")
    assert no_sam3.status_code == 409 and no_sam3.json()["error"] == model_choices.NO_SAM3
    project.exemplar_detector = "sam3"
    project.save()
    assert client.post(url, {}, format="json").status_code == 400
    assert client.post(url, {"annotation": "one"}, format="json").status_code == 400
    wrong = client.post(url, {"annotation": elsewhere.pk}, format="json")
    assert wrong.status_code == 400 and "not on this image" in wrong.json()["error"]
    assert client.post(url, {"annotation": 10**9}, format="json").status_code == 404
    Image.objects.filter(pk=picture.pk).update(
        assignee=manager, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    held = client.post(url, {"annotation": selected.pk}, format="json")
    assert held.status_code == 403 and "manny is reviewing this image" in held.json()["error"]
    outsider = api_for("outsider")
    assert outsider.post(url, {"annotation": selected.pk}, format="json").status_code == 404
    assert not FindMoreRequest.objects.exists()


def test_outsiders_cannot_see_a_request(api_for, sam3_project, picture, annotator, clear_throttles):
    selected = add(picture, classes(sam3_project)[0], (2, 2, 12, 12))
    request = FindMoreRequest.objects.create(
        image=picture, annotation=selected, label_class=selected.label_class, detector="sam3", user=annotator
    )
    assert api_for("outsider").get(f"/api/v1/find-more/{request.pk}/").status_code == 404
    assert api_for("manager").get(f"/api/v1/find-more/{request.pk}/").status_code == 200
    stranger = make_user("stan")
    from tests.labeling.api_helpers import token_client

    assert token_client(stranger).get(f"/api/v1/find-more/{request.pk}/").status_code == 404


def test_the_review_page_data_says_whether_find_more_is_available_and_why_not(project):
    from labeling.selectors.review import find_more_availability

    assert find_more_availability(project=project) == {
        "available": False,
        "detector": None,
        "reason": model_choices.NO_SAM3,
    }
    project.exemplar_detector = "sam3"
    assert find_more_availability(project=project) == {"available": True, "detector": "sam3", "reason": ""}
