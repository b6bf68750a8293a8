"""Review writes (docs/architecture.md, "Flows" 3): leasing images from the queue, triage, box and mask edits,
drawn annotations, submit / skip, and the review thresholds. The reads (the page's data, who
holds what, the annotations as JSON) are labeling.selectors.review.

Inputs come validated and typed (labeling.api.serializers, or a page's form); these functions
enforce the business rules: leases, versions, and what each state allows.

Leases: an image handed to an annotator is theirs for LABELGPT_LEASE_MINUTES; every write on it
renews the lease; an expired lease is free for anyone. Leases are taken by POSTs only (the queue's
"next image", the review page's claim, the writes): no GET leases or queues anything. Claims are
conditional UPDATEs that re-check the lease, so two annotators never get the same image, and on
PostgreSQL the queue reads its candidate with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent
claims do not even wait on each other.

Annotations: each carries a version. A write names the version it was made on and is one
conditional UPDATE (`filter(pk=..., version=v).update(..., version=F("version") + 1)`): of two
writers on the same version one wins, the other gets `Stale` with the annotation as it is now.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import Http404
from django.utils import timezone

from inference.masks import encode_mask, polygons_to_mask, rle_to_mask
from labeling.selectors.navigation import QUEUE_SKIPPED, queue_statuses
from labeling.selectors.review import (
    ANNOTATION_FIELDS,
    annotation_current,
    annotation_json,
    annotations_json,
    image_lease_holder,
    image_proposals_above,
    images_free_for,
    lease_duration,
    review_data,
)
from labeling.services import segmentation

from ..access import User
from ..models import Annotation, Image, LabelClass, Project

logger = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 5
MAX_BULK_UPDATES = 2000
STALE_MESSAGE = "This annotation was changed by someone else — reload the image."


class Unset:
    """Marks a field the caller did not send (a PATCH leaves it as it is); None means "clear"."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()


# Errors (the API's exception handler turns them into JSON answers with these statuses) -----------


class ReviewError(Exception):
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def as_dict(self) -> dict:
        return {"error": self.message, **self.extra}


class Invalid(ReviewError):
    """The write breaks a rule that depends on the data (annotations of another image, a
    threshold under the lowest stored score...)."""

    status = 400


class Conflict(ReviewError):
    """The write cannot be made in the image's present state (leased to someone else...)."""

    status = 409


class NotReopenable(ReviewError):
    """A done image someone else reviewed: an annotator may look at it, not reopen it."""

    status = 403


class Stale(ReviewError):
    """The write was made on an old version; `current` is how the object is now."""

    status = 412


# Leases ------------------------------------------------------------------------------------------


def _lease_take(*, image_id: int, user: User, now: datetime) -> bool:
    """Lease (or renew) the image for the user unless someone else holds it: one conditional UPDATE."""
    return (
        Image.objects.filter(pk=image_id)
        .filter(images_free_for(user=user, now=now))
        .update(assignee=user, lease_expires_at=now + lease_duration())
        == 1
    )


def _lease_for_write(*, image: Image, user: User, now: datetime) -> None:
    """Every write on an image renews the writer's lease; an image someone else holds is read-only."""
    if not _lease_take(image_id=image.pk, user=user, now=now):
        holder = image_lease_holder(image_id=image.pk).get("assignee__username") or "someone else"
        raise Conflict(f"{holder} is reviewing this image; it is read-only for you until they finish.")


def _claim_next(
    *, project: Project, user: User, now: datetime, statuses: Sequence[str], after: int | None
) -> tuple[bool, int | None]:
    """(whether a free image was found, the id claimed). Found but not claimed: lost a race."""
    free = images_free_for(user=user, now=now)
    with transaction.atomic():
        for status in statuses:
            candidates = Image.objects.filter(project=project, status=status).filter(free).order_by("id")
            if after is not None:
                candidates = candidates.filter(pk__gt=after)
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            image_id = candidates.values_list("pk", flat=True).first()
            if image_id is None:
                continue
            claimed = (
                Image.objects.filter(pk=image_id, status__in=statuses)
                .filter(free)
                .update(assignee=user, lease_expires_at=now + lease_duration())
            )
            return True, image_id if claimed else None
    return False, None


