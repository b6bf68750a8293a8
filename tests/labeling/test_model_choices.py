"""The detectors and segmenters a project may choose are the admin's lists (LABELGPT_DETECTORS,
LABELGPT_SEGMENTERS): the project form, the API and the model accept those names only, the
workers load what a name maps to, and a model that does not load is named, never its path."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from inference import registry
from inference.models import grounding_dino
from labeling.forms import ProjectForm
from labeling.models import JobStatus, Project
from labeling.services import prelabel
from labeling.services.projects import project_create, project_update
from tests.labeling.api_helpers import token_client
from tests.labeling.conftest import ingest_photos, run_job
from tests.labeling.test_project_pages import form_data, rows_of
from tests.labeling.test_segment_endpoint import CLICK, post_json

pytestmark = pytest.mark.django_db

OURS = {"gdino-ours": "/srv/models/gdino-finetuned", "gdino-hub": "IDEA-Research/grounding-dino-base"}


@pytest.fixture
def listed(settings):
    settings.LABELGPT_DETECTORS = OURS
    settings.LABELGPT_SEGMENTERS = {"vit_l": ""}
    return settings


# The form, the API and the model -----------------------------------------------------------------


def test_the_project_form_offers_the_listed_names_only(listed):
    form = ProjectForm()

    assert [value for value, _ in form.fields["detector"].choices] == ["gdino-ours", "gdino-hub"]
    assert [value for value, _ in form.fields["segmenter"].choices] == ["vit_l"]
    assert "/srv/models" not in form.as_p()  # the manager sees names, not where they live


def test_the_project_page_refuses_a_path_or_an_unlisted_hub_id(client_for, manager, project, listed):
    project_update(project=project, detector="gdino-ours", segmenter="vit_l")
    url = reverse("project-edit", kwargs={"project_id": project.pk})
    client = client_for(manager)

    for detector in ["/etc", "some-org/any-repo", "IDEA-Research/grounding-dino-tiny"]:
        response = client.post(
            url,
            form_data(
                rows_of(project), initial=project.classes.count(), detector=detector, segmenter="vit_l"
            ),
        )
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
    project.refresh_from_db()
    assert project.detector == "gdino-ours"

    response = client.post(
        url,
        form_data(rows_of(project), initial=project.classes.count(), detector="gdino-hub", segmenter="vit_l"),
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.detector == "gdino-hub"


def test_the_api_refuses_unlisted_names_and_accepts_listed_ones(manager, project, listed):
    project_update(project=project, detector="gdino-ours", segmenter="vit_l")
    api = token_client(manager)
    url = reverse("api-project", kwargs={"project_id": project.pk})

    for field, value in [("detector", "/srv/models"), ("detector", "any/repo"), ("segmenter", "vit_b")]:
        response = api.patch(url, {field: value}, format="json")
        assert response.status_code == 400, (field, value)
        assert field in response.json()["fields"]
    assert api.patch(url, {"detector": "gdino-hub"}, format="json").json()["detector"] == "gdino-hub"
    project.refresh_from_db()
    assert (project.detector, project.segmenter) == ("gdino-hub", "vit_l")


def test_a_project_created_without_names_gets_the_first_listed_when_the_default_is_not(admin_user, listed):
    response = token_client(admin_user).post(
        reverse("api-projects"), {"name": "Street", "classes": [{"name": "car"}]}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["detector"], response.json()["segmenter"]) == ("gdino-ours", "vit_l")


def test_the_model_refuses_a_name_not_listed_whatever_writes_it(project, listed):
    project.detector, project.segmenter = "/etc/passwd", "vit_h"

    with pytest.raises(ValidationError) as raised:
        project.full_clean()

    assert set(raised.value.message_dict) >= {"detector", "segmenter"}
    with pytest.raises(ValidationError):
        project_create(user=None, name="x", detector="any/repo")


def test_the_default_lists_keep_the_names_projects_already_hold(project):
    assert (project.detector, project.segmenter) == ("IDEA-Research/grounding-dino-tiny", "vit_b")
    project.full_clean()
    assert [v for v, _ in ProjectForm().fields["segmenter"].choices] == registry.segmenter_names()


def test_a_segmenter_no_family_offers_fails_the_system_check(settings):
    settings.LABELGPT_SEGMENTERS = {"sam9": ""}

    with pytest.raises(SystemCheckError, match="sam9"):
        call_command("check")


# The workers: only listed names load, and a failure names the model ---------------------------------


@pytest.fixture
def hub_calls(monkeypatch):
    """Every Grounding DINO load (local or from the hub) is recorded and refused."""
    calls = []

    def refuse(source, *, local_files_only):
        calls.append(source)
        raise OSError(f"not loading {source} in a test")

    monkeypatch.setattr(grounding_dino, "_from_pretrained", refuse)
    registry.clear()
    yield calls
    registry.clear()


@pytest.mark.usefixtures("tiny_models", "task_calls")
def test_a_name_removed_from_the_list_is_never_loaded(project, task_calls, settings, hub_calls):
    settings.LABELGPT_MODELS = "real"
    ingest_photos(project, [("chelsea", "")])
    job = prelabel.prelabel_job_start(project=project, user=None)
    settings.LABELGPT_DETECTORS = OURS  # the admin removed the job's detector since

    job = run_job(job, task_calls)

    assert job.status == JobStatus.FAILED
    detector = "IDEA-Research/grounding-dino-tiny"
    assert (
        job.error
        == f'The models cannot be loaded: The detector "{detector}" is not available on this server.'
    )
    assert hub_calls == []  # neither the hub nor its cache was asked


@pytest.mark.usefixtures("tiny_models", "task_calls")
def test_a_job_cannot_start_with_a_name_not_listed(project, listed):
    Project.objects.filter(pk=project.pk).update(detector="some-org/any-repo")  # as a row from before
    project.refresh_from_db()
    ingest_photos(project, [("chelsea", "")])

    with pytest.raises(ValidationError, match="Choose one of the detectors"):
        prelabel.prelabel_job_start(project=project, user=None)


@pytest.mark.usefixtures("tiny_models", "task_calls")
def test_a_listed_local_detector_that_is_missing_fails_the_job_without_its_path(
    project, task_calls, listed, hub_calls, caplog
):
    listed.LABELGPT_MODELS = "real"
    project_update(project=project, detector="gdino-ours", segmenter="vit_l")
    ingest_photos(project, [("chelsea", "")])

    with caplog.at_level(logging.ERROR, logger="inference.registry"):
        job = run_job(prelabel.prelabel_job_start(project=project, user=None), task_calls)

    assert job.status == JobStatus.FAILED
    assert (
        job.error == 'The models cannot be loaded: The detector "gdino-ours" is not available on this server.'
    )
    assert "/srv/models/gdino-finetuned" in caplog.text  # the admin finds the reason in the log
    assert hub_calls == []  # a missing folder is never taken for a hub id


@pytest.mark.usefixtures("tiny_models", "task_calls")
def test_a_click_with_a_listed_checkpoint_that_is_missing_names_the_segmenter_only(
    client_for, annotator, project, settings, tmp_path, caplog
):
    missing = tmp_path / "nowhere" / "sam_vit_l.pth"
    settings.LABELGPT_MODELS = "real"
    settings.LABELGPT_MODELS_DIR = tmp_path / "models"
    settings.LABELGPT_SEGMENTERS = {"vit_l": str(missing)}
    project_update(project=project, segmenter="vit_l")
    (image,) = ingest_photos(project, [("chelsea", "")])
    registry.clear()
    try:
        with caplog.at_level(logging.ERROR, logger="inference.registry"):
            response = post_json(client_for(annotator), image, CLICK)
    finally:
        registry.clear()

    assert response.status_code == 503
    error = response.json()["error"]
    assert 'The segmenter "vit_l" is not available on this server.' in error
    assert str(tmp_path) not in error and "does not exist" not in error
    assert str(missing) in caplog.text
