"""Pre-label jobs through their services (labeling/services/prelabel.py), with the tiny random models.

The Celery tasks are not run: their `.delay` is recorded (tests/labeling/conftest.py) and the
tests call the services a worker would call, in the order a worker would.
"""

from __future__ import annotations

import io
import logging
import math
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from inference.masks import polygons_are_faithful, rle_to_mask
from inference.pipeline import box_iou
from labeling import queues
from labeling.models import Annotation, Image, JobStatus, PrelabelJob, PrelabelJobItem, WorkerBeat
from labeling.services import prelabel, segmentation
from labeling.services.projects import project_create
from tests.conftest import plain_images
from tests.labeling.conftest import ingest_photos, run_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models", "task_calls")]


def start(project, user=None, **options) -> PrelabelJob:
    return prelabel.prelabel_job_start(project=project, user=user, options=prelabel.JobOptions(**options))


def proposals(image) -> list[Annotation]:
    return list(image.annotations.filter(source=Annotation.Source.MODEL, state=Annotation.State.PROPOSED))


def row(a: Annotation) -> tuple:
    """What a redelivery or a second job must leave as it was."""
    return (a.pk, a.image_id, a.label_class_id, a.box, a.score, a.state, a.source, a.job_id, a.version)


def counters(job: PrelabelJob) -> tuple:
    job.refresh_from_db()
    return (job.status, job.total, job.done, job.failed, job.annotation_count)


def item_sums(job: PrelabelJob) -> tuple[int, int, int]:
    items = list(job.items.all())
    return (
        sum(i.status == PrelabelJobItem.Status.DONE for i in items),
        sum(i.status == PrelabelJobItem.Status.FAILED for i in items),
        sum(i.annotation_count for i in items),
    )


def sent(task_calls) -> list[tuple]:
    """The batches sent, as (job id, image ids) (their tokens left out)."""
    return [call[:2] for call in task_calls.of(queues.PRELABEL_BATCH_RUN)]


def run_batch(call: tuple, **kwargs) -> dict:
    """Run one recorded batch message as its worker would."""
    job_id, image_ids, token = call
    return prelabel.prelabel_batch_run(job_id=job_id, image_ids=image_ids, token=token, **kwargs)


def delete_file(image: Image) -> None:
    image.file.storage.delete(image.file.name)
    assert not image.file.storage.exists(image.file.name)


# Starting ------------------------------------------------------------------------------------------


def test_start_creates_one_item_per_new_image_and_snapshots_the_parameters(
    project, manager, task_calls, django_capture_on_commit_callbacks
):
    new_a, new_b, prelabeled, done = plain_images(project, 4)
    Image.objects.filter(pk=prelabeled.pk).update(status=Image.Status.PRELABELED)
    Image.objects.filter(pk=done.pk).update(status=Image.Status.DONE)
    cat = project.classes.get(name="cat")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = start(project, manager, class_ids=[cat.pk], box_threshold=0.5, text_threshold=0.2)
        assert task_calls.of(queues.PRELABEL_JOB_DISPATCH) == []  # nothing is sent before the commit

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.created_by == manager
    assert job.total == 2
    assert sorted(job.items.values_list("image_id", flat=True)) == [new_a.pk, new_b.pk]
    assert set(job.items.values_list("status", flat=True)) == {PrelabelJobItem.Status.PENDING}
    params = job.params
    assert params["classes"] == [
        {"id": cat.pk, "name": "cat", "prompt": "cat", "box_threshold": None, "max_instances": None}
    ]
    assert (params["box_threshold"], params["text_threshold"]) == (0.5, 0.2)
    assert params["keep_threshold"] == project.keep_threshold
    assert params["detector"] == project.detector and params["segmenter"] == project.segmenter
    assert params["models"] == "tiny" and params["segment"] is True and params["scope"] == "new"

    assert len(callbacks) == 1
    callbacks[0]()
    assert task_calls.of(queues.PRELABEL_JOB_DISPATCH) == [(job.pk,)]


def test_the_snapshot_keeps_the_classes_prompts_and_the_projects_thresholds_by_default(project):
    plain_images(project, 1)
    job = start(project)
    classes = project.classes.order_by("order")
    assert [(c["id"], c["name"], c["prompt"]) for c in job.params["classes"]] == [
        (c.pk, c.name, c.prompt) for c in classes
    ]
    assert job.params["classes"][1]["prompt"] == "a cup of coffee"
    assert (job.params["box_threshold"], job.params["text_threshold"]) == (0.35, 0.25)
    # A later edit of the project does not change the job's parameters.
    project.box_threshold = 0.9
    project.save()
    job.refresh_from_db()
    assert job.params["box_threshold"] == 0.35


def test_scope_not_done_takes_prelabeled_images_too_but_never_done_or_skipped_ones(project):
    new, prelabeled, done, skipped = plain_images(project, 4)
    for image, status in ((prelabeled, "prelabeled"), (done, "done"), (skipped, "skipped")):
        Image.objects.filter(pk=image.pk).update(status=status)

    job = start(project, scope="not_done")

    assert job.total == 2
    assert sorted(job.items.values_list("image_id", flat=True)) == [new.pk, prelabeled.pk]


def test_start_refuses_when_no_image_is_in_scope(project, task_calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as empty:
        start(project)
    assert "no images" in " ".join(empty.value.messages)

    (image,) = plain_images(project, 1)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.PRELABELED)
    with pytest.raises(ValidationError, match="no images"):
        start(project, scope="new")

    assert not PrelabelJob.objects.exists()
    assert not PrelabelJobItem.objects.exists()
    assert task_calls.calls == []