def image_lease_next(
    *,
    project: Project,
    user: User,
    queue: str | None = None,
    after: int | None = None,
    now: datetime | None = None,
) -> int | None:
    """The id of the image this user should review next, leased to them; None when none is left.

    The image the user already holds (unexpired, not yet done) comes first, its lease renewed;
    else the first pre-labeled image, then the first new one, that nobody else holds. The
    skipped queue (`queue="skipped"`: revisiting what was left out) hands out the first free
    skipped image after the id `after` instead (after: so that skipping it again moves on).
    """
    now = now or timezone.now()
    statuses = queue_statuses(queue)
    if queue != QUEUE_SKIPPED:
        held = (
            Image.objects.filter(
                project=project, assignee=user, lease_expires_at__gt=now, status__in=statuses
            )
            .order_by("id")
            .values_list("pk", flat=True)
            .first()
        )
        if held is not None and _lease_take(image_id=held, user=user, now=now):
            return held
        after = None
    for _ in range(CLAIM_ATTEMPTS):
        found, image_id = _claim_next(project=project, user=user, now=now, statuses=statuses, after=after)
        if not found:
            return None
        if image_id is not None:
            return image_id
    logger.warning("Review queue of project %s: no claim after %d attempts", project.pk, CLAIM_ATTEMPTS)
    return None


def image_lease_claim(
    *,
    image: Image,
    user: User,
    can_manage: bool,
    known_version: int | None = None,
    now: datetime | None = None,
) -> dict:
    """The review page claims its image (a POST, never a GET): lease it to the user, or renew
    their lease, unless someone else holds it (Conflict, with `held_by` and `lease_expires_at`:
    the page opens read-only); queue the SAM embeddings of it and the next images; give the
    page's data (selectors.review.review_data). A constant number of queries whatever the number
    of annotations.

    A done image is reopened (quality control) by the project's managers and by the annotator
    who reviewed it; for other annotators it is read-only (NotReopenable). The lease works as for
    any image; the status stays done until the next submit (done again, recorded as that user's
    review) or skip.

    `known_version`: the page already has the image's data as of that version (it prefetched it
    with selectors.navigation.review_peek, read-only, while the previous image was reviewed). Once
    the lease is taken nobody else can write on the image, and any write by someone else since
    the peek needed their lease, which the claim would have met (409), or a close or a new
    pre-labeling, which bumps the version: so the same version means the same data, and the
    answer is only the lease ({"unchanged": true, ...}) instead of the data again."""
    now = now or timezone.now()
    if (
        image.status == Image.Status.DONE
        and not can_manage
        and image.reviewed_by_id not in (None, getattr(user, "pk", None))
    ):
        raise NotReopenable(
            "This image is done; only the project's managers reopen it. You can look, not change."
        )
    if not _lease_take(image_id=image.pk, user=user, now=now):
        holder = image_lease_holder(image_id=image.pk)
        name = holder.get("assignee__username") or "someone else"
        expires = holder.get("lease_expires_at")
        raise Conflict(
            f"{name} is reviewing this image; it is read-only for you until they finish.",
            held_by=name,
            lease_expires_at=expires.isoformat() if expires else None,
        )
    try:
        segmentation.embeddings_prefetch(image=image)
    except Exception:  # the page works without it: the first click just waits for the embedding
        logger.exception("Image %s: the embeddings could not be queued", image.pk)
    expires_at = now + lease_duration()
    if known_version is not None:
        current = image_lease_holder(image_id=image.pk)
        if current.get("version") == known_version:
            return {
                "unchanged": True,
                "image": {"id": image.pk, "version": known_version, "status": current["status"]},
                "lease_expires_at": expires_at.isoformat(),
                "lease_seconds": round(lease_duration().total_seconds()),
            }
        image.refresh_from_db()
    return review_data(image=image, can_manage=can_manage, lease_expires_at=expires_at, held_by_other=None)


# Annotation writes -------------------------------------------------------------------------------


def annotation_create(
    *,
    image: Image,
    user: User,
    class_id: int,
    box: Sequence[float],
    mask: dict | None = None,
    polygons: list | None = None,
    now: datetime | None = None,
) -> dict:
    """A human-drawn annotation (a box, or a mask from click-to-segment), accepted at once.
    class_id is a class of the image's project; box, mask and polygons fit the image."""
    now = now or timezone.now()
    x, y, w, h = box
    with transaction.atomic():
        _lease_for_write(image=image, user=user, now=now)
        annotation = Annotation.objects.create(
            image=image,
            label_class_id=class_id,
            x=x,
            y=y,
            w=w,
            h=h,
            mask=mask,
            polygons=polygons,
            source=Annotation.Source.HUMAN,
            state=Annotation.State.ACCEPTED,
            created_by=user,
            updated_by=user,
        )
    return annotation_json(row={name: getattr(annotation, name) for name in ANNOTATION_FIELDS})


def _stale(annotation_id: int) -> Stale:
    return Stale(STALE_MESSAGE, current=annotation_current(annotation_id=annotation_id))


