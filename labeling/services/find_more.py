""" "Find more like this" (docs/architecture.md, "Flows" 4): the selected annotation's box is a
positive exemplar, the image's rejected proposals of its class are negative ones, and SAM 3
(`inference.protocols.ExemplarDetector`) returns the other instances on the image, which become
new proposals of that class, none duplicating an annotation already there.

SAM 3 is a whole detector (seconds on a CPU), so it never runs in a request: `find_more_start`
records a FindMoreRequest with the exemplars as they are when asked and sends `find_more_run`
to the "interactive" queue on commit; the worker claims it (queued → running, one conditional
UPDATE), runs the model and writes the proposals; the client polls the request until it has
ended (there is no Celery result backend: the row is the result).

Which SAM 3: a project whose detector is SAM 3 uses it; any other project (Grounding DINO) its
`exemplar_detector`, when a manager chose one (`labeling.model_choices.find_more_detector`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inference import registry
from inference.boxes import box_iou
from inference.errors import InferenceError
from inference.masks import mask_iou, stored_mask
from inference.pipeline import DetectParams, Proposal, proposals_from_detections
from inference.prompts import ClassPrompt
from inference.protocols import ExemplarDetector

from .. import model_choices, queues
from ..access import User
from ..models import Annotation, FindMoreRequest, Image, JobStatus
from ..selectors.review import images_free_for, lease_duration
from .prelabel import box_fits_image, image_open, model_config, proposal_annotation
from .review import Conflict, Invalid, ReviewError
from .segmentation import refine_target

logger = logging.getLogger(__name__)

# A found instance overlapping an annotation of its class already on the image (any state:
# proposed, accepted or rejected), the exemplar itself, or a better-scoring instance found in
# the same run, at this IoU or more is the same object and is not proposed. 0.5 is the usual
# "same object" line (COCO's AP50, the NMS IoU of DETR-like detectors): two boxes of one object
# drawn by different hands or models overlap well above it, while two neighbouring objects of a
# crowd (the case find-more is for) rarely reach it. Masks are compared when both sides have one
# (tighter than boxes for thin or diagonal objects), boxes otherwise.
DUPLICATE_IOU = 0.5
# A queued or running request older than this no longer blocks a new one on its image (a worker
# that died, a message lost); its row stays as it is.
ACTIVE_FOR = timedelta(minutes=10)
NOT_QUEUED = "The task queue could not be reached, so nothing was searched; try again in a moment."


class Unavailable(ReviewError):
    """Find more cannot run on this project as it is configured (no SAM 3 model)."""

    status = 409


# Asking ------------------------------------------------------------------------------------------


def find_more_start(
    *, image: Image, user: User, annotation_id: int, now: datetime | None = None
) -> FindMoreRequest:
    """Queue "find more like this" for the annotation `annotation_id` of `image`.

    Refuses (the API's answers): 404 when the user may not see the annotation; 400 when it is on
    another image; 403 naming whoever else holds the image's lease (only the lease holder edits
    it, as for re-segmenting); 409 when the project has no SAM 3 model (the reason says who can
    choose one) or a request is already running on the image. The asker's lease is taken or
    renewed, as every write does. The exemplars are read now: the annotation's box (positive)
    and the boxes of the image's rejected annotations of its class (negative: "not a <class>";
    a rejected proposal of another class says nothing about this one)."""
    now = now or timezone.now()
    annotation = refine_target(user=user, image=image, annotation_id=annotation_id)
    project = image.project
    name, reason = model_choices.find_more_detector(
        detector=project.detector, exemplar_detector=project.exemplar_detector
    )
    if name is None:
        raise Unavailable(reason)
    if annotation.w <= 0 or annotation.h <= 0:
        raise Invalid(f"Annotation {annotation.pk} has no box to find more like it.")
    negatives = list(
        Annotation.objects.filter(
            image=image,
            label_class_id=annotation.label_class_id,
            state=Annotation.State.REJECTED,
        )
        .exclude(pk=annotation.pk)
        .order_by("id")
        .values_list("x", "y", "w", "h")
    )
    with transaction.atomic():
        taken = (
            Image.objects.filter(pk=image.pk)
            .filter(images_free_for(user=user, now=now))
            .update(assignee=user, lease_expires_at=now + lease_duration())
        )
        if not taken:
            raise Conflict("Someone else is reviewing this image; it is read-only for you until they finish.")
        running = (
            FindMoreRequest.objects.select_for_update()
            .filter(
                image=image, status__in=[JobStatus.QUEUED, JobStatus.RUNNING], created_at__gt=now - ACTIVE_FOR
            )
            .first()
        )
        if running is not None:
            raise Conflict(
                "Find more is already searching this image; wait for its answer.", request=running.pk
            )
        request = FindMoreRequest.objects.create(
            image=image,
            annotation=annotation,
            label_class_id=annotation.label_class_id,
            detector=name,
            positive_boxes=[list(annotation.box)],
            negative_boxes=[list(box) for box in negatives],
            user=user,
        )

        def failed(message: str, pk: int = request.pk) -> None:
            FindMoreRequest.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
                status=JobStatus.FAILED, error=message, finished_at=timezone.now()
            )

        queues.task_send_on_commit(
            task=queues.FIND_MORE_RUN, args=[request.pk], failed=lambda _: failed(NOT_QUEUED)
        )
    return request


# Running (a worker of the interactive queue) -----------------------------------------------------


@dataclass(frozen=True)
class Existing:
    box: tuple[float, float, float, float]
    mask: np.ndarray | None


def find_more_run(*, request_id: int) -> bool:
    """Run a queued request to its end: SAM 3 with its exemplars, the new proposals written
    (deduplicated) and the request done with its counts; failed with the reason when anything
    goes wrong. Idempotent: only a queued request is run (False otherwise)."""
    now = timezone.now()
    if not FindMoreRequest.objects.filter(pk=request_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now
    ):
        return False
    request = FindMoreRequest.objects.select_related("image__project", "label_class").get(pk=request_id)
    try:
        _run(request)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, InferenceError | ReviewError) else f"{type(exc).__name__}: {exc}"
        logger.exception("Find more %s failed", request_id)
        FindMoreRequest.objects.filter(pk=request_id, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, error=reason[:2000], finished_at=timezone.now()
        )
    return True


def _run(request: FindMoreRequest) -> None:
    image, project, label_class = request.image, request.image.project, request.label_class
    detector = registry.get_detector(model_config(), request.detector)
    if not isinstance(detector, ExemplarDetector):
        raise Invalid(f'The detector "{request.detector}" takes no example boxes: find more needs SAM 3.')
    text = ClassPrompt(name=label_class.name, prompt=label_class.prompt).text
    found = detector.find_similar(
        image_open(image=image),
        text=text,
        positive_boxes=request.positive_boxes,
        negative_boxes=request.negative_boxes,
        keep_threshold=project.keep_threshold,
    )
    params = DetectParams(
        box_threshold=project.box_threshold,
        text_threshold=project.text_threshold,
        keep_threshold=project.keep_threshold,
    )
    proposals = [p for p in proposals_from_detections(found, params) if box_fits_image(p.box, image)]
    with transaction.atomic():
        # The image's row first (the writers' lock order: an image before its project's counts
        # row); its version moves, so a page or a peek holding the old annotations knows.
        Image.objects.filter(pk=image.pk).update(version=F("version") + 1)
        existing = [
            Existing(box=(x, y, w, h), mask=_decoded(rle, polygons, height=image.height, width=image.width))
            for x, y, w, h, rle, polygons in Annotation.objects.filter(
                image=image, label_class=label_class
            ).values_list("x", "y", "w", "h", "mask", "polygons")
        ]
        existing += [Existing(box=tuple(box), mask=None) for box in request.positive_boxes]
        kept = dedup_proposals(proposals, existing, height=image.height, width=image.width)
        rows = Annotation.objects.bulk_create(
            [proposal_annotation(image=image, label_class_id=label_class.pk, proposal=p) for p in kept]
        )
        FindMoreRequest.objects.filter(pk=request.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED,
            found_count=len(found),
            created_count=len(rows),
            annotation_ids=[row.pk for row in rows],
            finished_at=timezone.now(),
        )


def _decoded(rle, polygons, *, height: int, width: int) -> np.ndarray | None:
    try:
        mask = stored_mask(rle, polygons, height, width)
    except (ValueError, TypeError, KeyError, IndexError):  # a malformed stored mask: its box counts
        return None
    return mask if mask is not None and mask.any() else None


def dedup_proposals(
    proposals: Sequence[Proposal], existing: Sequence[Existing], *, height: int, width: int
) -> list[Proposal]:
    """The proposals, best first, that duplicate nothing: an IoU below DUPLICATE_IOU with every
    existing annotation (and exemplar) and every proposal kept before them; mask IoU when both
    have a mask, box IoU otherwise."""
    kept: list[Proposal] = []
    others = list(existing)
    for proposal in sorted(proposals, key=lambda p: -p.score):
        mask = _decoded(proposal.mask, None, height=height, width=width)
        if any(_overlap(proposal.box, mask, other) >= DUPLICATE_IOU for other in others):
            continue
        kept.append(proposal)
        others.append(Existing(box=proposal.box, mask=mask))
    return kept


def _overlap(box, mask: np.ndarray | None, other: Existing) -> float:
    if mask is not None and other.mask is not None:
        return mask_iou(mask, other.mask)
    return float(box_iou(box, [other.box])[0])
