"""Grounding DINO (text-prompted box detector) through transformers: the detector family
`inference.registry` loads for any hub id or folder (`load_detector`).

    detector = GroundingDinoDetector.load("IDEA-Research/grounding-dino-tiny")   # or a local folder
    per_image = detector.detect(images, prompts, box_threshold=0.35, text_threshold=0.25,
                                keep_threshold=0.1)

preprocess (processor: resize, normalise, pad; tokenizer with offsets) → forward (one batch per
group of images with the same processed size, under `torch.inference_mode`; fp32 by default, with
TF32 matmuls allowed on CUDA; bf16 / fp16 autocast only when asked, see `GroundingDinoDetector.load`) →
postprocess (on float32 logits and boxes whatever the compute dtype; score = max over caption
tokens of sigmoid(logits), as transformers does; class through token spans, see prompts.py;
boxes scaled to the image and clipped; per-class NMS with torchvision's `batched_nms`;
max_instances). Nothing torch leaves this module: results are `inference.protocols.Detection`.

Why batches are grouped by processed size: the processor pads a batch to its largest image, and
the Swin backbone's windows see the padding, so a padded image gets other boxes and scores than
it gets alone. Images resized to the same shape (same aspect ratio: a camera's photos) batch
together with no padding and give the same detections as one by one.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..device import DTYPES, pick_device, pick_dtype
from ..errors import InferenceError, ModelLoadError
from ..prompts import (
    Caption,
    ClassPrompt,
    assign_classes,
    build_caption,
    phrase_from_tokens,
    token_class_matrix,
)
from ..protocols import Detection

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
PROMPT_MODES = ("joint", "per_class")
SUPPORTED_MODEL_TYPES = ("grounding-dino", "mm-grounding-dino")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHTS_HELP = (
    "On a machine with internet access run `hf download {hub_id} --local-dir DIR`, copy DIR to "
    'the workers and set the project\'s detector to DIR (README, section "Real model weights").'
)


@dataclass(frozen=True)
class _Candidate:
    class_index: int
    xyxy: tuple[float, float, float, float]
    score: float
    phrase: str


@dataclass(frozen=True)
class _Encoded:
    """A caption, its token offsets and the token→class membership of the classes in it."""

    caption: Caption
    class_indices: tuple[int, ...]  # global class index of each span
    input_ids: tuple[int, ...]
    offsets: list[tuple[int, int]]
    membership: np.ndarray


class GroundingDinoDetector:
    """A loaded Grounding DINO model and its processor, ready to `detect` (an
    `inference.protocols.Detector`)."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        name: str,
        device: str = "cpu",
        batch_size: int = 8,
        dtype: str = "fp32",
        allow_tf32: bool = True,
    ) -> None:
        self.model = model
        self.processor = processor
        self.name = name
        self.device = device
        self.dtype = pick_dtype(device, dtype)  # raises on a dtype the device cannot run
        self.allow_tf32 = bool(allow_tf32)
        self.batch_size = max(1, int(batch_size))
        self.max_text_len = int(getattr(model.config, "max_text_len", 256))

    def __repr__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return f"GroundingDinoDetector({self.name!r}, device={self.device!r}, dtype={dtype})"

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_DETECTOR,
        device: str = "auto",
        *,
        batch_size: int = 8,
        dtype: str = "fp32",
        allow_tf32: bool = True,
    ) -> GroundingDinoDetector:
        """Load from a local folder (never touches the network) or a Hugging Face hub id.

        `dtype` is the compute precision: "fp32" (the default: the weights stay float32 and the
        post-processing matches transformers' own), or "bf16" / "fp16" autocast, which is faster
        on a GPU but moves scores near the thresholds, so a few phrase→class decisions differ
        (bench/gpu_check.py measures how many). "bf16" runs on the CPU too; "fp16" and "auto"
        follow `inference.device.pick_dtype`, which looks at the device actually used and raises
        `InferenceError` for a dtype it cannot run. `allow_tf32` lets CUDA run float32 matmuls
        and convolutions in TF32 (Ampere and later; ~10-bit mantissa inputs, float32 sums).

        Raises `ModelLoadError` saying what was tried and how to provide the weights.
        """
        if dtype not in DTYPES:
            raise ValueError(f"unknown detector dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        source, local = _resolve_source(name_or_path)
        resolved_device = pick_device(device)
        pick_dtype(resolved_device, dtype)  # refuse before loading weights
        try:
            processor, model = _from_pretrained(source, local_files_only=True)
        except Exception as exc:
            if local:
                raise ModelLoadError(_load_failure_message(source, local, exc)) from exc
            # A hub id not in the local cache: ask the hub (slow to fail when it cannot be reached;
            # offline workers should set HF_HUB_OFFLINE=1).
            try:
                processor, model = _from_pretrained(source, local_files_only=False)
            except Exception as exc:
                raise ModelLoadError(_load_failure_message(source, local, exc)) from exc
        model_type = getattr(model.config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelLoadError(
                f"{source} holds a {model_type!r} model; the detector needs Grounding DINO "
                f"(model types: {', '.join(SUPPORTED_MODEL_TYPES)})."
            )
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise ModelLoadError(f"{source} has no Grounding DINO processor (image processor + tokenizer).")
        model.to(resolved_device).eval()
        return cls(
            model,
            processor,
            name=str(name_or_path),
            device=resolved_device,
            batch_size=batch_size,
            dtype=dtype,
            allow_tf32=allow_tf32,
        )

    # ---------------------------------------------------------------- detection

    def detect(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[ClassPrompt],
        *,
        box_threshold: float,
        text_threshold: float,
        keep_threshold: float,
        prompt_mode: str = "joint",
        nms_iou: float = 0.5,
    ) -> list[list[Detection]]:
        """Detections per image, best first.

        Every detection scoring >= `keep_threshold` is returned — `box_threshold` (and the
        per-class `ClassPrompt.box_threshold`) is the *review* threshold and filters nothing here,
        so reviewers can move it without re-running the model. A detection whose caption tokens
        above `text_threshold` belong to no class is dropped. "joint" mode puts all prompts in one
        caption (split into several when it exceeds the model's 256 text tokens); "per_class"
        runs one caption "prompt ." per class. Overlapping boxes of one class are suppressed at
        `nms_iou` (1.0 disables NMS); `max_instances` keeps a class's k best.
        """
        for label, value in (
            ("box_threshold", box_threshold),
            ("text_threshold", text_threshold),
            ("keep_threshold", keep_threshold),
        ):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{label} must lie in [0, 1], got {value!r}")
        if not 0.0 < float(nms_iou) <= 1.0:
            raise ValueError(f"nms_iou must lie in (0, 1], got {nms_iou!r}")
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {prompt_mode!r}")
        images = [_as_rgb(image) for image in images]
        prompts = list(prompts)
        if not images:
            return []
        if not prompts:
            return [[] for _ in images]

        candidates: list[list[_Candidate]] = [[] for _ in images]
        for encoded in self._encode_prompts(prompts, prompt_mode):
            for i, (probs, boxes) in enumerate(self._forward(images, encoded)):
                candidates[i].extend(
                    _postprocess(
                        probs,
                        boxes,
                        encoded,
                        image_size=images[i].size,
                        text_threshold=text_threshold,
                        keep_threshold=keep_threshold,
                    )
                )
        limits = [p.max_instances for p in prompts]
        return [_finalise(found, nms_iou=nms_iou, max_instances=limits) for found in candidates]

    # ---------------------------------------------------------------- internals

    def _encode_prompts(self, prompts: list[ClassPrompt], mode: str) -> list[_Encoded]:
        texts = [p.text for p in prompts]
        groups = [[k] for k in range(len(texts))] if mode == "per_class" else self._pack_joint(texts)
        encoded = []
        for group in groups:
            caption = build_caption([texts[k] for k in group])
            input_ids, offsets = self._tokenize(caption.text)
            if len(input_ids) > self.max_text_len:
                raise InferenceError(
                    f"the prompt {caption.text!r} is {len(input_ids)} tokens long; "
                    f"the detector reads at most {self.max_text_len}"
                )
            encoded.append(
                _Encoded(
                    caption=caption,
                    class_indices=tuple(group),
                    input_ids=tuple(input_ids),
                    offsets=offsets,
                    membership=token_class_matrix(offsets, caption.spans),
                )
            )
        return encoded

    def _pack_joint(self, texts: list[str]) -> list[list[int]]:
        """Split the classes into as few captions as fit the model's text length ([CLS] + SEP)."""
        tokenizer = self.processor.tokenizer
        groups: list[list[int]] = []
        used = 2  # [CLS] and [SEP]
        for k, text in enumerate(texts):
            size = len(tokenizer(f"{text} .", add_special_tokens=False)["input_ids"])
            if groups and used + size <= self.max_text_len:
                groups[-1].append(k)
                used += size
            else:
                groups.append([k])
                used = 2 + size
        return groups

    def _tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and (start, end) character offsets ((0, 0) for special tokens)."""
        tokenizer = self.processor.tokenizer
        try:
            encoding = tokenizer(text, return_offsets_mapping=True)
            offsets = [(int(s), int(e)) for s, e in encoding["offset_mapping"]]
        except NotImplementedError:  # a Python-only tokenizer has no offsets: align the pieces
            encoding = tokenizer(text)
            offsets = _align_offsets(tokenizer, list(encoding["input_ids"]), text)
        return list(encoding["input_ids"]), offsets

    def _forward(
        self, images: list[Image.Image], encoded: _Encoded
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(token probabilities (queries, text tokens), cxcywh boxes (queries, 4)) per image, in order."""
        import torch

        text = encoded.caption.text
        inputs = self.processor(images=images, text=[text] * len(images), return_tensors="pt")
        if tuple(inputs["input_ids"][0].tolist()) != encoded.input_ids:
            raise InferenceError(f"the processor tokenised {text!r} differently from its tokenizer")
        pixel_values = inputs["pixel_values"]
        pixel_mask = inputs.get("pixel_mask")
        if pixel_mask is None:  # a processor that does not pad: every pixel is content
            pixel_mask = torch.ones((pixel_values.shape[0], *pixel_values.shape[-2:]), dtype=torch.long)
        text_inputs = {
            key: inputs[key] for key in ("input_ids", "token_type_ids", "attention_mask") if key in inputs
        }
        n_tokens = int(inputs["input_ids"].shape[1])
        results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for (height, width), members in _group_by_content_size(pixel_mask).items():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                index = torch.tensor(chunk)
                batch = {
                    "pixel_values": pixel_values[index, :, :height, :width].contiguous(),
                    "pixel_mask": pixel_mask[index, :height, :width].contiguous(),
                    **{key: value[index] for key, value in text_inputs.items()},
                }
                batch = {key: value.to(self.device) for key, value in batch.items()}
                with torch.inference_mode(), self._precision():
                    outputs = self.model(**batch)
                # Post-processing in float32 whatever the compute dtype (as transformers' fp32).
                probs = torch.sigmoid(outputs.logits.to(torch.float32)[..., :n_tokens]).cpu().numpy()
                boxes = outputs.pred_boxes.to(torch.float32).cpu().numpy()
                for row, image_index in enumerate(chunk):
                    results[image_index] = (probs[row], boxes[row])
        for i in range(len(images)):
            yield results[i]

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        """TF32 as asked on CUDA (restored after: the flags are global), and autocast when the
        compute dtype is not float32."""
        import torch

        cuda = str(self.device).startswith("cuda")
        with contextlib.ExitStack() as stack:
            if cuda:
                matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
                saved = (matmul.allow_tf32, cudnn.allow_tf32)
                matmul.allow_tf32 = cudnn.allow_tf32 = self.allow_tf32

                def restore() -> None:
                    matmul.allow_tf32, cudnn.allow_tf32 = saved

                stack.callback(restore)
            if self.dtype != torch.float32:
                stack.enter_context(torch.autocast(device_type="cuda" if cuda else "cpu", dtype=self.dtype))
            yield


# -------------------------------------------------------------------- helpers


def nms_per_class(
    boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """torchvision's `batched_nms` on numpy arrays: a box is dropped when its IoU with a better
    box of the same class is > `iou_threshold`. Returns the indices kept, best score first."""
    import torch
    from torchvision.ops import batched_nms

    boxes = torch.as_tensor(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4))
    kept = batched_nms(
        boxes,
        torch.as_tensor(np.asarray(scores, dtype=np.float64).reshape(-1)),
        torch.as_tensor(np.asarray(class_ids, dtype=np.int64).reshape(-1)),
        float(iou_threshold),
    )
    return kept.numpy()


def _postprocess(
    probs: np.ndarray,
    boxes_cxcywh: np.ndarray,
    encoded: _Encoded,
    *,
    image_size: tuple[int, int],
    text_threshold: float,
    keep_threshold: float,
) -> list[_Candidate]:
    width, height = image_size
    scores = probs.max(axis=1)  # as transformers: max over all caption tokens of sigmoid(logit)
    kept = np.nonzero(scores >= keep_threshold)[0]
    if kept.size == 0:
        return []
    local_classes, _strengths = assign_classes(probs[kept], encoded.membership, text_threshold)
    boxes = boxes_cxcywh[kept].astype(np.float64)
    centre, half = boxes[:, :2], boxes[:, 2:] / 2
    xyxy = np.concatenate([centre - half, centre + half], axis=1)
    xyxy *= np.array([width, height, width, height], dtype=np.float64)
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    found = []
    for row, query in enumerate(kept):
        local = int(local_classes[row])
        x1, y1, x2, y2 = (float(v) for v in xyxy[row])
        if local < 0 or x2 <= x1 or y2 <= y1:
            continue
        phrase = phrase_from_tokens(
            probs[query],
            encoded.offsets,
            encoded.caption.text,
            text_threshold,
            span=encoded.caption.spans[local],
        )
        found.append(
            _Candidate(
                class_index=encoded.class_indices[local],
                xyxy=(x1, y1, x2, y2),
                score=float(scores[query]),
                phrase=phrase,
            )
        )
    return found


def _finalise(found: list[_Candidate], *, nms_iou: float, max_instances: list[int | None]) -> list[Detection]:
    if not found:
        return []
    boxes = np.array([c.xyxy for c in found], dtype=np.float64)
    scores = np.array([c.score for c in found], dtype=np.float64)
    classes = np.array([c.class_index for c in found], dtype=np.int64)
    kept = [found[i] for i in nms_per_class(boxes, scores, classes, nms_iou)]
    kept.sort(key=lambda c: (-c.score, c.class_index, c.xyxy))
    per_class: dict[int, int] = {}
    detections = []
    for c in kept:
        limit = max_instances[c.class_index]
        count = per_class.get(c.class_index, 0)
        if limit is not None and count >= limit:
            continue
        per_class[c.class_index] = count + 1
        x1, y1, x2, y2 = c.xyxy
        detections.append(Detection(c.class_index, (x1, y1, x2 - x1, y2 - y1), c.score, c.phrase))
    return detections


def _group_by_content_size(pixel_mask: Any) -> dict[tuple[int, int], list[int]]:
    """Image indices grouped by the size of their unpadded content (top-left in the padded batch)."""
    groups: dict[tuple[int, int], list[int]] = {}
    full = (int(pixel_mask.shape[1]), int(pixel_mask.shape[2]))
    for i in range(int(pixel_mask.shape[0])):
        mask = pixel_mask[i].bool()
        height, width = int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum())
        if not (height and width and bool(mask[:height, :width].all()) and int(mask.sum()) == height * width):
            height, width = full  # not a top-left rectangle: keep the processor's layout
        groups.setdefault((height, width), []).append(i)
    return groups


def _as_rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


def _align_offsets(tokenizer: Any, input_ids: list[int], text: str) -> list[tuple[int, int]]:
    """Character offsets of `input_ids` in `text` for a tokenizer without offset mapping."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    lowered = text.lower()
    cursor = 0
    offsets = []
    for token_id, token in zip(input_ids, tokenizer.convert_ids_to_tokens(input_ids), strict=True):
        piece = token[2:] if token.startswith("##") else token
        start = lowered.find(piece.lower(), cursor) if token_id not in special and piece else -1
        if start < 0:
            offsets.append((0, 0))
            continue
        cursor = start + len(piece)
        offsets.append((start, cursor))
    return offsets


def _from_pretrained(source: str, *, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    processor = AutoProcessor.from_pretrained(source, local_files_only=local_files_only)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(source, local_files_only=local_files_only)
    return processor, model


def _resolve_source(name_or_path: str | os.PathLike) -> tuple[str, bool]:
    """(what to load, whether it is a local folder). A missing local-looking path fails here,
    before transformers could mistake it for a hub id and go to the network."""
    text = os.fspath(name_or_path).strip()
    if not text:
        raise ModelLoadError("no detector given: name a local folder or a Hugging Face hub id")
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"detector path {path} is a file; it must be a folder holding a Grounding DINO "
                "checkpoint (config.json, model weights, processor and tokenizer files)"
            )
        return str(path), True
    if not _HUB_ID.match(text):
        raise ModelLoadError(
            f"detector folder {path} does not exist (tried the local path; it is no hub id, so the "
            "hub was not asked). To put weights there, run on a machine with internet access "
            f"`hf download {DEFAULT_DETECTOR} --local-dir {path}` and copy the folder to the workers, "
            'or set the project\'s detector to a folder that exists (README, section "Real model weights").'
        )
    return text, False


def _load_failure_message(source: str, local: bool, exc: Exception) -> str:
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if local:
        return (
            f"could not load a Grounding DINO detector from folder {source} ({reason}). The folder must "
            "hold a checkpoint saved with save_pretrained (config.json, model weights, processor and "
            f"tokenizer files). {_WEIGHTS_HELP.format(hub_id=DEFAULT_DETECTOR)}"
        )
    return (
        f"could not load detector {source!r} from the Hugging Face hub or its local cache ({reason}). "
        f"If this machine cannot reach the hub: {_WEIGHTS_HELP.format(hub_id=source)}"
    )


# -------------------------------------------------------------------- the family (registry)


def accepts(source: str) -> bool:
    """Grounding DINO takes any hub id or folder (`GroundingDinoDetector.load` checks the model
    type it finds there), so it is the registry's last detector family."""
    return True


def load_detector(source: str, *, device: str, dtype: str) -> GroundingDinoDetector:
    return GroundingDinoDetector.load(source, device=device, dtype=dtype)
