"""Review (DESIGN.md, flow 3): the queue of images with leases, the review page's data, and the
writes of the review workspace (triage, box and mask edits, drawn annotations, submit / skip).

Leases: an image handed to an annotator is theirs for LABELGPT_LEASE_MINUTES; every write on it
renews the lease; an expired lease is free for anyone. Claims are conditional UPDATEs that
re-check the lease, so two annotators never get the same image, and on PostgreSQL the queue
reads its candidate with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent claims do not even wait
on each other.

Annotations: each carries a version. A write names the version it was made on and is one
conditional UPDATE (`filter(pk=..., version=v).update(..., version=F("version") + 1)`): of two
writers on the same version one wins, the other gets `Stale` with the annotation as it is now.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from inference.masks import rle_string_runs
from labeling.services import segmentation

from ..access import User
from ..models import Annotation, Image, LabelClass, Project, box_errors

logger = logging.getLogger(__name__)

# The queue hands out pre-labeled images first (their proposals are ready), then new ones.
QUEUE_ORDER = (Image.Status.PRELABELED, Image.Status.NEW)
CLAIM_ATTEMPTS = 5
MAX_BULK_UPDATES = 2000
MAX_POLYGON_VALUES = 200_000  # coordinates in all rings of one annotation
STALE_MESSAGE = "This annotation was changed by someone else — reload the image."


class Unset:
    """Marks a field the caller did not send (a PATCH leaves it as it is); None means "clear"."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()


# Errors (the views turn them into JSON answers with these statuses) ------------------------------


class ReviewError(Exception):
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def as_dict(self) -> dict:
        return {"error": self.message, **self.extra}


class Invalid(ReviewError):
    """The input breaks a rule (box outside the image, foreign class, bad mask...)."""

    status = 400


class Conflict(ReviewError):
    """The write cannot be made in the image's present state (leased to someone else...)."""

    status = 409


class Stale(ReviewError):
    """The write was made on an old version; `current` is how the object is now."""

    status = 412


def requested_version(headers, body: dict) -> Any:
    """The version a write was made on: the If-Match header ("3", W/"3" or 3), else body "version"."""
    header = headers.get("If-Match", "").strip()
    if header:
        value = header.removeprefix("W/").strip().strip('"')
        if not value.isdigit():
            raise Invalid('If-Match must be the annotation\'s version in quotes, e.g. If-Match: "3".')
        return int(value)
    if body.get("version") is not None:
        return body["version"]
    raise VersionRequired('Say which version you edited: send the header If-Match: "<version>".')


class VersionRequired(ReviewError):
    status = 428


# Access ------------------------------------------------------------------------------------------


# Leases ------------------------------------------------------------------------------------------


def lease_duration() -> timedelta:
    return timedelta(minutes=settings.LABELGPT_LEASE_MINUTES)


def _free_for(user: User, now: datetime) -> Q:
    """Images the user may lease now: not leased, lease expired, or already the user's."""
    return (
        Q(assignee__isnull=True)
        | Q(lease_expires_at__isnull=True)
        | Q(lease_expires_at__lte=now)
        | Q(assignee=user)
    )


def _lease_take(*, image_id: int, user: User, now: datetime) -> bool:
    """Lease (or renew) the image for the user unless someone else holds it: one conditional UPDATE."""
    return (
        Image.objects.filter(pk=image_id)
        .filter(_free_for(user, now))
        .update(assignee=user, lease_expires_at=now + lease_duration())
        == 1
    )


def _lease_holder(*, image_id: int) -> dict:
    return (
        Image.objects.filter(pk=image_id)
        .values("assignee_id", "assignee__username", "lease_expires_at", "version", "status")
        .first()
        or {}
    )


def _lease_for_write(*, image: Image, user: User, now: datetime) -> None:
    """Every write on an image renews the writer's lease; an image someone else holds is read-only."""
    if not _lease_take(image_id=image.pk, user=user, now=now):
        holder = _lease_holder(image_id=image.pk).get("assignee__username") or "someone else"
        raise Conflict(f"{holder} is reviewing this image; it is read-only for you until they finish.")


