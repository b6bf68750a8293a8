"""Reads of the review workspace (docs/architecture.md, "Flows" 3): leases (who holds what), the review page's
data, the annotations as the page and the API give them, and the image to go back to.

The writes (leasing, triage, edits, submit / skip, thresholds) are labeling.services.review.
Each selector makes a constant number of queries whatever the number of images or annotations.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from .. import model_choices
from ..access import User
from ..models import Annotation, FindMoreRequest, Image

# The queue hands out pre-labeled images first (their proposals are ready), then new ones.
QUEUE_ORDER = (Image.Status.PRELABELED, Image.Status.NEW)

ANNOTATION_FIELDS = (
    "id", "label_class_id", "x", "y", "w", "h", "mask", "polygons", "score", "phrase",
    "source", "state", "version", "original_box",
)  # fmt: skip


# Leases ------------------------------------------------------------------------------------------


def lease_duration() -> timedelta:
    return timedelta(minutes=settings.LABELGPT_LEASE_MINUTES)


def images_free_for(*, user: User, now: datetime) -> Q:
    """Images the user may lease now: not leased, lease expired, or already the user's."""
    return (
        Q(assignee__isnull=True)
        | Q(lease_expires_at__isnull=True)
        | Q(lease_expires_at__lte=now)
        | Q(assignee=user)
    )


def image_lease_holder(*, image_id: int) -> dict:
    """The image's holder, lease end, version and status ({} when there is no such image)."""
    return (
        Image.objects.filter(pk=image_id)
        .values("assignee_id", "assignee__username", "lease_expires_at", "version", "status")
        .first()
        or {}
    )


def image_leases(*, project, now: datetime | None = None, limit: int = 200) -> list[dict]:
    """Who holds what: the project's unexpired leases, by holder (one query)."""
    now = now or timezone.now()
    return list(
        Image.objects.filter(project=project, assignee__isnull=False, lease_expires_at__gt=now)
        .order_by("assignee__username", "lease_expires_at", "id")
        .values("id", "original_name", "status", "assignee__username", "lease_expires_at")[:limit]
    )


def review_queue_counts(*, project, user: User, now: datetime | None = None) -> dict[str, int]:
    """The review queue as the user sees it now (one query): `free`, the images still to review
    the user may take (free, expired, or already theirs); `held_by_others`, those other
    annotators hold."""
    now = now or timezone.now()
    held_by_others = Q(assignee__isnull=False, lease_expires_at__gt=now) & ~Q(assignee=user)
    return Image.objects.filter(project=project, status__in=QUEUE_ORDER).aggregate(
        free=Count("pk", filter=images_free_for(user=user, now=now)),
        held_by_others=Count("pk", filter=held_by_others),
    )


# Annotations -------------------------------------------------------------------------------------


def annotation_json(*, row: dict) -> dict:
    """An annotation as the page and the API give it (a `.values(*ANNOTATION_FIELDS)` row)."""
    return {
        "id": row["id"],
        "class_id": row["label_class_id"],
        "box": [row["x"], row["y"], row["w"], row["h"]],
        "mask": row["mask"],
        "polygons": row["polygons"],
        "score": row["score"],
        "phrase": row["phrase"],
        "source": row["source"],
        "state": row["state"],
        "version": row["version"],
        "edited": row["original_box"] is not None,
    }


def annotations_json(*, annotations: QuerySet[Annotation]) -> list[dict]:
    """The annotations of a queryset as annotation_json gives them, by id (one query)."""
    return [annotation_json(row=row) for row in annotations.order_by("id").values(*ANNOTATION_FIELDS)]


def annotation_rows(*, image: Image) -> QuerySet:
    """The image's annotations as `.values(*ANNOTATION_FIELDS)` rows by id (for paginated lists)."""
    return Annotation.objects.filter(image=image).order_by("id").values(*ANNOTATION_FIELDS)


def annotation_current(*, annotation_id: int) -> dict | None:
    row = Annotation.objects.filter(pk=annotation_id).values(*ANNOTATION_FIELDS).first()
    return annotation_json(row=row) if row else None


def image_annotations(*, image: Image) -> list[dict]:
    """Every annotation of the image, whatever its state (one query)."""
    return annotations_json(annotations=Annotation.objects.filter(image=image))


def image_proposals_above(*, image: Image, min_score: float, limit: int) -> list[tuple[int, int]]:
    """(id, version) of the image's proposals scoring at least min_score, by id, at most `limit`."""
    return list(
        Annotation.objects.filter(image=image, state=Annotation.State.PROPOSED, score__gte=min_score)
        .order_by("id")
        .values_list("pk", "version")[:limit]
    )


# The review page ---------------------------------------------------------------------------------


def review_next_url(*, project_id: int) -> str:
    """The review queue of the project: a POST there (a form with the CSRF token) leases the next
    image and goes to it (303); a GET shows the queue and takes nothing. The review page POSTs
    there after submit / skip, the project page's "Start reviewing" too."""
    return reverse("review-next", kwargs={"project_id": project_id})


