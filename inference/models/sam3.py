"""SAM 3 (text prompt → instance masks, boxes and scores) through transformers' Sam3Model and
Sam3Processor: a detector family whose detections carry their own masks, so the pipeline gives
them no SAM segmenter pass (`inference.pipeline`).

    detector = Sam3Detector.load("facebook/sam3")   # or a local folder
    per_image = detector.detect(images, prompts, box_threshold=0.35, text_threshold=0.25,
                                keep_threshold=0.1)

One forward of the vision encoder per batch of images (the processor resizes every image to the
same square, so any batch stacks with no padding), then, for each class prompt, the text encoder,
DETR encoder/decoder and mask decoder on those cached vision features (`vision_embeds`); the
processor's own `post_process_instance_segmentation` turns the outputs into scores
(query score × presence score), boxes (x0, y0, x1, y1 at the image's size) and binary masks
(at the image's size), keeping every instance scoring above `keep_threshold` (the review slider
filters the rest, as for Grounding DINO). SAM 3 is DETR-like with one-to-one matching: no NMS.
`text_threshold`, `prompt_mode` and `nms_iou` are Grounding DINO's and do nothing here.

Nothing torch leaves this module: results are `inference.protocols.Detection` with a `mask`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..device import pick_device
from ..errors import ModelLoadError
from ..prompts import ClassPrompt
from ..protocols import Detection

MODEL_TYPE = "sam3"
DEFAULT_MASK_THRESHOLD = 0.5


def accepts(source: str) -> bool:
    """A folder whose config.json says model_type "sam3", or a hub id / name whose last part
    starts with "sam3" (facebook/sam3, facebook/sam3-base, sam3-tiny)."""
    text = os.fspath(source).strip()
    if not text:
        return False
    path = Path(text).expanduser()
    if path.is_dir():
        config = path / "config.json"
        try:
            return json.loads(config.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
        except (OSError, ValueError):
            return False
    return text.rstrip("/").rsplit("/", 1)[-1].lower().startswith(MODEL_TYPE)


class Sam3Detector:
    """A loaded SAM 3 model and its processor (an `inference.protocols.Detector` whose detections
    carry masks)."""

    def __init__(self, model: Any, processor: Any, *, device: str, name: str) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.name = name

    def __repr__(self) -> str:
        return f"Sam3Detector({self.name!r}, device={self.device!r})"

    def find_similar(
        self,
        image: Image.Image,
        *,
        text: str,
        positive_boxes: Sequence[Sequence[float]],
        negative_boxes: Sequence[Sequence[float]] = (),
        keep_threshold: float,
        mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    ) -> list[Detection]:
        """ "Find more like this" (an `inference.protocols.ExemplarDetector`): SAM 3 on one image
        with the class's text and exemplar boxes (x, y, w, h in pixels; positive: like this,
        negative: not like this), through the processor's `input_boxes` / `input_boxes_labels`
        (1 / 0) and its own `post_process_instance_segmentation`. Every instance scoring above
        `keep_threshold`, best first, each with its mask (class_index 0, phrase: the text)."""
        import torch

        if not positive_boxes:
            raise ValueError("find_similar needs at least one positive exemplar box.")
        image = _as_rgb(image)
        boxes = [_xyxy(box) for box in [*positive_boxes, *negative_boxes]]
        labels = [1] * len(positive_boxes) + [0] * len(negative_boxes)
        inputs = self.processor(
            images=[image], text=[text], input_boxes=[boxes], input_boxes_labels=[labels], return_tensors="pt"
        ).to(self.device)
        size = image.size[::-1]  # (H, W)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        result = self.processor.post_process_instance_segmentation(
            outputs, threshold=keep_threshold, mask_threshold=mask_threshold, target_sizes=[size]
        )[0]
        return _detections(result, 0, ClassPrompt(name=text, prompt=text), size)

    @classmethod
    def load(cls, source: str, *, device: str = "auto") -> Sam3Detector:
        """From a local folder (offline) or a hub id. Raises ModelLoadError."""
        from transformers import Sam3Model, Sam3Processor

        text = os.fspath(source).strip()
        local = Path(text).expanduser().is_dir()
        try:
            processor = Sam3Processor.from_pretrained(text, local_files_only=local)
            model = Sam3Model.from_pretrained(text, local_files_only=local)
        except Exception as exc:
            raise ModelLoadError(
                f"could not load a SAM 3 model from {text!r} ({type(exc).__name__}: {exc}). A folder must "
                "hold a checkpoint saved with save_pretrained (config.json, weights, processor and "
                "tokenizer files); on a machine with internet access run `hf download facebook/sam3 "
                "--local-dir DIR` and copy DIR to the workers."
            ) from exc
        chosen = pick_device(device)
        return cls(model.to(chosen).eval(), processor, device=chosen, name=text)

    def detect(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[ClassPrompt],
        *,
        keep_threshold: float,
        box_threshold: float | None = None,
        text_threshold: float | None = None,
        prompt_mode: str = "joint",
        nms_iou: float | None = None,
        mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    ) -> list[list[Detection]]:
        """Detections (with masks) per image, best first; every one scoring > keep_threshold.
        `box_threshold` (the review's) filters nothing; `text_threshold`, `prompt_mode` and
        `nms_iou` are Grounding DINO's and change nothing here (one prompt per class, no NMS)."""
        import torch

        images = [_as_rgb(image) for image in images]
        per_image: list[list[Detection]] = [[] for _ in images]
        if not images or not prompts:
            return per_image
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        sizes = [image.size[::-1] for image in images]  # (H, W)
        with torch.inference_mode():
            vision = self.model.get_vision_features(pixel_values=inputs["pixel_values"])
            for class_index, prompt in enumerate(prompts):
                text = self.processor(text=[prompt.text] * len(images), return_tensors="pt").to(self.device)
                outputs = self.model(
                    vision_embeds=vision, input_ids=text["input_ids"], attention_mask=text["attention_mask"]
                )
                results = self.processor.post_process_instance_segmentation(
                    outputs, threshold=keep_threshold, mask_threshold=mask_threshold, target_sizes=sizes
                )
                for index, result in enumerate(results):
                    found = _detections(result, class_index, prompt, sizes[index])
                    per_image[index].extend(found[: prompt.max_instances] if prompt.max_instances else found)
        return [sorted(found, key=lambda d: -d.score) for found in per_image]


def _detections(
    result: dict, class_index: int, prompt: ClassPrompt, size: tuple[int, int]
) -> list[Detection]:
    height, width = size
    scores = result["scores"].float().cpu().numpy()
    boxes = result["boxes"].float().cpu().numpy()
    masks = result["masks"].cpu().numpy().astype(bool)
    found = []
    for score, (x0, y0, x1, y1), mask in zip(scores, boxes, masks, strict=True):
        x0, x1 = float(np.clip(x0, 0, width)), float(np.clip(x1, 0, width))
        y0, y1 = float(np.clip(y0, 0, height)), float(np.clip(y1, 0, height))
        found.append(
            Detection(
                class_index=class_index,
                box=(x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)),
                score=float(score),
                phrase=prompt.text,
                mask=mask,
            )
        )
    found.sort(key=lambda d: -d.score)
    return found


def _as_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def load_detector(source: str, *, device: str, dtype: str) -> Sam3Detector:
    """The family's loader (`inference.protocols.DetectorFamily`). SAM 3 runs in float32 whatever
    `dtype` says (bf16 / fp16 are Grounding DINO's options, not measured for SAM 3 yet)."""
    return Sam3Detector.load(source, device=device)


def _xyxy(box: Sequence[float]) -> list[float]:
    """(x, y, w, h) → (x0, y0, x1, y1), as the processor takes exemplar boxes."""
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]