def test_start_refuses_a_class_of_another_project(project, manager):
    plain_images(project, 1)
    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    dog = other.classes.get()
    cat = project.classes.get(name="cat")

    with pytest.raises(ValidationError) as refused:
        start(project, class_ids=[cat.pk, dog.pk])

    assert "classes" in refused.value.message_dict
    assert str(dog.pk) in " ".join(refused.value.messages)
    assert not PrelabelJob.objects.exists()


def test_start_refuses_an_empty_class_list(project):
    plain_images(project, 1)
    with pytest.raises(ValidationError, match="at least one class"):
        start(project, class_ids=[])
    assert not PrelabelJob.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("box_threshold", 1.5), ("box_threshold", -0.01), ("text_threshold", 2.0), ("text_threshold", -1.0)],
)
def test_start_refuses_a_threshold_outside_zero_to_one(project, field, value):
    plain_images(project, 1)
    with pytest.raises(ValidationError) as refused:
        start(project, **{field: value})
    assert field in refused.value.message_dict
    assert "between 0 and 1" in " ".join(refused.value.messages)
    assert not PrelabelJob.objects.exists()


def test_start_refuses_an_unknown_scope(project):
    plain_images(project, 1)
    with pytest.raises(ValidationError) as refused:
        start(project, scope="everything")
    assert "scope" in refused.value.message_dict


def test_start_refuses_a_second_active_job_for_the_project(project, manager):
    plain_images(project, 2)
    first = start(project, manager)

    with pytest.raises(ValidationError) as refused:
        start(project, manager)
    assert "already running" in " ".join(refused.value.messages)
    assert list(PrelabelJob.objects.values_list("pk", flat=True)) == [first.pk]
    assert PrelabelJobItem.objects.filter(job=first).count() == 2

    # Running counts as active too; an ended job does not.
    prelabel.prelabel_job_dispatch(job_id=first.pk)
    first.refresh_from_db()
    assert first.status == JobStatus.RUNNING
    with pytest.raises(ValidationError, match="already running"):
        start(project, manager)
    assert prelabel.prelabel_job_cancel(job=first) is True
    second = start(project, manager)
    assert second.pk != first.pk and second.status == JobStatus.QUEUED


def test_another_projects_active_job_does_not_block_a_start(project, manager):
    plain_images(project, 1)
    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    plain_images(other, 1)
    start(other, manager)
    assert start(project, manager).total == 1


# Running a batch -------------------------------------------------------------------------------------


def assert_box_inside(annotation: Annotation, image: Image) -> None:
    x, y, w, h = annotation.box
    assert w > 0 and h > 0 and x >= 0 and y >= 0
    assert x + w <= image.width and y + h <= image.height


def test_a_job_proposes_boxes_and_masks_for_every_photo(project, photos, task_calls, settings):
    job = start(project)
    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 1  # 4 images, batches of 4
    assert sent(task_calls) == [(job.pk, [p.pk for p in photos])]

    job = run_job(job, task_calls)

    class_ids = set(project.classes.values_list("pk", flat=True))
    store = prelabel.embedding_cache()
    assert store.folder == settings.MEDIA_ROOT / "embeddings"
    for photo in photos:
        photo.refresh_from_db()
        assert photo.status == Image.Status.PRELABELED
        rows = list(photo.annotations.all())
        assert rows, f"no proposal for {photo.original_name}"
        item = job.items.get(image=photo)
        assert item.status == PrelabelJobItem.Status.DONE and item.annotation_count == len(rows)
        assert item.finished_at is not None and item.duration_ms is not None
        for a in rows:
            assert a.source == Annotation.Source.MODEL and a.state == Annotation.State.PROPOSED
            assert a.job_id == job.pk and a.label_class_id in class_ids
            assert 0.0 <= a.score <= 1.0 and not math.isnan(a.score)
            assert a.score >= job.params["keep_threshold"]
            assert_box_inside(a, photo)
            mask = rle_to_mask(a.mask)
            assert mask.shape == (photo.height, photo.width)
            assert mask.any()
            assert a.polygons and all(len(ring) >= 6 for part in a.polygons for ring in part)
        assert store.has(photo.sha256, "tiny"), f"no cached embedding for {photo.original_name}"
    assert job.status == JobStatus.SUCCEEDED
    assert (job.total, job.done, job.failed) == (4, 4, 0)
    assert job.annotation_count == Annotation.objects.filter(job=job).count() > 0
    assert job.started_at is not None and job.finished_at >= job.started_at
    assert item_sums(job) == (4, 0, job.annotation_count)


def test_without_segmentation_the_proposals_are_boxes_only(project, task_calls):
    project.segment = False
    project.save()
    (photo,) = ingest_photos(project, [("chelsea", "")])

    job = run_job(start(project), task_calls)

    rows = list(photo.annotations.all())
    assert job.status == JobStatus.SUCCEEDED and rows
    assert all(a.mask is None and a.polygons is None for a in rows)
    for a in rows:
        assert_box_inside(a, photo)


def test_the_job_runs_until_no_image_is_pending(project, photos, task_calls, settings):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 2
    project.segment = False
    project.save()
    job = start(project)
    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 2
    (first, second) = task_calls.of(queues.PRELABEL_BATCH_RUN)
    assert first[:2] == (job.pk, [photos[0].pk, photos[1].pk])

    run_batch(first)
    assert counters(job)[:4] == (JobStatus.RUNNING, 4, 2, 0)
    assert job.finished_at is None

    run_batch(second)
    assert counters(job)[:4] == (JobStatus.SUCCEEDED, 4, 4, 0)
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at == job.finished_at


# Redelivery and re-runs ------------------------------------------------------------------------------


