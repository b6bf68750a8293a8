"""Pre-labeling of a batch of images: detector on the batch, then the segmenter on every box of
each image in one decoder call, with the image embedding cached for click-to-segment. Plain
Python: images in, `ImageResult` dataclasses out (masks already encoded as COCO RLE and
polygons). The models are any `inference.protocols.Detector` and `Segmenter` (the registry
loads them): nothing here knows a model family.

CUDA out-of-memory halves the batch and tries again; a single image that still does not fit, or
that fails in any other way, is reported failed with its reason while the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .boxes import box_iou
from .device import free_accelerator_memory, is_out_of_memory
from .embeddings import EmbeddingCache
from .masks import (
    MIN_AREA_FRACTION,
    MIN_HOLE_AREA,
    MIN_PART_AREA,
    PolygonCaps,
    clip_to_box,
    encode_mask,
)
from .prompts import ClassPrompt
from .protocols import Detection, Detector, Segmenter

# box_iou (from inference.boxes) is also this module's: the labeling code reads it from here.
__all__ = [
    "BatchImage",
    "DetectParams",
    "ImageResult",
    "Proposal",
    "box_iou",
    "detect_with_backoff",
    "prelabel_batch",
    "proposals_from_detections",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectParams:
    box_threshold: float
    text_threshold: float
    keep_threshold: float
    prompt_mode: str = "joint"
    nms_iou: float = 0.5
    polygon_tolerance: float = 1.0
    # Mask hygiene (inference.masks.encode_mask): parts below min_area pixels dropped, holes
    # below hole_area filled (or below area_fraction of the mask's area, when more); over the
    # caps a mask keeps its RLE and gets no polygons ([]).
    min_area: int = MIN_PART_AREA
    hole_area: int = MIN_HOLE_AREA
    area_fraction: float = MIN_AREA_FRACTION
    # A box's mask is cut to the box grown by this fraction of its size on each side (SAM
    # answers a box prompt with the object in it; a mask running far outside is a leak). None: no cut.
    box_margin: float | None = 0.25
    polygon_caps: PolygonCaps = field(default_factory=PolygonCaps)


@dataclass(frozen=True)
class Proposal:
    class_index: int
    box: tuple[float, float, float, float]  # x, y, w, h in pixels (from the mask when there is one)
    score: float
    phrase: str
    mask: dict | None = None  # COCO RLE (cleaned: see DetectParams)
    polygons: list | None = None  # None: box only; []: a mask too fragmented for polygons (RLE only)
    detector_box: tuple[float, float, float, float] | None = None


@dataclass
class ImageResult:
    proposals: list[Proposal] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchImage:
    image: Image.Image
    sha256: str


def detect_with_backoff(
    detector: Detector, images: Sequence[Image.Image], prompts: Sequence[ClassPrompt], params: DetectParams
) -> list[list[Detection] | str]:
    """Detections per image, halving the batch on out-of-memory; a str is an image's error."""
    try:
        return list(
            detector.detect(
                list(images),
                list(prompts),
                box_threshold=params.box_threshold,
                text_threshold=params.text_threshold,
                keep_threshold=params.keep_threshold,
                prompt_mode=params.prompt_mode,
                nms_iou=params.nms_iou,
            )
        )
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        free_accelerator_memory()
        if len(images) == 1:
            return ["Out of accelerator memory even for this image alone."]
        half = len(images) // 2
        logger.warning("Out of memory on a batch of %d images: trying halves", len(images))
        return detect_with_backoff(detector, images[:half], prompts, params) + detect_with_backoff(
            detector, images[half:], prompts, params
        )