def _claim_next(*, project: Project, user: User, now: datetime) -> tuple[bool, int | None]:
    """(whether a free image was found, the id claimed). Found but not claimed: lost a race."""
    with transaction.atomic():
        for status in QUEUE_ORDER:
            candidates = (
                Image.objects.filter(project=project, status=status)
                .filter(_free_for(user, now))
                .order_by("id")
            )
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            image_id = candidates.values_list("pk", flat=True).first()
            if image_id is None:
                continue
            claimed = (
                Image.objects.filter(pk=image_id, status__in=QUEUE_ORDER)
                .filter(_free_for(user, now))
                .update(assignee=user, lease_expires_at=now + lease_duration())
            )
            return True, image_id if claimed else None
    return False, None


def image_lease_next(*, project: Project, user: User, now: datetime | None = None) -> int | None:
    """The id of the image this user should review next, leased to them; None when none is left.

    The image the user already holds (unexpired, not yet done) comes first, its lease renewed;
    else the first pre-labeled image, then the first new one, that nobody else holds.
    """
    now = now or timezone.now()
    held = (
        Image.objects.filter(project=project, assignee=user, lease_expires_at__gt=now, status__in=QUEUE_ORDER)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if held is not None and _lease_take(image_id=held, user=user, now=now):
        return held
    for _ in range(CLAIM_ATTEMPTS):
        found, image_id = _claim_next(project=project, user=user, now=now)
        if not found:
            return None
        if image_id is not None:
            return image_id
    logger.warning("Review queue of project %s: no claim after %d attempts", project.pk, CLAIM_ATTEMPTS)
    return None


def image_leases(*, project: Project, now: datetime | None = None, limit: int = 200) -> list[dict]:
    """Who holds what: the project's unexpired leases, by holder (one query)."""
    now = now or timezone.now()
    return list(
        Image.objects.filter(project=project, assignee__isnull=False, lease_expires_at__gt=now)
        .order_by("assignee__username", "lease_expires_at", "id")
        .values("id", "original_name", "status", "assignee__username", "lease_expires_at")[:limit]
    )


def images_held_by_others(*, project: Project, user: User, now: datetime | None = None) -> int:
    """How many images still to review are leased to other annotators now (one query)."""
    now = now or timezone.now()
    return (
        Image.objects.filter(
            project=project, status__in=QUEUE_ORDER, assignee__isnull=False, lease_expires_at__gt=now
        )
        .exclude(assignee=user)
        .count()
    )


# The review page ---------------------------------------------------------------------------------

ANNOTATION_FIELDS = (
    "id", "label_class_id", "x", "y", "w", "h", "mask", "polygons", "score", "phrase",
    "source", "state", "version", "original_box",
)  # fmt: skip


def annotation_json(row: dict) -> dict:
    """An annotation as the page and the JSON endpoints give it (a `.values(*ANNOTATION_FIELDS)` row)."""
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


def _annotation_rows(annotations: QuerySet[Annotation]) -> list[dict]:
    return [annotation_json(row) for row in annotations.order_by("id").values(*ANNOTATION_FIELDS)]


def annotation_current(*, annotation_id: int) -> dict | None:
    row = Annotation.objects.filter(pk=annotation_id).values(*ANNOTATION_FIELDS).first()
    return annotation_json(row) if row else None


def image_annotations(*, image: Image) -> list[dict]:
    """Every annotation of the image, whatever its state (one query)."""
    return _annotation_rows(Annotation.objects.filter(image=image))


def _review_urls(image: Image) -> dict:
    image_kw, project_kw = {"image_id": image.pk}, {"project_id": image.project_id}
    return {
        "annotations": reverse("image-annotations", kwargs=image_kw),
        "annotation": reverse("annotation-detail", kwargs={"annotation_id": 0}),
        "bulk": reverse("image-annotations-bulk", kwargs=image_kw),
        "segment": reverse("image-segment", kwargs=image_kw),
        "submit": reverse("image-submit", kwargs=image_kw),
        "skip": reverse("image-skip", kwargs=image_kw),
        "previous": reverse("image-previous", kwargs=image_kw),
        "threshold": reverse("project-threshold", kwargs=project_kw),
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
        "urls": _review_urls(image),
        "can_manage": can_manage,
        "lease_expires_at": lease_expires_at.isoformat() if lease_expires_at else None,
        # Seconds left by the server's clock: the page counts down from this, whatever its own clock says.
        "lease_seconds": (
            max(0, round((lease_expires_at - timezone.now()).total_seconds())) if lease_expires_at else None
        ),
        "held_by_other": held_by_other,
    }


def image_review_open(*, image: Image, user: User, can_manage: bool, now: datetime | None = None) -> dict:
    """Open an image for review: lease it to the user if nobody else holds it (else it opens
    read-only: `held_by_other`), queue the SAM embeddings of it and the next images, and give
    the page's data. A constant number of queries whatever the number of annotations."""
    now = now or timezone.now()
    if _lease_take(image_id=image.pk, user=user, now=now):
        lease_expires_at, held_by_other = now + lease_duration(), None
    else:
        holder = _lease_holder(image_id=image.pk)
        lease_expires_at = holder.get("lease_expires_at")
        held_by_other = holder.get("assignee__username") or "someone else"
    try:
        segmentation.embeddings_prefetch(image=image)
    except Exception:  # the page works without it: the first click just waits for the embedding
        logger.exception("Image %s: the embeddings could not be queued", image.pk)
    return review_data(
        image=image, can_manage=can_manage, lease_expires_at=lease_expires_at, held_by_other=held_by_other
    )


# Input checks ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _clean_version(version: Any) -> int:
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Invalid(f"version must be a positive integer (got {version!r:.40}).")
    return version


def _clean_state(state: Any) -> str:
    if state not in Annotation.State.values:
        raise Invalid(f"state must be one of {', '.join(Annotation.State.values)} (got {state!r:.40}).")
    return state


def _clean_class(class_id: Any, *, project_id: int) -> int:
    if not isinstance(class_id, int) or isinstance(class_id, bool):
        raise Invalid(f"class_id must be an integer (got {class_id!r:.40}).")
    if not LabelClass.objects.filter(pk=class_id, project_id=project_id).exists():
        raise Invalid(f"Class {class_id} is not a class of this project.")
    return class_id


def _clean_box(box: Any, *, image: Image) -> list[float]:
    if not isinstance(box, list | tuple) or len(box) != 4 or not all(_is_number(v) for v in box):
        raise Invalid("box must be [x, y, width, height]: four numbers, in image pixels.")
    box = [float(v) for v in box]
    errors = box_errors(tuple(box), width=image.width, height=image.height)
    if errors:
        raise Invalid(" ".join(errors))
    return box


def _clean_mask(mask: Any, *, image: Image) -> dict | None:
    if mask is None:
        return None
    if not isinstance(mask, dict) or set(mask) != {"size", "counts"}:
        raise Invalid('mask must be a COCO RLE: {"size": [height, width], "counts": ...}.')
    size, counts = mask["size"], mask["counts"]
    if size != [image.height, image.width]:
        raise Invalid(
            f"mask size must be [height, width] = [{image.height}, {image.width}] (got {size!r:.40})."
        )
    try:
        if isinstance(counts, str):
            runs = rle_string_runs(counts)
        elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            runs = counts
        else:
            raise ValueError("counts must be a COCO string or a list of integers")
        if any(run < 0 or run >= 2**32 for run in runs):
            raise ValueError("a run length is out of range")
        if sum(runs) != image.height * image.width:
            raise ValueError(f"the runs cover {sum(runs)} pixels, not {image.height} × {image.width}")
    except ValueError as exc:
        raise Invalid(f"mask is not a valid COCO RLE: {exc}.") from exc
    return {"size": [image.height, image.width], "counts": counts}


def _clean_polygons(polygons: Any, *, image: Image) -> list | None:
    """Parts → rings (outer first, then holes) → [x0, y0, x1, y1, ...], inside the image."""
    if polygons is None:
        return None
    message = "polygons must be a list of parts, each a list of rings [x0, y0, x1, y1, ...] (3+ points)."
    if not isinstance(polygons, list):
        raise Invalid(message)
    total = 0
    for part in polygons:
        if not isinstance(part, list) or not part:
            raise Invalid(message)
        for ring in part:
            if not isinstance(ring, list) or len(ring) < 6 or len(ring) % 2:
                raise Invalid(message)
            if not all(_is_number(v) for v in ring):
                raise Invalid(message)
            total += len(ring)
            if total > MAX_POLYGON_VALUES:
                raise Invalid(f"polygons have more than {MAX_POLYGON_VALUES} coordinates.")
            xs, ys = ring[0::2], ring[1::2]
            if min(xs) < 0 or min(ys) < 0 or max(xs) > image.width or max(ys) > image.height:
                raise Invalid(f"A polygon goes outside the {image.width} × {image.height} image.")
    return polygons


# Annotation writes -------------------------------------------------------------------------------


def annotation_create(
    *,
    image: Image,
    user: User,
    class_id: Any,
    box: Any,
    mask: Any = None,
    polygons: Any = None,
    now: datetime | None = None,
) -> dict:
    """A human-drawn annotation (a box, or a mask from click-to-segment), accepted at once."""
    now = now or timezone.now()
    class_id = _clean_class(class_id, project_id=image.project_id)
    x, y, w, h = _clean_box(box, image=image)
    mask = _clean_mask(mask, image=image)
    polygons = _clean_polygons(polygons, image=image)
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
    return annotation_json({name: getattr(annotation, name) for name in ANNOTATION_FIELDS})


def _stale(annotation_id: int) -> Stale:
    return Stale(STALE_MESSAGE, current=annotation_current(annotation_id=annotation_id))


def annotation_update(
    *,
    annotation: Annotation,
    user: User,
    version: Any,
    state: Any = UNSET,
    class_id: Any = UNSET,
    box: Any = UNSET,
    mask: Any = UNSET,
    polygons: Any = UNSET,
    now: datetime | None = None,
) -> dict:
    """Triage or edit an annotation made on `version`; the annotation as saved (version + 1).

    The first geometry change (box or mask) of a model proposal keeps the model's box and mask in
    original_box / original_mask, never overwritten later. Geometry edits leave the state alone.
    """
    now = now or timezone.now()
    image = annotation.image
    version = _clean_version(version)
    changes: dict[str, Any] = {}
    if state is not UNSET:
        changes["state"] = _clean_state(state)
    if class_id is not UNSET:
        changes["label_class_id"] = _clean_class(class_id, project_id=image.project_id)
    if box is not UNSET:
        changes.update(zip("xywh", _clean_box(box, image=image), strict=True))
    if mask is not UNSET:
        changes["mask"] = _clean_mask(mask, image=image)
    if polygons is not UNSET:
        changes["polygons"] = _clean_polygons(polygons, image=image)
    if not changes:
        raise Invalid("Nothing to change: give state, class_id, box, mask and/or polygons.")
    with transaction.atomic():
        _lease_for_write(image=image, user=user, now=now)
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
    *, annotation: Annotation, user: User, version: Any, now: datetime | None = None
) -> None:
    """Delete a drawn (human) or imported annotation: the undo of drawing it. Model proposals are
    rejected instead, so the quality figures keep them."""
    now = now or timezone.now()
    version = _clean_version(version)
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