def test_a_redelivered_batch_creates_no_duplicates_and_changes_no_counters(project, task_calls, settings):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 2
    project.segment = False
    project.save()
    ingest_photos(project, [("chelsea", ""), ("coffee", ""), ("rocket", ""), ("chelsea", "mirror")])
    job = start(project)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    (first, second) = task_calls.of(queues.PRELABEL_BATCH_RUN)

    run_batch(first)
    rows_before = sorted(row(a) for a in Annotation.objects.all())
    job_before = counters(job)
    versions_before = list(Image.objects.order_by("pk").values_list("version", "status"))

    # The same message again while the job still runs (a worker died before acknowledging it).
    assert run_batch(first) == {"skipped": "already taken"}

    assert sorted(row(a) for a in Annotation.objects.all()) == rows_before
    assert counters(job) == job_before
    assert list(Image.objects.order_by("pk").values_list("version", "status")) == versions_before

    run_batch(second)
    final_rows = sorted(row(a) for a in Annotation.objects.all())
    final = counters(job)
    assert final[:4] == (JobStatus.SUCCEEDED, 4, 4, 0)
    for batch in (first, second):
        assert run_batch(batch) == {"skipped": "job not running"}
    assert sorted(row(a) for a in Annotation.objects.all()) == final_rows
    assert counters(job) == final
    assert item_sums(job) == (4, 0, final[4])


def test_a_redelivered_dispatch_sends_nothing_more_and_every_image_is_done_once(
    project, photos, task_calls, settings
):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 3
    project.segment = False
    project.save()
    job = start(project)

    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 2
    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 0  # redelivered: the batches are out
    batches = task_calls.of(queues.PRELABEL_BATCH_RUN)
    assert len(batches) == 2
    for batch in batches:
        run_batch(batch)

    status, total, done, failed, annotation_count = counters(job)
    assert (status, total, done, failed) == (JobStatus.SUCCEEDED, 4, 4, 0)
    assert annotation_count == Annotation.objects.count()
    assert item_sums(job) == (4, 0, annotation_count)
    # Nothing pending: a third delivery sends nothing.
    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 0


def decide(annotation: Annotation, **fields) -> Annotation:
    for name, value in fields.items():
        setattr(annotation, name, value)
    annotation.save()
    return annotation


def key(a: Annotation) -> tuple:
    """A proposal as the deterministic tiny detector makes it again: class, box, score."""
    return (a.label_class_id, tuple(round(v, 3) for v in a.box), round(a.score, 5))


def hidden_by(a: Annotation, boxes: list[tuple[int, tuple]]) -> bool:
    """Whether a proposal overlaps one of the (class id, box) already decided on (IoU >= 0.9)."""
    return any(
        a.label_class_id == class_id and box_iou(a.box, np.array([box]))[0] >= prelabel.DECIDED_IOU
        for class_id, box in boxes
    )


def test_a_new_job_replaces_only_the_untouched_proposals(project, task_calls):
    project.segment = False  # the detector's own boxes: distinct ones, deterministic
    project.save()
    photo, other = ingest_photos(project, [("coffee", ""), ("rocket", "")])
    first = run_job(start(project), task_calls)
    cat = project.classes.get(name="cat")
    made = proposals(photo)
    assert len(made) >= 5, "the tiny detector should propose several boxes"
    other_before = sorted(key(a) for a in proposals(other))

    accepted = decide(made[0], state=Annotation.State.ACCEPTED)
    rejected = decide(made[1], state=Annotation.State.REJECTED)
    # Edited: moved by a reviewer, still proposed; the model's box is kept for the metrics.
    edited = decide(made[2], original_box=list(made[2].box), x=0.0, y=0.0, w=7.0, h=5.0)
    human = Annotation.objects.create(
        image=photo, label_class=cat, x=1, y=2, w=3, h=4, source=Annotation.Source.HUMAN,
        state=Annotation.State.ACCEPTED,
    )  # fmt: skip
    kept = {a.pk: row(a) for a in (accepted, rejected, edited, human)}
    untouched = {a.pk for a in made[3:]} | {a.pk for a in proposals(other)}

    second = run_job(start(project, scope="not_done"), task_calls)

    assert second.status == JobStatus.SUCCEEDED and second.total == 2
    assert {a.pk: row(a) for a in Annotation.objects.filter(pk__in=kept)} == kept
    assert not Annotation.objects.filter(pk__in=untouched).exists()
    assert set(first.annotations.values_list("pk", flat=True)) == {accepted.pk, rejected.pk, edited.pk}
    fresh = Annotation.objects.filter(job=second)
    assert fresh.count() == second.annotation_count
    assert set(fresh.values_list("state", flat=True)) == {Annotation.State.PROPOSED}
    assert set(fresh.values_list("source", flat=True)) == {Annotation.Source.MODEL}
    # The other image's proposals came back the same; this one's, less the three decided on.
    assert sorted(key(a) for a in fresh.filter(image=other)) == other_before
    assert sorted(key(a) for a in fresh.filter(image=photo)) == sorted(key(a) for a in made[3:])


