"""Annotation import page section (issue 5): POST a dataset file, get the report (htmx partial)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from ..formats.registry import import_accept, import_choices
from ..models import Project
from ..services.imports import annotations_import
from .shared import project_upload_view


class ImportForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(choices=import_choices)  # the registry's, read on each form
    create_classes = forms.BooleanField(required=False, label="Create unknown classes")


def import_context() -> dict:
    """What the project page's import section needs: the registry's formats and extensions."""
    return {"import_formats": import_choices(), "import_accept": import_accept()}


@project_upload_view
def project_import(request: HttpRequest, project: Project) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    report = None
    if form.is_valid():
        upload = form.cleaned_data["file"]
        report = annotations_import(
            project=project,
            fileobj=upload,
            name=upload.name,
            format=form.cleaned_data["format"],
            user=request.user,
            create_classes=form.cleaned_data["create_classes"],
        )
    ok = report is not None and report.ok
    if request.htmx:
        response = render(
            request,
            "labeling/_imports.html#import-report",
            {"project": project, "import_report": report, "import_form": form},
            status=200 if ok else 400,
        )
        if ok and (report.created_annotations or report.created_images):
            response["HX-Trigger"] = "images-changed"
        return response
    if report is None:
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
    elif ok:
        messages.success(
            request,
            f"Imported {report.created_annotations} annotation(s) on {len(report.matched_images)} "
            f"matched and {len(report.created_images)} new image(s).",
        )
    else:
        for where, what in report.errors[:20]:
            messages.error(request, f"{where}: {what}")
    return redirect("project-detail", project_id=project.pk)
