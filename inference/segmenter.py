"""Segment Anything behind a small numpy/PIL interface: image → embedding → masks.

    segmenter = Segmenter.load("vit_b", checkpoint="var/models/sam_vit_b_01ec64.pth")
    embedding = segmenter.embed(pil_image)              # the heavy part: the image encoder
    predictions = segmenter.masks_for_boxes(embedding, [(x, y, w, h), ...])
    clicked = segmenter.mask_from_prompts(embedding, points=[(120.0, 80.0)], labels=[1])

The embedding is a plain numpy array, so it can be cached (inference.embeddings) and the light
mask decoder run on it later without the encoder. SamPredictor does the pre- and postprocessing,
so masks are those segment-anything itself gives. Boxes are (x, y, w, h) in image pixels.

torch is imported on first use only: importing this module is cheap, and no tensor leaves it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelLoadError
from .masks import mask_box

if TYPE_CHECKING:
    from PIL import Image
    from segment_anything.modeling import Sam

SAM_TYPES = ("vit_b", "vit_l", "vit_h")
TINY = "tiny"
_DEPTH_TO_TYPE = {12: "vit_b", 24: "vit_l", 32: "vit_h"}
# Bytes of float mask logits upsampled at once: boxes are decoded in one batch, then their
# full-resolution masks are made a few at a time, so 100 boxes on a 12 MP photo stay in memory.
_POSTPROCESS_BYTES = 256 * 1024 * 1024


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "labelgpt" / "checkpoints"


@dataclass
class ImageEmbedding:
    """What SAM's image encoder made of one image: all the mask decoder needs."""

    features: np.ndarray  # (1, C, h, w) float32 (C=256, h=w=64 for the real models)
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (H, W) of the resized image fed to the encoder (long side = img_size)


@dataclass
class MaskPrediction:
    mask: np.ndarray  # (H, W) bool, at the image's resolution
    score: float  # SAM's predicted IoU of the mask
    box: tuple[int, int, int, int] | None  # (x, y, w, h) tight around the mask; None when empty


def _official_url(name: str) -> str | None:
    try:
        from .registry import SAM_CHECKPOINT_URLS
    except ImportError:  # pragma: no cover - registry is optional for this module
        return None
    return SAM_CHECKPOINT_URLS.get(name)


def _how_to_provide(name: str) -> str:
    url = _official_url(name)
    where = f" (the official one is {url})" if url else ""
    return (
        f"Give the path of a segment-anything {name} checkpoint{where}, or its http(s) URL to "
        f"download it once into the cache."
    )


def _sam_type_of(state: dict) -> str | None:
    """vit_b / vit_l / vit_h from the number of image-encoder blocks in a state_dict."""
    blocks = {
        key.split(".")[2]
        for key in state
        if isinstance(key, str) and key.startswith("image_encoder.blocks.") and key.count(".") > 2
    }
    return _DEPTH_TO_TYPE.get(len(blocks))