def test_a_proposal_like_an_annotation_already_decided_is_not_proposed_again(project, task_calls):
    project.segment = False  # deterministic detector boxes: the second job sees the same ones
    project.save()
    (photo,) = ingest_photos(project, [("astronaut", "")])
    run_job(start(project), task_calls)
    made = proposals(photo)
    assert len(made) >= 4
    accepted = decide(made[0], state=Annotation.State.ACCEPTED)
    rejected = decide(
        next((a for a in made if a.label_class_id != accepted.label_class_id), made[1]),
        state=Annotation.State.REJECTED,
    )
    decided = [(accepted.label_class_id, accepted.box), (rejected.label_class_id, rejected.box)]
    left = [a for a in made if a.pk not in (accepted.pk, rejected.pk)]
    # A human box of the *other* class exactly on an open proposal does not hide it.
    target = next(a for a in left if not hidden_by(a, decided))
    other_class = project.classes.exclude(pk=target.label_class_id).first()
    Annotation.objects.create(
        image=photo, label_class=other_class, x=target.x, y=target.y, w=target.w, h=target.h,
        source=Annotation.Source.HUMAN, state=Annotation.State.ACCEPTED,
    )  # fmt: skip
    decided.append((other_class.pk, target.box))
    expected = sorted(key(a) for a in left if not hidden_by(a, decided))

    second = run_job(start(project, scope="not_done"), task_calls)

    fresh = list(Annotation.objects.filter(job=second))
    assert sorted(key(a) for a in fresh) == expected
    assert key(accepted) not in {key(a) for a in fresh}
    assert key(rejected) not in {key(a) for a in fresh}
    assert key(target) in {key(a) for a in fresh}
    assert not any(hidden_by(a, decided) for a in fresh)
    assert second.annotation_count == len(expected)


def test_an_edited_proposal_is_not_proposed_again_at_its_original_box(project, task_calls):
    """A reviewer fixed a proposal's box; the next job must not bring the model's box back."""
    project.segment = False
    project.save()
    (photo,) = ingest_photos(project, [("coffee", "")])
    run_job(start(project), task_calls)
    made = proposals(photo)
    edited = made[0]
    model_box = edited.box
    decide(edited, original_box=list(model_box), state=Annotation.State.ACCEPTED, x=0.0, y=0.0, w=9.0, h=9.0)

    second = run_job(start(project, scope="not_done"), task_calls)

    fresh = list(Annotation.objects.filter(job=second))
    assert key(made[0]) not in {key(a) for a in fresh}
    assert not any(hidden_by(a, [(edited.label_class_id, model_box)]) for a in fresh)
    assert len(fresh) == len([a for a in made[1:] if not hidden_by(a, [(edited.label_class_id, model_box)])])


def test_with_segmentation_a_decided_mask_hides_its_class_twins_from_the_next_job(project, task_calls):
    (photo,) = ingest_photos(project, [("chelsea", "")])
    run_job(start(project), task_calls)
    made = proposals(photo)
    accepted = decide(made[0], state=Annotation.State.ACCEPTED)
    decided = [(accepted.label_class_id, accepted.box)]
    expected = sorted(key(a) for a in made[1:] if not hidden_by(a, decided))

    second = run_job(start(project, scope="not_done"), task_calls)

    fresh = list(Annotation.objects.filter(job=second))
    assert sorted(key(a) for a in fresh) == expected
    assert not any(hidden_by(a, decided) for a in fresh)


# Cancelling ------------------------------------------------------------------------------------------


def test_a_cancelled_jobs_next_batch_does_nothing(project, photos, task_calls, settings):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 2
    project.segment = False
    project.save()
    job = start(project)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    (first, second) = task_calls.of(queues.PRELABEL_BATCH_RUN)
    run_batch(first)
    annotations_after_first = Annotation.objects.count()

    assert prelabel.prelabel_job_cancel(job=job) is True
    assert run_batch(second) == {"skipped": "job not running"}

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    # No batch was running: it stopped when it was cancelled.
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at is not None
    assert (job.done, job.failed) == (2, 0)
    assert set(job.items.filter(image_id__in=second[1]).values_list("status", flat=True)) == {"pending"}
    assert set(Image.objects.filter(pk__in=second[1]).values_list("status", flat=True)) == {Image.Status.NEW}
    assert Annotation.objects.count() == annotations_after_first
    assert prelabel.prelabel_job_cancel(job=job) is False  # already ended
    # A redelivered dispatch of a cancelled job sends nothing.
    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 0
    assert len(task_calls.of(queues.PRELABEL_BATCH_RUN)) == 2


def test_a_job_cancelled_while_queued_is_never_dispatched(project, task_calls):
    plain_images(project, 2)
    job = start(project)
    assert prelabel.prelabel_job_cancel(job=job) is True
    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 0
    assert task_calls.of(queues.PRELABEL_BATCH_RUN) == []
    assert counters(job)[0] == JobStatus.CANCELLED


def test_cancelling_a_finished_job_returns_false_and_changes_nothing(project, task_calls):
    project.segment = False
    project.save()
    ingest_photos(project, [("rocket", "")])
    job = run_job(start(project), task_calls)
    assert job.status == JobStatus.SUCCEEDED
    finished_at = job.finished_at

    assert prelabel.prelabel_job_cancel(job=job) is False

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.finished_at == finished_at


# Failures ---------------------------------------------------------------------------------------------


def test_a_missing_image_file_fails_that_image_and_the_others_are_done(project, task_calls):
    project.segment = False
    project.save()
    present, missing, also_present = ingest_photos(project, [("chelsea", ""), ("coffee", ""), ("rocket", "")])
    delete_file(missing)

    job = run_job(start(project), task_calls)

    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 2, 1)
    item = job.items.get(image=missing)
    assert item.status == PrelabelJobItem.Status.FAILED
    assert "missing" in item.error
    assert item.finished_at is not None
    assert not missing.annotations.exists()
    missing.refresh_from_db()
    assert missing.status == Image.Status.NEW
    for image in (present, also_present):
        assert job.items.get(image=image).status == PrelabelJobItem.Status.DONE
        assert image.annotations.exists()
    assert item_sums(job) == (2, 1, job.annotation_count)


