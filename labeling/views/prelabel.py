"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from labeling.selectors.prelabel import JobPage, job_active, job_failures, job_page, job_progress
from labeling.selectors.projects import project_counts
from labeling.services import prelabel

from ..access import can_manage, job_for_user, project_for_user
from ..forms import JobPageForm, PrelabelForm
from ..models import Project
from .shared import project_panel_view, project_tab_context

# Pre-labeling ------------------------------------------------------------------------------------


JOBS_PER_PAGE = 10


def jobs_context(project: Project, query: dict | None = None) -> dict:
    """The jobs panel: the active job, a page of the history (keyset, newest first: `query` is
    JobPageForm's) with its Newer / Older links, and the project's figures (its empty states)."""
    query = query or {}
    page = job_page(project=project, size=JOBS_PER_PAGE, **query)
    return {
        "active_job": job_active(project=project),
        "jobs": page.jobs,
        "job_page": page,
        "jobs_query": urlencode(query),
        "job_pager": _job_pager(project, page),
        "figures": project_counts(project=project),
    }


def _job_pager(project: Project, page: JobPage) -> list[dict]:
    """Newest / Newer / Older: each with its tab URL (href, pushed to the history) and its panel
    URL (hx-get), or none where that way holds no job."""
    tab = reverse("project-prelabel", args=[project.pk])
    panel = reverse("project-jobs", args=[project.pk])
    ways = [
        ("first", "« Newest", page.has_newer, {}),
        ("prev", "‹ Newer", page.has_newer, {"before": page.first_id}),
        ("next", "Older ›", page.has_older, {"after": page.last_id}),
    ]
    links = []
    for rel, label, enabled, cursor in ways:
        suffix = f"?{urlencode(cursor)}" if enabled and cursor else ""
        links.append(
            {"rel": rel, "label": label, "href": tab + suffix if enabled else None, "panel": panel + suffix}
        )
    return links


def _render_jobs(request: HttpRequest, project: Project, role: str, **extra) -> HttpResponse:
    status = extra.pop("status", 200)
    query = JobPageForm(request.GET).page_query() if request.method == "GET" else {}
    context = {"project": project, "can_manage": can_manage(role), **jobs_context(project, query), **extra}
    return render(request, "labeling/project_prelabel.html#jobs", context, status=status)


@require_http_methods(["GET", "POST"])
def project_prelabel(request: HttpRequest, project_id: int) -> HttpResponse:
    """The Pre-label tab (managers): GET shows the form or the running job, and the job history;
    POST starts a job."""
    if request.method == "POST":
        return _prelabel_start(request, project_id)
    project, role = project_for_user(request.user, project_id, manage=True)
    context = {
        **project_tab_context(project, role, "prelabel"),
        "prelabel_form": PrelabelForm(project=project),
        **jobs_context(project, JobPageForm(request.GET).page_query()),
    }
    return render(request, "labeling/project_prelabel.html", context)


def _prelabel_start(request: HttpRequest, project_id: int) -> HttpResponse:
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
            detector=form.cleaned_data["detector"] or None,
        )
        try:
            job = prelabel.prelabel_job_start(project=project, user=request.user, options=options)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if request.htmx:
                return _render_jobs(request, project, role, prelabel_form=PrelabelForm(project=project))
            messages.success(request, f"Pre-labeling of {job.total} image{pluralize(job.total)} started.")
            return redirect("project-prelabel", project_id=project.pk)
    else:
        error = " ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    if request.htmx:
        return _render_jobs(request, project, role, prelabel_form=form, prelabel_error=error, status=400)
    messages.error(request, f"Pre-labeling not started: {error}")
    return redirect("project-prelabel", project_id=project.pk)


@project_panel_view(page="project-prelabel")
def project_jobs(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The jobs panel: live progress of the active job (polled by htmx) and a page of the history
    (`?after=` / `?before=`: JobPageForm). `?banner=1`: the Images tab's progress line instead,
    answered 286 (htmx stops polling) once no job runs."""
    if request.GET.get("banner"):
        active = job_active(project=project)
        context = {"project": project, "can_manage": can_manage(role), "active_job": active}
        response = render(
            request, "labeling/project_detail.html#job-banner", context, status=200 if active else 286
        )
        response["HX-Trigger"] = "images-changed"
        return response
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


@require_http_methods(["GET", "POST"])
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    """Cancel a job (managers). GET: the confirm page (without JavaScript the Cancel button is a
    link here; with htmx it asks with hx-confirm and POSTs); POST: cancel it."""
    job, role = job_for_user(request.user, job_id, manage=True)
    if request.method == "GET":
        return render(request, "labeling/job_cancel.html", {"job": job, "project": job.project})
    cancelled = prelabel.prelabel_job_cancel(job=job)
    if request.htmx:
        return _render_jobs(request, job.project, role, prelabel_form=PrelabelForm(project=job.project))
    if cancelled:
        messages.success(request, f"Job {job.pk} was cancelled; it stops before its next image.")
    else:
        messages.info(request, f"Job {job.pk} had already ended.")
    return redirect("project-prelabel", project_id=job.project_id)
