"""The review workspace's pages: the queue, the review page, "previous" and who holds what.
Views are adapters: check access, call one service or selector, render or redirect.

The review page's script (static/js/review.js) saves through the JSON API (/api/v1/, with the
session and the CSRF header): the URLs it calls come in the page's data
(labeling.selectors.review.review_urls).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from labeling.selectors import review as review_selectors
from labeling.selectors.images import image_status_counts
from labeling.services import review

from ..access import can_manage, image_for_user, project_for_user


@require_GET
def review_next(request: HttpRequest, project_id: int) -> HttpResponse:
    """Lease the next image to review and go there; the "nothing left" page when none is."""
    project, role = project_for_user(request.user, project_id)
    image_id = review.image_lease_next(project=project, user=request.user)
    if image_id is not None:
        return redirect("image-review", image_id=image_id)
    return render(
        request,
        "labeling/review_done.html",
        {
            "project": project,
            "role": role,
            "can_manage": can_manage(role),
            "counts": image_status_counts(project=project),
            "held_by_others": review_selectors.images_held_by_others(project=project, user=request.user),
        },
    )


@require_GET
def review_page(request: HttpRequest, image_id: int) -> HttpResponse:
    image, role = image_for_user(request.user, image_id)
    manage = can_manage(role)
    data = review.image_review_open(image=image, user=request.user, can_manage=manage)
    return render(
        request,
        "labeling/review.html",
        {"image": image, "project": image.project, "role": role, "can_manage": manage, "review_data": data},
    )


@require_GET
def image_previous(request: HttpRequest, image_id: int) -> HttpResponse:
    image, _ = image_for_user(request.user, image_id)
    return redirect("image-review", image_id=review_selectors.image_previous(image=image, user=request.user))


@require_GET
def project_leases(request: HttpRequest, project_id: int) -> HttpResponse:
    """Who holds what (managers): the project page loads this list with htmx."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    return render(
        request,
        "labeling/project_detail.html#leases",
        {"project": project, "leases": review_selectors.image_leases(project=project), "now": timezone.now()},
    )