def test_an_unreadable_image_file_fails_with_its_reason(project, task_calls):
    project.segment = False
    project.save()
    good, broken = ingest_photos(project, [("chelsea", ""), ("coffee", "")])
    with broken.file.storage.open(broken.file.name, "wb") as handle:
        handle.write(b"not an image any more")

    job = run_job(start(project), task_calls)

    item = job.items.get(image=broken)
    assert item.status == PrelabelJobItem.Status.FAILED
    assert "cannot be read" in item.error
    assert job.items.get(image=good).status == PrelabelJobItem.Status.DONE
    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 1, 1)


def test_a_configured_detector_folder_that_is_missing_fails_the_job_naming_the_model_only(
    project, task_calls, settings, caplog
):
    settings.LABELGPT_MODELS = "real"
    settings.LABELGPT_DETECTORS = {"ours": "/nonexistent/folder"}
    project.detector = "ours"
    project.save()
    ingest_photos(project, [("chelsea", ""), ("coffee", "")])

    with caplog.at_level(logging.ERROR, logger="inference.registry"):
        job = run_job(start(project), task_calls)

    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert job.error == 'The models cannot be loaded: The detector "ours" is not available on this server.'
    # The server log says where and how to get the weights; the manager is not told the path.
    assert "/nonexistent/folder" in caplog.text and "hf download" in caplog.text
    assert job.params["models"] == "real"
    assert (job.done, job.failed, job.annotation_count) == (0, 0, 0)
    assert not Annotation.objects.exists()
    assert set(Image.objects.values_list("status", flat=True)) == {Image.Status.NEW}
    assert prelabel.prelabel_job_cancel(job=job) is False


def test_a_job_whose_images_all_fail_is_failed(project, task_calls):
    images = ingest_photos(project, [("chelsea", ""), ("rocket", "")])
    for image in images:
        delete_file(image)

    job = run_job(start(project), task_calls)

    assert job.status == JobStatus.FAILED
    assert (job.done, job.failed) == (0, 2)
    assert "2 image(s) failed" in job.error
    assert set(job.items.values_list("status", flat=True)) == {PrelabelJobItem.Status.FAILED}
    # The project can be pre-labeled again once the files are back.
    assert start(project).total == 2


# Embeddings and click-to-segment ----------------------------------------------------------------------


def test_segment_click_without_an_embedding_queues_it_with_the_next_images(project, photos, task_calls):
    first = photos[0]
    Image.objects.filter(pk=photos[2].pk).update(status=Image.Status.DONE)  # never prefetched

    assert segmentation.segment_click(image=first, points=[(10.0, 20.0)], labels=[1], box=None) is None

    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == [([first.pk, photos[1].pk, photos[3].pk],)]
    # Clicking again while it is computed queues nothing more.
    assert segmentation.segment_click(image=first, points=[(10.0, 20.0)], labels=[1], box=None) is None
    assert len(task_calls.of(queues.EMBEDDINGS_COMPUTE)) == 1


def test_segment_click_with_a_cached_embedding_returns_a_mask(project, photos, task_calls):
    image = photos[1]  # chelsea, 451 × 300
    assert segmentation.embeddings_compute(image_ids=[image.pk]) == 1

    result = segmentation.segment_click(
        image=image, points=[(200.0, 150.0), (20.0, 20.0)], labels=[1, 0], box=None
    )

    assert result is not None
    mask = rle_to_mask(result["mask"])
    assert mask.shape == (image.height, image.width) == (300, 451)
    assert result["area"] == int(mask.sum())
    assert result["area"] > 0  # the tiny SAM's masks are big blobs
    # The same hygiene as the proposals: faithful polygons, or none (RLE only) for a mask too
    # fragmented to trace, as the tiny model's often are.
    assert result["polygons"] == [] or polygons_are_faithful(mask, result["polygons"])
    x, y, w, h = result["box"]
    assert x >= 0 and y >= 0 and x + w <= image.width and y + h <= image.height
    assert isinstance(result["score"], float) and math.isfinite(result["score"])
    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == []  # nothing to queue


def test_segment_click_takes_a_box_alone(project, photos):
    image = photos[0]
    segmentation.embeddings_compute(image_ids=[image.pk])

    result = segmentation.segment_click(image=image, points=[], labels=[], box=(100.0, 100.0, 200.0, 150.0))

    assert rle_to_mask(result["mask"]).shape == (image.height, image.width)


def test_embeddings_prefetch_skips_cached_images_and_does_not_queue_twice(project, photos, task_calls):
    from django.core.cache import cache

    assert segmentation.embeddings_compute(image_ids=[photos[1].pk]) == 1
    assert segmentation.embeddings_compute(image_ids=[photos[1].pk]) == 0  # cached already

    queued = segmentation.embeddings_prefetch(image=photos[0])
    assert queued == [photos[0].pk, photos[2].pk, photos[3].pk]
    assert segmentation.embeddings_prefetch(image=photos[0]) == []
    assert segmentation.embeddings_prefetch(image=photos[2]) == []
    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == [(queued,)]

    # The "already queued" mark lives in Django's cache: once it is gone, they are queued again.
    cache.clear()
    assert segmentation.embeddings_prefetch(image=photos[0]) == queued
    # A computed embedding is never queued again.
    segmentation.embeddings_compute(image_ids=queued)
    cache.clear()
    assert segmentation.embeddings_prefetch(image=photos[0]) == []


def test_embeddings_compute_skips_an_image_whose_file_is_missing(project, photos):
    delete_file(photos[0])
    assert segmentation.embeddings_compute(image_ids=[p.pk for p in photos[:2]]) == 1
    store = prelabel.embedding_cache()
    assert not store.has(photos[0].sha256, "tiny")
    assert store.has(photos[1].sha256, "tiny")


# Leases, the sweeper, cancel between images, failures of any kind -----------------------------------


