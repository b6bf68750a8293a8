"""The review workspace's pages: the queue, the review page, "previous" and who holds what.
Views are adapters: check access, call one service or selector, render or redirect.

No GET leases or queues anything (a link or an <img> on another site must not take images for a
logged-in annotator): the next image is leased by a POST to the queue, and the review page claims
its image by a POST to the API once its script runs.

The review page's script (static/js/review.js) saves through the JSON API (/api/v1/, with the
session and the CSRF header): the URLs it calls come in the page's data
(labeling.selectors.review.review_urls).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from labeling.selectors import navigation
from labeling.selectors import review as review_selectors
from labeling.selectors.images import image_status_counts
from labeling.services import review

from ..access import can_manage, image_for_user, project_for_user
from ..forms import ReviewPageForm, ReviewQueueForm
from .shared import project_tab_context


def _see_other(url: str) -> HttpResponseRedirect:
    """A 303: after a POST the browser GETs the new page (a reload does not POST again)."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _bad_query(form) -> HttpResponseBadRequest:
    reasons = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
    return HttpResponseBadRequest(f"Bad query: {reasons}", content_type="text/plain; charset=utf-8")


@require_http_methods(["GET", "POST"])
def review_next(request: HttpRequest, project_id: int) -> HttpResponse:
    """The review queue. POST (a form with the CSRF token: "Start reviewing", "look again", and
    the review page after submit / skip) leases the next image and goes there (303), or comes
    back here when none is left. GET only shows the queue (how many images the user may take,
    how many others hold) with that form: it takes nothing. ?status=skipped: the skipped images
    instead (after the id ?after=), opened with ?queue=skipped so that the page goes on there."""
    project, role = project_for_user(request.user, project_id)
    form = ReviewQueueForm(request.GET)
    if not form.is_valid():
        return _bad_query(form)
    queue = form.cleaned_data["status"] or None
    if request.method == "POST":
        image_id = review.image_lease_next(
            project=project, user=request.user, queue=queue, after=form.cleaned_data["after"]
        )
        if image_id is not None:
            url = reverse("image-review", kwargs={"image_id": image_id})
            return _see_other(url + (f"?queue={queue}" if queue else ""))
        return _see_other(navigation.review_queue_url(project_id=project.pk, queue=queue))
    return render(
        request,
        "labeling/review_queue.html",
        {
            **project_tab_context(project, role, "review"),
            "counts": image_status_counts(project=project),
            "queue": review_selectors.review_queue_counts(project=project, user=request.user),
            "skipped_queue": queue == navigation.QUEUE_SKIPPED,
            "skipped_url": navigation.review_queue_url(project_id=project.pk, queue=navigation.QUEUE_SKIPPED),
        },
    )


@require_GET
def review_page(request: HttpRequest, image_id: int) -> HttpResponse:
    """The review page, as a read: it leases nothing and queues nothing. Its script claims the
    image with a POST to the API (urls.lease: the lease and fresh data, or 409 and read-only).
    "Image k of n" comes from the project's per-status figures (selectors.navigation)."""
    image, role = image_for_user(request.user, image_id)
    form = ReviewPageForm(request.GET)
    if not form.is_valid():
        return _bad_query(form)
    queue = form.cleaned_data["queue"] or None
    manage = can_manage(role)
    data = review_selectors.review_page_data(image=image, user=request.user, can_manage=manage)
    data["queue"] = queue
    data["progress"] = navigation.review_progress(image=image)
    if queue:
        data["urls"]["next"] = navigation.review_queue_url(
            project_id=image.project_id, queue=queue, after=image.pk
        )
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
    """Who holds what (managers): the Review tab loads this list with htmx."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    return render(
        request,
        "labeling/review_queue.html#leases",
        {"project": project, "leases": review_selectors.image_leases(project=project), "now": timezone.now()},
    )