def _polygons_box(polygons: list) -> list[float] | None:
    xs = [v for part in polygons for ring in part for v in ring[0::2]]
    ys = [v for part in polygons for ring in part for v in ring[1::2]]
    if not xs:
        return None
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _derived_geometry(*, annotation: Annotation, mask: Any, polygons: Any, box: Any) -> tuple[Any, Any, Any]:
    """The mask editors send one geometry and the server derives the rest from it: a painted mask
    (brush, eraser) without polygons → its polygons traced and, unless given, its box; edited
    polygons (vertex editing) without a mask → the mask rasterised again when the annotation has
    one and, unless given, the polygons' box. The painted pixels are kept as they are (no specks
    dropped). An empty result is refused: reject or delete the annotation instead."""
    image = annotation.image
    if mask not in (UNSET, None) and polygons in (UNSET, None):
        encoded = encode_mask(rle_to_mask(mask), min_area=0, hole_area=0, area_fraction=0.0)
        if encoded.rle is None:
            raise Invalid("The mask is empty: reject or delete the annotation instead of erasing all of it.")
        polygons = encoded.polygons
        mask = encoded.rle
        if box is UNSET:
            box = list(encoded.box)
    elif polygons not in (UNSET, None) and mask is UNSET:
        drawn = polygons_to_mask(polygons, image.height, image.width)
        if not drawn.any():
            raise Invalid("The polygons are empty: reject or delete the annotation instead.")
        if annotation.mask is not None:
            mask = encode_mask(drawn, min_area=0, hole_area=0, area_fraction=0.0).rle
        if box is UNSET:
            box = _polygons_box(polygons)
    return mask, polygons, box


def annotation_update(
    *,
    annotation: Annotation,
    user: User,
    version: int,
    state: Any = UNSET,
    class_id: Any = UNSET,
    box: Any = UNSET,
    mask: Any = UNSET,
    polygons: Any = UNSET,
    now: datetime | None = None,
) -> dict:
    """Triage or edit an annotation made on `version`; the annotation as saved (version + 1).
    Each field given (UNSET: left as it is) is valid for the annotation's image. A mask given
    without polygons, or polygons without a mask, has the rest derived (`_derived_geometry`).

    The first geometry change (box or mask) of a model proposal keeps the model's box and mask in
    original_box / original_mask, never overwritten later. Geometry edits leave the state alone.
    """
    now = now or timezone.now()
    mask, polygons, box = _derived_geometry(annotation=annotation, mask=mask, polygons=polygons, box=box)
    changes: dict[str, Any] = {}
    if state is not UNSET:
        changes["state"] = state
    if class_id is not UNSET:
        changes["label_class_id"] = class_id
    if box is not UNSET:
        changes.update(zip("xywh", box, strict=True))
    if mask is not UNSET:
        changes["mask"] = mask
    if polygons is not UNSET:
        changes["polygons"] = polygons
    if not changes:
        raise ValueError("annotation_update needs at least one change")
    with transaction.atomic():
        _lease_for_write(image=annotation.image, user=user, now=now)
        if annotation.version != version:
            raise _stale(annotation.pk)
        geometry = [name for name in ("x", "y", "w", "h", "mask") if name in changes]
        geometry_changed = any(getattr(annotation, name) != changes[name] for name in geometry)
        if (
            geometry_changed
            and annotation.source == Annotation.Source.MODEL
            and annotation.original_box is None
        ):
            changes["original_box"] = list(annotation.box)
            changes["original_mask"] = annotation.mask
        updated = Annotation.objects.filter(pk=annotation.pk, version=version).update(
            **changes, version=F("version") + 1, updated_by=user, updated_at=now
        )
        if not updated:
            raise _stale(annotation.pk)
    return annotation_current(annotation_id=annotation.pk)


def annotation_delete(
    *, annotation: Annotation, user: User, version: int, now: datetime | None = None
) -> None:
    """Delete a drawn (human) or imported annotation: the undo of drawing it. Model proposals are
    rejected instead, so the quality figures keep them."""
    now = now or timezone.now()
    if annotation.source == Annotation.Source.MODEL:
        raise Conflict("reject model proposals instead of deleting them")
    with transaction.atomic():
        _lease_for_write(image=annotation.image, user=user, now=now)
        deleted, _ = Annotation.objects.filter(pk=annotation.pk, version=version).delete()
        if not deleted:
            raise _stale(annotation.pk)


@dataclass(frozen=True)
class StateUpdate:
    id: int
    version: int
    state: str


