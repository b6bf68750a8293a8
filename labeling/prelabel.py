"""Pre-labeling jobs (DESIGN.md, flow 2): start, dispatch, run a batch, cancel, and the image
embeddings that make click-to-segment instant. Celery tasks in inference/tasks.py call these.

Exactly-once per image, whatever the retries: each image of a job is a PrelabelJobItem, claimed
by a conditional UPDATE (pending → done | failed) in the same transaction that replaces the
image's proposals and bumps the job's counters with F(). A redelivered batch finds its items
claimed and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from PIL import Image as PILImage

from inference import registry
from inference.embeddings import EmbeddingCache
from inference.errors import InferenceError
from inference.pipeline import BatchImage, DetectParams, ImageResult, box_iou, prelabel_batch
from inference.prompts import ClassPrompt

from .models import Annotation, Image, JobStatus, PrelabelJob, PrelabelJobItem, Project

logger = logging.getLogger(__name__)

SCOPES = {"new": [Image.Status.NEW], "not_done": [Image.Status.NEW, Image.Status.PRELABELED]}
# A new proposal this close to an annotation already decided on (same class) is not proposed again.
DECIDED_IOU = 0.9


def model_config() -> registry.ModelConfig:
    return registry.ModelConfig(
        mode=settings.LABELGPT_MODELS,
        models_dir=settings.LABELGPT_MODELS_DIR,
        device=settings.LABELGPT_DEVICE,
        sam_checkpoints=dict(settings.LABELGPT_SAM_CHECKPOINTS),
        detector_dtype=settings.LABELGPT_DETECTOR_DTYPE,
    )


def embedding_cache() -> EmbeddingCache:
    folder = settings.LABELGPT_EMBEDDINGS_DIR or settings.MEDIA_ROOT / "embeddings"
    return EmbeddingCache(folder)


# Starting and stopping -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOptions:
    class_ids: Sequence[int] | None = None  # None: every class
    box_threshold: float | None = None  # None: the project's
    text_threshold: float | None = None
    scope: str = "new"  # "new" images only, or every image "not_done"


def _snapshot(project: Project, options: JobOptions) -> dict:
    classes = list(project.classes.all())
    if options.class_ids is not None:
        wanted = set(options.class_ids)
        unknown = wanted - {c.pk for c in classes}
        if unknown:
            raise ValidationError({"classes": f"Unknown class id(s) for this project: {sorted(unknown)}."})
        classes = [c for c in classes if c.pk in wanted]
    if not classes:
        raise ValidationError({"classes": "Choose at least one class to look for."})
    if options.scope not in SCOPES:
        raise ValidationError({"scope": f"Scope must be one of {', '.join(SCOPES)}."})
    box_threshold = project.box_threshold if options.box_threshold is None else options.box_threshold
    text_threshold = project.text_threshold if options.text_threshold is None else options.text_threshold
    for name, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValidationError({name: f"Must be between 0 and 1 (got {value})."})
    return {
        "detector": project.detector,
        "segmenter": project.segmenter,
        "segment": project.segment,
        "models": settings.LABELGPT_MODELS,
        "prompt_mode": project.prompt_mode,
        "box_threshold": box_threshold,
        "text_threshold": text_threshold,
        "keep_threshold": min(project.keep_threshold, box_threshold),
        "scope": options.scope,
        "batch_size": settings.LABELGPT_PRELABEL_BATCH_SIZE,
        "classes": [
            {
                "id": c.pk,
                "name": c.name,
                "prompt": c.prompt or c.name,
                "box_threshold": c.box_threshold,
                "max_instances": c.max_instances,
            }
            for c in classes
        ],
    }


def prelabel_job_start(*, project: Project, user, options: JobOptions | None = None) -> PrelabelJob:
    """Create a job over the project's images in scope and enqueue it once the transaction commits."""
    options = options or JobOptions()
    params = _snapshot(project, options)
    try:
        with transaction.atomic():
            job = PrelabelJob.objects.create(
                project=project, params=params, created_by=user if user and user.is_authenticated else None
            )
            image_ids = project.images.filter(status__in=SCOPES[options.scope]).order_by("id")
            items = (
                PrelabelJobItem(job=job, image_id=image_id)
                for image_id in image_ids.values_list("id", flat=True).iterator()
            )
            total = 0
            while chunk := [item for _, item in zip(range(2000), items, strict=False)]:
                PrelabelJobItem.objects.bulk_create(chunk)
                total += len(chunk)
            if total == 0:
                raise ValidationError({"scope": "There are no images to pre-label in this scope."})
            PrelabelJob.objects.filter(pk=job.pk).update(total=total)
            job.total = total
            transaction.on_commit(lambda: _enqueue_dispatch(job.pk))
    except IntegrityError as exc:
        if PrelabelJob.objects.filter(
            project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        ).exists():
            raise ValidationError(
                "A pre-label job is already running for this project; wait or cancel it."
            ) from exc
        raise
    return job


