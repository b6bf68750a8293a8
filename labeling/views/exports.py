"""Export views: start an export (managers), the exports panel (polled by htmx while one runs),
the chosen format's options, and the download (managers)."""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from .. import queues
from ..access import can_manage, export_for_user, project_for_user
from ..formats.base import OPTION_SPECS, ExportOptions, FormatError
from ..formats.registry import export_choices, export_format, export_options, option_words
from ..models import Export, JobStatus, Project
from ..selectors.exports import export_list
from ..selectors.prelabel import workers_by_queue
from ..selectors.projects import class_list
from ..services.exports import export_start
from .shared import project_panel_view, ticked

RECENT = 10  # exports listed on the panel


def options_from_post(post) -> tuple[str, ExportOptions]:
    """The format and options of the export form; FormatError saying what is wrong. The common
    options have plain names; a format's own are named "<format>-<option>" (the form holds every
    format's fields when it is shown without JavaScript), and only the chosen format's are read."""
    fmt = export_format(post.get("format", ""))
    data: dict = {
        "states": post.get("states", "accepted"),
        "images": post.get("images", "done"),
        "include_empty": ticked(post.get("include_empty", "1")),
    }
    for spec in fmt.option_specs():
        value = post.get(f"{fmt.name}-{spec.name}")
        if spec.kind == "bool":
            data[spec.name] = ticked(value)
        elif value not in (None, ""):
            data[spec.name] = value
    class_ids = post.getlist("classes")
    if class_ids:
        data["class_ids"] = class_ids
    return fmt.name, export_options(fmt.name, data)


def format_fields(selected: str | None) -> list[dict]:
    """Per exportable format (only `selected` when given): its own options as form fields, each
    with its input name ("<format>-<option>") and default."""
    out = []
    for name, label in export_choices():
        if selected is not None and name != selected:
            continue
        fmt = export_format(name)
        fields = [
            {"spec": spec, "name": f"{name}-{spec.name}", "value": fmt.default(spec.name)}
            for spec in fmt.option_specs()
        ]
        out.append({"name": name, "label": label, "fields": fields})
    return out


def waiting_text(by_queue: dict[str, list[str]]) -> str:
    """What a queued export waits for, from the workers' heartbeats."""
    queue = queues.EXPORT_RUN.queue
    workers = by_queue.get(queue, [])
    if not workers:
        return f"No worker is running the {queue} queue: it starts once one does."
    return f"Waiting for a worker on the {queue} queue ({len(workers)} running)."


def _context(
    project: Project, role: str, *, selected: str | None = None, show_all: bool = False, **extra
) -> dict:
    recent = list(export_list(project=project)[:RECENT])
    queued = any(e.status == JobStatus.QUEUED for e in recent)
    choices = export_choices()
    selected = selected if selected in dict(choices) else choices[0][0]
    return {
        "project": project,
        "can_manage": can_manage(role),
        "exports": [(e, option_words(e.format, e.options)) for e in recent],
        "export_active": any(e.status in (JobStatus.QUEUED, JobStatus.RUNNING) for e in recent),
        "export_waiting": waiting_text(workers_by_queue()) if queued else "",
        "export_formats": choices,
        "selected_format": selected,
        "format_fields": format_fields(None if show_all else selected),
        "show_all_formats": show_all,
        "images_spec": OPTION_SPECS["images"],
        "states_spec": OPTION_SPECS["states"],
        "export_classes": list(class_list(project=project)),
        **extra,
    }


def _render(request: HttpRequest, project: Project, role: str, status: int = 200, **extra) -> HttpResponse:
    # A panel htmx asked for shows the chosen format's options only (the select swaps them);
    # anything else gets every format's, grouped, so the form works without JavaScript.
    context = _context(project, role, show_all=not request.htmx, **extra)
    return render(request, "labeling/_exports.html#exports-panel", context, status=status)


@require_http_methods(["GET", "POST"])
def project_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start an export (managers): 302 to the project (200 panel for htmx); 400 with the reason.
    Without JavaScript (a GET, or a refused POST), a page with the whole form: every format's
    own options, grouped by format."""
    project, role = project_for_user(request.user, project_id, manage=True)
    if request.method == "GET":
        return render(request, "labeling/export_form.html", _context(project, role, show_all=True))
    try:
        fmt, options = options_from_post(request.POST)
        export_start(project=project, user=request.user, fmt=fmt, options=options)
    except (FormatError, ValidationError) as exc:
        error = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        if request.htmx:
            return _render(
                request, project, role, status=400, export_error=error, selected=request.POST.get("format")
            )
        context = _context(
            project,
            role,
            show_all=True,
            export_error=f"Export not started: {error}",
            selected=request.POST.get("format"),
        )
        return render(request, "labeling/export_form.html", context, status=400)
    if request.htmx:
        return _render(request, project, role, selected=fmt)
    messages.success(request, f"{export_format(fmt).label} export started.")
    return redirect("project-export-import", project_id=project.pk)


@project_panel_view(page="project-export-import")
def project_exports(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The exports panel (members): the form for managers, the recent exports and their progress."""
    return _render(request, project, role)


@project_panel_view
def project_export_options(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The chosen format's own options (htmx swaps them in when the format select changes)."""
    if not can_manage(role):
        raise PermissionDenied("Only the project's managers can export.")
    selected = request.GET.get("format")
    if selected not in dict(export_choices()):
        selected = export_choices()[0][0]
    context = {"format_fields": format_fields(selected), "show_all_formats": False}
    return render(request, "labeling/_exports.html#export-options", context)


@require_GET
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    """The export's file (managers of its project and staff; 403 for annotators, 404 for anyone
    else or while it is not ready)."""
    return export_file_response(export_for_user(request.user, export_id, manage=True))


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
