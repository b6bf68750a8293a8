"""Export views: start an export (managers), the exports panel (polled by htmx while one runs),
and the download (members)."""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..access import can_manage, export_for_user, project_for_user
from ..formats.base import ExportOptions, FormatError
from ..formats.registry import export_choices, export_format, option_formats
from ..models import Export, JobStatus, Project
from ..selectors.exports import export_list
from ..selectors.projects import class_list
from ..services.exports import export_start
from .shared import project_panel_view

TRUE = ("1", "true", "on", "yes")
RECENT = 10  # exports listed on the panel


def options_from_post(post) -> tuple[str, ExportOptions]:
    """The format and options of the export form; FormatError saying what is wrong."""
    fmt = export_format(post.get("format", "")).name
    data: dict = {
        "states": post.get("states", "accepted"),
        "include_empty": post.get("include_empty", "1").lower() in TRUE,
        "zip_images": post.get("zip_images", "").lower() in TRUE,
        "rle": post.get("rle", "").lower() in TRUE,
        "val_ratio": post.get("val_ratio") or 0,
        "seed": post.get("seed") or 0,
    }
    class_ids = post.getlist("classes")
    if class_ids:
        data["class_ids"] = class_ids
    return fmt, ExportOptions.from_json(data)


def _context(project: Project, role: str, **extra) -> dict:
    recent = list(export_list(project=project)[:RECENT])
    return {
        "project": project,
        "can_manage": can_manage(role),
        "exports": recent,
        "export_active": any(e.status in (JobStatus.QUEUED, JobStatus.RUNNING) for e in recent),
        "export_formats": export_choices(),
        "option_formats": option_formats(),
        "export_classes": list(class_list(project=project)),
        **extra,
    }


def _render(request: HttpRequest, project: Project, role: str, status: int = 200, **extra) -> HttpResponse:
    context = _context(project, role, **extra)
    return render(request, "labeling/_exports.html#exports-panel", context, status=status)


@require_POST
def project_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start an export (managers): 302 to the project (200 panel for htmx); 400 with the reason."""
    project, role = project_for_user(request.user, project_id, manage=True)
    try:
        fmt, options = options_from_post(request.POST)
        export_start(project=project, user=request.user, fmt=fmt, options=options)
    except (FormatError, ValidationError) as exc:
        error = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        if request.htmx:
            return _render(request, project, role, status=400, export_error=error)
        return HttpResponse(f"Export not started: {error}", status=400, content_type="text/plain")
    if request.htmx:
        return _render(request, project, role)
    messages.success(request, f"{export_format(fmt).label} export started.")
    return redirect("project-export-import", project_id=project.pk)


@project_panel_view(page="project-export-import")
def project_exports(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The exports panel (members): the form for managers, the recent exports and their progress."""
    return _render(request, project, role)


@require_GET
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    """The export's file (members of its project; 404 for anyone else or while it is not ready)."""
    return export_file_response(export_for_user(request.user, export_id))


def export_file_response(export: Export) -> FileResponse:
    """The export's file as a download; 404 while it is not ready or when the file is gone."""
    if export.status != Export.Status.SUCCEEDED or not export.file:
        raise Http404("This export has no file (yet).")
    try:
        handle = export.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The export's file is missing from storage.") from exc
    suffix = export.file.name.rsplit(".", 1)[-1]
    name = f"project-{export.project_id}-{export.format}-{export.pk}.{suffix}"
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(handle, as_attachment=True, filename=name, content_type=content_type)
