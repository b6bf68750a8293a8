"""Which model family loads a model name, and a per-process cache so each model loads once.

Plain Python: the caller (the Celery tasks, the segment endpoint) builds a `ModelConfig` from
Django's settings. `mode="tiny"` maps every detector and segmenter name to the tiny random
models built by `build_tiny_models` (built on first use when missing; a SAM 3 name to the tiny
SAM 3, any other detector name to the tiny Grounding DINO), so tests, CI and offline demos run
with no weights to download.

A model family is one module under `inference/models/` implementing
`inference.protocols.DetectorFamily` or `SegmenterFamily`, plus one entry in
`DETECTOR_FAMILIES` or `SEGMENTER_FAMILIES` below: a segmenter family's `CHECKPOINTS` names
the models a project may choose (SAM: vit_b, vit_l, vit_h), and the registry passes the
official checkpoint's URL and pinned sha256 to its loader. Nothing else names a family.

The names a project may choose are the admin's lists (`ModelConfig.detectors`, name → hub id or
local folder; `ModelConfig.segmenters`, with each checkpoint in `sam_checkpoints`): a name not
listed is refused before anything loads, and a listed model whose local files do not load raises
`ModelUnavailable`, which names the model only (the reason and the path go to the log).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .download import checkpoint_filename, is_url
from .errors import ModelLoadError, ModelUnavailable
from .models import sam3
from .models.tiny_gdino import build_tiny_grounding_dino
from .models.tiny_sam import build_tiny_sam
from .models.tiny_sam3 import build_tiny_sam3

if TYPE_CHECKING:
    from .protocols import ClickSegmenter, Detector, DetectorFamily, Segmenter, SegmenterFamily

log = logging.getLogger(__name__)

# Detector families, asked in order whether a project's detector name is theirs (`accepts`):
# SAM 3 takes folders of model_type "sam3" and hub ids named sam3*; Grounding DINO takes any hub
# id or folder, so it stays last.
DETECTOR_FAMILIES = ("inference.models.sam3", "inference.models.grounding_dino")
# Segmenter families; their `CHECKPOINTS` keys are the segmenter names a project may choose.
SEGMENTER_FAMILIES = ("inference.models.sam",)
# What tiny mode loads for every name: the folders (under `ModelConfig.tiny_dir`) that
# `build_tiny_models` writes. The tiny Grounding DINO is a real checkpoint of that family; the
# tiny SAM has its own family module (its weights are saved in a format of its own).
TINY_DETECTOR_DIR = "grounding-dino"
TINY_SAM3_DIR = "sam3"  # what tiny mode loads for a SAM 3 detector name (e.g. "sam3-tiny")
TINY_SAM_DIR = "sam"
TINY_SEGMENTER_FAMILY = "inference.models.tiny_sam"
TINY_SEGMENTER = "tiny"  # the segmenter name (and embedding cache name) in tiny mode


@dataclass(frozen=True)
class ModelConfig:
    mode: str = "real"  # "real" or "tiny"
    models_dir: Path = Path("var/models")  # tiny models and downloaded checkpoints
    device: str = "auto"
    # Segmenter name → local path or URL of its checkpoint; the official URL when absent.
    sam_checkpoints: dict[str, str] = field(default_factory=dict)
    # How the web process runs the segmenter's decoder for clicks: "onnx" (onnxruntime, exported
    # once into models_dir/onnx; about twice as fast on a CPU) or "torch". "auto": onnx when installed.
    click_backend: str = "auto"
    detector_dtype: str = "fp32"  # "fp32" (TF32 allowed on CUDA), "bf16" or "fp16": see the detector's load
    # The admin's lists of what a project may choose. `detectors`: name → hub id or local folder;
    # `segmenters`: the names allowed (each one a family offers). None: no list (any detector name
    # is its own source, any segmenter name a family offers), for plain-Python callers.
    detectors: dict[str, str] | None = None
    segmenters: frozenset[str] | None = None

    @property
    def onnx_dir(self) -> Path:
        return self.models_dir / "onnx"

    @property
    def tiny_dir(self) -> Path:
        return self.models_dir / "tiny"

    @property
    def checkpoint_dir(self) -> Path:
        """Where checkpoints given as URLs are downloaded to (once)."""
        return self.models_dir / "checkpoints"

    def detector_source(self, name: str) -> str:
        """What loads the detector `name` (ModelUnavailable when it is not in the list)."""
        if self.detectors is not None and name not in self.detectors:
            raise ModelUnavailable("detector", name)
        source = self.detectors[name] if self.detectors is not None else name
        if self.mode == "tiny":
            tiny = TINY_SAM3_DIR if sam3.accepts(name) or sam3.accepts(source) else TINY_DETECTOR_DIR
            return str(self.tiny_dir / tiny)
        return source

    def detector_segments(self, name: str) -> bool:
        """Whether the detector `name` gives masks itself (SAM 3): its project needs no segmenter
        pass. Read from the name and its source, without loading anything."""
        source = self.detectors.get(name, name) if self.detectors is not None else name
        return sam3.accepts(name) or sam3.accepts(source)

    def segmenter_source(self, name: str) -> tuple[str, str]:
        """(model name, checkpoint path or URL) for a segmenter name such as "vit_b"
        (ModelUnavailable when it is not in the list)."""
        if self.segmenters is not None and name not in self.segmenters:
            raise ModelUnavailable("segmenter", name)
        if self.mode == "tiny":
            return TINY_SEGMENTER, str(self.tiny_dir / TINY_SAM_DIR)
        official = segmenter_family(name).CHECKPOINTS[name]
        checkpoint = self.sam_checkpoints.get(name) or (official.url if official else "")
        return name, checkpoint


def _is_local(source: str) -> bool:
    """Whether a model source is a path on this machine (not an http(s) URL, not a hub id)."""
    if not source or is_url(source):
        return False
    path = Path(source).expanduser()
    return path.is_absolute() or source.startswith((".", "~")) or path.exists()


@contextmanager
def _said_neutrally(kind: str, name: str, source: str) -> Iterator[None]:
    """A model loaded from a local path that fails raises ModelUnavailable (the model's name
    only): the reason, which tells whether and what the path is, goes to the log."""
    try:
        yield
    except ModelUnavailable:
        raise
    except Exception as exc:
        if not _is_local(source):
            raise
        log.error("The %s %r cannot be loaded from %s: %s: %s", kind, name, source, type(exc).__name__, exc)
        raise ModelUnavailable(kind, name) from exc


def _module(path: str):
    return importlib.import_module(path)


def segmenter_names() -> list[str]:
    """Every segmenter name a project may choose, over all the families."""
    return sorted(name for path in SEGMENTER_FAMILIES for name in _module(path).CHECKPOINTS)


def segmenter_family(name: str) -> SegmenterFamily:
    """The family module of a segmenter name; ModelLoadError for a name no family offers."""
    for path in SEGMENTER_FAMILIES:
        family = _module(path)
        if name in family.CHECKPOINTS:
            return family
    raise ModelLoadError(f'Unknown segmenter "{name}": use one of {", ".join(segmenter_names())}.')


def detector_family(source: str) -> DetectorFamily:
    for path in DETECTOR_FAMILIES:
        family = _module(path)
        if family.accepts(source):
            return family
    raise ModelLoadError(f'No detector family loads "{source}".')


def official_checkpoint_sha256(config: ModelConfig, name: str, checkpoint: str) -> str | None:
    """The pinned sha256 when `checkpoint` is the official download of `name`, else None."""
    if config.mode == "tiny":
        return None
    official = segmenter_family(name).CHECKPOINTS[name]
    return official.sha256 if official is not None and checkpoint == official.url else None


def build_tiny_models(folder: Path, *, seed: int = 0) -> Path:
    """Write the tiny random Grounding DINO, SAM 3 and SAM under `folder` (idempotent)."""

    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_grounding_dino(folder / TINY_DETECTOR_DIR, seed=seed)
    build_tiny_sam3(folder / TINY_SAM3_DIR, seed=seed)
    build_tiny_sam(folder / TINY_SAM_DIR, seed=seed)
    return folder


_lock = threading.Lock()
_detectors: dict[tuple, Detector] = {}
_segmenters: dict[tuple, Segmenter] = {}
_click_segmenters: dict[tuple, ClickSegmenter] = {}


def _ensure_tiny(config: ModelConfig) -> None:
    if config.mode == "tiny" and not all(
        (config.tiny_dir / folder).exists() for folder in (TINY_SAM_DIR, TINY_SAM3_DIR, TINY_DETECTOR_DIR)
    ):
        build_tiny_models(config.tiny_dir)


def _segmenter_loader(config: ModelConfig, name: str) -> tuple[SegmenterFamily, str, str]:
    """(family, model name, checkpoint path or URL) for a segmenter name."""
    model_name, checkpoint = config.segmenter_source(name)
    family = _module(TINY_SEGMENTER_FAMILY) if config.mode == "tiny" else segmenter_family(name)
    return family, model_name, checkpoint


def get_detector(config: ModelConfig, name: str) -> Detector:
    """The loaded detector for a name (the list's hub id or folder for it; without a list, the
    name itself), loaded once per process."""
    key = (config.detector_source(name), config.device, config.detector_dtype)
    with _lock:
        if key not in _detectors:
            _ensure_tiny(config)
            with _said_neutrally("detector", name, key[0]):
                _detectors[key] = detector_family(key[0]).load_detector(
                    key[0], device=config.device, dtype=config.detector_dtype
                )
        return _detectors[key]


def get_segmenter(config: ModelConfig, name: str) -> Segmenter:
    """The loaded segmenter for a name (vit_b, vit_l, vit_h), loaded once per process. An
    official checkpoint URL is downloaded once into `config.checkpoint_dir` and checked against
    its pinned sha256."""
    family, model_name, checkpoint = _segmenter_loader(config, name)
    key = (model_name, checkpoint, config.device)
    with _lock:
        if key not in _segmenters:
            _ensure_tiny(config)
            with _said_neutrally("segmenter", name, checkpoint):
                segmenter = family.load_segmenter(
                    model_name,
                    checkpoint=checkpoint,
                    device=config.device,
                    cache_dir=config.checkpoint_dir,
                    sha256=official_checkpoint_sha256(config, name, checkpoint),
                )
            if config.click_backend != "torch":
                try:  # ready for the web processes' clicks (~2 s, once per checkpoint)
                    segmenter.export_onnx(config.onnx_dir)
                except Exception:
                    log.exception("ONNX export of the %s decoder failed (clicks will use torch)", name)
            _segmenters[key] = segmenter
        return _segmenters[key]


def get_click_segmenter(config: ModelConfig, name: str) -> ClickSegmenter:
    """The decoder-only segmenter (prompt encoder + mask decoder, no image encoder) for a
    segmenter name, loaded once per process: what a web process uses to answer clicks on cached
    embeddings, through onnxruntime unless `click_backend` is "torch" (or onnxruntime is
    missing). It NEVER downloads: when the configured checkpoint is a URL whose file is not in
    the download cache yet, ModelLoadError says what to set."""

    family, model_name, checkpoint = _segmenter_loader(config, name)
    key = (model_name, checkpoint, config.device, config.click_backend)
    with _lock:
        if key not in _click_segmenters:
            _ensure_tiny(config)
            path = checkpoint
            if is_url(checkpoint):
                cached = config.checkpoint_dir / checkpoint_filename(checkpoint)
                if not cached.is_file():
                    variable = f"LABELGPT_SAM_CHECKPOINT_{model_name.upper()}"
                    raise ModelLoadError(
                        f"No local {model_name} checkpoint on this server: the web process never "
                        f"downloads weights. Set {variable}=/path/to/{checkpoint_filename(checkpoint)} "
                        f"(from {checkpoint}), or run a worker once so that it downloads the file "
                        f"into {cached}."
                    )
                path = str(cached)
            with _said_neutrally("segmenter", name, path):
                decoder = family.load_click_segmenter(model_name, checkpoint=Path(path), device=config.device)
            if config.click_backend != "torch":
                decoder.attach_onnx(config.onnx_dir)
            _click_segmenters[key] = decoder
        return _click_segmenters[key]


def segmenter_cache_name(config: ModelConfig, name: str) -> str:
    """The name embeddings are cached under (tiny and real embeddings never mix)."""
    model_name, checkpoint = config.segmenter_source(name)
    if config.mode == "tiny":
        return TINY_SEGMENTER
    # Another checkpoint of the same architecture gives other embeddings.
    return f"{model_name}-{hashlib.sha256(checkpoint.encode()).hexdigest()[:10]}"


def clear() -> None:
    with _lock:
        _detectors.clear()
        _segmenters.clear()
        _click_segmenters.clear()
