"""The format registry (labeling.formats.registry) is the one list of formats: a format is one
module plus one registry entry. A dummy CSV format (tests/labeling/dummy_format.py, registered by
the `dummy_format` fixture) exports through the service, the API and the page and imports back
through the page and the API, with nothing else edited; unregistered, the same name is refused
everywhere."""

from __future__ import annotations

import ast
import csv
import html
import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from labeling import formats, queues
from labeling.formats import coco, yolo_import
from labeling.formats.base import ExportOptions, FormatError
from labeling.formats.registry import (
    FORMATS,
    Format,
    export_choices,
    export_format,
    import_choices,
    import_format,
    import_names,
)
from labeling.models import Annotation, Export
from labeling.services import exports, imports
from tests.labeling import dummy_format as dummy
from tests.labeling import export_helpers as h
from tests.labeling.api_helpers import token_client

V = "/api/v1"


@pytest.fixture
def dummy_format(monkeypatch) -> Format:
    """The dummy format's one registry entry; monkeypatch puts the registry back after the test."""
    entry = Format(
        "dummy_csv", "Dummy CSV", "csv", write=dummy.write, read=dummy.read, import_label="Dummy CSV (.csv)"
    )
    monkeypatch.setitem(FORMATS, entry.name, entry)
    return entry


@pytest.fixture
def data(project):
    return h.build(project)


def accepted_boxes(project) -> list[tuple]:
    rows = Annotation.objects.filter(image__project=project, state="accepted")
    return sorted(rows.values_list("image_id", "label_class__name", "x", "y", "w", "h"))


# Export ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_service_exports_with_a_registered_format(project, data, manager, dummy_format):
    export = exports.export_start(project=project, user=manager, fmt="dummy_csv", options=ExportOptions())
    export.full_clean()  # the model's choices are the registry's
    assert export.get_format_display() == "Dummy CSV"
    assert exports.export_run(export_id=export.pk) is True
    export.refresh_from_db()
    assert export.status == "succeeded", export.error
    assert export.file.name == f"exports/{project.pk}/{export.pk}.csv"
    with export.file.open("rb") as handle:
        rows = list(csv.reader(io.StringIO(handle.read().decode())))
    assert rows[0] == dummy.HEADER
    assert len(rows) - 1 == export.annotation_count == 4 and export.image_count == 4
    names = {image.pk: image.original_name for image in data["images"]}
    expected = [(names[i], c, str(x), str(y), str(w), str(h)) for i, c, x, y, w, h in accepted_boxes(project)]
    assert sorted(tuple(row) for row in rows[1:]) == sorted(expected)


