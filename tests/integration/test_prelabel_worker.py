"""Pre-label jobs on a real `celery worker` (tiny models, batches of one image): a job runs to the
end; survives its worker being SIGKILLed mid-batch and its messages being lost (the sweeper, run
here by the test, hands the images out again); stops between images when cancelled; fails the
images of a batch that raises anything; and gives up on an image that kills its worker."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from django.conf import settings

from inference.embeddings import EmbeddingCache
from labeling.models import Annotation, Image, JobStatus, LabelClass, PrelabelJob, PrelabelJobItem
from labeling.services import prelabel
from tests.integration.conftest import VISIBILITY_TIMEOUT_S
from tests.labeling.conftest import PHOTOS, ingest_photos

pytestmark = pytest.mark.integration

WAIT_S = 120
# Eight photos with different bytes: the four skimage ones and their mirror images.
EIGHT = [(name, variant) for variant in ("", "mirror") for name in PHOTOS]


@pytest.fixture(autouse=True)
def _few_proposals(project):
    """At most three proposals per class and image: the tiny SAM's ragged masks make polygons slow,
    and these tests are about the job's bookkeeping, not the number of boxes."""
    LabelClass.objects.filter(project=project).update(max_instances=3)


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


def start_job(project, user, batch_size: int = 1) -> PrelabelJob:
    # transactional_db: no outer transaction, so the dispatch is sent as the job commits.
    job = prelabel.prelabel_job_start(project=project, user=user)
    assert job.params["batch_size"] == batch_size
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


def sweep_until(predicate, what: str, worker, timeout: float = WAIT_S):
    """Run the sweeper (as Celery beat would, every half second here) until `predicate` holds."""

    last = [0.0]

    def swept():
        if time.monotonic() - last[0] >= 0.5:
            prelabel.prelabel_jobs_sweep()
            last[0] = time.monotonic()
        return predicate()

    return wait_for(swept, what, worker, timeout)


def test_a_killed_worker_and_lost_messages_cost_a_lease_and_every_image_is_done_once(
    prelabel_worker_process, celery_redis, project, manager
):
    worker = prelabel_worker_process
    images = ingest_photos(project, EIGHT)
    worker.start()
    job = start_job(project, manager)

    # SIGKILL in the middle of a batch: one image done, the next batch claimed, not finished.
    wait_for(
        lambda: (
            refreshed(job).done >= 1 and job.items.filter(status="pending", claimed_at__isnull=False).exists()
        ),
        f"a batch in progress after the first image of job {job.pk}",
        worker,
    )
    worker.kill()
    job.refresh_from_db()
    if job.done >= job.total:
        pytest.fail(f"job {job.pk} ended before the worker could be killed: nothing was tested")
    held = set(job.items.filter(status="pending").exclude(batch_token="").values_list("image_id", flat=True))
    assert held, "no batch was out when the worker died"
    # ... and every message of the gpu queue is lost too, delivered or waiting.
    celery_redis.drop_messages("gpu")
    assert job.status == JobStatus.RUNNING and job.stage == PrelabelJob.Stage.RUNNING

    worker.start()
    job = sweep_until(lambda: not refreshed(job).is_active and job, f"end of job {job.pk}", worker)

    assert_every_image_done_once(job, images)
    # The images that were out when it all went wrong were handed out once more, no more.
    attempts = dict(job.items.values_list("image_id", "attempts"))
    assert all(attempts[image_id] == 2 for image_id in held), attempts
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at is not None


def test_a_batch_redelivered_by_the_broker_after_a_kill_changes_nothing(
    prelabel_worker_process, project, manager
):
    """The killed worker's message comes back (Redis visibility timeout) while the images it
    claimed are still held: the new worker runs it as a no-op, and the sweeper hands them out."""
    worker = prelabel_worker_process
    images = ingest_photos(project, [("chelsea", ""), ("rocket", "")])
    worker.start()
    job = start_job(project, manager)
    wait_for(
        lambda: job.items.filter(status="pending", claimed_at__isnull=False).exists(),
        "a claimed batch",
        worker,
    )
    worker.kill()
    killed_at = time.monotonic()
    log_before = len(worker.log())
    time.sleep(max(0.0, VISIBILITY_TIMEOUT_S + 1 - (time.monotonic() - killed_at)))

    worker.start()
    job = sweep_until(lambda: not refreshed(job).is_active and job, f"end of job {job.pk}", worker)

    assert_every_image_done_once(job, images)
    assert "'skipped': 'already taken'" in worker.log()[log_before:]


