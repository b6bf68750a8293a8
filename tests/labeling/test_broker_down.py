"""With the broker down, what needs a worker says so and the rest works: click-to-segment answers
503 with a message (not a 500), the review page opens, a new pre-label job fails saying why.

The broker is a real Redis URL on a port nobody listens on (the Redis client's connection is
refused), in a Celery app made current for the test, without publish retries."""

from __future__ import annotations

import socket

import pytest
from celery import Celery
from django.urls import reverse
from kombu.exceptions import OperationalError

from labeling import queues
from labeling.models import JobStatus
from labeling.services import prelabel
from tests.labeling.conftest import TaskCalls, ingest_photos
from tests.labeling.test_segment_endpoint import CLICK, post_json
from webapp.celery import app as celery_app

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models")]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again once closed: nothing listens there


@pytest.fixture
def dead_broker():
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    app = Celery("labelgpt-dead-broker", broker=url, set_as_current=False)
    app.conf.update(task_publish_retry=False, broker_connection_timeout=1, broker_connection_retry=False)
    app.set_current()
    try:
        yield url
    finally:
        celery_app.set_current()
        app.close()


@pytest.fixture
def image(project):
    (image,) = ingest_photos(project, [("chelsea", "")])
    return image


def test_sending_a_task_raises_queue_unavailable_without_the_broker_address(dead_broker):
    with pytest.raises(queues.QueueUnavailable) as caught:
        queues.task_send(task=queues.PING)

    assert isinstance(caught.value.__cause__, OperationalError)
    assert "refused" in str(caught.value.__cause__).lower()
    assert str(caught.value).startswith("The task queue cannot be reached")
    assert dead_broker.split("//")[1].split("/")[0] not in str(caught.value)


def test_a_click_answers_503_with_a_message_then_queues_once_the_broker_is_back(
    client_for, annotator, image, dead_broker, monkeypatch
):
    client = client_for(annotator)

    response = post_json(client, image, CLICK)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["error"].startswith("The task queue cannot be reached")
    # The broker is back: the image was not marked as queued, so the next click queues it.
    celery_app.set_current()
    calls = TaskCalls()
    monkeypatch.setattr(queues, "task_send", calls.send)
    assert post_json(client, image, CLICK).status_code == 202
    assert calls.of(queues.EMBEDDINGS_COMPUTE) == [([image.pk],)]


def test_the_review_page_opens_with_the_broker_down(client_for, annotator, image, dead_broker):
    response = client_for(annotator).get(reverse("image-review", kwargs={"image_id": image.pk}))

    assert response.status_code == 200
    assert b"review-data" in response.content


def test_a_new_job_fails_saying_the_task_queue_is_down(
    project, manager, image, dead_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = prelabel.prelabel_job_start(project=project, user=manager)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("The task queue could not be reached")
