"""Pre-label jobs on a real `celery worker` (tiny models, batches of one image): a job runs to the
end, survives its worker being SIGKILLed mid-job, can be cancelled, and reports failures."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from django.conf import settings
from django.db.models import Sum

from inference.embeddings import EmbeddingCache
from inference.tasks import gpu_ping
from labeling import prelabel
from labeling.models import Annotation, Image, JobStatus, LabelClass, PrelabelJob, PrelabelJobItem
from tests.integration.conftest import VISIBILITY_TIMEOUT_S
from tests.labeling.conftest import PHOTOS, ingest_photos

pytestmark = pytest.mark.integration

WAIT_S = 120
# Eight photos with different bytes: the four skimage ones and their mirror images.
EIGHT = [(name, variant) for variant in ("", "mirror") for name in PHOTOS]


BATCH_TASK = re.compile(r"Task inference\.tasks\.gpu_prelabel_batch\[([0-9a-f-]+)\] (received|succeeded)")


@pytest.fixture(autouse=True)
def _few_proposals(project):
    """At most three proposals per class and image: the tiny SAM's ragged masks make polygons slow,
    and these tests are about the job's bookkeeping, not the number of boxes."""
    LabelClass.objects.filter(project=project).update(max_instances=3)


def batches_in_flight(log: str) -> list[str]:
    """Ids of the batch tasks the worker has received and not finished, from its log."""
    received: dict[str, None] = {}
    for task_id, event in BATCH_TASK.findall(log):
        if event == "received":
            received[task_id] = None
        else:
            received.pop(task_id, None)
    return list(received)


