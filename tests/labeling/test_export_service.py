"""The export as a background task: the service, the Celery task, the views, the command, and
the query count per chunk."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pycocotools.coco import COCO

from labeling import tasks
from labeling.formats.base import ExportOptions
from labeling.models import Export
from labeling.selectors.exports import ExportSource
from labeling.services import exports
from tests.conftest import plain_images
from tests.labeling import export_helpers as h
from webapp import celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The ids of the exports sent to labeling.tasks.export_run on the default queue, recorded
    instead of reaching a broker (anything else sent is recorded whole, and fails the test)."""
    calls: list = []

    def send_task(name, args=(), queue=None, **options):
        sent = (name, queue, list(args))
        calls.append(args[0] if sent[:2] == ("labeling.tasks.export_run", "default") else sent)

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return calls


@pytest.fixture
def data(project):
    return h.build(project)


def test_service_end_to_end(project, data, manager, queued, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=True):
        export = exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions())
    assert queued == [export.pk] and export.status == "queued"
    assert tasks.export_run(export.pk) is True  # what the worker runs
    export.refresh_from_db()
    assert export.status == "succeeded" and export.finished_at is not None
    assert (export.image_count, export.annotation_count) == (4, 4)
    assert export.file.name == f"exports/{project.pk}/{export.pk}.json"
    path = settings.MEDIA_ROOT / export.file.name
    assert len(COCO(str(path)).dataset["annotations"]) == 4
    assert tasks.export_run(export.pk) is False  # redelivered: nothing happens again
    assert not list(path.parent.glob(".*.part"))


def test_service_records_failures(project, data, manager, queued, django_capture_on_commit_callbacks):
    data["images"][0].file.delete(save=False)
    with django_capture_on_commit_callbacks(execute=True):
        export = exports.export_start(
            project=project, user=manager, fmt="voc", options=ExportOptions(include_empty=False)
        )
    exports.export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == "failed" and "missing" in export.error and not export.file


def test_service_refuses_bad_input(project, manager):
    with pytest.raises(ValidationError):
        exports.export_start(project=project, user=manager, fmt="tiff", options=ExportOptions())
    with pytest.raises(ValidationError):
        exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions(class_ids=(0,)))
    assert not Export.objects.exists()


def test_broker_down_fails_the_export(project, manager, monkeypatch, django_capture_on_commit_callbacks):
    def down(name, args=(), queue=None, **options):
        raise ConnectionError("no broker at redis://secret-host")

    monkeypatch.setattr(celery_app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        export = exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions())
    export.refresh_from_db()
    assert export.status == "failed" and export.error.startswith("The task queue cannot be reached")
    assert "secret-host" not in export.error  # the broker's address stays in the server log


def test_views_start_progress_and_download(
    project, data, manager, annotator, outsider, client_for, queued, django_capture_on_commit_callbacks
):
    url = reverse("project-export", args=[project.pk])
    form = {
        "format": "yolo_segment",
        "states": "accepted",
        "include_empty": "1",
        "yolo_segment-val_ratio": "0.5",
        "yolo_segment-seed": "3",
        "voc-val_ratio": "0.25",  # another format's field (the form without JavaScript): not read
    }
    client = client_for(annotator)
    assert client.post(url, form).status_code == 403
    client = client_for(outsider)
    assert client.post(url, form).status_code == 404
    client = client_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, form)
    assert response.status_code == 302 and response["Location"] == reverse(
        "project-export-import", args=[project.pk]
    )
    export = Export.objects.get()
    assert export.format == "yolo_segment" and export.options["val_ratio"] == 0.5 and queued == [export.pk]

    panel = reverse("project-exports", args=[project.pk])
    response = client.get(panel, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b'hx-trigger="every 2s"' in response.content  # polls while queued

    exports.export_run(export_id=export.pk)
    response = client.get(panel, HTTP_HX_REQUEST="true")
    download = reverse("export-download", args=[export.pk])
    assert download.encode() in response.content and b"every 2s" not in response.content

    response = client.get(download)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert b"".join(response.streaming_content)[:2] == b"PK"
    assert client_for(outsider).get(download).status_code == 404
    assert client_for(outsider).get(panel, HTTP_HX_REQUEST="true").status_code == 404


def test_views_htmx_start_and_bad_options(
    project, manager, client_for, queued, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    url = reverse("project-export", args=[project.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"format": "coco"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"COCO JSON" in response.content and len(queued) == 1
    bad = {"format": "yolo_detect", "yolo_detect-val_ratio": "2"}
    response = client.post(url, bad, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and b"val_ratio" in response.content
    response = client.post(url, {"format": "png"})
    assert response.status_code == 400 and b"Unknown format" in response.content
    response = client.post(url, {"format": "coco", "classes": ["999999"]})
    assert response.status_code == 400 and b"unknown class" in response.content
    assert Export.objects.count() == 1


def test_download_is_404_until_ready(project, manager, client_for, queued):
    export = exports.export_start(project=project, user=manager, fmt="coco", options=ExportOptions())
    assert client_for(manager).get(reverse("export-download", args=[export.pk])).status_code == 404


def test_the_export_import_tab_includes_the_exports_panel(project, manager, client_for):
    plain_images(project, 1)  # without images the tab says to upload them first
    response = client_for(manager).get(reverse("project-export-import", args=[project.pk]))
    assert (
        response.status_code == 200
        and reverse("project-exports", args=[project.pk]).encode() in response.content
    )


def test_command(project, data, tmp_path):
    out = tmp_path / "cmd.zip"
    call_command("export", project.pk, "--format", "voc", "--out", str(out), "--classes", "coffee cup")
    assert out.exists()
    out = tmp_path / "cmd.json"
    call_command(
        "export",
        project.pk,
        "--format",
        "coco",
        "--out",
        str(out),
        "--exclude-empty",
        "--states",
        "accepted,proposed",
    )
    document = json.loads(out.read_text())
    assert len(document["images"]) == 2 and len(document["annotations"]) == 5


def test_query_count_per_chunk_is_constant(project):
    cat = project.classes.first()
    for image in h.bare_images(project, 6):
        h.add(image, cat, mask=h.disk(20, 20, 8))
        h.add(image, cat, box=(1, 1, 4, 4))

    def count(n_images: int) -> int:
        source = ExportSource(project, ExportOptions(images="all", include_empty=False), chunk_size=2)
        with CaptureQueriesContext(connection) as queries:
            chunks = list(source.chunks())
        assert sum(len(images) for images, _ in chunks) == n_images
        return len(queries)

    assert count(6) == 2 * 3 + 1  # two a chunk, and the query that finds no more images
    for image in h.bare_images(project, 6, start=100):
        h.add(image, cat, box=(1, 1, 4, 4))
    assert count(12) == 2 * 6 + 1
