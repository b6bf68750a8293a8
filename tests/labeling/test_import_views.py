"""The import page (managers start a background import: 202 with the imports panel, or 400; the
panel polls while it runs and shows its report) and the import_annotations command."""

from __future__ import annotations

import io
import json
import stat
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling import queues
from labeling.models import Annotation, ImportJob
from labeling.services import imports
from tests.labeling.import_helpers import add_images, media_files, png, snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls")]

COCO = {
    "images": [{"id": 1, "file_name": "a.png"}],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "zebra"}],
    "annotations": [
        {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]},
    ],
}


@pytest.fixture
def image(project):
    return add_images(project, [("a.png", (64, 48))])[0]


def post(client, project, data, *, format="coco", create_classes=False, htmx=True, name="d.json"):
    payload = {"file": SimpleUploadedFile(name, data), "format": format}
    if create_classes:
        payload["create_classes"] = "on"
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("project-import", args=[project.pk]), payload, **headers)


@pytest.fixture
def run_posted(task_calls, django_capture_on_commit_callbacks):
    """Post an import (the task is sent on commit), then run what a worker would: the panel's
    answer to its next poll is returned."""

    def run(client, project, data, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, project, data, **kwargs)
        for (import_id,) in task_calls.of(queues.IMPORT_RUN):
            imports.import_run(import_id=import_id)
        return response, client.get(
            f"{reverse('project-imports', args=[project.pk])}?poll=1", HTTP_HX_REQUEST="true"
        )

    return run


def test_a_manager_starts_an_import_and_gets_its_report(client_for, manager, project, image, run_posted):
    response, panel = run_posted(client_for(manager), project, json.dumps(COCO).encode(), create_classes=True)
    assert response.status_code == 202 and response["Location"] == reverse(
        "project-imports", args=[project.pk]
    )
    assert b'hx-trigger="every 2s"' in response.content  # queued: the panel polls
    body = panel.content.decode()
    assert panel.status_code == 200 and "every 2s" not in body
    assert "<strong>2</strong> annotations imported" in body and "<code>zebra</code>" in body
    assert panel["HX-Trigger"] == "images-changed"
    assert Annotation.objects.filter(image=image, source="import", created_by=manager).count() == 2
    job = ImportJob.objects.get()
    assert job.status == "succeeded" and job.report["created_annotations"] == 2 and not job.file


def test_errors_come_back_in_the_report_with_their_location(client_for, manager, project, image, run_posted):
    before = snapshot(project)
    response, panel = run_posted(client_for(manager), project, json.dumps(COCO).encode())
    assert response.status_code == 202
    body = panel.content.decode()
    assert "Nothing was imported" in body and "<code>annotations[1]</code>" in body and "zebra" in body
    assert ImportJob.objects.get().status == "failed"
    assert snapshot(project) == before  # the uploaded file is gone too


def test_a_missing_file_is_a_400(client_for, manager, project):
    response = client_for(manager).post(
        reverse("project-import", args=[project.pk]), {"format": "coco"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and "file" in response.content.decode()


def test_a_symlink_in_the_archive_is_refused(client_for, manager, project, image, run_posted):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("annotations.json", json.dumps(COCO))
        link = zipfile.ZipInfo("images/a.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    before = snapshot(project)
    _, panel = run_posted(client_for(manager), project, buffer.getvalue(), name="d.zip", create_classes=True)
    assert "symbolic link" in panel.content.decode()
    assert snapshot(project) == before


def test_a_bad_form_is_a_400_and_starts_nothing(client_for, manager, project):
    response = post(client_for(manager), project, b"{}", format="tiff")
    assert response.status_code == 400 and "format" in response.content.decode()
    assert not ImportJob.objects.exists() and not media_files()


def test_an_upload_over_the_limit_is_refused_before_reading(client_for, manager, project, settings):
    settings.LABELGPT_MAX_IMPORT_BYTES = 10
    response = post(client_for(manager), project, b"{}" * 100)
    assert response.status_code == 413


def test_annotators_get_403_and_outsiders_404(client_for, annotator, outsider, project, image):
    before = snapshot(project)
    assert post(client_for(annotator), project, json.dumps(COCO).encode()).status_code == 403
    assert post(client_for(outsider), project, json.dumps(COCO).encode()).status_code == 404
    assert snapshot(project) == before and not ImportJob.objects.exists()


def test_the_panel_is_for_members(client_for, manager, annotator, outsider, project):
    url = reverse("project-imports", args=[project.pk])
    assert client_for(annotator).get(url, HTTP_HX_REQUEST="true").status_code == 200
    assert client_for(outsider).get(url, HTTP_HX_REQUEST="true").status_code == 404
    assert client_for(manager).post(url).status_code == 405


def test_get_is_not_allowed(client_for, manager, project):
    assert client_for(manager).get(reverse("project-import", args=[project.pk])).status_code == 405


def test_the_export_import_tab_shows_the_import_form_to_managers_only(
    client_for, manager, annotator, project
):
    page = client_for(manager).get(reverse("project-export-import", args=[project.pk])).content.decode()
    assert 'id="import-form"' in page and 'name="create_classes"' in page
    response = client_for(annotator).get(reverse("project-export-import", args=[project.pk]))
    assert response.status_code == 403 and b'id="import-form"' not in response.content
    page = client_for(annotator).get(reverse("project-detail", args=[project.pk])).content.decode()
    assert 'id="import-form"' not in page


def test_without_htmx_it_redirects_with_messages(client_for, manager, project, image, run_posted):
    response, _ = run_posted(
        client_for(manager), project, json.dumps(COCO).encode(), htmx=False, create_classes=True
    )
    assert response.status_code == 302
    assert Annotation.objects.filter(image=image).count() == 2


def test_the_command_imports_and_fails_loudly(tmp_path, project, image, capsys):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(COCO))
    with pytest.raises(CommandError, match="Nothing was imported: 1 error"):
        call_command("import_annotations", project.pk, str(path), "--format", "coco")
    assert 'Unknown class "zebra"' in capsys.readouterr().err
    assert Annotation.objects.filter(image=image).count() == 0
    call_command("import_annotations", project.pk, str(path), "--format", "coco", "--create-classes")
    assert "Imported 2 annotation(s)" in capsys.readouterr().out
    assert Annotation.objects.filter(image=image).count() == 2


def test_the_command_brings_images_along(tmp_path, project):
    path = tmp_path / "y.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.yaml", "names: {0: cat}\n")
        archive.writestr("images/n.png", png((10, 10), color=(3, 3, 3)))
        archive.writestr("labels/n.txt", "0 0.5 0.5 1 1\n")
    call_command("import_annotations", project.pk, str(path), "--format", "yolo_detect")
    assert Annotation.objects.get(image__project=project, image__original_name="n.png").box == (0, 0, 10, 10)
