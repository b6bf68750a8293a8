"""A prompt lab run on a real `celery worker` (gpu queue, tiny models): sent as the run commits,
measured to the end, its figures stored per candidate; a second run of the same prompts is
answered from the detection cache."""

from __future__ import annotations

import numpy as np
import pytest

from inference.masks import mask_to_rle
from labeling.models import Annotation, DetectionCache, Image, JobStatus, PromptLabRun
from labeling.services import prompt_lab
from tests.integration.test_prelabel_worker import wait_for
from tests.labeling.conftest import ingest_photos

pytestmark = pytest.mark.integration


def ended(run: PromptLabRun) -> bool:
    run.refresh_from_db()
    return not run.is_active


def test_a_prompt_lab_run_runs_to_the_end_on_the_worker(prelabel_worker_process, project, manager):
    photos = ingest_photos(project, [("chelsea", ""), ("coffee", ""), ("astronaut", "")])
    Image.objects.filter(pk__in=[p.pk for p in photos]).update(status=Image.Status.DONE)
    cat = project.classes.get(name="cat")
    cat.max_instances = 3  # the tiny SAM's ragged masks make polygons slow
    cat.save()
    for photo in photos[:2]:
        mask = np.zeros((photo.height, photo.width), dtype=bool)
        mask[40:200, 60:260] = True
        Annotation.objects.create(
            image=photo, label_class=cat, x=60, y=40, w=200, h=160, mask=mask_to_rle(mask),
            source=Annotation.Source.HUMAN, state=Annotation.State.ACCEPTED,
        )  # fmt: skip
    prelabel_worker_process.start()

    # transactional_db: no outer transaction, so the task is sent as the run commits.
    run = prompt_lab.prompt_lab_start(
        project=project, user=manager, label_class_id=cat.pk, prompts=["a small cat"], sample_size=2, seed=5
    )
    wait_for(lambda: ended(run), f"the end of prompt lab run {run.pk}", prelabel_worker_process)

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert len(run.image_ids) == 2 and set(run.image_ids) <= {p.pk for p in photos}
    assert run.started_at is not None and run.seconds is not None
    candidates = list(run.candidates.all())
    assert [c.prompt for c in candidates] == ["cat", "a small cat"]
    for candidate in candidates:
        assert candidate.status == JobStatus.SUCCEEDED, candidate.error
        truths = Annotation.objects.filter(
            image_id__in=run.image_ids, state=Annotation.State.ACCEPTED
        ).count()
        assert candidate.scores["truths"] == truths
        assert candidate.seconds_per_image > 0 and candidate.cached_images == 0
    assert DetectionCache.objects.count() == 4

    again = prompt_lab.prompt_lab_start(
        project=project, user=manager, label_class_id=cat.pk, prompts=["a small cat"], sample_size=2, seed=5
    )
    wait_for(lambda: ended(again), f"the end of prompt lab run {again.pk}", prelabel_worker_process)
    assert again.status == JobStatus.SUCCEEDED, again.error
    assert again.image_ids == run.image_ids
    assert [c.cached_images for c in again.candidates.all()] == [2, 2]
    assert [c.scores for c in again.candidates.all()] == [c.scores for c in candidates]
    assert DetectionCache.objects.count() == 4
