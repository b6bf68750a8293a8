"""The prompt lab (docs/architecture.md, "Flows" 7): measure candidate prompts for one class on a
seeded sample of images already reviewed as done, before a whole project is run with them.

- `prompt_lab_start` checks the request (managers, the class, 1..MAX_CANDIDATES prompts, a
  detector from the admin's list, done images to sample), draws the sample (`sample_ids`: the
  same seed gives the same images) and sends `prompt_lab_run` to the gpu queue on commit. The
  class's prompt with the project's detector is always the first candidate: the baseline.
- `prompt_lab_run` (the worker) runs each candidate's prompt, alone, through the pre-label
  pipeline (`inference.pipeline.prelabel_batch`: the same detector, masks and keep threshold as
  a pre-label job) and scores its detections against the human-final annotations (the ACCEPTED
  annotations of the class on those done images) with `labeling.evaluation.evaluate`: precision,
  recall and F1 at the class's threshold, the F1-best threshold, COCO AP for boxes and masks.
- The detections of (detector source, models mode, masks, prompt, thresholds, image sha256,
  lowest score kept) are stored in `DetectionCache`: a re-run of the same prompt on the same
  images runs no model. The detector's image features are not cached (they are a prompt's
  forward pass; the SAM embeddings are, as for pre-labeling).
- `prompt_lab_candidate_use` makes a candidate's prompt the class's (and its F1-best threshold
  the class's box threshold, when asked).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inference import registry
from inference.errors import InferenceError
from inference.pipeline import BatchImage, DetectParams, ImageResult, prelabel_batch
from inference.prompts import ClassPrompt, normalize_prompt

from .. import model_choices, queues
from ..access import can_manage, user_role
from ..evaluation import EvalImage, Guess, Truth, evaluate
from ..models import (
    Annotation,
    DetectionCache,
    Image,
    JobStatus,
    LabelClass,
    Project,
    PromptLabCandidate,
    PromptLabRun,
)
from .prelabel import embedding_cache, image_open, model_config

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE = 50
MAX_SAMPLE = 500
MAX_CANDIDATES = 5  # besides the baseline
PROMPT_MAX = 300
IOU = 0.5  # a detection matches a truth at this box (or mask, for the mask AP) IoU or more
CACHE_VERSION = 1  # bump when what a cache entry holds changes
ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING]
NOT_QUEUED = "The task queue could not be reached, so the run was not started; start it again later."


class PromptLabError(Exception):
    """A candidate cannot be measured (an image unreadable, the detector's refusal): its reason."""


# Starting ---------------------------------------------------------------------------------------


def sample_ids(image_ids: Sequence[int], *, size: int, seed: int) -> list[int]:
    """`size` of `image_ids` (all of them when fewer), drawn with `random.Random(seed)` from the
    ids in ascending order: the same seed and images give the same sample."""
    ordered = sorted(image_ids)
    return random.Random(seed).sample(ordered, min(size, len(ordered)))


def _clean_prompts(prompts: Sequence[str]) -> list[str]:
    cleaned = [" ".join(str(p).split()) for p in prompts]
    cleaned = [p for p in cleaned if p]
    if not cleaned:
        raise ValidationError({"prompts": "Write at least one candidate prompt (one per line)."})
    for prompt in cleaned:
        if len(prompt) > PROMPT_MAX:
            raise ValidationError(
                {"prompts": f"A prompt may have {PROMPT_MAX} characters at most: {prompt[:40]}…"}
            )
        try:
            normalize_prompt(prompt)
        except ValueError as exc:
            raise ValidationError({"prompts": f"The prompt {prompt!r} has no words."}) from exc
    return cleaned


def _snapshot(project: Project, label_class: LabelClass, detectors: set[str]) -> dict:
    """What the run measures with, fixed at the start: thresholds, masks, models."""
    listed = model_choices.detectors()
    if project.segment:
        config = model_config()
        if any(not config.detector_segments(d) for d in detectors) and project.segmenter not in (
            model_choices.segmenters()
        ):
            raise ValidationError(
                {"segmenter": f"The project's segmenter {project.segmenter!r} is not offered by this server."}
            )
    unlisted = sorted(d for d in detectors if d not in listed)
    if unlisted:
        raise ValidationError(
            {"detector": f"Choose one of the detectors this server offers: {', '.join(listed)}."}
        )
    threshold = label_class.effective_box_threshold
    return {
        "class_name": label_class.name,
        "class_prompt": label_class.prompt or label_class.name,
        "threshold": threshold,
        "text_threshold": project.text_threshold,
        "keep_threshold": min(project.keep_threshold, threshold),
        "max_instances": label_class.max_instances,
        "prompt_mode": project.prompt_mode,
        "segment": project.segment,
        "segmenter": project.segmenter,
        "models": settings.LABELGPT_MODELS,
        "iou": IOU,
        "batch_size": settings.LABELGPT_PRELABEL_BATCH_SIZE,
    }


def prompt_lab_start(
    *,
    project: Project,
    user,
    label_class_id: int,
    prompts: Sequence[str],
    detector: str | None = None,
    sample_size: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> PromptLabRun:
    """Create a run (its candidates: the baseline, then each prompt with `detector`, the
    project's when None) and send it to the gpu queue once the transaction commits.
    PermissionDenied for a non-manager, ValidationError (by field) for a bad request."""
    if not can_manage(user_role(user, project)):
        raise PermissionDenied("Only the project's managers can run the prompt lab.")
    label_class = LabelClass.objects.filter(pk=label_class_id, project=project).first()
    if label_class is None:
        raise ValidationError({"label_class": f"Class {label_class_id} is not a class of this project."})
    if not 1 <= sample_size <= MAX_SAMPLE:
        raise ValidationError(
            {"sample_size": f"The sample holds 1 to {MAX_SAMPLE} images (got {sample_size})."}
        )
    if not 0 <= seed < 2**63:
        raise ValidationError({"seed": "The seed is a whole number from 0."})
    detector = detector or project.detector
    baseline = (label_class.prompt or label_class.name, project.detector)
    candidates = [baseline]
    for prompt in _clean_prompts(prompts):
        key = (normalize_prompt(prompt), detector)
        if key not in {(normalize_prompt(p), d) for p, d in candidates}:  # a repeat is measured once
            candidates.append((prompt, detector))
    if len(candidates) - 1 > MAX_CANDIDATES:
        raise ValidationError({"prompts": f"Try {MAX_CANDIDATES} prompts at most per run."})
    if len(candidates) == 1:
        raise ValidationError(
            {
                "prompts": "Every prompt given is the class's own prompt with the project's detector: "
                "the baseline, measured anyway."
            }
        )
    params = _snapshot(project, label_class, {d for _, d in candidates})
    done = list(project.images.filter(status=Image.Status.DONE).values_list("id", flat=True))
    if not done:
        raise ValidationError(
            {
                "sample": "No image of this project has been reviewed as done yet: the prompt lab "
                "measures prompts against reviewed images. Review some images first."
            }
        )
    with transaction.atomic():
        run = PromptLabRun.objects.create(
            project=project,
            label_class=label_class,
            created_by=user if user is not None and user.is_authenticated else None,
            sample_size=sample_size,
            seed=seed,
            image_ids=sample_ids(done, size=sample_size, seed=seed),
            params=params,
        )
        PromptLabCandidate.objects.bulk_create(
            PromptLabCandidate(run=run, position=i, prompt=p, detector=d, is_baseline=i == 0)
            for i, (p, d) in enumerate(candidates)
        )
        queues.task_send_on_commit(
            task=queues.PROMPT_LAB_RUN,
            args=[run.pk],
            failed=lambda reason: _run_end(run.pk, JobStatus.FAILED, error=reason),
        )
    return run


def prompt_lab_run_cancel(*, run: PromptLabRun) -> bool:
    """Stop a queued or running run: the worker stops before its next batch of images and
    writes no more figures. False when it had already ended."""
    return _run_end(run.pk, JobStatus.CANCELLED)


def _run_end(run_id: int, status: str, **fields) -> bool:
    with transaction.atomic():
        ended = PromptLabRun.objects.filter(pk=run_id, status__in=ACTIVE).update(
            status=status, finished_at=timezone.now(), **fields
        )
        if ended:  # what was not measured yet will not be
            cancelled = status == JobStatus.CANCELLED
            PromptLabCandidate.objects.filter(run_id=run_id, status__in=ACTIVE).update(
                status=JobStatus.CANCELLED if cancelled else JobStatus.FAILED,
                error="" if cancelled else "Not measured: the run failed first.",
            )
    return ended == 1


def _running(run_id: int) -> bool:
    """Whether the run still runs (not cancelled or failed meanwhile), recording a sign of life:
    one UPDATE, asked before each candidate, batch and image."""
    return (
        PromptLabRun.objects.filter(pk=run_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
        == 1
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.LABELGPT_BATCH_LEASE_SECONDS)


# Running (the gpu worker) ------------------------------------------------------------------------


def cache_key(*, params: dict, source: str, masks: str, prompt: str, sha256: str) -> str:
    """The detection cache's key: sha256 of everything that makes a prompt's detections on an
    image (the detector's source, not its name: two names for one model share entries)."""
    parts = {
        "v": CACHE_VERSION,
        "models": params["models"],
        "source": source,
        "masks": masks,
        "prompt": normalize_prompt(prompt),
        "text_threshold": params["text_threshold"],
        "keep_threshold": params["keep_threshold"],
        "max_instances": params.get("max_instances"),
        "prompt_mode": params.get("prompt_mode", "joint"),
        "sha256": sha256,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class _Measured:
    proposals: dict[int, list[dict]]  # image id → [{box, score, mask}]
    seconds: float  # model time over the sample (from the cache: as measured when computed)
    cached: int


def prompt_lab_run(*, run_id: int) -> bool:
    """Run a queued run (the Celery task calls this): each candidate in turn, its figures saved
    as it ends. False when there is nothing to do (idempotent): the run is not queued, or it runs
    on a worker that is alive. A run whose worker died (no sign of life for
    LABELGPT_BATCH_LEASE_SECONDS: the message comes back, acks_late) is taken over: the
    candidates measured stay, the others are measured (what the dead worker had finished of
    them comes from the detection cache). A candidate the models refuse fails with the reason
    and the others go on; anything else fails the run with its reason."""
    started = time.perf_counter()
    now = timezone.now()
    queued = PromptLabRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if not queued:
        silent = Q(heartbeat_at__lt=now - _lease()) | Q(heartbeat_at__isnull=True)
        if not PromptLabRun.objects.filter(silent, pk=run_id, status=JobStatus.RUNNING).update(
            heartbeat_at=now
        ):
            return False
        logger.warning("Prompt lab run %s: its worker went silent; this one takes it over", run_id)
    run = PromptLabRun.objects.select_related("project", "label_class").get(pk=run_id)
    try:
        _measure_all(run)
    except Exception as exc:  # a bug, the database: the run fails with the reason, the worker lives
        logger.exception("Prompt lab run %s failed", run_id)
        _run_end(run_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000])
        return True
    finished = timezone.now()
    PromptLabRun.objects.filter(pk=run_id, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED,
        finished_at=finished,
        # Taken over from a dead worker: the whole run's time, not this worker's share.
        seconds=time.perf_counter() - started if queued else (finished - run.started_at).total_seconds(),
    )
    return True


def _measure_all(run: PromptLabRun) -> None:
    found = Image.objects.filter(pk__in=run.image_ids, project_id=run.project_id).in_bulk()
    images = [found[i] for i in run.image_ids if i in found]  # deleted since the start: left out
    if not images:
        raise PromptLabError("The sampled images have all been deleted since the run started.")
    truths = [
        Truth(image_id=image_id, box=(x, y, w, h), mask=mask)
        for image_id, x, y, w, h, mask in Annotation.objects.filter(
            image_id__in=[i.pk for i in images],
            label_class_id=run.label_class_id,
            state=Annotation.State.ACCEPTED,
        )
        .order_by("id")
        .values_list("image_id", "x", "y", "w", "h", "mask")
    ]
    eval_images = [EvalImage(id=i.pk, width=i.width, height=i.height) for i in images]
    # A run taken over from a dead worker measures again what that worker left running.
    for candidate in run.candidates.filter(status__in=ACTIVE).order_by("position"):
        if not _running(run.pk):
            return
        PromptLabCandidate.objects.filter(pk=candidate.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING
        )
        try:
            measured = _detections(run, candidate, images)
        except (InferenceError, PromptLabError) as exc:
            PromptLabCandidate.objects.filter(pk=candidate.pk, status=JobStatus.RUNNING).update(
                status=JobStatus.FAILED, error=str(exc)[:2000]
            )
            continue
        if measured is None:  # cancelled meanwhile
            return
        guesses = [
            Guess(image_id=image_id, box=tuple(p["box"]), score=p["score"], mask=p.get("mask"))
            for image_id, found_here in measured.proposals.items()
            for p in found_here
        ]
        scores = evaluate(
            eval_images, truths, guesses, threshold=run.params["threshold"], iou=run.params["iou"]
        )
        PromptLabCandidate.objects.filter(pk=candidate.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED,
            scores=scores.as_dict(),
            seconds_per_image=measured.seconds / len(images),
            cached_images=measured.cached,
        )


def _masks_setting(config: registry.ModelConfig, params: dict, detector: str) -> str:
    """Where a candidate's masks come from: the detector itself (SAM 3), the project's segmenter,
    or none (segmentation off)."""
    if config.detector_segments(detector):
        return "own"
    if params["segment"]:
        return f"segmenter:{registry.segmenter_cache_name(config, params['segmenter'])}"
    return "none"


def _detections(run: PromptLabRun, candidate: PromptLabCandidate, images: list[Image]) -> _Measured | None:
    """The candidate's detections on every image: from the cache, the rest from the models
    (stored in the cache batch by batch). None when the run stopped meanwhile."""
    params = run.params
    config = model_config()
    source = config.detector_source(candidate.detector)
    masks = _masks_setting(config, params, candidate.detector)
    keys = {
        i.pk: cache_key(params=params, source=source, masks=masks, prompt=candidate.prompt, sha256=i.sha256)
        for i in images
    }
    hits = {e.key: e for e in DetectionCache.objects.filter(key__in=list(keys.values()))}
    proposals: dict[int, list[dict]] = {}
    seconds = 0.0
    for image in images:
        entry = hits.get(keys[image.pk])
        if entry is not None:
            proposals[image.pk] = entry.proposals
            seconds += entry.seconds
    cached = len(proposals)
    missing = [i for i in images if i.pk not in proposals]
    if missing:
        computed = _compute(run, candidate, missing, keys, config=config, masks=masks)
        if computed is None:
            return None
        for image_id, (found, spent) in computed.items():
            proposals[image_id] = found
            seconds += spent
    return _Measured(proposals={i.pk: proposals[i.pk] for i in images}, seconds=seconds, cached=cached)


def _open(image: Image) -> BatchImage:
    """One image, decoded for one batch (not kept: a sample of 500 large photos would not fit in
    memory, and decoding costs little beside the models)."""
    try:
        return BatchImage(image=image_open(image=image), sha256=image.sha256)
    except FileNotFoundError as exc:
        raise PromptLabError(f"The file of image {image.original_name!r} is missing from storage.") from exc
    except (OSError, ValueError) as exc:
        raise PromptLabError(f"The file of image {image.original_name!r} cannot be read: {exc}") from exc


def _compute(
    run: PromptLabRun,
    candidate: PromptLabCandidate,
    images: list[Image],
    keys: dict[int, str],
    *,
    config: registry.ModelConfig,
    masks: str,
) -> dict[int, tuple[list[dict], float]] | None:
    params = run.params
    detector = registry.get_detector(config, candidate.detector)
    segmenter = (
        registry.get_segmenter(config, params["segmenter"]) if masks.startswith("segmenter:") else None
    )
    prompt = ClassPrompt(
        name=params["class_name"],
        prompt=candidate.prompt,
        box_threshold=params["threshold"],
        max_instances=params.get("max_instances"),
    )
    detect = DetectParams(
        box_threshold=params["threshold"],
        text_threshold=params["text_threshold"],
        keep_threshold=params["keep_threshold"],
        prompt_mode=params["prompt_mode"],
    )
    cache_name = registry.segmenter_cache_name(config, params["segmenter"]) if segmenter is not None else ""
    size = max(1, int(params.get("batch_size") or 1))
    out: dict[int, tuple[list[dict], float]] = {}
    for start in range(0, len(images), size):
        if not _running(run.pk):
            return None
        batch = images[start : start + size]
        items = [_open(i) for i in batch]
        results: list[ImageResult] = prelabel_batch(
            items,
            [prompt],
            detect,
            detector=detector,
            segmenter=segmenter,
            cache=embedding_cache(),
            cache_name=cache_name,
            should_stop=lambda: not _running(run.pk),  # before the detector and each image
        )
        if len(results) < len(batch):  # stopped (cancelled) part way
            return None
        entries = []
        for image, result in zip(batch, results, strict=True):
            if result.error:
                raise PromptLabError(f"Image {image.original_name!r}: {result.error}")
            found = [
                {
                    "box": [float(v) for v in p.box],
                    "score": min(max(float(p.score), 0.0), 1.0),
                    "mask": p.mask,
                }
                for p in result.proposals
            ]
            out[image.pk] = (found, result.seconds)
            entries.append(
                DetectionCache(
                    key=keys[image.pk],
                    image_sha256=image.sha256,
                    prompt=candidate.prompt[:300],
                    detector=config.detector_source(candidate.detector)[:300],
                    proposals=found,
                    seconds=result.seconds,
                )
            )
        DetectionCache.objects.bulk_create(entries, ignore_conflicts=True)
    return out


# Using a candidate ------------------------------------------------------------------------------


def prompt_lab_candidate_use(*, candidate: PromptLabCandidate, set_threshold: bool = False) -> LabelClass:
    """Make the candidate's prompt its class's prompt and, with `set_threshold`, its F1-best
    threshold the class's box threshold (managers; the caller checks). ValidationError when the
    candidate has no figures (not measured, or nothing found to pick a threshold from)."""
    if candidate.status != JobStatus.SUCCEEDED:
        raise ValidationError("Only a measured candidate can be used: this one has no figures.")
    with transaction.atomic():
        label_class = (
            LabelClass.objects.select_for_update()
            .select_related("project")
            .get(pk=candidate.run.label_class_id)
        )
        label_class.prompt = candidate.prompt
        fields = ["prompt"]
        if set_threshold:
            best = (candidate.scores or {}).get("best_threshold")
            if best is None:
                raise ValidationError(
                    {"set_threshold": "This candidate found nothing, so it has no F1-best threshold to use."}
                )
            label_class.box_threshold = float(best)
            fields.append("box_threshold")
        label_class.full_clean()
        label_class.save(update_fields=fields)
    return label_class
