"""A project whose detector is a SAM 3 model: the admin's list offers it, the project form takes
it, and a pre-label job run through the services (tiny models, in-process) stores the masks SAM 3
made itself, with their scores and boxes, none below the job's keep threshold."""

from __future__ import annotations

import math

import pytest

from inference.masks import polygons_are_faithful, rle_to_mask
from labeling import model_choices
from labeling.forms import ProjectForm
from labeling.models import Annotation, JobStatus
from labeling.services import prelabel
from tests.labeling.conftest import ingest_photos, run_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models", "task_calls")]

DETECTORS = {
    "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "sam3": "facebook/sam3",
}


@pytest.fixture
def sam3_project(project, settings):
    settings.LABELGPT_DETECTORS = DETECTORS
    project.detector = "sam3"
    project.box_threshold = 0.3
    project.keep_threshold = 0.25  # the tiny SAM 3's scores straddle it
    project.full_clean()
    project.save()
    return project


def test_the_project_form_offers_and_takes_a_sam3_detector(project, settings):
    settings.LABELGPT_DETECTORS = DETECTORS
    form = ProjectForm(instance=project)
    assert ("sam3", "sam3") in form.fields["detector"].choices
    data = {
        "name": project.name,
        "description": "",
        "box_threshold": 0.3,
        "text_threshold": 0.25,
        "keep_threshold": 0.2,
        "prompt_mode": project.prompt_mode,
        "segment": "on",
        "detector": "sam3",
        "segmenter": project.segmenter,
    }
    bound = ProjectForm(data, instance=project)
    assert bound.is_valid(), bound.errors
    assert bound.save().detector == "sam3"
    assert model_choices.model_errors(detector="sam3", segmenter=project.segmenter) == {}


@pytest.mark.parametrize("segment", [True, False])
def test_a_sam3_job_stores_sam3_masks_scores_and_boxes(sam3_project, task_calls, segment):
    sam3_project.segment = segment
    sam3_project.save()
    photos = ingest_photos(sam3_project, [("chelsea", ""), ("coffee", "")])

    job = run_job(
        prelabel.prelabel_job_start(project=sam3_project, user=None, options=prelabel.JobOptions()),
        task_calls,
    )

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["detector"] == "sam3"
    keep = job.params["keep_threshold"]
    assert keep == 0.25
    rows = list(Annotation.objects.filter(job=job))
    assert rows and job.annotation_count == len(rows)
    for a in rows:
        photo = next(p for p in photos if p.pk == a.image_id)
        assert a.source == Annotation.Source.MODEL and a.state == Annotation.State.PROPOSED
        assert not math.isnan(a.score) and keep <= a.score <= 1.0
        x, y, w, h = a.box
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= photo.width + 1e-6 and y + h <= photo.height + 1e-6
        # Every SAM 3 proposal has its own mask, segment or not.
        mask = rle_to_mask(a.mask)
        assert mask.shape == (photo.height, photo.width) and mask.any()
        assert a.polygons == [] or polygons_are_faithful(mask, a.polygons)
    store = prelabel.embedding_cache()
    # Click-to-segment stays on SAM: with segmentation on, the SAM embedding is cached too.
    assert all(store.has(p.sha256, "tiny") == segment for p in photos)