def _load_state_dict(path: Path, name: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelLoadError(
            f"SAM checkpoint {path} could not be read as PyTorch weights "
            f"({type(error).__name__}: {str(error)[:300]}). {_how_to_provide(name)}"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not any(str(key).startswith("image_encoder.") for key in state):
        raise ModelLoadError(
            f"{path} is not a Segment Anything checkpoint (no image_encoder weights). {_how_to_provide(name)}"
        )
    return state


def _build_real_sam(name: str, state: dict, path: Path) -> Sam:
    """segment-anything's own `sam_model_registry[name]`, with the checkpoint's weights.

    The model is built on the meta device (no random initialisation of 600M parameters to
    throw away) and the weights are assigned in; the only tensors not in a state_dict,
    `pixel_mean` / `pixel_std`, are then made again with the values build_sam uses.
    """
    import torch
    from segment_anything import sam_model_registry

    found = _sam_type_of(state)
    if found is not None and found != name:
        raise ModelLoadError(
            f"{path} holds {found} weights but the segmenter asked for is {name}: "
            f"choose the {found} segmenter or give a {name} checkpoint."
        )
    with torch.device("meta"):
        sam = sam_model_registry[name](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ModelLoadError(
            f"{path} does not fit the {name} architecture: {str(error)[:500]}. {_how_to_provide(name)}"
        ) from error
    sam.register_buffer("pixel_mean", torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1), False)
    sam.register_buffer("pixel_std", torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1), False)
    leftovers = [key for key, value in [*sam.named_parameters(), *sam.named_buffers()] if value.is_meta]
    if leftovers:  # a segment-anything version with tensors this code does not know of
        raise ModelLoadError(f"{path}: {name} tensors not set by the checkpoint: {', '.join(leftovers[:5])}")
    return sam.eval()


class Segmenter:
    """A loaded SAM. Thread-safe: calls on one instance run one at a time."""

    def __init__(self, model: Sam, *, name: str, device: str = "cpu") -> None:
        from segment_anything import SamPredictor

        self.name = name
        self.device = device
        self.model = model.to(device).eval()
        self.predictor = SamPredictor(self.model)
        self._lock = threading.Lock()
        self._pe = None

    # ------------------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        name: str,
        *,
        checkpoint: str | Path | None,
        device: str = "auto",
        cache_dir: str | Path | None = None,
        sha256: str | None = None,
    ) -> Segmenter:
        """Load SAM `name` ("vit_b", "vit_l", "vit_h", or "tiny") from `checkpoint`.

        `checkpoint` is a local .pth file, or an http(s) URL fetched once into `cache_dir`
        (default ~/.cache/labelgpt/checkpoints) and checked against `sha256` when given; for
        "tiny" it is the folder written by `inference.tiny_sam.build_tiny_sam`. Every failure
        (unknown name, missing file, unreadable file, weights of another architecture) raises
        ModelLoadError saying what was tried and how to provide the weights.
        """
        from .device import pick_device
        from .download import fetch_checkpoint, is_url

        if name != TINY and name not in SAM_TYPES:
            raise ModelLoadError(f'Unknown segmenter "{name}": use one of {", ".join((*SAM_TYPES, TINY))}.')
        if checkpoint is None or str(checkpoint).strip() == "":
            raise ModelLoadError(f'No checkpoint given for the segmenter "{name}". {_how_to_provide(name)}')
        resolved_device = pick_device(device)
        if name == TINY:
            from .tiny_sam import load_tiny_sam

            if is_url(str(checkpoint)):
                raise ModelLoadError(
                    f"The tiny segmenter loads from a local folder, not a URL ({checkpoint})."
                )
            return cls(load_tiny_sam(Path(checkpoint)), name=name, device=resolved_device)

        if is_url(str(checkpoint)):
            path = fetch_checkpoint(
                str(checkpoint), Path(cache_dir) if cache_dir else default_cache_dir(), sha256=sha256
            )
        else:
            path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f'Checkpoint for the segmenter "{name}" not found: {path} '
                f"{'is a folder' if path.is_dir() else 'does not exist'}. {_how_to_provide(name)}"
            )
        state = _load_state_dict(path, name)
        return cls(_build_real_sam(name, state, path), name=name, device=resolved_device)

    # ---------------------------------------------------------------------------- embedding

    @property
    def image_size(self) -> int:
        """The long side images are resized to for the encoder (1024 for the real models)."""
        return int(self.model.image_encoder.img_size)

    def embed(self, image: Image.Image | np.ndarray) -> ImageEmbedding:
        """Run the image encoder (the costly step) on a PIL image (or an RGB uint8 array)."""
        import torch

        if isinstance(image, np.ndarray):
            rgb = np.ascontiguousarray(image, dtype=np.uint8)
        else:
            rgb = np.asarray(image.convert("RGB"))
        if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
            raise ValueError(f"expected an RGB image, got an array of shape {rgb.shape}")
        with self._lock, torch.inference_mode():
            self.predictor.set_image(rgb, image_format="RGB")
            features = self.predictor.features.detach().to("cpu", torch.float32).numpy()
            original_size = tuple(int(v) for v in self.predictor.original_size)
            input_size = tuple(int(v) for v in self.predictor.input_size)
            self.predictor.reset_image()
        return ImageEmbedding(features=features, original_size=original_size, input_size=input_size)

    def _restore(self, embedding: ImageEmbedding) -> None:
        """Set the predictor's state from a (possibly cached) embedding: no encoder call."""
        import torch

        features = np.asarray(embedding.features)
        grid = tuple(self.model.prompt_encoder.image_embedding_size)
        expected = (1, int(self.model.prompt_encoder.embed_dim), *grid)
        if tuple(features.shape) != expected:
            raise ValueError(
                f"an embedding of shape {tuple(features.shape)} does not fit the segmenter {self.name} "
                f"(it expects {expected}): was it made by another model?"
            )
        self.predictor.reset_image()
        self.predictor.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(
            self.device
        )
        self.predictor.original_size = tuple(int(v) for v in embedding.original_size)
        self.predictor.input_size = tuple(int(v) for v in embedding.input_size)
        self.predictor.is_image_set = True

    def _dense_pe(self):
        """The decoder's positional encoding: fixed for a model, so computed once, not per click."""
        if self._pe is None:
            self._pe = self.model.prompt_encoder.get_dense_pe()
        return self._pe

    # -------------------------------------------------------------------------------- masks

    def masks_for_boxes(
        self, embedding: ImageEmbedding, boxes_xywh: Sequence[Sequence[float]]
    ) -> list[MaskPrediction]:
        """One mask per box (x, y, w, h), all boxes through the mask decoder in one batch.

        The same computation as SamPredictor.predict_torch(boxes=..., multimask_output=False),
        except that the upsampling of the low-resolution masks to the image size is done a few
        masks at a time to bound memory.
        """
        import torch

        boxes = [tuple(float(v) for v in box) for box in boxes_xywh]
        if not boxes:
            return []
        if any(len(box) != 4 for box in boxes):
            raise ValueError("boxes must be (x, y, w, h)")
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=np.float64)
        model = self.model
        with self._lock, torch.inference_mode():
            self._restore(embedding)
            original_size, input_size = self.predictor.original_size, self.predictor.input_size
            scaled = self.predictor.transform.apply_boxes(xyxy, original_size)
            box_tensor = torch.as_tensor(scaled, dtype=torch.float, device=self.predictor.device)
            sparse, dense = model.prompt_encoder(points=None, boxes=box_tensor, masks=None)
            low_res, iou = model.mask_decoder(
                image_embeddings=self.predictor.features,
                image_pe=self._dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            scores = iou[:, 0].to("cpu", torch.float32).numpy()
            height, width = original_size
            per_mask = 4 * (height * width + self.image_size**2)
            chunk = max(1, _POSTPROCESS_BYTES // per_mask)
            masks: list[np.ndarray] = []
            for start in range(0, len(boxes), chunk):
                logits = model.postprocess_masks(low_res[start : start + chunk], input_size, original_size)
                masks.extend((logits[:, 0] > model.mask_threshold).cpu().numpy())
            self.predictor.reset_image()
        return [
            MaskPrediction(mask=mask, score=float(score), box=mask_box(mask))
            for mask, score in zip(masks, scores, strict=True)
        ]

    def mask_from_prompts(
        self,
        embedding: ImageEmbedding,
        *,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
        multimask: bool = True,
    ) -> MaskPrediction:
        """The mask for clicks (x, y) labelled 1 (object) or 0 (background) and/or a box (x, y, w, h).

        With `multimask` SAM proposes three masks and the best-scoring one is returned.
        """
        import torch

        coords = [tuple(float(v) for v in point) for point in points]
        point_labels = [int(label) for label in labels]
        if len(coords) != len(point_labels):
            raise ValueError(f"{len(coords)} points but {len(point_labels)} labels")
        if any(len(point) != 2 for point in coords):
            raise ValueError("points must be (x, y)")
        if any(label not in (0, 1) for label in point_labels):
            raise ValueError("point labels must be 1 (object) or 0 (background)")
        if not coords and box is None:
            raise ValueError("give at least one point or a box")
        box_xyxy = None
        if box is not None:
            if len(box) != 4:
                raise ValueError("box must be (x, y, w, h)")
            x, y, w, h = (float(v) for v in box)
            box_xyxy = np.array([x, y, x + w, y + h], dtype=np.float64)
        model = self.model
        with self._lock, torch.inference_mode():
            self._restore(embedding)
            original_size, input_size = self.predictor.original_size, self.predictor.input_size
            device = self.predictor.device
            point_prompt = None
            if coords:
                scaled = self.predictor.transform.apply_coords(
                    np.array(coords, dtype=np.float64), original_size
                )
                point_prompt = (
                    torch.as_tensor(scaled, dtype=torch.float, device=device)[None],
                    torch.as_tensor(point_labels, dtype=torch.int, device=device)[None],
                )
            box_prompt = None
            if box_xyxy is not None:
                scaled_box = self.predictor.transform.apply_boxes(box_xyxy, original_size)
                box_prompt = torch.as_tensor(scaled_box, dtype=torch.float, device=device)
            # SamPredictor.predict's computation, except that only the best of the candidate
            # masks is upsampled to the image size (the others would be thrown away).
            sparse, dense = model.prompt_encoder(points=point_prompt, boxes=box_prompt, masks=None)
            low_res, iou = model.mask_decoder(
                image_embeddings=self.predictor.features,
                image_pe=self._dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            scores = iou[0].to("cpu", torch.float32).numpy()
            best = int(np.argmax(scores))
            logits = model.postprocess_masks(low_res[:, best : best + 1], input_size, original_size)
            mask = (logits[0, 0] > model.mask_threshold).cpu().numpy()
            self.predictor.reset_image()
        return MaskPrediction(mask=mask, score=float(scores[best]), box=mask_box(mask))