def _enqueue_dispatch(job_id: int) -> None:
    from inference.tasks import prelabel_job_dispatch

    try:
        prelabel_job_dispatch.delay(job_id)
    except Exception as exc:  # broker down: say so on the job instead of leaving it queued for ever
        logger.exception("Pre-label job %s could not be queued", job_id)
        _job_fail(job_id, f"The task queue could not be reached, so the job was not started: {exc}")


def prelabel_job_cancel(*, job: PrelabelJob) -> bool:
    """Stop a queued or running job; batches check at their start. False when it had ended."""
    return (
        PrelabelJob.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now()
        )
        == 1
    )


def _job_fail(job_id: int, message: str) -> None:
    PrelabelJob.objects.filter(pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.FAILED, error=message[:5000], finished_at=timezone.now()
    )


def _job_finish_if_complete(job_id: int) -> None:
    if PrelabelJobItem.objects.filter(job_id=job_id, status=PrelabelJobItem.Status.PENDING).exists():
        return
    job = PrelabelJob.objects.get(pk=job_id)
    if job.done == 0 and job.failed > 0:
        _job_fail(job_id, f"All {job.failed} image(s) failed; see the job's failures.")
        return
    PrelabelJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )


# Running ----------------------------------------------------------------------------------------


def prelabel_job_dispatch(*, job_id: int) -> int:
    """Claim a queued job and send its pending images to the gpu queue in batches.

    Safe to run again (a redelivered message): it re-sends the still-pending images, and a batch
    skips any image already claimed. Returns the number of batches sent.
    """
    from inference.tasks import gpu_prelabel_batch

    PrelabelJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    job = PrelabelJob.objects.filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        return 0
    size = max(1, int(job.params.get("batch_size") or settings.LABELGPT_PRELABEL_BATCH_SIZE))
    pending = job.items.filter(status=PrelabelJobItem.Status.PENDING).order_by("image_id")
    batch: list[int] = []
    sent = 0
    for image_id in pending.values_list("image_id", flat=True).iterator():
        batch.append(image_id)
        if len(batch) == size:
            gpu_prelabel_batch.delay(job_id, batch)
            batch, sent = [], sent + 1
    if batch:
        gpu_prelabel_batch.delay(job_id, batch)
        sent += 1
    if sent == 0:
        _job_finish_if_complete(job_id)
    return sent


def _prompts(params: dict) -> list[ClassPrompt]:
    return [
        ClassPrompt(
            name=c["name"],
            prompt=c["prompt"],
            box_threshold=c.get("box_threshold"),
            max_instances=c.get("max_instances"),
        )
        for c in params["classes"]
    ]


def open_image(image: Image) -> PILImage.Image:
    with image.file.open("rb") as handle, PILImage.open(handle) as im:
        return im.convert("RGB")