def gpu_worker_seen(at=None, *, up_for=timedelta(hours=1)) -> WorkerBeat:
    """A worker on the gpu queue, up for `up_for`, that reported at `at` (now by default)."""
    at = at or timezone.now()
    return WorkerBeat.objects.create(hostname="gpu@test", queues="gpu", started_at=at - up_for, seen_at=at)


def die_holding(call: tuple, at) -> None:
    """A worker took the batch at `at` and died at once (SIGKILL, OOM): claimed, never finished."""
    _, _, token = call
    PrelabelJobItem.objects.filter(batch_token=token).update(claimed_at=at, heartbeat_at=at, worker="w1@dead")


def after_lease(at, settings):
    return at + timedelta(seconds=settings.LABELGPT_BATCH_LEASE_SECONDS + 1)


@pytest.fixture
def boxes_only(project):
    project.segment = False
    project.save()
    return project


def test_only_a_few_batches_are_out_at_once_and_each_sends_the_next(boxes_only, photos, task_calls, settings):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 1
    settings.LABELGPT_PRELABEL_BATCHES_IN_FLIGHT = 2
    job = start(boxes_only)

    assert prelabel.prelabel_job_dispatch(job_id=job.pk) == 2
    first, second = task_calls.of(queues.PRELABEL_BATCH_RUN)
    out = job.items.exclude(batch_token="")
    assert sorted(out.values_list("image_id", flat=True)) == [photos[0].pk, photos[1].pk]
    assert set(out.values_list("attempts", flat=True)) == {1}
    assert first[2] != second[2]

    run_batch(first, worker="w1@host")
    item = job.items.get(image=photos[0])
    assert (item.status, item.worker, item.batch_token) == (PrelabelJobItem.Status.DONE, "w1@host", first[2])
    assert item.claimed_at is not None and item.heartbeat_at >= item.claimed_at
    assert sent(task_calls)[2] == (job.pk, [photos[2].pk])  # the next one, sent as the first ended

    job = run_job(job, task_calls)
    assert counters(job)[:4] == (JobStatus.SUCCEEDED, 4, 4, 0)
    assert len(task_calls.of(queues.PRELABEL_BATCH_RUN)) == 4


def test_the_sweeper_hands_out_again_the_images_of_a_dead_worker_once_its_lease_ends(
    boxes_only, photos, task_calls, settings
):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 2
    job = start(boxes_only)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    first, second = task_calls.of(queues.PRELABEL_BATCH_RUN)
    t0 = timezone.now()
    die_holding(first, t0)
    run_batch(second)

    # Within the lease nothing moves.
    assert prelabel.prelabel_jobs_sweep(now=t0 + timedelta(seconds=5)).get("released", 0) == 0
    assert len(task_calls.of(queues.PRELABEL_BATCH_RUN)) == 2

    stats = prelabel.prelabel_jobs_sweep(now=after_lease(t0, settings))

    assert stats["released"] == 2 and stats["batches_sent"] == 2
    again = task_calls.of(queues.PRELABEL_BATCH_RUN)[2:]
    # Images tried before go one per batch, counted as their second attempt.
    assert sorted(ids for _, ids, _ in again) == [[photos[0].pk], [photos[1].pk]]
    assert set(job.items.filter(image__in=photos[:2]).values_list("attempts", flat=True)) == {2}
    # The dead batch's message, delivered again by the broker, changes nothing.
    assert run_batch(first) == {"skipped": "already taken"}
    for call in again:
        run_batch(call)
    assert counters(job)[:4] == (JobStatus.SUCCEEDED, 4, 4, 0)
    assert item_sums(job) == (4, 0, Annotation.objects.filter(job=job).count())


def test_a_lost_message_is_sent_again_once_a_gpu_worker_is_free_to_take_it(
    boxes_only, photos, task_calls, settings
):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 4
    job = start(boxes_only)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    later = after_lease(timezone.now(), settings)

    # No worker on the gpu queue: the batch is only waiting; nothing is counted against it.
    assert prelabel.prelabel_jobs_sweep(now=later).get("released", 0) == 0
    assert set(job.items.values_list("attempts", flat=True)) == {1}

    # A worker that has just started may not have reached the message yet.
    just_started = gpu_worker_seen(later, up_for=timedelta(seconds=1))
    assert prelabel.prelabel_jobs_sweep(now=later).get("released", 0) == 0

    just_started.delete()
    gpu_worker_seen(later)
    stats = prelabel.prelabel_jobs_sweep(now=later)

    assert stats["released"] == 4
    # Sent again one image per batch (they were tried once), as many batches as may be out.
    assert [ids for _, ids in sent(task_calls)[1:]] == [[photos[0].pk], [photos[1].pk]]
    job = run_job(job, task_calls)
    assert counters(job)[:4] == (JobStatus.SUCCEEDED, 4, 4, 0)


def test_a_batch_waiting_behind_a_running_one_is_not_taken_for_lost(boxes_only, photos, task_calls, settings):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 2
    job = start(boxes_only)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    first, _second = task_calls.of(queues.PRELABEL_BATCH_RUN)
    later = after_lease(timezone.now(), settings)
    gpu_worker_seen(later)
    die_holding(first, later)  # claimed and heartbeating at `later`: a long batch, alive

    assert prelabel.prelabel_jobs_sweep(now=later).get("released", 0) == 0
    assert len(task_calls.of(queues.PRELABEL_BATCH_RUN)) == 2


