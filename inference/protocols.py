"""What the pipeline and the web expect of a model, whatever its family.

A model family is one module under `inference/models/` (Grounding DINO, SAM 3, SAM, the tiny SAM)
plus one entry in `inference.registry`. Its module implements `DetectorFamily` or
`SegmenterFamily`, and what its loaders return implements `Detector`, `Segmenter` (the whole
model, for the workers) or `ClickSegmenter` (prompts → masks on a cached embedding, for the web
processes). The pipeline (`inference.pipeline`) and the labeling code use only these protocols
and the registry, never a family's classes, so adding SAM 2 or HQ-SAM touches neither.

Everything here is plain Python over PIL images and numpy arrays: no torch type crosses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, Protocol, TypedDict, Unpack, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from .prompts import ClassPrompt


Boxes = Sequence[Sequence[float]]  # (x, y, w, h) boxes in image pixels


@dataclass(frozen=True)
class Detection:
    """One detected object: class index into the prompts given to `detect`, box as (x, y, w, h)
    in image pixels clipped to the image, the model's score, and the caption words that fired.
    `mask`: the object's (H, W) bool mask when the detector segments too (SAM 3); the pipeline
    then gives it no segmenter pass."""

    class_index: int
    box: tuple[float, float, float, float]
    score: float
    phrase: str
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class ImageEmbedding:
    """What a segmenter's image encoder made of one image: all its mask decoder needs."""

    features: np.ndarray  # (1, C, h, w) float32 (C=256, h=w=64 for the real SAM models)
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (H, W) of the resized image fed to the encoder


@dataclass
class MaskPrediction:
    mask: np.ndarray  # (H, W) bool, at the image's resolution
    score: float  # the model's predicted IoU of the mask, clamped to [0, 1]
    box: tuple[int, int, int, int] | None  # (x, y, w, h) tight around the mask; None when empty
    # Low-resolution float32 logits of this mask in the model's input frame ((256, 256) for
    # SAM): give them back as `mask_input` with the next click on the same object. None for
    # box masks.
    low_res_logits: np.ndarray | None = None


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint file: where to download it and its pinned sha256."""

    url: str
    sha256: str


class DetectOptions(TypedDict):
    """The keywords of `Detector.detect` (`inference.pipeline.DetectParams` holds them for a job)."""

    box_threshold: float  # the review threshold: filters nothing, kept with the job
    text_threshold: float  # caption tokens above it name the class
    keep_threshold: float  # the lowest score returned
    prompt_mode: NotRequired[str]  # "joint" (one caption for all classes) or "per_class"
    nms_iou: NotRequired[float]  # overlapping boxes of one class above this IoU are suppressed


class Detector(Protocol):
    """Images + class prompts → detections per image."""

    name: str

    def detect(
        self, images: Sequence[Image.Image], prompts: Sequence[ClassPrompt], **options: Unpack[DetectOptions]
    ) -> list[list[Detection]]:
        """Detections per image, best first; every detection scoring >= keep_threshold."""
        ...


@runtime_checkable
class ExemplarDetector(Protocol):
    """A detector that also takes example boxes ("find more like this": SAM 3)."""

    name: str

    def find_similar(
        self,
        image: Image.Image,
        *,
        text: str,
        positive_boxes: Boxes,
        negative_boxes: Boxes = (),
        keep_threshold: float,
    ) -> list[Detection]:
        """The other instances on `image` like the positive boxes and unlike the negative ones
        (x, y, w, h in pixels), of the concept `text`: class_index 0, best first, each scoring
        above keep_threshold, with its mask."""
        ...


class Prompts(TypedDict, total=False):
    """The prompts of `mask_from_prompts`: at least one point or a box."""

    points: Sequence[Sequence[float]]  # (x, y) in image pixels
    labels: Sequence[int]  # one per point: 1 object, 0 background
    box: Sequence[float] | None  # (x, y, w, h) in image pixels
    mask_input: np.ndarray | None  # low-resolution logits of the same object


class PromptMasks(Protocol):
    """Masks from boxes, clicks or a previous mask, on an image embedding: what `Segmenter` and
    `ClickSegmenter` both answer."""

    name: str

    def masks_for_boxes(
        self, embedding: ImageEmbedding, boxes_xywh: Boxes, *, chunk_size: int | None = None
    ) -> list[MaskPrediction]:
        """One mask per box (x, y, w, h in image pixels)."""
        ...

    def mask_from_prompts(self, embedding: ImageEmbedding, **prompts: Unpack[Prompts]) -> MaskPrediction:
        """The mask for clicks (x, y) labelled 1 (object) or 0 (background), a box and/or
        `mask_input` (a previous prediction's `low_res_logits`, or `mask_input_from_mask`)."""
        ...

    def mask_input_from_mask(self, embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
        """A `mask_input` prompt from a full-resolution binary mask of the embedding's image."""
        ...


class ClickSegmenter(PromptMasks, Protocol):
    """A segmenter's prompt side alone, on an embedding computed earlier (by a `Segmenter`,
    maybe in another process): what a web process loads. It never builds the image encoder."""

    def attach_onnx(self, folder: Path) -> bool:
        """Answer clicks through onnxruntime from now on when the family can (graphs exported
        into `folder`); returns whether it does. A family without an ONNX path returns False."""
        ...


class Segmenter(PromptMasks, Protocol):
    """A whole segmenter (image encoder + prompt side), as the workers load it."""

    def embed(self, image: Image.Image | np.ndarray) -> ImageEmbedding:
        """Run the image encoder (the costly step) on one image."""
        ...

    def embed_batch(
        self, images: Sequence[Image.Image | np.ndarray], *, batch_size: int | None = None
    ) -> list[ImageEmbedding]:
        """The embeddings of several images (equal to one-by-one `embed` within float rounding)."""
        ...

    def export_onnx(self, folder: Path) -> Path | None:
        """Write what `ClickSegmenter.attach_onnx` needs into `folder` (a worker does it when it
        loads the model, so that the web processes find it ready); None when the family cannot."""
        ...


class DetectorFamily(Protocol):
    """A detector family's module (e.g. `inference.models.grounding_dino`)."""

    def accepts(self, source: str) -> bool:
        """Whether `source` (a project's detector: hub id or folder) is this family's to load."""
        ...

    def load_detector(self, source: str, *, device: str, dtype: str) -> Detector:
        """The detector in `source` (a local folder or a hub id). Raises ModelLoadError."""
        ...


class SegmenterFamily(Protocol):
    """A segmenter family's module (e.g. `inference.models.sam`).

    `CHECKPOINTS` maps each model name the family offers (a project's `segmenter`, e.g. "vit_b")
    to its official checkpoint, or to None where there is no official download and a local file
    must be configured. The tiny SAM offers no name: the registry uses it in tiny mode only."""

    CHECKPOINTS: Mapping[str, Checkpoint | None]

    def load_segmenter(
        self, name: str, *, checkpoint: str, device: str, cache_dir: Path, sha256: str | None = None
    ) -> Segmenter:
        """The whole model `name` from `checkpoint` (a local path, or a URL downloaded once into
        `cache_dir` and checked against `sha256` when given). Raises ModelLoadError."""
        ...

    def load_click_segmenter(self, name: str, *, checkpoint: Path, device: str) -> ClickSegmenter:
        """The prompt side of model `name` from a LOCAL checkpoint, never reading the image
        encoder's weights. Raises ModelLoadError."""
        ...