def prelabel_batch_run(*, job_id: int, image_ids: Sequence[int]) -> dict:
    """Pre-label some images of a job (on a gpu worker): detector on the batch, SAM on each
    image's boxes, results saved image by image. Returns counts for the log."""
    job = PrelabelJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        return {"skipped": "job not running"}
    items = list(
        PrelabelJobItem.objects.filter(job=job, image_id__in=image_ids, status=PrelabelJobItem.Status.PENDING)
        .select_related("image")
        .order_by("image_id")
    )
    if not items:
        _job_finish_if_complete(job_id)
        return {"skipped": "already done"}
    params = job.params
    config = model_config()
    try:
        detector = registry.get_detector(config, params["detector"])
        segmenter = registry.get_segmenter(config, params["segmenter"]) if params.get("segment") else None
    except InferenceError as exc:
        logger.error("Pre-label job %s: the models cannot be loaded: %s", job_id, exc)
        _job_fail(job_id, f"The models cannot be loaded: {exc}")
        return {"failed": "models"}

    ready: list[tuple[PrelabelJobItem, BatchImage]] = []
    for item in items:
        try:
            ready.append((item, BatchImage(image=open_image(item.image), sha256=item.image.sha256)))
        except FileNotFoundError:
            _item_failed(item, "The image file is missing from storage.")
        except (OSError, ValueError) as exc:
            _item_failed(item, f"The image file cannot be read: {exc}")
    if ready:
        class_ids = [c["id"] for c in params["classes"]]
        detect = DetectParams(
            box_threshold=params["box_threshold"],
            text_threshold=params["text_threshold"],
            keep_threshold=params["keep_threshold"],
            prompt_mode=params["prompt_mode"],
        )
        cache_name = registry.segmenter_cache_name(config, params["segmenter"])

        def save(index: int, result: ImageResult) -> None:
            item = ready[index][0]
            if result.error:
                _item_failed(item, result.error)
            else:
                _item_done(job, item, result, class_ids)

        try:
            prelabel_batch(
                [b for _, b in ready],
                _prompts(params),
                detect,
                detector=detector,
                segmenter=segmenter,
                cache=embedding_cache(),
                cache_name=cache_name,
                on_image=save,
            )
        except InferenceError as exc:
            # The detector refused the whole batch (e.g. a prompt too long for the model): a
            # configuration error, the same for every image.
            _job_fail(job_id, str(exc))
            return {"failed": "configuration"}
    _job_finish_if_complete(job_id)
    return {"images": len(items)}


def _item_failed(item: PrelabelJobItem, reason: str) -> None:
    with transaction.atomic():
        claimed = PrelabelJobItem.objects.filter(pk=item.pk, status=PrelabelJobItem.Status.PENDING).update(
            status=PrelabelJobItem.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
        )
        if claimed:
            PrelabelJob.objects.filter(pk=item.job_id).update(failed=F("failed") + 1)


def _item_done(job: PrelabelJob, item: PrelabelJobItem, result: ImageResult, class_ids: list[int]) -> None:
    image = item.image
    with transaction.atomic():
        decided = []
        for class_id, x, y, w, h, original_box in (
            Annotation.objects.filter(image=image)
            .exclude(
                source=Annotation.Source.MODEL, state=Annotation.State.PROPOSED, original_box__isnull=True
            )
            .values_list("label_class_id", "x", "y", "w", "h", "original_box")
        ):
            decided.append((class_id, x, y, w, h))
            # An edited proposal: the model's own box was decided on too (the reviewer moved it).
            if isinstance(original_box, list | tuple) and len(original_box) == 4:
                decided.append((class_id, *(float(v) for v in original_box)))
        rows = [
            Annotation(
                image=image,
                label_class_id=class_ids[p.class_index],
                x=p.box[0],
                y=p.box[1],
                w=p.box[2],
                h=p.box[3],
                mask=p.mask,
                polygons=p.polygons,
                score=min(max(p.score, 0.0), 1.0),
                phrase=p.phrase[:300],
                source=Annotation.Source.MODEL,
                state=Annotation.State.PROPOSED,
                job=job,
            )
            for p in result.proposals
            if _valid_box(p.box, image) and not _already_decided(class_ids[p.class_index], p.box, decided)
        ]
        claimed = PrelabelJobItem.objects.filter(pk=item.pk, status=PrelabelJobItem.Status.PENDING).update(
            status=PrelabelJobItem.Status.DONE,
            annotation_count=len(rows),
            duration_ms=round(result.seconds * 1000),
            finished_at=timezone.now(),
        )
        if not claimed:  # an earlier delivery of this batch saved it already
            return
        # Only untouched model proposals are replaced: accepted, rejected, edited (original_box
        # kept), human and imported annotations stay as they are.
        Annotation.objects.filter(
            image=image,
            source=Annotation.Source.MODEL,
            state=Annotation.State.PROPOSED,
            original_box__isnull=True,
        ).delete()
        Annotation.objects.bulk_create(rows)
        Image.objects.filter(pk=image.pk, status=Image.Status.NEW).update(
            status=Image.Status.PRELABELED, version=F("version") + 1
        )
        PrelabelJob.objects.filter(pk=job.pk).update(
            done=F("done") + 1, annotation_count=F("annotation_count") + len(rows)
        )


def _valid_box(box, image: Image) -> bool:
    x, y, w, h = box
    return (
        w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= image.width + 1e-6 and y + h <= image.height + 1e-6
    )


def _already_decided(class_id: int, box, decided: list[tuple]) -> bool:
    same_class = [row[1:] for row in decided if row[0] == class_id]
    return bool(same_class) and float(box_iou(box, same_class).max()) >= DECIDED_IOU