def review_urls(*, image: Image) -> dict:
    """The URLs the review page calls: the JSON API (/api/v1/, with the session and the CSRF
    header) for the lease claim, every write and click-to-segment; pages for "previous" and the
    project."""
    image_kw, project_kw = {"image_id": image.pk}, {"project_id": image.project_id}
    return {
        "lease": reverse("api-image-lease", kwargs=image_kw),
        "annotations": reverse("api-image-annotations", kwargs=image_kw),
        "annotation": reverse("api-annotation", kwargs={"annotation_id": 0}),
        "bulk": reverse("api-image-annotation-states", kwargs=image_kw),
        "segment": reverse("api-image-segment", kwargs=image_kw),
        "find_more": reverse("api-image-find-more", kwargs=image_kw),
        "submit": reverse("api-image-submit", kwargs=image_kw),
        "skip": reverse("api-image-skip", kwargs=image_kw),
        "previous": reverse("image-previous", kwargs=image_kw),
        "previous_check": reverse("api-image-previous", kwargs=image_kw),
        "peek_next": reverse("api-image-peek-next", kwargs=image_kw),
        "filmstrip": reverse("api-project-filmstrip", kwargs=project_kw),
        "image_names": reverse("api-project-image-names", kwargs=project_kw),
        "threshold": reverse("api-project-threshold", kwargs=project_kw),
        "project": reverse("project-detail", kwargs=project_kw),
    }


def review_data(
    *, image: Image, can_manage: bool, lease_expires_at: datetime | None, held_by_other: str | None
) -> dict:
    """What the review page embeds for the canvas (two queries: classes, annotations)."""
    project = image.project
    classes = [
        {
            "id": c.pk,
            "name": c.name,
            "color": c.color,
            "index": index,
            "box_threshold": c.box_threshold if c.box_threshold is not None else project.box_threshold,
        }
        for index, c in enumerate(project.classes.order_by("order", "id"), start=1)
    ]
    return {
        "image": {
            "id": image.pk,
            "width": image.width,
            "height": image.height,
            "url": reverse("image-file", kwargs={"image_id": image.pk}),
            "version": image.version,
            "status": image.status,
            "name": image.original_name,
        },
        "project": {"id": project.pk, "name": project.name, "box_threshold": project.box_threshold},
        "classes": classes,
        "annotations": image_annotations(image=image),
        "urls": review_urls(image=image),
        "can_manage": can_manage,
        "lease_expires_at": lease_expires_at.isoformat() if lease_expires_at else None,
        # Seconds left by the server's clock: the page counts down from this, whatever its own clock says.
        "lease_seconds": (
            max(0, round((lease_expires_at - timezone.now()).total_seconds())) if lease_expires_at else None
        ),
        "held_by_other": held_by_other,
        "find_more": find_more_availability(project=project),
    }


def find_more_availability(*, project) -> dict:
    """Whether "find more like this" works on the project's images, with which SAM 3 model, or
    why not (the review page disables its key and button with this reason). No query."""
    name, reason = model_choices.find_more_detector(
        detector=project.detector, exemplar_detector=project.exemplar_detector
    )
    return {"available": name is not None, "detector": name, "reason": reason}


def find_more_json(*, request: FindMoreRequest) -> dict:
    """A find-more request as the API gives it; once done, with the proposals it created that
    are still there (one query)."""
    done = request.status == FindMoreRequest.Status.SUCCEEDED
    annotations = (
        annotations_json(
            annotations=Annotation.objects.filter(pk__in=request.annotation_ids, image=request.image_id)
        )
        if done and request.annotation_ids
        else []
    )
    return {
        "id": request.pk,
        "image": request.image_id,
        "annotation": request.annotation_id,
        "class_id": request.label_class_id,
        "detector": request.detector,
        "status": request.status,
        "exemplars": {"positive": request.positive_boxes, "negative": request.negative_boxes},
        "found": request.found_count,
        "created": request.created_count,
        "annotations": annotations,
        "error": request.error,
        "created_at": request.created_at.isoformat() if request.created_at else None,
        "finished_at": request.finished_at.isoformat() if request.finished_at else None,
        "status_url": reverse("api-find-more", kwargs={"request_id": request.pk}),
    }


def review_page_data(*, image: Image, user: User, can_manage: bool, now: datetime | None = None) -> dict:
    """The review page's data as a GET gives it: nothing is leased (the page claims the image
    with a POST to urls.lease). `held_by_other` names whoever else holds an unexpired lease now,
    with its end; the user's own lease or none gives neither (three queries)."""
    now = now or timezone.now()
    holder = image_lease_holder(image_id=image.pk)
    expires = holder.get("lease_expires_at")
    held = holder.get("assignee_id") not in (None, user.pk) and expires is not None and expires > now
    return review_data(
        image=image,
        can_manage=can_manage,
        lease_expires_at=expires if held else None,
        held_by_other=holder.get("assignee__username") if held else None,
    )


def image_previous(*, image: Image, user: User) -> int:
    """The image the user reviewed most recently before this one; else the image before this one
    in the project; else this one."""
    mine = Image.objects.filter(project_id=image.project_id, reviewed_by=user).exclude(pk=image.pk)
    if image.reviewed_by_id == user.pk and image.reviewed_at is not None:
        mine = mine.filter(reviewed_at__lt=image.reviewed_at)
    previous = mine.order_by("-reviewed_at", "-id").values_list("pk", flat=True).first()
    if previous is None:
        previous = (
            Image.objects.filter(project_id=image.project_id, pk__lt=image.pk)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
    return previous or image.pk