def _segment(
    segmenter: Segmenter, cache: EmbeddingCache | None, cache_name: str, item: BatchImage,
    detections: list[Detection], params: DetectParams,
) -> list[Proposal]:  # fmt: skip
    embedding = cache.get(item.sha256, cache_name) if cache else None
    if embedding is None:
        embedding = segmenter.embed(item.image)
        if cache:
            cache.put(item.sha256, cache_name, embedding)
    if not detections:
        return []
    # Detections with a mask of their own (SAM 3) get no segmenter pass; the embedding is still
    # cached, as click-to-segment stays on the segmenter.
    to_segment = [d for d in detections if d.mask is None]
    predicted = iter(segmenter.masks_for_boxes(embedding, [d.box for d in to_segment]) if to_segment else [])
    proposals = []
    for detection in detections:
        if detection.mask is not None:
            mask = detection.mask  # the detector's own mask, not cut to its box
        else:
            mask = next(predicted).mask
            if params.box_margin is not None:
                mask = clip_to_box(mask, detection.box, params.box_margin)
        proposals.append(_proposal(detection, mask, params))
    return proposals


def _proposal(detection: Detection, mask: np.ndarray, params: DetectParams) -> Proposal:
    """A detection with its mask, cleaned and encoded (the box alone when nothing is left)."""
    encoded = encode_mask(
        mask,
        tolerance=params.polygon_tolerance,
        min_area=params.min_area,
        hole_area=params.hole_area,
        area_fraction=params.area_fraction,
        caps=params.polygon_caps,
    )
    if encoded.box is None:  # the segmenter found nothing (left after cleaning): keep the box alone
        return _box_only(detection)
    return Proposal(
        class_index=detection.class_index,
        box=tuple(float(v) for v in encoded.box),
        score=detection.score,
        phrase=detection.phrase,
        mask=encoded.rle,
        polygons=encoded.polygons,
        detector_box=detection.box,
    )


def _box_only(detection: Detection) -> Proposal:
    return Proposal(
        class_index=detection.class_index,
        box=detection.box,
        score=detection.score,
        phrase=detection.phrase,
        detector_box=detection.box,
    )


def proposals_from_detections(detections: Sequence[Detection], params: DetectParams) -> list[Proposal]:
    """Detections as proposals with no segmenter pass: a detection's own mask (SAM 3) cleaned and
    encoded, not cut to its box; the box alone for one without a mask."""
    return [_box_only(d) if d.mask is None else _proposal(d, d.mask, params) for d in detections]


def prelabel_batch(
    items: Sequence[BatchImage],
    prompts: Sequence[ClassPrompt],
    params: DetectParams,
    *,
    detector: Detector,
    segmenter: Segmenter | None = None,
    cache: EmbeddingCache | None = None,
    cache_name: str = "",
    on_image: Callable[[int, ImageResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[ImageResult]:
    """Run the detector on the whole batch, then the segmenter image by image; `on_image(index, result)`
    is called as each image finishes, so the caller can save it at once.

    `should_stop()` is asked before the detector and before each image: once it answers True
    nothing more is computed or reported, and the results of the images done so far are returned.
    """
    if should_stop is not None and should_stop():
        return []
    started = time.perf_counter()
    per_image = detect_with_backoff(detector, [item.image for item in items], prompts, params)
    detect_share = (time.perf_counter() - started) / max(len(items), 1)
    results = []
    for index, (item, detections) in enumerate(zip(items, per_image, strict=True)):
        if should_stop is not None and should_stop():
            break
        image_started = time.perf_counter()
        if isinstance(detections, str):
            result = ImageResult(error=detections)
        else:
            try:
                if segmenter is None:
                    proposals = proposals_from_detections(detections, params)
                else:
                    proposals = _segment(segmenter, cache, cache_name, item, detections, params)
                result = ImageResult(proposals=proposals)
            except Exception as exc:  # one image's failure must not stop the batch
                if is_out_of_memory(exc):
                    free_accelerator_memory()
                logger.exception("Segmentation failed for image %s", item.sha256)
                result = ImageResult(error=f"Segmentation failed: {exc}")
        result.seconds = detect_share + (time.perf_counter() - image_started)
        results.append(result)
        if on_image is not None:
            on_image(index, result)
    return results