def annotations_set_states(
    *, image: Image, user: User, updates: Sequence[StateUpdate], now: datetime | None = None
) -> dict:
    """Change the state of many annotations of one image at once ("accept all visible"); each id
    at most once.

    Each update is conditional on its version: the stale ones are left alone and reported in
    `conflicts` (with `current`, how they are now); the others are saved and given back in
    `annotations`. Every id must be an annotation of this image.
    """
    now = now or timezone.now()
    if not updates:
        return {"annotations": [], "conflicts": [], "current": []}
    ids = [u.id for u in updates]
    with transaction.atomic():
        _lease_for_write(image=image, user=user, now=now)
        rows = Annotation.objects.filter(image=image, pk__in=ids)
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        versions = dict(rows.values_list("pk", "version"))
        foreign = [i for i in ids if i not in versions]
        if foreign:
            raise Invalid(f"Not annotations of this image: {foreign[:20]}.")
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for update in updates:
            if versions[update.id] == update.version:
                groups[update.state, update.version].append(update.id)
        saved: set[int] = set()
        for (state, version), group in groups.items():
            for chunk in _chunks(group, 500):
                Annotation.objects.filter(image=image, pk__in=chunk, version=version).update(
                    state=state, version=F("version") + 1, updated_by=user, updated_at=now
                )
                saved.update(chunk)
    current = annotations_json(annotations=Annotation.objects.filter(pk__in=ids))
    conflicts = [i for i in ids if i not in saved]
    return {
        "annotations": [a for a in current if a["id"] in saved],
        "conflicts": conflicts,
        "current": [a for a in current if a["id"] not in saved],
    }


def annotations_accept_above(
    *, image: Image, user: User, min_score: float, now: datetime | None = None
) -> dict:
    """Accept every proposal of the image scoring at least min_score, at their current versions
    (at most MAX_BULK_UPDATES); the answer of annotations_set_states."""
    proposals = image_proposals_above(image=image, min_score=min_score, limit=MAX_BULK_UPDATES)
    updates = [StateUpdate(id=pk, version=v, state=Annotation.State.ACCEPTED) for pk, v in proposals]
    return annotations_set_states(image=image, user=user, updates=updates, now=now)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Submit, skip ------------------------------------------------------------------------------------


def _image_close(*, image: Image, user: User, status: str, version: int | None, now: datetime | None) -> None:
    now = now or timezone.now()
    images = Image.objects.filter(pk=image.pk).filter(images_free_for(user=user, now=now))
    if version is not None:
        images = images.filter(version=version)
    closed = images.update(
        status=status,
        reviewed_by=user,
        reviewed_at=now,
        assignee=None,
        lease_expires_at=None,
        version=F("version") + 1,
        updated_at=now,
    )
    if closed:
        return
    holder = image_lease_holder(image_id=image.pk)
    if not holder:
        raise Http404("No such image.")
    expires = holder["lease_expires_at"]
    if holder["assignee_id"] not in (None, user.pk) and expires is not None and expires > now:
        raise Conflict(f"{holder['assignee__username']} is reviewing this image; only they can finish it.")
    raise Stale(
        "This image was changed meanwhile (new proposals or another reviewer) — reload it.",
        current={"version": holder["version"], "status": holder["status"]},
    )


def image_submit(
    *, image: Image, user: User, version: int | None = None, now: datetime | None = None
) -> None:
    """The user is done with the image: status done, reviewed by them, lease released."""
    _image_close(image=image, user=user, status=Image.Status.DONE, version=version, now=now)


def image_skip(*, image: Image, user: User, version: int | None = None, now: datetime | None = None) -> None:
    """The user leaves the image out: status skipped (recorded as theirs), lease released."""
    _image_close(image=image, user=user, status=Image.Status.SKIPPED, version=version, now=now)


# Thresholds --------------------------------------------------------------------------------------


def threshold_save(
    *, project: Project, box_threshold: float | None, class_id: int | None = None
) -> float | None:
    """Save the review threshold chosen with the slider (a number from 0 to 1): the project's, or
    one class's (None clears a class's own threshold: it follows the project's again). Managers
    only (the caller checks). Returns the value stored."""
    if class_id is None:
        if box_threshold is None:
            raise ValueError("the project's threshold cannot be cleared")
        value = float(box_threshold)
        if value < project.keep_threshold:
            raise Invalid(
                f"Detections under {project.keep_threshold} were not stored: the threshold cannot go lower."
            )
        try:
            with transaction.atomic():
                saved = Project.objects.filter(pk=project.pk, keep_threshold__lte=value).update(
                    box_threshold=value, updated_at=timezone.now()
                )
        except IntegrityError as exc:  # the check constraints, should a concurrent edit slip in
            raise Invalid("The threshold does not fit the project's other thresholds.") from exc
        if not saved:
            raise Invalid("The project's lowest stored score changed meanwhile; reload the page.")
        return value
    value = None if box_threshold is None else float(box_threshold)
    if not LabelClass.objects.filter(pk=class_id, project=project).update(box_threshold=value):
        raise Invalid(f"Class {class_id} is not a class of this project.")
    return value
