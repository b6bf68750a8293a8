"""The import as a background task (issue 11): the service stores the file and sends the task
on commit, the task runs the import once and records its progress and report, the API answers
202 with a status URL readable by the project's members only."""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling import queues, tasks
from labeling.models import Annotation, ImportJob
from labeling.services import imports
from tests.labeling.api_helpers import token_client
from tests.labeling.import_helpers import add_images, media_files, png, snapshot, zip_bytes
from webapp.celery import app as celery_app

pytestmark = pytest.mark.django_db

V = "/api/v1"
COCO = {
    "images": [{"id": 1, "file_name": "a.png"}],
    "categories": [{"id": 1, "name": "cat"}],
    "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}],
}


@pytest.fixture
def image(project):
    return add_images(project, [("a.png", (64, 48))])[0]


def start(project, user, data: bytes, *, name="d.json", format="coco", create_classes=False) -> ImportJob:
    return imports.import_start(
        project=project, user=user, fileobj=io.BytesIO(data), name=name, format=format,
        create_classes=create_classes,
    )  # fmt: skip


def test_start_stores_the_file_and_sends_the_task_on_commit(
    project, manager, image, task_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = start(project, manager, json.dumps(COCO).encode())
        assert task_calls.of(queues.IMPORT_RUN) == []  # not before the commit
    for callback in callbacks:
        callback()
    assert task_calls.of(queues.IMPORT_RUN) == [(job.pk,)] and queues.IMPORT_RUN.queue == queues.DEFAULT
    assert job.status == "queued" and job.file.name.startswith(f"imports/{project.pk}/")
    assert job.file_name == "d.json" and job.options == {"create_classes": False}


def test_the_task_imports_once_and_deletes_the_file(project, manager, image, task_calls):
    job = start(project, manager, json.dumps(COCO).encode())
    stored = job.file.name
    assert tasks.import_run(job.pk) is True
    job.refresh_from_db()
    assert job.status == "succeeded" and job.annotation_count == 1 and job.error == ""
    assert (job.images_done, job.images_total) == (1, 1)
    assert job.report["ok"] and job.report["matched_images"] == [{"name": "a.png", "id": image.pk}]
    assert job.started_at and job.finished_at and not job.file and stored not in media_files()
    assert tasks.import_run(job.pk) is False  # redelivered: nothing happens again
    assert Annotation.objects.filter(image=image, source="import", created_by=manager).count() == 1


@pytest.mark.parametrize(
    ("change", "where", "why"),
    [
        ({"categories": [{"id": 1, "name": "zebra"}]}, "annotations[0]", 'Unknown class "zebra"'),
        # Found after the new image's files were stored: they are deleted again.
        (
            {"annotations": [{"image_id": 1, "category_id": 1, "bbox": [60, 2, 30, 4]}]},
            "annotations[0]",
            "goes past the image",
        ),
    ],
)
def test_a_refused_import_fails_with_its_report_and_changes_nothing(
    project, manager, image, task_calls, change, where, why
):
    before = snapshot(project)
    document = {**COCO, "images": [{"id": 1, "file_name": "new.png"}], **change}
    data = zip_bytes({"annotations.json": json.dumps(document), "images/new.png": png()})
    job = start(project, manager, data, name="d.zip")
    imports.import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and why in job.error and job.error.startswith("Nothing was imported")
    assert job.report["errors"][0]["where"] == where and not job.report["created_images"]
    assert snapshot(project) == before  # no row, no image file, and the upload is gone


def test_an_unknown_format_is_refused_before_anything_is_stored(project, manager):
    with pytest.raises(ValidationError):
        start(project, manager, b"{}", format="tiff")
    assert not ImportJob.objects.exists() and not media_files()


def test_broker_down_fails_the_import(project, manager, monkeypatch, django_capture_on_commit_callbacks):
    def down(name, args=(), queue=None, **options):
        raise ConnectionError("no broker at redis://secret-host")

    monkeypatch.setattr(celery_app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        job = start(project, manager, json.dumps(COCO).encode())
    job.refresh_from_db()
    assert job.status == "failed" and not job.file and not media_files()
    assert job.error.startswith("The task queue cannot be reached") and "secret-host" not in job.error


def test_an_unexpected_error_fails_the_import_and_keeps_nothing(
    project, manager, image, task_calls, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(imports, "annotations_import", broken)
    before = snapshot(project)
    job = start(project, manager, json.dumps(COCO).encode())
    imports.import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.error == "RuntimeError: disk on fire" and not job.file
    assert snapshot(project) == before


def test_the_api_answers_202_with_a_status_url_for_members(
    project, manager, annotator, outsider, image, task_calls, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("d.json", json.dumps(COCO).encode())
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(manager).post(
            f"{V}/projects/{project.pk}/imports/", {"file": upload, "format": "coco"}, format="multipart"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["report"] is None
    assert response["Location"] == body["status_url"] == f"{V}/imports/{body['id']}/"
    (import_id,) = task_calls.of(queues.IMPORT_RUN)[0]
    imports.import_run(import_id=import_id)
    done = token_client(annotator).get(body["status_url"])
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert done.json()["report"]["created_annotations"] == 1
    assert token_client(outsider).get(body["status_url"]).status_code == 404
