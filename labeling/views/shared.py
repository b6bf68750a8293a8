"""What several pages' views share: the upload view (POST, managers) and the htmx panel."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from ..access import project_for_user
from ..models import Project


def project_upload_view(view: Callable[[HttpRequest, Project], HttpResponse]):
    """A file posted to a project (managers): POST only. The view gets the project. Its size
    limit is labeling.middleware.RequestSizeLimitMiddleware's (413 before the body is read)."""

    @require_POST
    @wraps(view)
    def wrapper(request: HttpRequest, project_id: int) -> HttpResponse:
        project, _ = project_for_user(request.user, project_id, manage=True)
        return view(request, project)

    return wrapper


def project_panel_view(view: Callable[[HttpRequest, Project, str], HttpResponse]):
    """A section of the project page that htmx reloads (members): GET only; a plain request (a
    bookmark, no JavaScript) goes to the whole page with the same query. The view gets the project
    and the caller's role."""

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, project_id: int) -> HttpResponse:
        project, role = project_for_user(request.user, project_id)
        if not request.htmx:
            query = request.GET.urlencode()
            return redirect(f"{project.get_absolute_url()}?{query}" if query else project.get_absolute_url())
        return view(request, project, role)

    return wrapper
