"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from labeling.services.images import IngestReport, images_ingest

from ..access import image_for_user
from ..forms import UploadForm
from ..models import Project
from .shared import project_upload_view


@project_upload_view
def project_upload(request: HttpRequest, project: Project) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    report = None
    if form.is_valid():
        report = images_ingest(
            project=project, files=[(f.name, f) for f in form.cleaned_data["files"]], user=request.user
        )
    if request.htmx:
        response = render(
            request,
            "labeling/project_detail.html#upload-report",
            {"project": project, "report": report, "upload_form": form},
            status=200 if report else 400,
        )
        if report and report.created:
            response["HX-Trigger"] = "images-changed"
        return response
    if report is None:
        messages.error(request, "; ".join(form.errors.get("files", ["Choose at least one file."])))
    else:
        _report_messages(request, report)
    return redirect("project-detail", project_id=project.pk)


def _report_messages(request: HttpRequest, report: IngestReport) -> None:
    if report.created:
        messages.success(request, f"{len(report.created)} image(s) added.")
    for name, existing in report.duplicates:
        messages.warning(request, f"{name}: duplicate of {existing}, not stored again.")
    for name, reason in report.errors:
        messages.error(request, f"{name}: {reason}")
    if report.skipped:
        messages.info(
            request, f"{len(report.skipped)} file(s) skipped: {', '.join(n for n, _ in report.skipped)}"
        )


def _serve(field_file, *, download_name: str) -> FileResponse:
    if not field_file:
        raise Http404("No file.")
    try:
        handle = field_file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The file is missing from storage.") from exc
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type, filename=download_name)
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_GET
def image_file(request: HttpRequest, image_id: int) -> FileResponse:
    image, _ = image_for_user(request.user, image_id)
    return _serve(image.file, download_name=image.original_name.rsplit("/", 1)[-1])


@require_GET
def image_thumbnail(request: HttpRequest, image_id: int) -> FileResponse:
    image, _ = image_for_user(request.user, image_id)
    return _serve(image.thumbnail, download_name=f"thumb-{image.pk}.jpg")
