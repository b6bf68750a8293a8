"""What several pages' views share: the upload view (POST, managers) and the htmx panel."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ..access import can_manage, project_for_user
from ..models import Project
from ..selectors.projects import project_counts

TRUE = ("1", "true", "on", "yes")


def ticked(value: str | None) -> bool:
    """Whether a posted checkbox or flag says yes ("1", "true", "on", "yes", any case)."""
    return (value or "").lower() in TRUE


def project_upload_view(view: Callable[[HttpRequest, Project], HttpResponse]):
    """A file posted to a project (managers): POST only. The view gets the project. Its size
    limit is labeling.middleware.RequestSizeLimitMiddleware's (413 before the body is read)."""

    @require_POST
    @wraps(view)
    def wrapper(request: HttpRequest, project_id: int) -> HttpResponse:
        project, _ = project_for_user(request.user, project_id, manage=True)
        return view(request, project)

    return wrapper


def project_panel_view(
    view: Callable[[HttpRequest, Project, str], HttpResponse] | None = None, *, page: str = ""
):
    """A section of a project tab that htmx reloads (members): GET only; a plain request (a
    bookmark, no JavaScript) goes to the tab that shows it (`page`, a URL name taking the
    project's id; the Images tab by default) with the same query. The view gets the project and
    the caller's role. Use as `@project_panel_view` or `@project_panel_view(page="...")`."""
    if view is None:
        return lambda actual: project_panel_view(actual, page=page)

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, project_id: int) -> HttpResponse:
        project, role = project_for_user(request.user, project_id)
        if not request.htmx:
            target = reverse(page, args=[project.pk]) if page else project.get_absolute_url()
            query = request.GET.urlencode()
            return redirect(f"{target}?{query}" if query else target)
        return view(request, project, role)

    return wrapper


def project_tab_context(project: Project, role: str, tab: str) -> dict:
    """What every tab of a project's pages needs (templates/labeling/_project_tabs.html): the
    project, the caller's role, which tab is shown, and the project's figures (its counts row: the
    empty states, "upload images first", "add a class")."""
    return {
        "project": project,
        "role": role,
        "can_manage": can_manage(role),
        "tab": tab,
        "figures": project_counts(project=project),
    }