@pytest.mark.django_db
def test_the_api_exports_and_downloads_with_a_registered_format(project, data, manager, dummy_format):
    client = token_client(manager)
    response = client.post(f"{V}/projects/{project.pk}/exports/", {"format": "dummy_csv"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["format"] == "dummy_csv"
    exports.export_run(export_id=response.json()["id"])
    detail = client.get(f"{V}/exports/{response.json()['id']}/").json()
    assert detail["status"] == "succeeded" and detail["download_url"]
    download = client.get(detail["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"
    assert download["Content-Disposition"].endswith(f'-dummy_csv-{detail["id"]}.csv"')
    assert b"".join(download.streaming_content).decode().splitlines()[0] == ",".join(dummy.HEADER)


@pytest.mark.django_db
def test_the_page_offers_and_starts_a_registered_format(project, data, manager, client_for, dummy_format):
    client = client_for(manager)
    panel = client.get(reverse("project-exports", args=[project.pk]), HTTP_HX_REQUEST="true")
    assert '<option value="dummy_csv">Dummy CSV</option>' in panel.content.decode()
    response = client.post(reverse("project-export", args=[project.pk]), {"format": "dummy_csv"})
    assert response.status_code == 302
    export = Export.objects.get()
    assert export.format == "dummy_csv" and export.created_by == manager
    exports.export_run(export_id=export.pk)
    panel = client.get(reverse("project-exports", args=[project.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "<td>Dummy CSV</td>" in panel and reverse("export-download", args=[export.pk]) in panel


@pytest.mark.django_db
def test_an_unregistered_format_is_refused_everywhere(project, manager, client_for):
    with pytest.raises(ValidationError):
        exports.export_start(project=project, user=manager, fmt="dummy_csv", options=ExportOptions())
    with pytest.raises(ValidationError) as raised:
        Export(project=project, format="dummy_csv").full_clean()
    assert "format" in raised.value.message_dict
    response = token_client(manager).post(
        f"{V}/projects/{project.pk}/exports/", {"format": "dummy_csv"}, format="json"
    )
    assert response.status_code == 400 and "format" in response.json()["fields"]
    response = client_for(manager).post(reverse("project-export", args=[project.pk]), {"format": "dummy_csv"})
    assert response.status_code == 400  # the form again (a page), with the reason
    assert "Unknown format 'dummy_csv'" in html.unescape(response.content.decode())
    assert not Export.objects.exists()


# Import ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_registered_reader_imports_through_the_page_and_the_api(
    project, data, manager, client_for, dummy_format, tmp_path, task_calls, django_capture_on_commit_callbacks
):
    path = tmp_path / "d.csv"
    exports.export_write(project=project, fmt="dummy_csv", options=ExportOptions(), out=path)
    before = accepted_boxes(project)
    page = client_for(manager).get(reverse("project-export-import", args=[project.pk])).content.decode()
    assert (
        '<option value="dummy_csv">Dummy CSV (.csv)</option>' in page and 'accept=".csv,.json,.zip"' in page
    )

    def run_sent() -> None:  # what the worker does with the import task
        for (import_id,) in task_calls.of(queues.IMPORT_RUN)[-1:]:
            imports.import_run(import_id=import_id)

    Annotation.objects.filter(image__project=project).delete()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(manager).post(
            reverse("project-import", args=[project.pk]),
            {"file": SimpleUploadedFile("d.csv", path.read_bytes()), "format": "dummy_csv"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 202, response.content
    run_sent()
    assert accepted_boxes(project) == before

    Annotation.objects.filter(image__project=project).delete()
    with path.open("rb") as handle, django_capture_on_commit_callbacks(execute=True):
        response = token_client(manager).post(
            f"{V}/projects/{project.pk}/imports/", {"file": handle, "format": "dummy_csv"}, format="multipart"
        )
    assert response.status_code == 202, response.content
    run_sent()
    job = token_client(manager).get(response.json()["status_url"]).json()
    assert job["format"] == "dummy_csv" and job["status"] == "succeeded"
    assert job["report"]["created_annotations"] == 4
    assert accepted_boxes(project) == before


# The registry itself -------------------------------------------------------------------------------


def test_the_registry_lists_the_formats_once():
    assert [name for name, _ in export_choices()] == ["coco", "yolo_detect", "yolo_segment", "voc"]
    assert [name for name, _ in import_choices()] == ["coco", "yolo", "voc"]  # one per shared reader
    assert import_names() == ["coco", "yolo", "voc", "yolo_detect", "yolo_segment"]
    for name in ("yolo", "yolo_detect", "yolo_segment"):
        assert import_format(name).import_name == "yolo" and import_format(name).read is yolo_import.read
    assert export_format("coco").write is coco.write
    assert export_format("coco").export_extension(ExportOptions(zip_images=True)) == "zip"
    assert export_format("coco").export_extension(ExportOptions()) == "json"
    assert export_format("voc").export_extension(ExportOptions(zip_images=True)) == "zip"


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(FormatError, match="choose one of coco, yolo_detect, yolo_segment, voc"):
        export_format("png")
    with pytest.raises(FormatError, match="use one of: coco, yolo, voc"):
        import_format("png")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "a_name_longer_than_16"}, "1 to 16 characters"),
        ({"write": None, "read": None}, "neither a writer nor a reader"),
        ({"options": frozenset({"colour"})}, "unknown option"),
    ],
)
def test_a_bad_entry_is_refused(fields, message):
    entry = {
        "name": "x",
        "label": "X",
        "extension": "txt",
        "write": dummy.write,
        "read": dummy.read,
        **fields,
    }
    with pytest.raises(ValueError, match=message):
        Format(**entry)


def test_the_formats_never_import_the_services():
    """Services import formats, never the reverse: no module of labeling/formats/ imports the
    services, selectors, views, API, tasks or models, and none imports inside a function (the
    old way around the cycle)."""
    forbidden = ("labeling.services", "labeling.selectors", "labeling.views", "labeling.api")
    forbidden += ("labeling.tasks", "labeling.models")
    folder = Path(formats.__file__).parent
    checked = 0
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
        assert imports == [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)], path
        for node in imports:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif node.level:  # relative to labeling.formats
                base = (
                    "labeling.formats".rsplit(".", node.level - 1)[0]
                    if node.level > 1
                    else "labeling.formats"
                )
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module]
            bad = [name for name in names if name.startswith(forbidden)]
            assert not bad, f"{path.name} imports {bad}"
            checked += 1
    assert checked > 20