def _clean_updates(updates: Any) -> list[StateUpdate]:
    if not isinstance(updates, list):
        raise Invalid('updates must be a list of {"id", "version", "state"}.')
    if len(updates) > MAX_BULK_UPDATES:
        raise Invalid(f"At most {MAX_BULK_UPDATES} updates at once (got {len(updates)}).")
    cleaned = []
    for update in updates:
        if not isinstance(update, dict) or set(update) != {"id", "version", "state"}:
            raise Invalid('Each update must be {"id", "version", "state"}, and nothing else.')
        if not isinstance(update["id"], int) or isinstance(update["id"], bool):
            raise Invalid(f"id must be an integer (got {update['id']!r:.40}).")
        version, state = _clean_version(update["version"]), _clean_state(update["state"])
        cleaned.append(StateUpdate(id=update["id"], version=version, state=state))
    if len({u.id for u in cleaned}) != len(cleaned):
        raise Invalid("An annotation appears twice in the updates.")
    return cleaned


def annotations_set_states(*, image: Image, user: User, updates: Any, now: datetime | None = None) -> dict:
    """Change the state of many annotations of one image at once ("accept all visible").

    Each update is conditional on its version: the stale ones are left alone and reported in
    `conflicts` (with `current`, how they are now); the others are saved and given back in
    `annotations`. Every id must be an annotation of this image.
    """
    now = now or timezone.now()
    wanted = _clean_updates(updates)
    if not wanted:
        return {"annotations": [], "conflicts": [], "current": []}
    ids = [u.id for u in wanted]
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
        for update in wanted:
            if versions[update.id] == update.version:
                groups[update.state, update.version].append(update.id)
        saved: set[int] = set()
        for (state, version), group in groups.items():
            for chunk in _chunks(group, 500):
                Annotation.objects.filter(image=image, pk__in=chunk, version=version).update(
                    state=state, version=F("version") + 1, updated_by=user, updated_at=now
                )
                saved.update(chunk)
    current = _annotation_rows(Annotation.objects.filter(pk__in=ids))
    conflicts = [i for i in ids if i not in saved]
    return {
        "annotations": [a for a in current if a["id"] in saved],
        "conflicts": conflicts,
        "current": [a for a in current if a["id"] not in saved],
    }


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Submit, skip, previous --------------------------------------------------------------------------


