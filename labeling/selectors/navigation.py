"""Reads of the review page's navigation (docs/architecture.md, "Flows" 3): "image k of n", the
filmstrip (a keyset window of the project's images around one), jump by name (a prefix of the
original name, on the index of migration 0010), "peek next" (the image the queue would hand the
user next, read without leasing it: the page prefetches its data and bitmap) and "previous".

Each selector makes a constant number of queries whatever the project's size, each a bounded
range read on an index: nothing here counts or scans the project's images.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from ..access import User
from ..models import Image, Project
from .images import image_status_counts, name_in_byte_order, name_prefix_match
from .review import QUEUE_ORDER, image_previous, images_free_for, review_data

# The review queue's choices: the usual one (pre-labeled, then new images) and the skipped images
# ("Skipped" filter: revisit what was left out, in id order after the one just seen).
QUEUE_SKIPPED = "skipped"
QUEUE_CHOICES = (QUEUE_SKIPPED,)

FILMSTRIP_DEFAULT = 20
FILMSTRIP_MAX = 50
NAME_MATCHES_MAX = 20
NAME_PREFIX_MAX = 255
# The index of migration 0010: (project, original name in byte order, id).
NAME_INDEX = "image_name_prefix_idx"


def queue_statuses(queue: str | None) -> tuple[str, ...]:
    """The statuses a queue hands out, in its order."""
    return (Image.Status.SKIPPED,) if queue == QUEUE_SKIPPED else QUEUE_ORDER


def review_queue_url(*, project_id: int, queue: str | None = None, after: int | None = None) -> str:
    """The queue to POST to for the next image: the usual one, or the skipped images after `after`."""
    url = reverse("review-next", kwargs={"project_id": project_id})
    if queue == QUEUE_SKIPPED:
        url += f"?status={QUEUE_SKIPPED}" + (f"&after={after}" if after else "")
    return url


# "Image k of n" ----------------------------------------------------------------------------------


def review_progress(*, image: Image) -> dict:
    """Where the image stands in its project's review, from image_status_counts (per-status
    figures, not a count of rows per request): n is every image of the project; for an image still
    to review, k is the place it takes among the finished ones (done and skipped so far, plus
    one), so it advances with each submit or skip, whoever made it; a done or skipped image has no
    k (it is shown with the figures instead)."""
    counts = image_status_counts(project=image.project)
    finished = counts.get(Image.Status.DONE, 0) + counts.get(Image.Status.SKIPPED, 0)
    total = counts.get("all", 0)
    in_queue = image.status in QUEUE_ORDER
    return {
        "k": min(finished + 1, total) if in_queue else None,
        "n": total,
        "done": counts.get(Image.Status.DONE, 0),
        "skipped": counts.get(Image.Status.SKIPPED, 0),
    }


# The filmstrip -----------------------------------------------------------------------------------


def _strip_rows(rows, *, now: datetime) -> list[dict]:
    return [
        {
            "id": row["id"],
            "name": row["original_name"],
            "status": row["status"],
            "in_review": bool(
                row["assignee_id"] and row["lease_expires_at"] and row["lease_expires_at"] > now
            ),
            "thumbnail": reverse("image-thumbnail", kwargs={"image_id": row["id"]}),
            "review_url": reverse("image-review", kwargs={"image_id": row["id"]}),
        }
        for row in rows
    ]


_STRIP_FIELDS = ("id", "original_name", "status", "assignee_id", "lease_expires_at")


def image_window(
    *,
    project: Project,
    around: int | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = FILMSTRIP_DEFAULT,
    now: datetime | None = None,
) -> dict:
    """A window of the project's images by id, for the filmstrip: `limit` images before `around`
    and `limit` from it on (the image itself included); or, to load more, `limit` images before
    the id `before` or after the id `after`. Exactly one of the three is given. Two range reads
    at most on (project, id), each with a LIMIT: the cost is the window's, not the project's.

    Returns {"images": [...by id], "more_before": bool, "more_after": bool}; `more_*` is None
    on the side that was not read."""
    now = now or timezone.now()
    images = Image.objects.filter(project=project).values(*_STRIP_FIELDS)
    earlier: list[dict] = []
    later: list[dict] = []
    more_before = more_after = None
    if around is not None or before is not None:
        edge = around if around is not None else before
        earlier = list(images.filter(pk__lt=edge).order_by("-pk")[: limit + 1])
        more_before = len(earlier) > limit
        earlier = earlier[:limit][::-1]
    if around is not None or after is not None:
        start = Q(pk__gte=around) if around is not None else Q(pk__gt=after)
        later = list(images.filter(start).order_by("pk")[: limit + 1])
        more_after = len(later) > limit
        later = later[:limit]
    return {
        "images": _strip_rows(earlier + later, now=now),
        "more_before": more_before,
        "more_after": more_after,
    }


# Jump by name ------------------------------------------------------------------------------------


def images_by_name(
    *, project: Project, prefix: str, limit: int = 10, now: datetime | None = None
) -> list[dict]:
    """The project's images whose original name starts with `prefix` (case as typed), by name in
    code point order, at most `limit`: one range read on the index (project, name in byte order,
    id) of migration 0010, which stops after `limit` rows whatever the number of images."""
    if not prefix:
        return []  # an empty field: nothing to jump to (and no read)
    now = now or timezone.now()
    rows = (
        Image.objects.filter(project=project)
        .annotate(name_bytes=name_in_byte_order())
        .filter(name_prefix_match(prefix))
        .order_by("name_bytes", "id")
        .values(*_STRIP_FIELDS)[:limit]
    )
    return _strip_rows(rows, now=now)


# Peek next, previous -----------------------------------------------------------------------------


def review_peek_id(
    *, project: Project, user: User, exclude_id: int, queue: str | None = None, now: datetime | None = None
) -> int | None:
    """The image the queue (services.review.image_lease_next) would hand the user after the image
    `exclude_id`, read only: nothing is leased, so another annotator may take it meanwhile (the
    page's claim then tells). The user's own unexpired lease first, then the first free image of
    each queue status by id; in the skipped queue, the first free skipped image after
    `exclude_id`. At most three indexed reads, each of one row."""
    now = now or timezone.now()
    statuses = queue_statuses(queue)
    free = images_free_for(user=user, now=now)
    if queue == QUEUE_SKIPPED:
        return (
            Image.objects.filter(project=project, status=Image.Status.SKIPPED, pk__gt=exclude_id)
            .filter(free)
            .order_by("id")
            .values_list("pk", flat=True)
            .first()
        )
    held = (
        Image.objects.filter(project=project, assignee=user, lease_expires_at__gt=now, status__in=statuses)
        .exclude(pk=exclude_id)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if held is not None:
        return held
    for status in statuses:
        found = (
            Image.objects.filter(project=project, status=status)
            .filter(free)
            .exclude(pk=exclude_id)
            .order_by("id")
            .values_list("pk", flat=True)
            .first()
        )
        if found is not None:
            return found
    return None


def review_peek(
    *, image: Image, user: User, can_manage: bool, queue: str | None = None, now: datetime | None = None
) -> dict | None:
    """The next image after `image` for the user (review_peek_id) with the review page's data as
    its claim would give it (selectors.review.review_data, without a lease), for the page to
    prefetch; None when the queue has nothing more. Its data's `progress` has the header's "image k
    of n" as it will be once `image` is finished (submitted or skipped: k is one more when it is
    still in the queue; done and skipped are as they are now), for the page that moves there in
    place. A constant number of
    queries."""
    next_id = review_peek_id(project=image.project, user=user, exclude_id=image.pk, queue=queue, now=now)
    if next_id is None:
        return None
    following = Image.objects.select_related("project").get(pk=next_id)
    review_url = reverse("image-review", kwargs={"image_id": next_id})
    if queue == QUEUE_SKIPPED:
        review_url += f"?queue={QUEUE_SKIPPED}"
    data = review_data(image=following, can_manage=can_manage, lease_expires_at=None, held_by_other=None)
    progress = review_progress(image=following)
    if progress["k"] is not None and image.status in QUEUE_ORDER:
        progress["k"] = min(progress["k"] + 1, progress["n"])
    data["progress"] = progress
    return {"id": next_id, "version": following.version, "review_url": review_url, "data": data}


def review_previous(*, image: Image, user: User) -> dict | None:
    """The image "previous" (P) opens (selectors.review.image_previous), or None on the first one."""
    previous_id = image_previous(image=image, user=user)
    if previous_id == image.pk:
        return None
    return {"id": previous_id, "review_url": reverse("image-review", kwargs={"image_id": previous_id})}