def test_a_cancel_mid_batch_stops_the_batch_before_its_next_image(
    prelabel_worker_process, project, manager, settings
):
    worker = prelabel_worker_process
    ingest_photos(project, EIGHT)
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 8  # one batch: the cancel must stop it from inside
    worker.start()
    job = start_job(project, manager, batch_size=8)
    wait_for(lambda: refreshed(job).done >= 1, f"first image of job {job.pk}", worker)

    assert prelabel.prelabel_job_cancel(job=job) is True
    # What had been saved when the cancel committed: nothing may be added after it.
    cancelled = PrelabelJob.objects.get(pk=job.pk)
    rows_at_cancel = Annotation.objects.filter(job=job).count()

    job = wait_for(lambda: refreshed(job).stopped_at and job, f"job {job.pk} to stop", worker)

    assert (job.status, job.stage) == (JobStatus.CANCELLED, PrelabelJob.Stage.STOPPED)
    assert job.finished_at == cancelled.finished_at and job.stopped_at >= job.finished_at
    assert (job.done, job.failed, job.annotation_count) == (cancelled.done, 0, cancelled.annotation_count)
    assert Annotation.objects.filter(job=job).count() == rows_at_cancel == job.annotation_count
    assert job.done < job.total
    pending = job.items.filter(status=PrelabelJobItem.Status.PENDING)
    assert pending.count() == job.total - job.done
    assert not pending.exclude(batch_token="").exists()  # no batch holds them any more
    assert not Annotation.objects.filter(image_id__in=pending.values("image_id")).exists()
    assert set(Image.objects.filter(pk__in=pending.values("image_id")).values_list("status", flat=True)) == {
        Image.Status.NEW
    }


def test_a_batch_raising_a_database_error_fails_its_images_with_the_reason(
    prelabel_worker_process, project, manager
):
    images = ingest_photos(project, [("chelsea", ""), ("rocket", "")])
    job = start_job(project, manager)
    # A bug of the kind no model raises: the snapshot points at a class that does not exist, so
    # saving the first proposals breaks a foreign key (an IntegrityError from the database).
    params = job.params
    params["classes"][0]["id"] = 10**9
    PrelabelJob.objects.filter(pk=job.pk).update(params=params)
    prelabel_worker_process.start()

    job = wait_until_ended(job, prelabel_worker_process)

    assert (job.status, job.done, job.failed) == (JobStatus.FAILED, 0, len(images))
    assert "2 image(s) failed" in job.error
    errors = set(job.items.values_list("error", flat=True))
    assert len(errors) == 1 and "The batch failed: IntegrityError" in errors.pop()
    assert not Annotation.objects.exists()
    assert job.stage == PrelabelJob.Stage.STOPPED
    # The worker is fine: the next job of the project runs.
    assert wait_until_ended(start_job(project, manager), prelabel_worker_process).status == "succeeded"


def test_an_image_that_kills_its_worker_each_time_fails_after_the_attempts_allowed(
    prelabel_worker_process, project, manager, settings
):
    worker = prelabel_worker_process
    settings.LABELGPT_BATCH_MAX_ATTEMPTS = 3
    poison, healthy = ingest_photos(project, [("chelsea", ""), ("rocket", "")])
    worker.start()
    job = start_job(project, manager)
    for attempt in (1, 2, 3):
        # As the OOM killer would: the worker dies whenever it takes this image.
        wait_for(
            lambda a=attempt: job.items.filter(image=poison, attempts=a, claimed_at__isnull=False).exists(),
            f"attempt {attempt} on the poison image",
            worker,
        )
        worker.kill()
        worker.start()
        sweep_until(
            lambda a=attempt: job.items.filter(image=poison).exclude(attempts=a, status="pending").exists(),
            f"the sweeper after attempt {attempt}",
            worker,
        )

    job = sweep_until(lambda: not refreshed(job).is_active and job, f"end of job {job.pk}", worker)

    item = job.items.get(image=poison)
    assert (item.status, item.attempts) == (PrelabelJobItem.Status.FAILED, 3)
    assert "died" in item.error and "3 time(s)" in item.error
    assert job.items.get(image=healthy).status == PrelabelJobItem.Status.DONE
    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 1, 1)
    assert not poison.annotations.exists()


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


def test_a_configured_detector_folder_that_is_missing_fails_the_job_naming_the_model_only(
    prelabel_worker_process, project, manager, settings
):
    detectors = {"ours": "/nonexistent/folder"}
    settings.LABELGPT_MODELS = "real"
    settings.LABELGPT_DETECTORS = detectors
    prelabel_worker_process.env["LABELGPT_MODELS"] = "real"
    prelabel_worker_process.env["LABELGPT_DETECTORS"] = json.dumps(detectors)
    project.detector = "ours"
    project.save()
    ingest_photos(project, [("chelsea", ""), ("rocket", "")])
    prelabel_worker_process.start()

    job = wait_until_ended(start_job(project, manager), prelabel_worker_process)

    assert job.status == JobStatus.FAILED
    assert job.error == 'The models cannot be loaded: The detector "ours" is not available on this server.'
    # The worker's log has the path and how to get the weights; the manager's page does not.
    assert (
        "/nonexistent/folder" in prelabel_worker_process.log()
        and "hf download" in prelabel_worker_process.log()
    )
    assert (job.done, job.failed, job.annotation_count) == (0, 0, 0)
    assert not Annotation.objects.exists()