def _image_close(*, image: Image, user: User, status: str, version: Any, now: datetime | None) -> None:
    now = now or timezone.now()
    if version is not None:
        version = _clean_version(version)
    images = Image.objects.filter(pk=image.pk).filter(_free_for(user, now))
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
    holder = _lease_holder(image_id=image.pk)
    if not holder:
        raise Http404("No such image.")
    expires = holder["lease_expires_at"]
    if holder["assignee_id"] not in (None, user.pk) and expires is not None and expires > now:
        raise Conflict(f"{holder['assignee__username']} is reviewing this image; only they can finish it.")
    raise Stale(
        "This image was changed meanwhile (new proposals or another reviewer) — reload it.",
        current={"version": holder["version"], "status": holder["status"]},
    )


def image_submit(*, image: Image, user: User, version: Any = None, now: datetime | None = None) -> None:
    """The user is done with the image: status done, reviewed by them, lease released."""
    _image_close(image=image, user=user, status=Image.Status.DONE, version=version, now=now)


def image_skip(*, image: Image, user: User, version: Any = None, now: datetime | None = None) -> None:
    """The user leaves the image out: status skipped (recorded as theirs), lease released."""
    _image_close(image=image, user=user, status=Image.Status.SKIPPED, version=version, now=now)


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


def review_next_url(project_id: int) -> str:
    return reverse("review-next", kwargs={"project_id": project_id})


# Thresholds --------------------------------------------------------------------------------------


def threshold_save(*, project: Project, box_threshold: Any, class_id: Any = None) -> float | None:
    """Save the review threshold chosen with the slider: the project's, or one class's (None
    clears a class's own threshold: it follows the project's again). Managers only (the view
    checks). Returns the value stored."""
    if class_id is None:
        if not _is_number(box_threshold) or not 0.0 <= box_threshold <= 1.0:
            raise Invalid(f"box_threshold must be a number from 0 to 1 (got {box_threshold!r:.40}).")
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
    if not isinstance(class_id, int) or isinstance(class_id, bool):
        raise Invalid(f"class_id must be an integer (got {class_id!r:.40}).")
    if box_threshold is not None and (not _is_number(box_threshold) or not 0.0 <= box_threshold <= 1.0):
        raise Invalid(f"box_threshold must be a number from 0 to 1, or null (got {box_threshold!r:.40}).")
    value = None if box_threshold is None else float(box_threshold)
    if not LabelClass.objects.filter(pk=class_id, project=project).update(box_threshold=value):
        raise Invalid(f"Class {class_id} is not a class of this project.")
    return value
