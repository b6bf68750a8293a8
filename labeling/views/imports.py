"""Annotation import page section (issues 5 and 11): POST a dataset file (managers) to start a
background import, and the imports panel (polled by htmx while one runs) with each import's
status and report."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from ..access import can_manage
from ..formats.registry import import_accept, import_choices
from ..models import Project
from ..selectors.imports import import_list
from ..services.imports import import_start
from .shared import project_panel_view, project_upload_view

RECENT = 5  # imports listed on the panel


class ImportForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(choices=import_choices)  # the registry's, read on each form
    create_classes = forms.BooleanField(required=False, label="Create unknown classes")


def import_context() -> dict:
    """What the project page's import section needs: the registry's formats and extensions."""
    return {"import_formats": import_choices(), "import_accept": import_accept()}


def _render(
    request: HttpRequest, project: Project, *, manage: bool, status: int = 200, poll: bool = False, **extra
) -> HttpResponse:
    """The panel. A poll (`poll`) that finds no import running any more tells the page to reload
    its images (HX-Trigger: images-changed): the one that ended may have added some."""
    recent = list(import_list(project=project)[:RECENT])
    active = any(job.active for job in recent)
    context = {
        "project": project,
        "can_manage": manage,
        "imports": recent,
        "import_active": active,
        **extra,
    }
    response = render(request, "labeling/_imports.html#imports-panel", context, status=status)
    if poll and not active:
        response["HX-Trigger"] = "images-changed"
    return response


@project_upload_view
def project_import(request: HttpRequest, project: Project) -> HttpResponse:
    """Start an import (managers): 202 with the imports panel for htmx (its status URL in
    Location), 302 to the project otherwise; 400 with the form's errors."""
    form = ImportForm(request.POST, request.FILES)
    job = None
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = import_start(
                project=project,
                user=request.user,
                fileobj=upload,
                name=upload.name,
                format=form.cleaned_data["format"],
                create_classes=form.cleaned_data["create_classes"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    if request.htmx:  # project_upload_view let managers only in
        if job is None:
            return _render(request, project, manage=True, status=400, import_form=form)
        response = _render(request, project, manage=True, status=202)
        response["Location"] = reverse("project-imports", args=[project.pk])
        return response
    if job is None:
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
    else:
        messages.success(request, f"Import of {job.file_name} started: its report is below when it ends.")
    return redirect("project-export-import", project_id=project.pk)


@project_panel_view(page="project-export-import")
def project_imports(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The imports panel (members): the recent imports, their progress and reports (`?poll=1`:
    asked by the panel itself while an import runs)."""
    return _render(request, project, manage=can_manage(role), poll=bool(request.GET.get("poll")))
