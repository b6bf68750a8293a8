"""Pre-labeling jobs (docs/architecture.md, "Flows" 2): start, dispatch, run a batch, cancel, and the image
embeddings that make click-to-segment instant. The Celery tasks in labeling/tasks.py call these;
the reads (progress, live workers) are in labeling.selectors.prelabel.

Exactly-once per image, whatever the retries: each image of a job is a PrelabelJobItem, claimed
by a conditional UPDATE (pending → done | failed) in the same transaction that replaces the
image's proposals and bumps the job's counters with F(). A redelivered batch finds its items
claimed and changes nothing.

The database, not the broker, says what is left to do: a batch is a set of items holding a token
and a lease (claimed_at, worker, heartbeat_at). The sweeper (`prelabel_jobs_sweep`, Celery beat)
hands out again the images of a batch whose worker died or whose message was lost, at most
LABELGPT_BATCH_MAX_ATTEMPTS times per image, then fails the image with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from PIL import Image as PILImage

from inference import registry
from inference.embeddings import EmbeddingCache
from inference.errors import InferenceError
from inference.pipeline import BatchImage, DetectParams, ImageResult, Proposal, box_iou, prelabel_batch
from inference.prompts import ClassPrompt

from .. import model_choices, queues
from ..models import Annotation, Image, JobStage, JobStatus, PrelabelJob, PrelabelJobItem, Project
from ..selectors.prelabel import workers_alive

logger = logging.getLogger(__name__)

SCOPES = {"new": [Image.Status.NEW], "not_done": [Image.Status.NEW, Image.Status.PRELABELED]}
# A new proposal this close to an annotation already decided on (same class) is not proposed again.
DECIDED_IOU = 0.9


def model_config() -> registry.ModelConfig:
    """The models' settings, with the admin's lists: only the names listed ever load, each from
    what the list maps it to (labeling.model_choices)."""
    segmenters = model_choices.segmenters()
    return registry.ModelConfig(
        mode=settings.LABELGPT_MODELS,
        models_dir=settings.LABELGPT_MODELS_DIR,
        device=settings.LABELGPT_DEVICE,
        sam_checkpoints={name: checkpoint for name, checkpoint in segmenters.items() if checkpoint},
        detector_dtype=settings.LABELGPT_DETECTOR_DTYPE,
        click_backend=settings.LABELGPT_CLICK_BACKEND,
        detectors=model_choices.detectors(),
        segmenters=frozenset(segmenters),
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
    detector: str | None = None  # None: the project's; else a name of the admin's list


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
    detector = project.detector if options.detector is None else options.detector
    unlisted = model_choices.model_errors(detector=detector, segmenter=project.segmenter)
    if not project.segment:
        unlisted.pop("segmenter", None)
    if unlisted:  # a name set before the lists existed, or one the admin has removed since
        raise ValidationError(unlisted)
    box_threshold = project.box_threshold if options.box_threshold is None else options.box_threshold
    text_threshold = project.text_threshold if options.text_threshold is None else options.text_threshold
    for name, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValidationError({name: f"Must be between 0 and 1 (got {value})."})
    return {
        "detector": detector,
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


def prelabel_job_start(
    *, project: Project, user, options: JobOptions | None = None, enqueue: bool = True
) -> PrelabelJob:
    """Create a job over the project's images in scope and enqueue it once the transaction commits.

    `enqueue=False`: nothing is sent to a broker; the caller runs it (`prelabel_job_run_inline`).
    """
    options = options or JobOptions()
    params = _snapshot(project, options)
    if not enqueue:
        params["inline"] = True
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
            if enqueue:
                queues.task_send_on_commit(
                    task=queues.PRELABEL_JOB_DISPATCH,
                    args=[job.pk],
                    failed=lambda _: _job_fail(job.pk, NOT_QUEUED),
                )
    except IntegrityError as exc:
        if PrelabelJob.objects.filter(
            project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        ).exists():
            raise ValidationError(
                "A pre-label job is already running for this project; wait or cancel it."
            ) from exc
        raise
    return job


NOT_QUEUED = "The task queue could not be reached, so the job was not started; start it again later."
ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING]


def prelabel_job_cancel(*, job: PrelabelJob) -> bool:
    """Stop a queued or running job. A running batch checks the job before each image and stops;
    no proposal is saved once this has committed. False when the job had already ended."""
    return _job_end(job.pk, status=JobStatus.CANCELLED)


def _job_fail(job_id: int, message: str) -> None:
    _job_end(job_id, status=JobStatus.FAILED, error=message[:5000])


def _job_end(job_id: int, *, status: str, **fields) -> bool:
    """End an active job ("stopping"), and "stopped" at once when no batch is running any more,
    in one transaction: nobody sees the job ended but not yet settled. False when it had ended."""
    with transaction.atomic():
        ended = PrelabelJob.objects.filter(pk=job_id, status__in=ACTIVE).update(
            status=status, finished_at=timezone.now(), stage=JobStage.STOPPING, **fields
        )
        if ended:
            _job_settle_stop(job_id)
    return ended == 1


def _job_finish_if_complete(job_id: int) -> None:
    if PrelabelJobItem.objects.filter(job_id=job_id, status=PrelabelJobItem.Status.PENDING).exists():
        return
    job = PrelabelJob.objects.get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return
    if job.done == 0 and job.failed > 0:
        _job_fail(job_id, f"All {job.failed} image(s) failed; see the job's failures.")
        return
    now = timezone.now()
    PrelabelJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, finished_at=now, stopped_at=now, stage=JobStage.STOPPED
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.LABELGPT_BATCH_LEASE_SECONDS)


def _job_settle_stop(job_id: int, *, now: datetime | None = None) -> bool:
    """An ended job whose batches have all stopped records when (stage "stopped", `stopped_at`).
    A batch is still running while it holds a claim with a fresh heartbeat."""
    now = now or timezone.now()
    claims = PrelabelJobItem.objects.filter(
        job_id=job_id, status=PrelabelJobItem.Status.PENDING, claimed_at__isnull=False
    )
    if claims.filter(heartbeat_at__gte=now - _lease()).exists():
        return False
    # A batch that died: it stopped at its last heartbeat.
    last = claims.aggregate(last=Max("heartbeat_at"))["last"]
    return (
        PrelabelJob.objects.filter(pk=job_id, stopped_at__isnull=True)
        .exclude(status__in=ACTIVE)
        .update(stopped_at=min(last, now) if last else now, stage=JobStage.STOPPED)
        == 1
    )


# Workers -----------------------------------------------------------------------------------------


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Dispatching -------------------------------------------------------------------------------------


def prelabel_job_dispatch(*, job_id: int) -> int:
    """Claim a queued job and send its first batches to the gpu queue.

    At most LABELGPT_PRELABEL_BATCHES_IN_FLIGHT batches of a job are out at a time; each batch
    sends the next ones as it ends, and the sweeper tops up what got lost. Safe to run again (a
    redelivered message): it sends only what is missing. Returns the number of batches sent.
    """
    PrelabelJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    job = PrelabelJob.objects.filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING or job.params.get("inline"):
        return 0
    sent = _dispatch_more(job_id)
    if sent == 0:
        _job_finish_if_complete(job_id)
    return sent


def _assign_batches(job_id: int, *, room: int | None = None) -> list[tuple[str, list[int]]]:
    """Give unassigned pending images of a running job to new batches (a token each, one more
    attempt each), up to the number of batches allowed out at once. Images tried before go one
    per batch, so an image that kills its worker takes no other image down with it."""
    now = timezone.now()
    with transaction.atomic():
        job = PrelabelJob.objects.select_for_update().filter(pk=job_id, status=JobStatus.RUNNING).first()
        if job is None:
            return []
        pending = job.items.filter(status=PrelabelJobItem.Status.PENDING)
        if room is None:
            out = pending.exclude(batch_token="").values("batch_token").distinct().count()
            room = settings.LABELGPT_PRELABEL_BATCHES_IN_FLIGHT - out
        if room <= 0:
            return []
        size = max(1, int(job.params.get("batch_size") or settings.LABELGPT_PRELABEL_BATCH_SIZE))
        free = list(
            pending.filter(batch_token="")
            .order_by("-attempts", "image_id")
            .values_list("pk", "image_id", "attempts")[: room * size]
        )
        batches = []
        while free and len(batches) < room:
            chunk = free[:1] if free[0][2] > 0 else free[:size]
            free = free[len(chunk) :]
            token = uuid.uuid4().hex
            PrelabelJobItem.objects.filter(pk__in=[pk for pk, _, _ in chunk]).update(
                batch_token=token,
                dispatched_at=now,
                attempts=F("attempts") + 1,
                claimed_at=None,
                heartbeat_at=None,
                worker="",
            )
            batches.append((token, [image_id for _, image_id, _ in chunk]))
    return batches


def _dispatch_more(job_id: int) -> int:
    batches = _assign_batches(job_id)
    for token, image_ids in batches:
        try:
            queues.task_send(task=queues.PRELABEL_BATCH_RUN, args=[job_id, image_ids, token])
        except queues.QueueUnavailable:  # the sweeper sends it again once its lease is over
            logger.exception("Pre-label job %s: a batch could not be queued", job_id)
    return len(batches)


# Sweeping ----------------------------------------------------------------------------------------


def prelabel_jobs_sweep(*, now: datetime | None = None) -> dict:
    """The periodic check (Celery beat) that keeps the database, not the broker, in charge.

    - a queued job whose dispatch message got lost is dispatched;
    - in a running job, a batch whose lease ran out hands its pending images out again: claimed
      but silent for LABELGPT_BATCH_LEASE_SECONDS (its worker died), or not taken for as long
      though a gpu worker, up for a lease, was idle or took a later batch (its message was lost).
      An image given out LABELGPT_BATCH_MAX_ATTEMPTS times fails with the reason instead;
    - the batches allowed out are topped up, and a job with nothing pending is finished;
    - an ended job whose last batch has stopped records when.
    """
    now = now or timezone.now()
    lease = _lease()
    stats: Counter = Counter()
    for job_id in PrelabelJob.objects.filter(status=JobStatus.QUEUED, created_at__lt=now - lease).values_list(
        "pk", flat=True
    ):
        if not PrelabelJob.objects.filter(pk=job_id, params__inline=True).exists():
            stats["dispatched"] += 1
            prelabel_job_dispatch(job_id=job_id)
    # A message not taken counts as lost only once a gpu worker has been up for a whole lease
    # (a worker just started may not have reached it yet).
    gpu_alive = any(w.started_at <= now - lease for w in workers_alive(queue=queues.GPU, now=now))
    for job in list(PrelabelJob.objects.filter(status=JobStatus.RUNNING)):
        if job.params.get("inline"):
            _sweep_inline(job, now=now)
            continue
        for key, value in _expire_leases(job, now=now, gpu_alive=gpu_alive).items():
            stats[key] += value
        stats["batches_sent"] += _dispatch_more(job.pk)
        _job_finish_if_complete(job.pk)
    ended = PrelabelJob.objects.filter(stopped_at__isnull=True).exclude(status__in=ACTIVE)
    for job_id in ended.values_list("pk", flat=True):
        stats["stopped"] += _job_settle_stop(job_id, now=now)
    return dict(stats)


def _expire_leases(job: PrelabelJob, *, now: datetime, gpu_alive: bool) -> Counter:
    cut = now - _lease()
    out = job.items.filter(status=PrelabelJobItem.Status.PENDING).exclude(batch_token="")
    dead = Q(claimed_at__isnull=False, heartbeat_at__lt=cut)
    lost_tokens = []
    if gpu_alive:  # without a worker nothing would take them: they wait, attempts unchanged
        unclaimed = out.filter(claimed_at__isnull=True, dispatched_at__lt=cut)
        for token, dispatched_at in unclaimed.values_list("batch_token", "dispatched_at").distinct():
            running = PrelabelJobItem.objects.filter(job__status=JobStatus.RUNNING)
            busy = running.filter(status=PrelabelJobItem.Status.PENDING, heartbeat_at__gte=cut).exists()
            # Queues are first in, first out: a later batch taken means this one is gone.
            overtaken = running.filter(dispatched_at__gt=dispatched_at, claimed_at__isnull=False).exists()
            if not busy or overtaken:
                lost_tokens.append(token)
    expired = out.filter(dead | Q(batch_token__in=lost_tokens, claimed_at__isnull=True))
    stats: Counter = Counter()
    limit = settings.LABELGPT_BATCH_MAX_ATTEMPTS
    for item in expired.filter(attempts__gte=limit):
        if item.claimed_at is not None:
            reason = (
                f"The worker died (or stopped answering for {settings.LABELGPT_BATCH_LEASE_SECONDS} s) "
                f"{item.attempts} time(s) while pre-labeling this image (last: {item.worker}); "
                "it is not tried again."
            )
        else:
            reason = (
                f"Its batch was lost {item.attempts} time(s): no worker took it from the gpu queue "
                "although one was running; it is not tried again."
            )
        stats["failed"] += _item_failed(item, reason)
    stats["released"] += expired.filter(attempts__lt=limit).update(
        batch_token="", claimed_at=None, heartbeat_at=None, worker=""
    )
    if stats["released"] or stats["failed"]:
        logger.warning("Pre-label job %s: leases expired: %s", job.pk, dict(stats))
    return stats


def _sweep_inline(job: PrelabelJob, *, now: datetime) -> None:
    """A job run by `prelabel --inline` has no worker to hand it to: once its command has been
    silent for a lease, the job fails saying so."""
    cut = now - _lease()
    last = job.items.aggregate(last=Max("heartbeat_at"))["last"] or job.started_at or job.created_at
    if last < cut:
        _job_fail(
            job.pk, "The `manage.py prelabel --inline` command running this job stopped before the end."
        )


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


def image_open(*, image: Image) -> PILImage.Image:
    """The stored image file as RGB (FileNotFoundError, OSError or ValueError when unreadable)."""
    with image.file.open("rb") as handle, PILImage.open(handle) as im:
        return im.convert("RGB")


def prelabel_batch_run(
    *,
    job_id: int,
    image_ids: Sequence[int],
    token: str | None = None,
    worker: str = "",
    dispatch_next: bool = True,
    progress: Callable[[], None] | None = None,
) -> dict:
    """Pre-label the images of one batch (on a gpu worker): claim them, detector on the batch,
    SAM on each image's boxes, results saved image by image. Returns counts for the log.

    The claim is a conditional UPDATE on the batch's token: a redelivered message (acks_late,
    Redis' visibility timeout) finds its images claimed or finished and does nothing. The batch
    heartbeats (a thread, and before each image) and stops before its next image once the job is
    no longer running or its lease was lost. Whatever it raises,
    its unfinished images fail with the reason and it ends cleanly.
    """
    job = PrelabelJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        return {"skipped": "job not running"}
    now = timezone.now()
    worker = worker or worker_name()
    claim = PrelabelJobItem.objects.filter(
        job=job, image_id__in=list(image_ids), status=PrelabelJobItem.Status.PENDING, claimed_at__isnull=True
    )
    if token:
        claimed = claim.filter(batch_token=token).update(claimed_at=now, heartbeat_at=now, worker=worker)
    else:  # a message sent before batches had tokens: take what nobody has
        token = uuid.uuid4().hex
        claimed = claim.filter(batch_token="").update(
            batch_token=token, attempts=F("attempts") + 1, dispatched_at=now,
            claimed_at=now, heartbeat_at=now, worker=worker,
        )  # fmt: skip
    if not claimed:
        _job_finish_if_complete(job_id)
        return {"skipped": "already taken"}
    PrelabelJob.objects.filter(pk=job_id, stage=JobStage.QUEUED).update(stage=JobStage.LOADING)
    try:
        with _beating(token):
            result = _run_claimed(job, token, progress)
    except Exception as exc:  # a bug, the database, CUDA: fail the images, not the worker
        logger.exception("Pre-label job %s: batch %s failed", job_id, token)
        if isinstance(exc, DatabaseError) and not connection.in_atomic_block:
            connection.close()  # the next query opens a fresh connection
        reason = f"The batch failed: {type(exc).__name__}: {exc}"
        try:
            for item in PrelabelJobItem.objects.filter(
                batch_token=token, status=PrelabelJobItem.Status.PENDING
            ):
                _item_failed(item, reason)
        except Exception:  # the sweeper hands them out again once its lease ends
            logger.exception("Pre-label job %s: could not record the failure of batch %s", job_id, token)
        result = {"failed": type(exc).__name__}
    try:
        # What this batch did not finish (the job was cancelled) is no longer claimed.
        PrelabelJobItem.objects.filter(batch_token=token, status=PrelabelJobItem.Status.PENDING).update(
            batch_token="", claimed_at=None, heartbeat_at=None, worker=""
        )
        _job_finish_if_complete(job_id)
        _job_settle_stop(job_id)
        if dispatch_next:
            _dispatch_more(job_id)
    except Exception:
        logger.exception("Pre-label job %s: could not close batch %s", job_id, token)
    return result


@contextmanager
def _beating(token: str):
    """Heartbeats from a thread while the batch runs, a few per lease, so that one long step
    (loading the models, the detector on the batch, a large image) does not look like a dead
    worker. A killed process takes the thread with it: its lease then runs out."""
    stop = threading.Event()
    interval = max(settings.LABELGPT_BATCH_LEASE_SECONDS / 3, 0.5)

    def run() -> None:
        try:
            while not stop.wait(interval):
                try:
                    _heartbeat(token)
                except DatabaseError:
                    logger.exception("Batch %s: heartbeat failed", token)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name=f"batch-heartbeat-{token[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _heartbeat(token: str) -> int:
    """The batch is alive; the number of its images still pending (0: its lease was lost)."""
    return PrelabelJobItem.objects.filter(batch_token=token, status=PrelabelJobItem.Status.PENDING).update(
        heartbeat_at=timezone.now()
    )


def _run_claimed(job: PrelabelJob, token: str, progress: Callable[[], None] | None) -> dict:
    job_id = job.pk
    items = list(
        PrelabelJobItem.objects.filter(batch_token=token, status=PrelabelJobItem.Status.PENDING)
        .select_related("image")
        .order_by("image_id")
    )
    params = job.params
    config = model_config()
    try:
        detector = registry.get_detector(config, params["detector"])
        segmenter = registry.get_segmenter(config, params["segmenter"]) if params.get("segment") else None
    except InferenceError as exc:
        logger.error("Pre-label job %s: the models cannot be loaded: %s", job_id, exc)
        _job_fail(job_id, f"The models cannot be loaded: {exc}")
        return {"failed": "models"}
    _heartbeat(token)
    PrelabelJob.objects.filter(pk=job_id, stage__in=[JobStage.QUEUED, JobStage.LOADING]).update(
        stage=JobStage.RUNNING
    )

    ready: list[tuple[PrelabelJobItem, BatchImage]] = []
    for item in items:
        try:
            ready.append((item, BatchImage(image=image_open(image=item.image), sha256=item.image.sha256)))
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
            if progress is not None:
                progress()

        def should_stop() -> bool:
            # Before each image: a sign of life, and is the job still running? (two small queries)
            if _heartbeat(token) == 0:
                return True  # the lease was lost: the images went to another batch
            return not PrelabelJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists()

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
                should_stop=should_stop,
            )
        except InferenceError as exc:
            # The detector refused the whole batch (e.g. a prompt too long for the model): a
            # configuration error, the same for every image.
            _job_fail(job_id, str(exc))
            return {"failed": "configuration"}
    return {"images": len(items)}


def prelabel_job_run_inline(*, job_id: int, progress: Callable[[], None] | None = None) -> PrelabelJob:
    """Run a job created with `enqueue=False` in this process, batch by batch (no broker)."""
    PrelabelJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    worker = f"inline {worker_name()}"
    while batches := _assign_batches(job_id, room=1):
        token, image_ids = batches[0]
        before = PrelabelJob.objects.values_list("done", "failed").get(pk=job_id)
        prelabel_batch_run(
            job_id=job_id,
            image_ids=image_ids,
            token=token,
            worker=worker,
            dispatch_next=False,
            progress=progress,
        )
        if PrelabelJob.objects.values_list("done", "failed").get(pk=job_id) == before:
            # Nothing finished (it cannot happen unless the job stopped): never loop for ever.
            break
    _job_finish_if_complete(job_id)
    _job_settle_stop(job_id)
    return PrelabelJob.objects.get(pk=job_id)


def _job_running_locked(job_id: int) -> bool:
    """Inside a transaction: lock the job's row and say whether it still runs. A cancel waits for
    the lock, so a save either commits before the cancel or sees it and writes nothing."""
    return bool(
        list(
            PrelabelJob.objects.select_for_update()
            .filter(pk=job_id, status=JobStatus.RUNNING)
            .values_list("pk", flat=True)
        )
    )


def _item_failed(item: PrelabelJobItem, reason: str) -> bool:
    with transaction.atomic():
        if not _job_running_locked(item.job_id):
            return False
        claimed = PrelabelJobItem.objects.filter(pk=item.pk, status=PrelabelJobItem.Status.PENDING).update(
            status=PrelabelJobItem.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
        )
        if claimed:
            PrelabelJob.objects.filter(pk=item.job_id).update(failed=F("failed") + 1)
        return bool(claimed)


def _item_done(job: PrelabelJob, item: PrelabelJobItem, result: ImageResult, class_ids: list[int]) -> None:
    image = item.image
    with transaction.atomic():
        if not _job_running_locked(job.pk):  # cancelled (or failed) meanwhile: write nothing
            return
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
            proposal_annotation(image=image, label_class_id=class_ids[p.class_index], proposal=p, job=job)
            for p in result.proposals
            if box_fits_image(p.box, image) and not _already_decided(class_ids[p.class_index], p.box, decided)
        ]
        claimed = PrelabelJobItem.objects.filter(pk=item.pk, status=PrelabelJobItem.Status.PENDING).update(
            status=PrelabelJobItem.Status.DONE,
            annotation_count=len(rows),
            duration_ms=round(result.seconds * 1000),
            finished_at=timezone.now(),
        )
        if not claimed:  # an earlier delivery of this batch saved it already
            return
        # The image's row before the annotations: every transaction takes an image's row before
        # its project's counts row (the annotations' triggers lock it), never after (no deadlock
        # with a reviewer's write on this image).
        Image.objects.filter(pk=image.pk, status=Image.Status.NEW).update(
            status=Image.Status.PRELABELED, version=F("version") + 1
        )
        # Only untouched model proposals are replaced: accepted, rejected, edited (original_box
        # kept), human and imported annotations stay as they are.
        Annotation.objects.filter(
            image=image,
            source=Annotation.Source.MODEL,
            state=Annotation.State.PROPOSED,
            original_box__isnull=True,
        ).delete()
        Annotation.objects.bulk_create(rows)
        PrelabelJob.objects.filter(pk=job.pk).update(
            done=F("done") + 1, annotation_count=F("annotation_count") + len(rows)
        )


def proposal_annotation(
    *, image: Image, label_class_id: int, proposal: Proposal, job: PrelabelJob | None = None
) -> Annotation:
    """A model proposal (source model, state proposed), unsaved, from the pipeline's `proposal`:
    its box, mask and polygons, the score clamped to [0, 1], the phrase cut to the field's size.
    Pre-label batches and "find more like this" (services.find_more) both store them so."""
    return Annotation(
        image=image,
        label_class_id=label_class_id,
        x=proposal.box[0],
        y=proposal.box[1],
        w=proposal.box[2],
        h=proposal.box[3],
        mask=proposal.mask,
        polygons=proposal.polygons,
        score=min(max(proposal.score, 0.0), 1.0),
        phrase=proposal.phrase[: Annotation._meta.get_field("phrase").max_length],
        source=Annotation.Source.MODEL,
        state=Annotation.State.PROPOSED,
        job=job,
    )


def box_fits_image(box, image: Image) -> bool:
    """Whether a model's box (x, y, w, h) has an area and lies inside the image: what pre-label
    batches and find-more store."""
    x, y, w, h = box
    return (
        w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= image.width + 1e-6 and y + h <= image.height + 1e-6
    )


def _already_decided(class_id: int, box, decided: list[tuple]) -> bool:
    same_class = [row[1:] for row in decided if row[0] == class_id]
    return bool(same_class) and float(box_iou(box, same_class).max()) >= DECIDED_IOU