def wait_for(predicate, what: str, worker, timeout: float = WAIT_S):
    """Poll `predicate` until it is truthy; fail (with the worker's log) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if worker.proc is not None and worker.proc.poll() is not None:
            pytest.fail(f"the worker exited ({worker.proc.returncode}) waiting for {what}:\n{worker.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s. Worker log:\n{worker.log()}")
        time.sleep(0.05)


def refreshed(job: PrelabelJob) -> PrelabelJob:
    job.refresh_from_db()
    return job


def wait_until_ended(job: PrelabelJob, worker) -> PrelabelJob:
    wait_for(lambda: not refreshed(job).is_active, f"end of job {job.pk} ({job.status})", worker)
    return job


def start_job(project, user) -> PrelabelJob:
    # transactional_db: no outer transaction, so the dispatch is sent as the job commits.
    job = prelabel.prelabel_job_start(project=project, user=user)
    assert job.params["batch_size"] == 1
    return job


def assert_every_image_done_once(job: PrelabelJob, images: list[Image]) -> None:
    job.refresh_from_db()
    items = list(job.items.all())
    assert sorted(i.image_id for i in items) == sorted(i.pk for i in images)
    assert {i.status for i in items} == {PrelabelJobItem.Status.DONE}
    assert (job.status, job.total, job.done, job.failed) == (JobStatus.SUCCEEDED, len(images), len(images), 0)
    # The counters are the sums over the items, and the items' counts are the rows saved.
    assert job.annotation_count == sum(i.annotation_count for i in items)
    assert job.annotation_count == Annotation.objects.filter(job=job).count() > 0
    for item in items:
        assert Annotation.objects.filter(image_id=item.image_id).count() == item.annotation_count
    # No duplicate proposal: no two of one image with the same class, box and score.
    keys = Counter(
        Annotation.objects.filter(job=job).values_list(
            "image_id", "label_class_id", "x", "y", "w", "h", "score"
        )
    )
    assert [k for k, n in keys.items() if n > 1] == []
    assert set(Image.objects.filter(pk__in=[i.pk for i in images]).values_list("status", flat=True)) == {
        Image.Status.PRELABELED
    }


def test_a_job_runs_to_the_end_on_the_worker(prelabel_worker_process, project, manager):
    images = ingest_photos(project, EIGHT)
    prelabel_worker_process.start()

    job = wait_until_ended(start_job(project, manager), prelabel_worker_process)

    assert_every_image_done_once(job, images)
    assert job.started_at is not None and job.finished_at is not None
    # The worker cached each image's embedding where the web process reads them.
    store = EmbeddingCache(settings.MEDIA_ROOT / "embeddings")
    assert all(store.has(image.sha256, "tiny") for image in images)


def test_a_job_survives_its_worker_being_killed_mid_job(prelabel_worker_process, project, manager):
    worker = prelabel_worker_process
    images = ingest_photos(project, EIGHT)
    worker.start()
    job = start_job(project, manager)

    # Kill it in the middle of a batch: one image done, the next batch received, not finished.
    in_flight = wait_for(
        lambda: refreshed(job).done >= 1 and batches_in_flight(worker.log()),
        f"a batch in progress after the first image of job {job.pk}",
        worker,
    )
    worker.kill()
    killed_at = time.monotonic()
    job.refresh_from_db()
    if job.done >= job.total:
        pytest.fail(f"job {job.pk} ended before the worker could be killed: nothing was tested")
    assert job.status == JobStatus.RUNNING
    assert job.items.filter(status=PrelabelJobItem.Status.PENDING).exists()
    done_at_kill = job.done
    log_before_restart = len(worker.log())

    # The killed task was never acknowledged: once it is older than the visibility timeout, the
    # next worker to start puts it back in the queue.
    time.sleep(max(0.0, VISIBILITY_TIMEOUT_S + 1 - (time.monotonic() - killed_at)))
    worker.start()
    job = wait_until_ended(job, worker)

    assert job.done > done_at_kill
    assert_every_image_done_once(job, images)
    after_restart = worker.log()[log_before_restart:]
    assert " ready." in after_restart, "the worker was not restarted"
    assert f"gpu_prelabel_batch[{in_flight[0]}] received" in after_restart, (
        "the batch killed in progress was not delivered again"
    )


def test_a_job_cancelled_mid_job_stops_with_images_left_pending(prelabel_worker_process, project, manager):
    worker = prelabel_worker_process
    ingest_photos(project, EIGHT)
    worker.start()
    job = start_job(project, manager)
    wait_for(lambda: refreshed(job).done >= 1, f"first image of job {job.pk}", worker)

    assert prelabel.prelabel_job_cancel(job=job) is True
    # A ping on the gpu queue is answered after the batches queued before it: they have all run.
    assert gpu_ping.apply_async().get(timeout=WAIT_S)["queue"] == "gpu"

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    pending = job.items.filter(status=PrelabelJobItem.Status.PENDING)
    assert pending.exists(), "every image was done: the cancel came too late to test anything"
    assert job.done == job.items.filter(status=PrelabelJobItem.Status.DONE).count() < job.total
    assert set(Image.objects.filter(pk__in=pending.values("image_id")).values_list("status", flat=True)) == {
        Image.Status.NEW
    }
    assert not Annotation.objects.filter(image_id__in=pending.values("image_id")).exists()
    assert job.annotation_count == (job.items.aggregate(n=Sum("annotation_count"))["n"] or 0)


def test_a_missing_image_fails_alone_and_the_job_succeeds(prelabel_worker_process, project, manager):
    images = ingest_photos(project, [("chelsea", ""), ("coffee", ""), ("rocket", "")])
    missing = images[1]
    missing.file.storage.delete(missing.file.name)
    prelabel_worker_process.start()

    job = wait_until_ended(start_job(project, manager), prelabel_worker_process)

    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 2, 1)
    item = job.items.get(image=missing)
    assert item.status == PrelabelJobItem.Status.FAILED and "missing" in item.error
    others = job.items.exclude(image=missing)
    assert set(others.values_list("status", flat=True)) == {PrelabelJobItem.Status.DONE}
    assert job.annotation_count == Annotation.objects.filter(job=job).count() > 0
    missing.refresh_from_db()
    assert missing.status == Image.Status.NEW


def test_a_bad_detector_path_fails_the_job_with_a_clear_message(
    prelabel_worker_process, project, manager, settings
):
    settings.LABELGPT_MODELS = "real"
    prelabel_worker_process.env["LABELGPT_MODELS"] = "real"
    project.detector = "/nonexistent/folder"
    project.save()
    ingest_photos(project, [("chelsea", ""), ("rocket", "")])
    prelabel_worker_process.start()

    job = wait_until_ended(start_job(project, manager), prelabel_worker_process)

    assert job.status == JobStatus.FAILED
    assert "/nonexistent/folder" in job.error and "hf download" in job.error
    assert (job.done, job.failed, job.annotation_count) == (0, 0, 0)
    assert not Annotation.objects.exists()
