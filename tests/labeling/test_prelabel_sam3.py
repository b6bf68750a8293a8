"""A project whose detector is a SAM 3 model: the admin's list offers it, the project form takes
it, and a pre-label job run through the services (tiny models, in-process) stores the masks SAM 3
made itself, with their scores and boxes, none below the job's keep threshold."""

from __future__ import annotations

import io
import math

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from inference.masks import polygons_are_faithful, rle_to_mask
from labeling import model_choices
from labeling.forms import ProjectForm
from labeling.models import Annotation, JobStatus, PrelabelJob
from labeling.services import prelabel
from tests.labeling.conftest import ingest_photos, run_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models", "task_calls", "clear_throttles")]

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


# Per job: a job may choose another detector of the admin's list ----------------------------------

V = "/api/v1"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def gdino_project(project, settings):
    """A Grounding DINO project on a server that also offers SAM 3."""
    settings.LABELGPT_DETECTORS = DETECTORS
    project.detector = "IDEA-Research/grounding-dino-tiny"
    project.keep_threshold = 0.25
    project.full_clean()
    project.save()
    return project


def test_a_job_of_a_grounding_dino_project_runs_sam3_when_it_chooses_it(gdino_project, task_calls):
    photos = ingest_photos(gdino_project, [("chelsea", ""), ("coffee", "")])

    job = run_job(
        prelabel.prelabel_job_start(
            project=gdino_project, user=None, options=prelabel.JobOptions(detector="sam3")
        ),
        task_calls,
    )

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["detector"] == "sam3"
    gdino_project.refresh_from_db()
    assert gdino_project.detector == "IDEA-Research/grounding-dino-tiny"  # the project keeps its own
    rows = list(Annotation.objects.filter(job=job))
    assert rows
    for a in rows:  # SAM 3's own masks: a mask per proposal even where SAM's decoder gave none
        photo = next(p for p in photos if p.pk == a.image_id)
        assert rle_to_mask(a.mask).shape == (photo.height, photo.width)


def test_a_job_without_a_detector_takes_the_projects(gdino_project):
    ingest_photos(gdino_project, [("chelsea", "")])
    job = prelabel.prelabel_job_start(project=gdino_project, user=None, options=prelabel.JobOptions())
    assert job.params["detector"] == "IDEA-Research/grounding-dino-tiny"


def test_a_job_refuses_a_detector_the_admin_does_not_list(gdino_project):
    ingest_photos(gdino_project, [("chelsea", "")])
    with pytest.raises(ValidationError) as caught:
        prelabel.prelabel_job_start(
            project=gdino_project, user=None, options=prelabel.JobOptions(detector="sam3-huge")
        )
    assert "detector" in caught.value.message_dict
    assert "sam3" in caught.value.message_dict["detector"][0]  # names what is offered
    assert not PrelabelJob.objects.exists()


def test_the_prelabel_form_offers_the_admins_detectors_and_starts_a_job_with_one(
    client_for, manager, gdino_project, django_capture_on_commit_callbacks
):
    ingest_photos(gdino_project, [("chelsea", "")])
    client = client_for(manager)
    url = reverse("project-prelabel", kwargs={"project_id": gdino_project.pk})
    page = client.get(url).content.decode()
    assert 'name="detector"' in page and '<option value="sam3">sam3</option>' in page
    assert "Project&#x27;s (IDEA-Research/grounding-dino-tiny)" in page
    data = {
        "classes": [c.pk for c in gdino_project.classes.all()],
        "box_threshold": "0.3",
        "text_threshold": "0.25",
        "scope": "new",
    }

    refused = client.post(url, {**data, "detector": "sam3-huge"}, **HTMX)
    assert refused.status_code == 400 and "detector" in refused.content.decode()
    assert not PrelabelJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(url, {**data, "detector": "sam3"}, **HTMX)
    assert started.status_code == 200
    assert PrelabelJob.objects.get().params["detector"] == "sam3"


def test_the_api_starts_a_job_with_a_listed_detector_and_refuses_an_unlisted_one(api_for, gdino_project):
    ingest_photos(gdino_project, [("chelsea", "")])
    client = api_for("manager")
    url = f"{V}/projects/{gdino_project.pk}/jobs/"

    refused = client.post(url, {"detector": "sam3-huge"}, format="json")
    assert refused.status_code == 400
    assert "detector" in refused.json()["fields"] and "sam3-huge" in refused.json()["error"]
    assert not PrelabelJob.objects.exists()
    started = client.post(url, {"detector": "sam3"}, format="json")
    assert started.status_code == 201, started.json()
    assert started.json()["params"]["detector"] == "sam3"
    PrelabelJob.objects.update(status=JobStatus.SUCCEEDED)
    default = client.post(url, {"detector": None}, format="json")
    assert default.status_code == 201 and default.json()["params"]["detector"] == gdino_project.detector


def test_the_prelabel_command_takes_a_detector_for_the_job(gdino_project, task_calls):
    ingest_photos(gdino_project, [("coffee", "")])
    with pytest.raises(CommandError, match="detector"):
        call_command(
            "prelabel", str(gdino_project.pk), "--inline", "--detector", "sam3-huge", stdout=io.StringIO()
        )
    assert not PrelabelJob.objects.exists()

    call_command("prelabel", str(gdino_project.pk), "--inline", "--detector", "sam3", stdout=io.StringIO())

    job = PrelabelJob.objects.get()
    assert (job.status, job.params["detector"]) == (JobStatus.SUCCEEDED, "sam3")
    assert Annotation.objects.filter(job=job).exists()
