"""Click-to-segment: SAM image embeddings computed ahead of time (on a worker of the
"interactive" queue) and the light mask decoder run on them inside a request
(docs/architecture.md, "Flows" 4).

An embedding that cannot be made leaves a failure record next to where its .npz would go (the
embedding folder is shared by the web and the workers in every deployment, unlike Django's
default in-process cache): `<model>/model.error.json` when the segmenter cannot load, and
`<model>/<sha[:2]>/<sha>.error.json` when one image cannot be embedded. While a record is fresh
the segment endpoint answers the reason (503 / 422) instead of "preparing", and nothing is
queued again for it; it expires after EMBEDDING_FAILURE_TTL seconds, and a click sent with
`retry` clears it and queues the embedding again at once.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from PIL import Image as PILImage

from inference import registry
from inference.embeddings import EmbeddingCache, safe_model_name
from inference.errors import InferenceError
from inference.masks import encode_mask, mask_to_rle, stored_mask
from labeling.selectors.review import image_lease_holder
from labeling.services.prelabel import embedding_cache, image_open, model_config

from .. import queues
from ..access import annotation_for_user
from ..models import Annotation, Image

logger = logging.getLogger(__name__)

QUEUED_TTL = 120  # seconds an embedding counts as queued (not queued again meanwhile)
EMBEDDING_FAILURE_TTL = 600  # seconds a failed embedding is answered as failed without a new try


def _queued_key(cache_name: str, sha256: str) -> str:
    return f"embedding-queued:{cache_name}:{sha256}"


# Failure records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingFailure:
    kind: str  # "model": the segmenter cannot load; "image": the file cannot be read; "error": anything else
    reason: str
    at: float  # time.time() when it failed


def _model_failure_path(store: EmbeddingCache, cache_name: str) -> Path:
    return store.folder / safe_model_name(cache_name) / "model.error.json"


def _image_failure_path(store: EmbeddingCache, sha256: str, cache_name: str) -> Path:
    return store.path(sha256, cache_name).with_suffix(".error.json")


def _write_failure(path: Path, kind: str, reason: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"kind": kind, "reason": reason[:2000], "at": time.time()}, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_failure(path: Path) -> EmbeddingFailure | None:
    """The record at `path` while it is fresh; None when absent, expired (then removed) or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        failure = EmbeddingFailure(kind=str(data["kind"]), reason=str(data["reason"]), at=float(data["at"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if time.time() - failure.at > EMBEDDING_FAILURE_TTL:
        path.unlink(missing_ok=True)
        return None
    return failure


def embedding_failure(*, store: EmbeddingCache, sha256: str, cache_name: str) -> EmbeddingFailure | None:
    """Why the embedding of this image (or any with this segmenter) could not be made lately."""
    return _read_failure(_model_failure_path(store, cache_name)) or _read_failure(
        _image_failure_path(store, sha256, cache_name)
    )


def embedding_failure_clear(*, image: Image) -> None:
    """Forget the failures of this image's embedding (and of its segmenter) and that it was
    queued: the next prefetch queues it again."""
    cache_name = registry.segmenter_cache_name(model_config(), image.project.segmenter)
    store = embedding_cache()
    _model_failure_path(store, cache_name).unlink(missing_ok=True)
    _image_failure_path(store, image.sha256, cache_name).unlink(missing_ok=True)
    django_cache.delete(_queued_key(cache_name, image.sha256))


# Computing embeddings ----------------------------------------------------------------------------


def embeddings_prefetch(*, image: Image, ahead: int | None = None) -> list[int]:
    """Queue the SAM embedding of this image and of the next few in the project on the
    "interactive" queue, where missing, not already queued and not failed lately. Returns the
    ids queued. Raises queues.QueueUnavailable when the broker cannot be reached."""
    ahead = settings.LABELGPT_PREFETCH_AHEAD if ahead is None else ahead
    project = image.project
    config = model_config()
    cache_name = registry.segmenter_cache_name(config, project.segmenter)
    store = embedding_cache()
    if _read_failure(_model_failure_path(store, cache_name)) is not None:
        return []  # the segmenter does not load: queuing more would only fail again
    upcoming = list(
        Image.objects.filter(project=project, pk__gt=image.pk)
        .exclude(status__in=[Image.Status.DONE, Image.Status.SKIPPED])
        .order_by("pk")
        .values_list("pk", "sha256")[:ahead]
    )
    wanted = [
        pk for pk, sha in [(image.pk, image.sha256), *upcoming]
        if not store.has(sha, cache_name)
        and _read_failure(_image_failure_path(store, sha, cache_name)) is None
        and django_cache.add(_queued_key(cache_name, sha), 1, QUEUED_TTL)
    ]  # fmt: skip
    if wanted:
        try:
            queues.task_send(task=queues.EMBEDDINGS_COMPUTE, args=[wanted])
        except queues.QueueUnavailable:
            # Not queued after all: the next click or page asks again once the broker is back.
            shas = dict(upcoming)
            django_cache.delete_many(
                [_queued_key(cache_name, image.sha256 if pk == image.pk else shas[pk]) for pk in wanted]
            )
            raise
    return wanted


def embeddings_compute(*, image_ids: Iterable[int]) -> int:
    """Compute and cache missing SAM embeddings (on a worker of the interactive queue), in the
    order given: the first image (the one an annotator is waiting for) alone, then the others in
    one batch through the image encoder. Every failure is recorded with its reason for the
    segment endpoint to answer; one image's failure does not stop the others. Returns how many
    were made."""
    config = model_config()
    store = embedding_cache()
    ids = list(dict.fromkeys(image_ids))
    rows = {image.pk: image for image in Image.objects.select_related("project").filter(pk__in=ids)}
    broken: set[str] = set()  # segmenters that did not load in this call: tried once only
    pending: list[tuple[Image, str, object, PILImage.Image]] = []
    for image in (rows[pk] for pk in ids if pk in rows):
        try:
            cache_name = registry.segmenter_cache_name(config, image.project.segmenter)
        except InferenceError as exc:  # an unknown segmenter name: the web answers this itself
            logger.warning("Image %s: no embedding (%s)", image.pk, exc)
            continue
        if store.has(image.sha256, cache_name) or cache_name in broken:
            continue
        try:
            segmenter = registry.get_segmenter(config, image.project.segmenter)
        except Exception as exc:  # whatever stops the model from loading is reported
            broken.add(cache_name)
            reason = str(exc) if isinstance(exc, InferenceError) else f"{type(exc).__name__}: {exc}"
            _write_failure(_model_failure_path(store, cache_name), "model", reason)
            logger.error("The segmenter %s cannot load, no embedding is made: %s", cache_name, reason)
            continue
        _model_failure_path(store, cache_name).unlink(missing_ok=True)
        try:
            pil = image_open(image=image)
        except Exception as exc:  # a missing, truncated or refused file
            _write_failure(
                _image_failure_path(store, image.sha256, cache_name), "image", f"{type(exc).__name__}: {exc}"
            )
            logger.warning("Image %s cannot be read for its embedding: %s", image.pk, exc)
            continue
        pending.append((image, cache_name, segmenter, pil))
    made = _embed_and_store(store, pending[:1])
    for segmenter in {id(entry[2]): entry[2] for entry in pending[1:]}.values():
        made += _embed_and_store(store, [entry for entry in pending[1:] if entry[2] is segmenter])
    return made


def _embed_and_store(store: EmbeddingCache, entries: list) -> int:
    """Embed images of one segmenter in one batch and cache them; when the batch fails, one by
    one, so that each failure is recorded for its own image."""
    if not entries:
        return 0
    segmenter = entries[0][2]
    try:
        embeddings = segmenter.embed_batch([pil for *_, pil in entries])
    except Exception as exc:  # out of memory, a device error...: said, not hidden
        if len(entries) > 1:
            return sum(_embed_and_store(store, [entry]) for entry in entries)
        image, cache_name, _, _ = entries[0]
        _write_failure(
            _image_failure_path(store, image.sha256, cache_name), "error", f"{type(exc).__name__}: {exc}"
        )
        logger.exception("Image %s: the embedding failed", image.pk)
        return 0
    for (image, cache_name, _, _), embedding in zip(entries, embeddings, strict=True):
        store.put(image.sha256, cache_name, embedding)
        _image_failure_path(store, image.sha256, cache_name).unlink(missing_ok=True)
    return len(entries)


_recent: OrderedDict[tuple[str, str, str], object] = OrderedDict()
_recent_lock = threading.Lock()
RECENT_EMBEDDINGS = 8  # an annotator clicks many times on one image: keep it decoded in memory


def _recent_embedding(sha256: str, cache_name: str):
    """The image's cached embedding, from memory when it was used lately (saves reading and
    decompressing ~2 MB per click), else from the cache folder; None when not computed yet."""
    store = embedding_cache()
    key = (str(store.folder), sha256, cache_name)
    with _recent_lock:
        if key in _recent:
            _recent.move_to_end(key)
            return _recent[key]
    embedding = store.get(sha256, cache_name)
    if embedding is not None:
        with _recent_lock:
            _recent[key] = embedding
            while len(_recent) > RECENT_EMBEDDINGS:
                _recent.popitem(last=False)
    return embedding


# Clicks ------------------------------------------------------------------------------------------


class SegmentUnavailable(Exception):
    """The click cannot be answered with a mask, for a reason the user is told (status, body)."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body.get("error", ""))
        self.status, self.body = status, body


def _checkpoint_hint(segmenter_name: str, reason: str) -> str:
    """What to set, when the reason does not say it already."""
    variable = f"LABELGPT_SAM_CHECKPOINT_{(segmenter_name or '').upper()}"
    if settings.LABELGPT_MODELS == "tiny" or segmenter_name not in registry.segmenter_names():
        return ""
    if variable in reason:
        return ""
    return (
        f" Set {variable} to a local {segmenter_name} checkpoint file on the web servers and the "
        f"workers, then press Try again."
    )


def _failure_answer(failure: EmbeddingFailure, segmenter_name: str) -> SegmentUnavailable:
    if failure.kind == "model":
        return SegmentUnavailable(
            503,
            {
                "status": "unavailable",
                "error": f"Click-to-segment is not available: the segmenter does not load on the workers: "
                f"{failure.reason}{_checkpoint_hint(segmenter_name, failure.reason)}",
            },
        )
    if failure.kind == "image":
        return SegmentUnavailable(
            422, {"status": "failed", "error": f"This image cannot be read to segment it: {failure.reason}"}
        )
    return SegmentUnavailable(
        503,
        {"status": "failed", "error": f"The image embedding failed on the worker: {failure.reason}"},
    )


def refine_target(*, user, image: Image, annotation_id: int | None) -> Annotation | None:
    """The annotation a click refines: 404 when the user may not see it, ValidationError (400)
    when it belongs to another image, PermissionDenied (403) while someone else holds the image's
    lease (only the lease holder edits its annotations)."""
    if annotation_id is None:
        return None
    annotation, _ = annotation_for_user(user, annotation_id)
    if annotation.image_id != image.pk:
        raise ValidationError(f"Annotation {annotation_id} is not on this image: refine it on its own image.")
    holder = image_lease_holder(image_id=image.pk)
    expires = holder.get("lease_expires_at")
    if holder.get("assignee_id") not in (None, user.pk) and expires is not None and expires > timezone.now():
        name = holder.get("assignee__username") or "someone else"
        raise PermissionDenied(
            f"{name} is reviewing this image: only they may refine its annotations until they finish."
        )
    return annotation


def _annotation_mask(annotation: Annotation, image: Image) -> np.ndarray | None:
    """The annotation's mask at the image's size (from its RLE, else its polygons), or None."""
    try:
        mask = stored_mask(annotation.mask, annotation.polygons, image.height, image.width)
    except (ValueError, TypeError, KeyError, IndexError):  # a malformed stored mask: start from its box
        logger.warning("Annotation %s: its mask cannot be decoded to refine it", annotation.pk)
        return None
    return mask if mask is not None and mask.any() else None


# The previous click's low-resolution logits per (user, image, object): fed back to SAM as the
# mask prompt of the next click on the same object. Kept in Django's cache (a few minutes) rather
# than sent through the browser; a miss (expired, another web process) only starts from scratch.
LOGITS_TTL = 600


def _logits_key(user, image: Image, token: str) -> str:
    return f"segment-logits:{user.pk}:{image.pk}:{token}"


def _logits_get(key: str) -> np.ndarray | None:
    value = django_cache.get(key)
    try:
        shape, raw = value
        return np.frombuffer(raw, dtype=np.float16).reshape(shape).astype(np.float32)
    except (TypeError, ValueError):
        return None


def _logits_put(key: str, logits: np.ndarray) -> None:
    array = np.ascontiguousarray(logits, dtype=np.float16)
    django_cache.set(key, (tuple(array.shape), array.tobytes()), LOGITS_TTL)


def segment_click(
    *,
    image: Image,
    points: Sequence[Sequence[float]],
    labels: Sequence[int],
    box: Sequence[float] | None,
    user=None,
    refine: Annotation | None = None,
    object_token: str | None = None,
    retry: bool = False,
) -> dict | None:
    """A mask from clicks and/or a box on the image's cached embedding (SAM's prompt encoder and
    mask decoder only: the web never loads the image encoder), or None when the embedding is not
    cached yet (it is then queued, with the next images').

    With `user` and `object_token`, the previous click's mask on the same object is the mask
    prompt of this one. `refine` (an annotation of this image) gives the box prompt (unless
    `box` is given) and, for its first click, the mask prompt from its mask.

    Raises SegmentUnavailable when the embedding failed lately (its reason), InferenceError when
    the segmenter cannot load here, queues.QueueUnavailable when the embedding cannot be queued.
    `retry` forgets a failure and queues the embedding again."""
    config = model_config()
    segmenter_name = image.project.segmenter
    cache_name = registry.segmenter_cache_name(config, segmenter_name)
    # Decoder only, from a local checkpoint: ModelLoadError (with what to set) when there is none.
    decoder = registry.get_click_segmenter(config, segmenter_name)
    if retry:
        embedding_failure_clear(image=image)
    embedding = _recent_embedding(image.sha256, cache_name)
    if embedding is None:
        failure = embedding_failure(store=embedding_cache(), sha256=image.sha256, cache_name=cache_name)
        if failure is not None:
            raise _failure_answer(failure, segmenter_name)
        embeddings_prefetch(image=image)
        return None
    key = _logits_key(user, image, object_token) if user is not None and object_token else None
    mask_input = _logits_get(key) if key else None
    if refine is not None:
        if box is None:
            box = refine.box
        if mask_input is None:
            mask = _annotation_mask(refine, image)
            if mask is not None:
                mask_input = decoder.mask_input_from_mask(embedding, mask)
    prediction = decoder.mask_from_prompts(
        embedding, points=points, labels=labels, box=box, mask_input=mask_input
    )
    if key and prediction.low_res_logits is not None:
        _logits_put(key, prediction.low_res_logits)
    # The same hygiene as the pre-label proposals: specks dropped, pinholes filled, polygons
    # capped (RLE only when too fragmented). A mask made only of "specks" is a small object the
    # annotator pointed at: kept as SAM gave it.
    encoded = encode_mask(prediction.mask)
    if encoded.rle is None:
        encoded = encode_mask(prediction.mask, min_area=0, hole_area=0, area_fraction=0.0)
    return {
        "mask": encoded.rle if encoded.rle is not None else mask_to_rle(prediction.mask),  # empty
        "polygons": encoded.polygons,
        "box": list(encoded.box) if encoded.box else None,
        "score": min(1.0, max(0.0, float(prediction.score))),  # SAM's predicted IoU
        "area": encoded.area,
        "refined": refine.pk if refine is not None else None,
    }


SEGMENT_RETRY_AFTER = 2  # seconds a client waits before asking again while the embedding is made


def segment_answer(*, image: Image, points, labels, box, **options) -> tuple[int, dict]:
    """segment_click (same options) as an HTTP status and JSON body (the API's click-to-segment,
    which the review page calls): 200 with the mask, 202 while the embedding is prepared, 503
    when the segmenter cannot load (here or on the workers), the embedding failed or the task queue
    cannot be reached to compute it, 422 when the image cannot be read."""
    try:
        result = segment_click(image=image, points=points, labels=labels, box=box, **options)
    except SegmentUnavailable as exc:
        return exc.status, exc.body
    except queues.QueueUnavailable:
        return 503, {
            "status": "unavailable",
            "error": "The task queue cannot be reached, so this image's embedding cannot be computed "
            "for click-to-segment; boxes and edits still work. Try again in a moment.",
        }
    except InferenceError as exc:  # the segmenter's weights are not usable on this server
        return 503, {
            "status": "unavailable",
            "error": f"Click-to-segment is not available: {exc}"
            f"{_checkpoint_hint(image.project.segmenter, str(exc))}",
        }
    if result is None:
        return 202, {
            "status": "preparing",
            "detail": "The image embedding is being computed; try again shortly.",
        }
    return 200, {"status": "ok", **result}