def test_an_image_that_kills_its_worker_fails_after_the_attempts_allowed(project, task_calls, settings):
    settings.LABELGPT_BATCH_MAX_ATTEMPTS = 3
    project.segment = False
    project.save()
    (poison,) = plain_images(project, 1)
    job = start(project)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    now = timezone.now()
    for attempt in (1, 2, 3):
        call = task_calls.of(queues.PRELABEL_BATCH_RUN)[-1]
        assert job.items.get().attempts == attempt
        die_holding(call, now)
        now = after_lease(now, settings)
        prelabel.prelabel_jobs_sweep(now=now)

    assert len(task_calls.of(queues.PRELABEL_BATCH_RUN)) == 3
    item = job.items.get()
    assert item.status == PrelabelJobItem.Status.FAILED
    assert "died" in item.error and "3 time(s)" in item.error and "w1@dead" in item.error
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == (JobStatus.FAILED, 0, 1)
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at is not None
    assert not poison.annotations.exists()


def test_the_sweeper_finishes_a_job_whose_last_batch_died_after_saving(boxes_only, photos, task_calls):
    job = start(boxes_only)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    (call,) = task_calls.of(queues.PRELABEL_BATCH_RUN)
    run_batch(call)
    # As if the worker died between the last save and the end of the batch.
    PrelabelJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, finished_at=None, stopped_at=None)

    prelabel.prelabel_jobs_sweep()

    assert counters(job)[:4] == (JobStatus.SUCCEEDED, 4, 4, 0)
    assert job.stopped_at is not None


def test_a_queued_job_whose_dispatch_was_lost_is_dispatched_by_the_sweeper(
    boxes_only, photos, task_calls, settings
):
    job = start(boxes_only)  # the test's transaction never commits: its dispatch is never sent
    assert task_calls.of(queues.PRELABEL_JOB_DISPATCH) == []

    prelabel.prelabel_jobs_sweep(now=after_lease(timezone.now(), settings))

    assert counters(job)[0] == JobStatus.RUNNING
    assert len(task_calls.of(queues.PRELABEL_BATCH_RUN)) == 1


def cancel_at_image(monkeypatch, index: int) -> None:
    """Cancel the job while image `index` of a batch is being computed (before it is saved)."""
    real = prelabel.prelabel_batch

    def batch(*args, on_image, **kwargs):
        def save(i, result):
            if i == index:
                PrelabelJob.objects.filter(status=JobStatus.RUNNING).update(
                    status=JobStatus.CANCELLED, finished_at=timezone.now()
                )
            on_image(i, result)

        return real(*args, on_image=save, **kwargs)

    monkeypatch.setattr(prelabel, "prelabel_batch", batch)


def test_a_cancel_takes_effect_between_images_and_nothing_is_written_after_it(
    boxes_only, photos, task_calls, monkeypatch
):
    job = start(boxes_only)  # one batch of four
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    cancel_at_image(monkeypatch, 1)
    computed = []
    real_detect = prelabel.prelabel_batch

    def tracked(*args, on_image, **kwargs):
        return real_detect(*args, on_image=lambda i, r: (computed.append(i), on_image(i, r)), **kwargs)

    monkeypatch.setattr(prelabel, "prelabel_batch", tracked)

    (call,) = task_calls.of(queues.PRELABEL_BATCH_RUN)
    run_batch(call)

    job.refresh_from_db()
    assert computed == [0, 1]  # image 2 was never started: the batch asked before it
    assert (job.status, job.done, job.failed) == (JobStatus.CANCELLED, 1, 0)
    done = job.items.get(status=PrelabelJobItem.Status.DONE)
    assert done.image_id == photos[0].pk
    assert set(Annotation.objects.values_list("image_id", flat=True)) == {photos[0].pk}
    assert set(Image.objects.filter(pk__in=[p.pk for p in photos[1:]]).values_list("status", flat=True)) == {
        Image.Status.NEW
    }
    # The unfinished images are no longer held by a batch; the job records when it really stopped.
    assert not job.items.filter(status=PrelabelJobItem.Status.PENDING).exclude(batch_token="").exists()
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at >= job.finished_at


def test_a_cancel_while_a_batch_runs_leaves_the_job_stopping_until_the_batch_ends(
    boxes_only, photos, task_calls, settings
):
    job = start(boxes_only)
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    (call,) = task_calls.of(queues.PRELABEL_BATCH_RUN)
    die_holding(call, timezone.now())  # a batch holds the images, heartbeating now

    assert prelabel.prelabel_job_cancel(job=job) is True

    job.refresh_from_db()
    assert (job.status, job.stage, job.stopped_at) == (JobStatus.CANCELLED, PrelabelJob.Stage.STOPPING, None)
    # The batch never reports (its worker died): the sweeper says it stopped at its last heartbeat.
    prelabel.prelabel_jobs_sweep(now=after_lease(timezone.now(), settings))
    job.refresh_from_db()
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at <= timezone.now()


@pytest.mark.parametrize(
    "error", [RuntimeError("CUDA error: an illegal memory access"), KeyError("classes"), MemoryError()]
)
def test_any_exception_in_a_batch_fails_its_images_with_the_reason_and_ends_the_job(
    boxes_only, photos, task_calls, monkeypatch, error
):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(prelabel, "prelabel_batch", broken)
    job = run_job(start(boxes_only), task_calls)

    assert (job.status, job.done, job.failed) == (JobStatus.FAILED, 0, 4)
    assert "4 image(s) failed" in job.error
    reasons = set(job.items.values_list("error", flat=True))
    assert reasons == {f"The batch failed: {type(error).__name__}: {error}"}
    assert job.stage == PrelabelJob.Stage.STOPPED and job.stopped_at is not None
    assert start(boxes_only).total == 4  # nothing is left blocking the project


