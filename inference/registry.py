"""Which weights a model name means, and a per-process cache so each model loads once.

Plain Python: the caller (inference.tasks, the segment endpoint) builds a `ModelConfig` from
Django's settings. `mode="tiny"` maps every detector and segmenter name to the tiny random
models built by `manage.py build_tiny_models` (built on first use when missing), so tests, CI
and offline demos run with no weights to download.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError

log = logging.getLogger(__name__)

# Official Segment Anything checkpoints (segment-anything's README), by model type.
SAM_CHECKPOINT_URLS = {
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
}
TINY_DETECTOR_DIR = "grounding-dino"
TINY_SAM_DIR = "sam"


@dataclass(frozen=True)
class ModelConfig:
    mode: str = "real"  # "real" or "tiny"
    models_dir: Path = Path("var/models")  # tiny models and downloaded checkpoints
    device: str = "auto"
    # Model type → local path or URL of its checkpoint; the official URL when absent.
    sam_checkpoints: dict[str, str] = field(default_factory=dict)
    # How the web process runs SAM's decoder for clicks: "onnx" (onnxruntime, exported once into
    # models_dir/onnx; about twice as fast on a CPU) or "torch". "auto": onnx when installed.
    click_backend: str = "auto"
    detector_dtype: str = "fp32"  # "fp32" (TF32 allowed on CUDA), "bf16" or "fp16": see Detector.load

    @property
    def onnx_dir(self) -> Path:
        return self.models_dir / "onnx"

    @property
    def tiny_dir(self) -> Path:
        return self.models_dir / "tiny"

    def detector_source(self, name: str) -> str:
        if self.mode == "tiny":
            return str(self.tiny_dir / TINY_DETECTOR_DIR)
        return name

    def segmenter_source(self, name: str) -> tuple[str, str]:
        """(model type, checkpoint path or URL) for a segmenter name such as "vit_b"."""
        if self.mode == "tiny":
            return "tiny", str(self.tiny_dir / TINY_SAM_DIR)
        if name not in SAM_CHECKPOINT_URLS:
            raise ModelLoadError(
                f'Unknown segmenter "{name}": use one of {", ".join(sorted(SAM_CHECKPOINT_URLS))}.'
            )
        return name, self.sam_checkpoints.get(name) or SAM_CHECKPOINT_URLS[name]


def build_tiny_models(folder: Path, *, seed: int = 0) -> Path:
    """Write the tiny random Grounding DINO and SAM under `folder` (idempotent)."""
    from .tiny_gdino import build_tiny_grounding_dino
    from .tiny_sam import build_tiny_sam

    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_grounding_dino(folder / TINY_DETECTOR_DIR, seed=seed)
    build_tiny_sam(folder / TINY_SAM_DIR, seed=seed)
    return folder


_lock = threading.Lock()
_detectors: dict[tuple, object] = {}
_segmenters: dict[tuple, object] = {}
_click_segmenters: dict[tuple, object] = {}


def _ensure_tiny(config: ModelConfig) -> None:
    if config.mode == "tiny" and not (config.tiny_dir / TINY_SAM_DIR).exists():
        build_tiny_models(config.tiny_dir)


def get_detector(config: ModelConfig, name: str):
    """The loaded detector for a name (hub id or folder), loaded once per process."""
    from .detector import Detector

    key = (config.detector_source(name), config.device, config.detector_dtype)
    with _lock:
        if key not in _detectors:
            _ensure_tiny(config)
            _detectors[key] = Detector.load(key[0], device=config.device, dtype=config.detector_dtype)
        return _detectors[key]


def get_segmenter(config: ModelConfig, name: str):
    """The loaded segmenter for a name (vit_b, vit_l, vit_h), loaded once per process."""
    from .segmenter import Segmenter

    model_type, checkpoint = config.segmenter_source(name)
    key = (model_type, checkpoint, config.device)
    with _lock:
        if key not in _segmenters:
            _ensure_tiny(config)
            segmenter = Segmenter.load(
                model_type,
                checkpoint=checkpoint,
                device=config.device,
                cache_dir=config.models_dir / "checkpoints",
            )
            if config.click_backend != "torch":
                try:  # ready for the web processes' clicks (~2 s, once per checkpoint)
                    segmenter.decoder.export_onnx(config.onnx_dir)
                except Exception:
                    log.exception("ONNX export of the SAM %s decoder failed (clicks will use torch)", name)
            _segmenters[key] = segmenter
        return _segmenters[key]


def get_click_segmenter(config: ModelConfig, name: str):
    """The decoder-only SAM (`inference.sam_decoder.SamDecoder`: prompt encoder + mask decoder,
    no image encoder) for a segmenter name, loaded once per process: what a web process uses to
    answer clicks on cached embeddings, through onnxruntime unless `click_backend` is "torch"
    (or onnxruntime is missing). It NEVER downloads: when the configured checkpoint is a URL
    whose file is not in the download cache yet, ModelLoadError says what to set."""
    from .download import checkpoint_filename, is_url
    from .sam_decoder import SamDecoder

    model_type, checkpoint = config.segmenter_source(name)
    key = (model_type, checkpoint, config.device, config.click_backend)
    with _lock:
        if key not in _click_segmenters:
            _ensure_tiny(config)
            path = checkpoint
            if is_url(checkpoint):
                cached = config.models_dir / "checkpoints" / checkpoint_filename(checkpoint)
                if not cached.is_file():
                    variable = f"LABELGPT_SAM_CHECKPOINT_{model_type.upper()}"
                    raise ModelLoadError(
                        f"No local {model_type} checkpoint on this server: the web process never "
                        f"downloads weights. Set {variable}=/path/to/{checkpoint_filename(checkpoint)} "
                        f"(from {checkpoint}), or run a worker once so that it downloads the file "
                        f"into {cached}."
                    )
                path = str(cached)
            decoder = SamDecoder.load(model_type, checkpoint=path, device=config.device)
            if config.click_backend != "torch":
                decoder.attach_onnx(config.onnx_dir)
            _click_segmenters[key] = decoder
        return _click_segmenters[key]


def segmenter_cache_name(config: ModelConfig, name: str) -> str:
    """The name embeddings are cached under (tiny and real embeddings never mix)."""
    model_type, checkpoint = config.segmenter_source(name)
    if config.mode == "tiny":
        return "tiny"
    # Another checkpoint of the same architecture gives other embeddings.
    return f"{model_type}-{hashlib.sha256(checkpoint.encode()).hexdigest()[:10]}"


def clear() -> None:
    with _lock:
        _detectors.clear()
        _segmenters.clear()
        _click_segmenters.clear()
