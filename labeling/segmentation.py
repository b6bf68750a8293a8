"""Click-to-segment: SAM image embeddings computed ahead of time (on a worker) and the light mask
decoder run on them inside a request (DESIGN.md, flow 3)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache as django_cache

from inference import registry
from inference.errors import InferenceError
from inference.masks import mask_to_polygons, mask_to_rle

from .models import Image
from .prelabel import embedding_cache, model_config, open_image

logger = logging.getLogger(__name__)


def embeddings_prefetch(*, image: Image, ahead: int | None = None) -> list[int]:
    """Queue the SAM embedding of this image and of the next few in the project, where missing
    and not already queued. Returns the ids queued."""
    from inference.tasks import gpu_embed_images

    ahead = settings.LABELGPT_PREFETCH_AHEAD if ahead is None else ahead
    project = image.project
    config = model_config()
    cache_name = registry.segmenter_cache_name(config, project.segmenter)
    store = embedding_cache()
    upcoming = list(
        Image.objects.filter(project=project, pk__gt=image.pk)
        .exclude(status__in=[Image.Status.DONE, Image.Status.SKIPPED])
        .order_by("pk")
        .values_list("pk", "sha256")[:ahead]
    )
    wanted = [
        pk for pk, sha in [(image.pk, image.sha256), *upcoming]
        if not store.has(sha, cache_name) and django_cache.add(f"embedding-queued:{cache_name}:{sha}", 1, 120)
    ]  # fmt: skip
    if wanted:
        gpu_embed_images.delay(wanted)
    return wanted


def embeddings_compute(*, image_ids: Iterable[int]) -> int:
    """Compute and cache missing SAM embeddings (on a gpu worker). Returns how many were made."""
    config = model_config()
    store = embedding_cache()
    made = 0
    for image in Image.objects.select_related("project").filter(pk__in=list(image_ids)):
        cache_name = registry.segmenter_cache_name(config, image.project.segmenter)
        if store.has(image.sha256, cache_name):
            continue
        try:
            pil = open_image(image)
        except (OSError, ValueError):
            logger.warning("Image %s cannot be read for its embedding", image.pk)
            continue
        segmenter = registry.get_segmenter(config, image.project.segmenter)
        store.put(image.sha256, cache_name, segmenter.embed(pil))
        made += 1
    return made


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


def segment_click(*, image: Image, points, labels, box) -> dict | None:
    """A mask from clicks and/or a box on the image's cached embedding (decoder only: fast), or
    None when the embedding is not cached yet (it is then queued, with the next images')."""
    config = model_config()
    cache_name = registry.segmenter_cache_name(config, image.project.segmenter)
    embedding = _recent_embedding(image.sha256, cache_name)
    if embedding is None:
        embeddings_prefetch(image=image)
        return None
    segmenter = registry.get_segmenter(config, image.project.segmenter)
    prediction = segmenter.mask_from_prompts(embedding, points=points, labels=labels, box=box)
    return {
        "mask": mask_to_rle(prediction.mask),
        "polygons": mask_to_polygons(prediction.mask),
        "box": list(prediction.box) if prediction.box else None,
        "score": prediction.score,
        "area": int(prediction.mask.sum()),
    }


SEGMENT_RETRY_AFTER = 2  # seconds a client waits before asking again while the embedding is made


def segment_answer(*, image: Image, points, labels, box) -> tuple[int, dict]:
    """segment_click as an HTTP status and JSON body, the same for the page and the API:
    200 with the mask, 202 while the embedding is prepared, 503 when the segmenter cannot load."""
    try:
        result = segment_click(image=image, points=points, labels=labels, box=box)
    except InferenceError as exc:  # the segmenter's weights are not usable on this server
        return 503, {"error": f"Click-to-segment is not available: {exc}"}
    if result is None:
        return 202, {
            "status": "preparing",
            "detail": "The image embedding is being computed; try again shortly.",
        }
    return 200, {"status": "ok", **result}
