"""The review workspace: the queue, the review page and the JSON endpoints the canvas
(static/js/canvas.js) calls. Views are adapters: parse input, check access, call one service or
selector from labeling.review, answer.

JSON endpoints answer JSON whatever happens: 401 for an anonymous caller (not a redirect to the
login page, which a fetch() would follow silently), 404 for outsiders, 403 for the wrong role,
400 / 409 / 412 / 428 for the service's refusals, each as {"error": "..."}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from labeling.selectors.images import image_status_counts
from labeling.services import review
from labeling.services.review import UNSET, Invalid, ReviewError

from ..access import annotation_for_user, can_manage, image_for_user, project_for_user

JsonView = Callable[..., HttpResponse]


def json_endpoint(*methods: str) -> Callable[[JsonView], JsonView]:
    """Allowed methods, login (401 JSON, not a redirect) and errors as JSON for one endpoint."""

    def decorate(view: JsonView) -> JsonView:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return JsonResponse({"error": "You are logged out: log in again."}, status=401)
            if request.method not in methods:
                response = JsonResponse({"error": f"{request.method} is not allowed here."}, status=405)
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except ReviewError as exc:
                return JsonResponse(exc.as_dict(), status=exc.status)
            except Http404:
                return JsonResponse({"error": "Not found."}, status=404)
            except PermissionDenied as exc:
                return JsonResponse({"error": str(exc) or "You may not do this."}, status=403)

        # The login check above answers 401 instead of LoginRequiredMiddleware's redirect.
        return login_not_required(wrapper)

    return decorate


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _body(request: HttpRequest, *, allowed: set[str], required: Collection[str] = ()) -> dict:
    """The request's JSON object, with only the allowed fields and all the required ones."""
    raw = request.body
    try:
        data = json.loads(raw, parse_constant=_refuse_constant) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"The body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Invalid("The body must be a JSON object.")
    unknown = set(data) - allowed
    if unknown:
        raise Invalid(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    missing = set(required) - set(data)
    if missing:
        raise Invalid(f"Missing field(s): {', '.join(sorted(missing))}.")
    return data


def _annotation_response(annotation: dict, *, status: int = 200) -> JsonResponse:
    response = JsonResponse(annotation, status=status)
    response["ETag"] = f'"{annotation["version"]}"'
    return response


# Pages ---------------------------------------------------------------------------------------------


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
            "held_by_others": review.images_held_by_others(project=project, user=request.user),
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
    return redirect("image-review", image_id=review.image_previous(image=image, user=request.user))


@require_GET
def project_leases(request: HttpRequest, project_id: int) -> HttpResponse:
    """Who holds what (managers): the project page loads this list with htmx."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    return render(
        request,
        "labeling/project_detail.html#leases",
        {"project": project, "leases": review.image_leases(project=project), "now": timezone.now()},
    )


# JSON endpoints -------------------------------------------------------------------------------------


@json_endpoint("GET", "POST")
def image_annotations(request: HttpRequest, image_id: int) -> HttpResponse:
    """GET: the image's annotations. POST {class_id, box, mask?, polygons?}: a drawn annotation (201)."""
    image, _ = image_for_user(request.user, image_id)
    if request.method == "GET":
        return JsonResponse({"annotations": review.image_annotations(image=image)})
    body = _body(request, allowed={"class_id", "box", "mask", "polygons"}, required={"class_id", "box"})
    annotation = review.annotation_create(image=image, user=request.user, **body)
    return _annotation_response(annotation, status=201)


@json_endpoint("GET", "PATCH", "DELETE")
def annotation_detail(request: HttpRequest, annotation_id: int) -> HttpResponse:
    """GET: the annotation. PATCH (If-Match) {state?, class_id?, box?, mask?, polygons?}: triage
    or edit it. DELETE (If-Match): remove a drawn or imported annotation (204)."""
    annotation, _ = annotation_for_user(request.user, annotation_id)
    if request.method == "GET":
        return _annotation_response(review.annotation_current(annotation_id=annotation.pk))
    if request.method == "DELETE":
        body = _body(request, allowed={"version"})
        review.annotation_delete(
            annotation=annotation, user=request.user, version=review.requested_version(request.headers, body)
        )
        return HttpResponse(status=204)
    body = _body(request, allowed={"version", "state", "class_id", "box", "mask", "polygons"})
    version = review.requested_version(request.headers, body)
    changes = {name: body.get(name, UNSET) for name in ("state", "class_id", "box", "mask", "polygons")}
    saved = review.annotation_update(annotation=annotation, user=request.user, version=version, **changes)
    return _annotation_response(saved)


@json_endpoint("POST")
def image_annotations_bulk(request: HttpRequest, image_id: int) -> HttpResponse:
    """{"updates": [{id, version, state}, ...]} → {"annotations": saved, "conflicts": stale ids,
    "current": the stale ones as they are now}."""
    image, _ = image_for_user(request.user, image_id)
    body = _body(request, allowed={"updates"}, required={"updates"})
    result = review.annotations_set_states(image=image, user=request.user, updates=body["updates"])
    return JsonResponse(result)


@json_endpoint("POST")
def image_submit(request: HttpRequest, image_id: int) -> HttpResponse:
    image, _ = image_for_user(request.user, image_id)
    body = _body(request, allowed={"version"})
    review.image_submit(image=image, user=request.user, version=body.get("version"))
    return JsonResponse({"next": review.review_next_url(image.project_id)})


@json_endpoint("POST")
def image_skip(request: HttpRequest, image_id: int) -> HttpResponse:
    image, _ = image_for_user(request.user, image_id)
    body = _body(request, allowed={"version"})
    review.image_skip(image=image, user=request.user, version=body.get("version"))
    return JsonResponse({"next": review.review_next_url(image.project_id)})


@json_endpoint("POST")
def project_threshold(request: HttpRequest, project_id: int) -> HttpResponse:
    """{"box_threshold": 0.4, "class_id"?: 3}: save the slider's value (managers)."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    body = _body(request, allowed={"box_threshold", "class_id"}, required={"box_threshold"})
    value = review.threshold_save(
        project=project, box_threshold=body["box_threshold"], class_id=body.get("class_id")
    )
    return JsonResponse({"box_threshold": value, "class_id": body.get("class_id")})
