"""A real `celery worker` process: queues and routing, shared DB and media, durable messages."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile

import pytest
from django.conf import settings
from PIL import Image as PILImage

from labeling import queues
from labeling.models import Image
from labeling.selectors.prelabel import workers_alive
from labeling.services.images import images_ingest
from labeling.services.imports import import_start
from labeling.tasks import gpu_ping, image_thumbnail_rebuild, ping
from tests.conftest import image_bytes
from tests.integration.conftest import Worker
from webapp import celery_app

pytestmark = pytest.mark.integration

RESULT_TIMEOUT_S = 30


def queued_messages(broker, queue: str) -> int:
    """Messages waiting in a queue of kombu's Redis transport (one list per priority step), under
    the test's key prefix."""
    name = f"{broker.prefix}{queue}".encode()
    return sum(
        broker.client.llen(key)
        for key in broker.client.keys(f"{broker.prefix}{queue}*")
        if key == name or key.startswith(name + b"\x06\x16")
    )


def test_it_routes_each_task_to_the_queue_of_its_entry_in_the_table():
    route = celery_app.amqp.router.route
    assert route({}, "labeling.tasks.gpu_ping")["queue"].name == "gpu"
    assert route({}, "labeling.tasks.ping")["queue"].name == "default"
    assert route({}, "labeling.tasks.image_thumbnail_rebuild")["queue"].name == "default"
    assert route({}, "labeling.tasks.prelabel_batch_run")["queue"].name == "gpu"
    assert route({}, "labeling.tasks.embeddings_compute")["queue"].name == "interactive"
    # Every task of labeling/tasks.py is registered under a name of the table, routed to its queue.
    registered = sorted(name for name in celery_app.tasks if name.startswith("labeling."))
    assert registered == sorted(task.name for task in queues.TASKS)
    assert all(route({}, task.name)["queue"].name == task.queue for task in queues.TASKS)


def test_a_stray_worker_of_another_namespace_never_takes_this_tests_tasks(
    celery_worker_process, celery_redis
):
    """A worker left from an earlier run (same Redis, another prefix) gets nothing of this run."""
    stray = Worker(env={**celery_worker_process.env, "CELERY_BROKER_KEYPREFIX": "labelgpt-itest-stray:"},
                   log_path=celery_worker_process.log_path.with_name("stray.log"))  # fmt: skip
    stray.start(ready=False)
    try:
        answer = ping.apply_async()
        time.sleep(2)  # the stray worker is up (it has written its ready line) and does nothing with it
        assert answer.state == "PENDING" and queued_messages(celery_redis, "default") == 1
        celery_worker_process.start()
        assert answer.get(timeout=RESULT_TIMEOUT_S)["pid"] != os.getpid()
        assert "labeling.tasks.ping" not in stray.log().split(" ready.", 1)[-1]
    finally:
        stray.stop()


def test_the_worker_answers_ping_on_default_and_gpu_ping_on_gpu(celery_worker):
    answer = ping.apply_async().get(timeout=RESULT_TIMEOUT_S)
    gpu_answer = gpu_ping.apply_async().get(timeout=RESULT_TIMEOUT_S)

    assert answer["queue"] == "default"
    assert gpu_answer["queue"] == "gpu"
    assert gpu_answer["device"]  # "cpu" or the CUDA device's name
    # Run by the worker's pool process, not eagerly in this one.
    assert answer["pid"] != os.getpid()
    assert gpu_answer["pid"] == answer["pid"]  # --concurrency 1: the same pool process
    assert f"itest-{os.getpid()}@" in celery_worker.log()


def test_the_worker_rebuilds_a_deleted_thumbnail_from_the_same_db_and_media(celery_worker, project):
    report = images_ingest(project=project, files=[("big.png", io.BytesIO(image_bytes(size=(800, 600))))])
    image = Image.objects.get(pk=report.created[0][1])
    thumb_path = settings.MEDIA_ROOT / image.thumbnail.name
    assert thumb_path.is_file()
    thumb_path.unlink()

    rebuilt = image_thumbnail_rebuild.apply_async(args=[image.pk]).get(timeout=RESULT_TIMEOUT_S)

    assert rebuilt is True  # the worker found the row: it reads the test database
    image.refresh_from_db()
    thumb_path = settings.MEDIA_ROOT / image.thumbnail.name
    assert thumb_path.is_file(), f"no thumbnail at {thumb_path}: the worker wrote elsewhere"
    with PILImage.open(thumb_path) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (320, 240)
    # An id the test database does not have: the worker answers False, it does not crash.
    assert (
        image_thumbnail_rebuild.apply_async(args=[image.pk + 10_000]).get(timeout=RESULT_TIMEOUT_S) is False
    )


def test_the_worker_runs_an_import_sent_on_commit(celery_worker, project):
    """The import task on the default queue: the worker reads the stored upload, brings the
    archive's image in, records the report and deletes the upload."""
    document = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("annotations.json", json.dumps(document))
        archive.writestr("images/a.png", image_bytes(size=(32, 24)))
    job = import_start(project=project, user=None, fileobj=buffer, name="d.zip", format="coco")
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while job.active and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == "succeeded", (job.status, job.error)
    assert job.report["created_images"][0]["name"] == "a.png" and job.annotation_count == 1
    assert not job.file and not list((settings.MEDIA_ROOT / "imports").rglob("*.*"))


def test_tasks_sent_while_the_worker_is_down_run_once_it_starts(celery_worker_process, celery_redis):
    pending = ping.apply_async()  # no queue given: the router sends it to "default"
    gpu_pending = queues.task_send(task=queues.GPU_PING)  # by name, as the services send

    # Nobody consumes yet: the messages wait in Redis, each in its own queue.
    assert queued_messages(celery_redis, "default") == 1
    assert queued_messages(celery_redis, "gpu") == 1
    time.sleep(0.5)
    assert pending.state == "PENDING"
    assert gpu_pending.state == "PENDING"

    celery_worker_process.start()

    assert pending.get(timeout=RESULT_TIMEOUT_S)["queue"] == "default"
    assert gpu_pending.get(timeout=RESULT_TIMEOUT_S)["queue"] == "gpu"
    assert queued_messages(celery_redis, "default") == 0
    assert queued_messages(celery_redis, "gpu") == 0
    # Everything this test's Celery wrote is under its own prefix: nothing in the bare namespace.
    assert not celery_redis.client.exists("default", "gpu")


def test_a_running_worker_records_its_queues_and_a_warm_shutdown_removes_them(celery_worker_process):
    """The sign of life `prelabel --wait`, the sweeper and the jobs panel read, on any broker."""
    from labeling.models import WorkerBeat

    assert workers_alive(queue="gpu") == []
    celery_worker_process.start()

    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while not (beats := list(WorkerBeat.objects.all())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(b.hostname.split("@")[0], b.queues) for b in beats] == [(f"itest-{os.getpid()}", "default,gpu")]
    assert [w.hostname for w in workers_alive(queue="gpu")] == [beats[0].hostname]
    assert [w.hostname for w in workers_alive(queue="default")] == [beats[0].hostname]
    assert workers_alive(queue="interactive") == []

    celery_worker_process.stop()
    assert not WorkerBeat.objects.exists()