def test_a_failing_batch_does_not_stop_the_others(boxes_only, photos, task_calls, monkeypatch, settings):
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 2
    real = prelabel.prelabel_batch
    calls = []

    def second_breaks(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("a bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(prelabel, "prelabel_batch", second_breaks)
    job = run_job(start(boxes_only), task_calls)

    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 2, 2)
    assert set(job.items.filter(status="failed").values_list("error", flat=True)) == {
        "The batch failed: ValueError: a bug"
    }


def test_the_stage_goes_from_queued_to_loading_to_running_to_stopped(
    boxes_only, photos, task_calls, monkeypatch
):
    from inference import registry

    job = start(boxes_only)
    seen = []
    real_detector, real_batch = registry.get_detector, prelabel.prelabel_batch

    def stage() -> str:
        return PrelabelJob.objects.values_list("stage", flat=True).get(pk=job.pk)

    def detector(*args):
        seen.append(stage())
        return real_detector(*args)

    def batch(*args, **kwargs):
        seen.append(stage())
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(registry, "get_detector", detector)
    monkeypatch.setattr(prelabel, "prelabel_batch", batch)

    seen.append(stage())
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    seen.append(stage())
    job = run_job(job, task_calls)

    assert seen == ["queued", "queued", "loading", "running"]
    assert job.stage == "stopped"


def test_rate_and_eta_are_over_the_running_time_and_shown_after_the_first_image(project):
    from labeling.selectors.prelabel import job_progress

    t0 = timezone.now()
    running = PrelabelJob(project=project, status=JobStatus.RUNNING, total=10, started_at=t0)
    assert job_progress(running, now=t0 + timedelta(seconds=30)).eta_seconds is None  # no image yet

    running.done = 2
    progress = job_progress(running, now=t0 + timedelta(seconds=60))
    assert progress.rate_per_minute == pytest.approx(2.0)
    assert progress.eta_seconds == pytest.approx(240.0)
    assert progress.eta_text == "about 4 min left"

    # Cancelled at 60 s, its last batch stopped at 90 s with 3 images done: 2 images/min, no ETA.
    cancelled = PrelabelJob(
        project=project, status=JobStatus.CANCELLED, total=10, done=3, started_at=t0,
        finished_at=t0 + timedelta(seconds=60), stopped_at=t0 + timedelta(seconds=90),
    )  # fmt: skip
    progress = job_progress(cancelled, now=t0 + timedelta(hours=1))
    assert progress.rate_per_minute == pytest.approx(2.0)
    assert progress.eta_seconds is None and progress.eta_text == ""


def test_the_prelabel_command_inline_runs_the_job_in_its_own_process(boxes_only, photos, task_calls):
    out = io.StringIO()
    call_command("prelabel", str(boxes_only.pk), "--inline", stdout=out, stderr=io.StringIO())

    job = PrelabelJob.objects.get()
    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 4, 0)
    assert job.params["inline"] is True
    assert task_calls.calls == []  # nothing went to a broker
    assert set(job.items.values_list("worker", flat=True)) == {f"inline {prelabel.worker_name()}"}
    assert f"Done: 4 image(s), 0 failed, {job.annotation_count} proposals." in out.getvalue()


def test_an_inline_job_is_never_handed_to_the_workers_by_the_sweeper(
    boxes_only, photos, task_calls, settings
):
    job = prelabel.prelabel_job_start(project=boxes_only, user=None, enqueue=False)
    PrelabelJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())

    prelabel.prelabel_jobs_sweep()
    assert task_calls.calls == []
    # Its command died: once silent for a lease, the job fails saying so.
    prelabel.prelabel_jobs_sweep(now=after_lease(timezone.now(), settings))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "--inline" in job.error


def test_prelabel_wait_says_quickly_when_no_worker_consumes_the_queues(boxes_only, photos, task_calls):
    with pytest.raises(CommandError, match="No worker is consuming the default queue and the gpu queue"):
        call_command(
            "prelabel", str(boxes_only.pk), "--wait", "--worker-timeout", "0.1",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    job = PrelabelJob.objects.get()
    assert job.status == JobStatus.QUEUED  # it runs once a worker starts


def test_prelabel_wait_waits_while_a_gpu_worker_is_alive(boxes_only, photos, task_calls, monkeypatch):
    """With workers reporting, --wait follows the job instead of giving up (here the test plays
    the workers: dispatch and batches run when the command first looks at the job)."""
    now = timezone.now()
    WorkerBeat.objects.create(hostname="default@t", queues="default", started_at=now, seen_at=now)
    gpu_worker_seen()
    from labeling.management.commands import prelabel as command

    monkeypatch.setattr(command.time, "sleep", lambda seconds: run_job(PrelabelJob.objects.get(), task_calls))
    out = io.StringIO()
    call_command(
        "prelabel", str(boxes_only.pk), "--wait", "--worker-timeout", "0.1", stdout=out, stderr=io.StringIO()
    )
    assert "Done: 4 image(s)" in out.getvalue()


def test_build_tiny_models_is_a_command_of_the_labeling_app(settings, tmp_path, monkeypatch, capsys):
    from django.core.management import get_commands

    from labeling.management.commands import build_tiny_models

    built = []
    monkeypatch.setattr(
        build_tiny_models, "build_tiny_models", lambda folder, *, seed: built.append((folder, seed)) or folder
    )
    settings.LABELGPT_MODELS_DIR = tmp_path

    assert get_commands()["build_tiny_models"] == "labeling"
    call_command("build_tiny_models")
    call_command("build_tiny_models", "--out", str(tmp_path / "elsewhere"), "--seed", "3")

    assert built == [(tmp_path / "tiny", 0), (tmp_path / "elsewhere", 3)]
    assert f"Tiny models written to {tmp_path / 'tiny'}" in capsys.readouterr().out
