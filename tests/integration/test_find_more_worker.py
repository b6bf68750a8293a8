""" "Find more like this" on a real `celery worker` consuming the interactive queue: the API's
POST commits the request and sends `find_more_run`; the worker runs the tiny SAM 3 with the
exemplars and writes the new proposals; the API's GET then answers them."""

from __future__ import annotations

import json

import pytest

from labeling.models import Annotation, FindMoreRequest, JobStatus
from tests.integration.test_prelabel_worker import wait_for
from tests.labeling.api_helpers import token_client
from tests.labeling.conftest import ingest_photos

pytestmark = pytest.mark.integration

DETECTORS = {
    "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "sam3": "facebook/sam3",
}


def test_a_find_more_request_runs_to_the_end_on_an_interactive_worker(
    prelabel_worker_process, settings, project, annotator
):
    settings.LABELGPT_DETECTORS = DETECTORS
    worker = prelabel_worker_process
    worker.queues = "default,interactive"
    worker.env["LABELGPT_DETECTORS"] = json.dumps(DETECTORS)
    # A Grounding DINO project whose manager chose the SAM 3 model for find-more.
    project.exemplar_detector = "sam3"
    project.keep_threshold = 0.1
    project.full_clean()
    project.save()
    (photo,) = ingest_photos(project, [("chelsea", "")])
    cat = project.classes.order_by("id").first()
    selected = Annotation.objects.create(
        image=photo, label_class=cat, x=50, y=40, w=120, h=90, state="accepted", source="human"
    )
    rejected = Annotation.objects.create(
        image=photo, label_class=cat, x=200, y=150, w=60, h=50, state="rejected", source="model", score=0.4
    )
    worker.start()

    client = token_client(annotator)
    answer = client.post(f"/api/v1/images/{photo.pk}/find-more/", {"annotation": selected.pk}, format="json")
    assert answer.status_code == 202, answer.json()
    url = answer.json()["status_url"]
    body = wait_for(
        lambda: (b := client.get(url).json())["status"] in ("succeeded", "failed") and b,
        "the request's end",
        worker,
    )
    assert body["status"] == "succeeded", body["error"]
    assert body["exemplars"] == {
        "positive": [[50.0, 40.0, 120.0, 90.0]],
        "negative": [[200.0, 150.0, 60.0, 50.0]],
    }
    request = FindMoreRequest.objects.get(pk=body["id"])
    assert request.status == JobStatus.SUCCEEDED and request.started_at and request.finished_at
    assert body["created"] == request.created_count == len(body["annotations"]) > 0
    created = Annotation.objects.filter(pk__in=request.annotation_ids)
    assert {(a.label_class_id, a.source, a.state) for a in created} == {(cat.pk, "model", "proposed")}
    assert sorted(a["id"] for a in body["annotations"]) == sorted(request.annotation_ids)
    rejected.refresh_from_db()
    assert rejected.state == "rejected" and rejected.version == 1
    photo.refresh_from_db()
    assert photo.annotation_count == 2 + request.created_count
