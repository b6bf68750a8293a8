"""The dashboard (staff and managers). Views are adapters: check access, call labeling.dashboard,
render. Applying a suggested threshold is a small form-encoded POST that calls the same service as
the review page's slider (labeling.services.review.threshold_save).

The quality table is a snapshot computed by a task (labeling.services.dashboard): the page queues
a recompute when the figures are missing or stale (at most one waits), and a manager's Refresh
(a POST) queues one whatever their age."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.selectors import dashboard
from labeling.services.dashboard import dashboard_snapshot_request
from labeling.services.review import ReviewError, threshold_save

from ..access import project_for_user
from ..forms import ClassThresholdForm


@require_GET
def dashboard_index(request: HttpRequest) -> HttpResponse:
    """The projects overview: every project whose dashboard the user may open, side by side
    (?sort=activity, the default, or ?sort=name); a constant number of queries."""
    sort = request.GET.get("sort")
    sort = sort if sort in dashboard.OVERVIEW_SORTS else "activity"
    overview = dashboard.projects_overview(user=request.user, sort=sort)
    if not overview and not request.user.is_staff:
        raise PermissionDenied("The dashboard is for admins and project managers.")
    context = {"overview": overview, "projects": [o.project for o in overview], "project": None, "sort": sort}
    return render(request, "labeling/dashboard.html", context)


@require_GET
def dashboard_project(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = project_for_user(request.user, project_id, manage=True)
    by = "hour" if request.GET.get("by") == "hour" else "day"
    context = {
        "project": project,
        "role": role,
        "by": by,
        "projects": list(dashboard.dashboard_projects(user=request.user)),
        **dashboard.project_dashboard(project=project, by=by),
    }
    if context["quality_stale"] and dashboard_snapshot_request(project=project):
        context["quality_pending"] = True
    return render(request, "labeling/dashboard.html", context)


@require_POST
def dashboard_refresh(request: HttpRequest, project_id: int) -> HttpResponse:
    """A manager's Refresh: queue a recompute of the quality figures (the current ones stay on
    show until the new ones land)."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    if dashboard_snapshot_request(project=project):
        messages.success(request, "The quality figures are being computed again; reload in a moment.")
    else:
        messages.info(request, "The quality figures are already being computed; reload in a moment.")
    return redirect("dashboard-project", project_id=project.pk)


@require_POST
def dashboard_apply_threshold(request: HttpRequest, project_id: int) -> HttpResponse:
    """Form fields class_id and box_threshold: set the class's own threshold (managers)."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    error = value = None
    form = ClassThresholdForm(request.POST)
    if not form.is_valid():
        error = " ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
    else:
        try:
            value = threshold_save(project=project, **form.cleaned_data)
        except ReviewError as exc:
            error = exc.message
        else:  # the quality figures depend on the threshold: compute them again
            dashboard_snapshot_request(project=project)
    status = 400 if error else 200
    if request.htmx:
        return render(
            request,
            "labeling/dashboard.html#applied",
            {"error": error, "value": value},
            status=status,
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Threshold set to {value:.2f}.")
    return redirect("dashboard-project", project_id=project.pk)
