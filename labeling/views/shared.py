"""What several pages' views share: the upload guard and the htmx panel."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from ..access import project_for_user
from ..models import Project


def upload_too_large(request: HttpRequest) -> HttpResponse | None:
    """413 with the reason when the request declares more than LABELGPT_MAX_UPLOAD_BYTES."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared <= settings.LABELGPT_MAX_UPLOAD_BYTES:
        return None
    return HttpResponse(
        f"The upload is {declared / 1e6:.0f} MB; the limit is "
        f"{settings.LABELGPT_MAX_UPLOAD_BYTES / 1e6:.0f} MB per upload. Send fewer files at once.",
        status=413,
        content_type="text/plain",
    )


def project_upload_view(view: Callable[[HttpRequest, Project], HttpResponse]):
    """A file posted to a project (managers): POST only, and 413 for a declared size over the
    limit, before the view reads the body. The view gets the project."""

    @require_POST
    @wraps(view)
    def wrapper(request: HttpRequest, project_id: int) -> HttpResponse:
        project, _ = project_for_user(request.user, project_id, manage=True)
        too_large = upload_too_large(request)
        return too_large if too_large is not None else view(request, project)

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
