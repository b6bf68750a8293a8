"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.selectors.prelabel import job_failures, job_progress, jobs_of_project
from labeling.services import prelabel

from ..access import can_manage, job_for_user, project_for_user
from ..forms import PrelabelForm
from ..models import Project
from .shared import project_panel_view

# Pre-labeling ------------------------------------------------------------------------------------


def jobs_context(project: Project) -> dict:
    active, jobs = jobs_of_project(project=project)
    return {"active_job": active, "jobs": jobs}


def _render_jobs(request: HttpRequest, project: Project, role: str, **extra) -> HttpResponse:
    context = {"project": project, "can_manage": can_manage(role), **jobs_context(project), **extra}
    return render(request, "labeling/project_detail.html#jobs", context, status=extra.pop("status", 200))


@require_POST
def project_prelabel(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start a pre-label job (managers)."""
    project, role = project_for_user(request.user, project_id, manage=True)
    form = PrelabelForm(request.POST, project=project)
    error = ""
    if form.is_valid():
        options = prelabel.JobOptions(
            class_ids=[c.pk for c in form.cleaned_data["classes"]],
            box_threshold=form.cleaned_data["box_threshold"],
            text_threshold=form.cleaned_data["text_threshold"],
            scope=form.cleaned_data["scope"],
        )
        try:
            job = prelabel.prelabel_job_start(project=project, user=request.user, options=options)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if request.htmx:
                return _render_jobs(request, project, role, prelabel_form=PrelabelForm(project=project))
            messages.success(request, f"Pre-labeling {job.total} image(s) started.")
            return redirect("project-detail", project_id=project.pk)
    else:
        error = " ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    if request.htmx:
        return _render_jobs(request, project, role, prelabel_form=form, prelabel_error=error, status=400)
    messages.error(request, f"Pre-labeling not started: {error}")
    return redirect("project-detail", project_id=project.pk)


@project_panel_view
def project_jobs(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The jobs panel: live progress of the active job (polled by htmx) and the recent ones."""
    response = _render_jobs(request, project, role, prelabel_form=PrelabelForm(project=project))
    response["HX-Trigger"] = "images-changed"  # images turn "pre-labeled" as the job goes
    return response


@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job, role = job_for_user(request.user, job_id)
    failures = job_failures(job=job)
    return render(
        request,
        "labeling/job_detail.html",
        {
            "job": job,
            "progress": job_progress(job),
            "failures": failures,
            "can_manage": can_manage(role),
        },
    )


@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job, role = job_for_user(request.user, job_id, manage=True)
    cancelled = prelabel.prelabel_job_cancel(job=job)
    if request.htmx:
        return _render_jobs(request, job.project, role, prelabel_form=PrelabelForm(project=job.project))
    if cancelled:
        messages.success(request, f"Job {job.pk} cancelled; it stops before its next image.")
    else:
        messages.info(request, f"Job {job.pk} had already ended.")
    return redirect("project-detail", project_id=job.project_id)
