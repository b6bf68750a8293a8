"""Segment Anything (segment-anything's SAM): the segmenter family of vit_b, vit_l and vit_h.

    segmenter = SamSegmenter.load("vit_b", checkpoint="var/models/sam_vit_b_01ec64.pth")
    embedding = segmenter.embed(pil_image)              # the heavy part: the image encoder
    embeddings = segmenter.embed_batch([a, b, c])       # several images in one encoder pass
    predictions = segmenter.masks_for_boxes(embedding, [(x, y, w, h), ...])
    clicked = segmenter.mask_from_prompts(embedding, points=[(120.0, 80.0)], labels=[1])

The embedding is a plain numpy array, so it can be cached (inference.embeddings) and the light
mask decoder run on it later without the encoder (`inference.models.sam_decoder.SamDecoder`,
which SamSegmenter extends with the image encoder). The pre- and postprocessing are SamPredictor's,
so masks are those segment-anything itself gives. Boxes are (x, y, w, h) in image pixels.

As a family (`inference.protocols.SegmenterFamily`, listed in `inference.registry`) this module
offers `CHECKPOINTS` (the official files, sha256 pinned), `load_segmenter` (a `Segmenter`) and
`load_click_segmenter` (a `ClickSegmenter`: the decoder alone).

torch is imported on first use only: importing this module is cheap, and no tensor leaves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import download
from ..device import pick_device
from ..errors import ModelLoadError
from ..protocols import ImageEmbedding
from .sam_decoder import (
    CHECKPOINTS,
    SamDecoder,
    check_model_name,
    how_to_provide,
    load_on_meta,
    read_checkpoint,
    run_in_chunks,
)

__all__ = ["CHECKPOINTS", "SamSegmenter", "load_click_segmenter", "load_segmenter"]

if TYPE_CHECKING:
    from PIL import Image
    from segment_anything.modeling import Sam

# Images per image-encoder call in embed_batch (halved on out-of-memory). On a CPU batching gains
# nothing and each vit image holds ~1 GB of attention activations (and an OOM kills the process
# instead of raising), so one at a time there.
DEFAULT_EMBED_BATCH = {"cuda": 8, "cpu": 1}


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "labelgpt" / "checkpoints"


def _build_real_sam(name: str, state: dict, path: Path) -> Sam:
    """segment-anything's own `sam_model_registry[name]`, with the checkpoint's weights.

    The model is built on the meta device (no random initialisation of 600M parameters to
    throw away) and the weights are assigned in; the only tensors not in a state_dict,
    `pixel_mean` / `pixel_std`, are then made again with the values build_sam uses.
    """
    import torch
    from segment_anything import sam_model_registry

    def pixel_statistics(sam: Sam) -> None:
        sam.register_buffer("pixel_mean", torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1), False)
        sam.register_buffer("pixel_std", torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1), False)

    return load_on_meta(
        lambda: sam_model_registry[name](checkpoint=None),
        state,
        misfit=f"{path} does not fit the {name} architecture ({how_to_provide(name)})",
        source=f"{path} ({name})",
        finish=pixel_statistics,
    )


class SamSegmenter(SamDecoder):
    """A loaded SAM: the image encoder on top of SamDecoder's prompt encoder and mask decoder
    (the model's own modules: no copy of the weights), so its masks are the decoder's. An
    `inference.protocols.Segmenter`. Thread-safe: calls on one instance run one at a time."""

    def __init__(self, model: Sam, *, name: str, device: str = "cpu", checkpoint: Path | None = None) -> None:
        model = model.to(device).eval()
        super().__init__(
            model.prompt_encoder,
            model.mask_decoder,
            img_size=int(model.image_encoder.img_size),
            name=name,
            device=device,
            checkpoint=checkpoint,
        )
        self.model = model

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
    ) -> SamSegmenter:
        """Load SAM `name` ("vit_b", "vit_l" or "vit_h") from `checkpoint`.

        `checkpoint` is a local .pth file, or an http(s) URL fetched once into `cache_dir`
        (default ~/.cache/labelgpt/checkpoints) and checked against `sha256` when given. Every
        failure (unknown name, missing file, unreadable file, weights of another architecture,
        a download that fails or does not match `sha256`) raises ModelLoadError saying what was
        tried and how to provide the weights.
        """

        check_model_name(name)
        if checkpoint is None or str(checkpoint).strip() == "":
            raise ModelLoadError(f'No checkpoint given for the segmenter "{name}". {how_to_provide(name)}')
        resolved_device = pick_device(device)
        if download.is_url(str(checkpoint)):
            path = download.fetch_checkpoint(
                str(checkpoint), Path(cache_dir) if cache_dir else default_cache_dir(), sha256=sha256
            )
        else:
            path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f'Checkpoint for the segmenter "{name}" not found: {path} '
                f"{'is a folder' if path.is_dir() else 'does not exist'}. {how_to_provide(name)}"
            )
        state = read_checkpoint(path, name)
        return cls(_build_real_sam(name, state, path), name=name, device=resolved_device, checkpoint=path)

    # ---------------------------------------------------------------------------- embedding

    @property
    def _device_type(self) -> str:
        return "cuda" if str(self.device).startswith("cuda") else "cpu"

    @property
    def image_size(self) -> int:
        """The long side images are resized to for the encoder (1024 for the real models)."""
        return int(self.model.image_encoder.img_size)

    def _encoder_input(self, image: Image.Image | np.ndarray):
        """SamPredictor.set_image's preprocessing of one image: (1, 3, S, S) normalised and
        padded, with the image's (H, W) and its resized (H, W)."""
        import torch

        if isinstance(image, np.ndarray):
            rgb = np.ascontiguousarray(image, dtype=np.uint8)
        else:
            rgb = np.asarray(image.convert("RGB"))
        if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
            raise ValueError(f"expected an RGB image, got an array of shape {rgb.shape}")
        resized = self.transform.apply_image(rgb)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None, :, :, :]
        original_size = (int(rgb.shape[0]), int(rgb.shape[1]))
        input_size = (int(tensor.shape[-2]), int(tensor.shape[-1]))
        return self.model.preprocess(tensor), original_size, input_size

    def embed(self, image: Image.Image | np.ndarray) -> ImageEmbedding:
        """Run the image encoder (the costly step) on a PIL image (or an RGB uint8 array)."""
        return self.embed_batch([image], batch_size=1)[0]

    def embed_batch(
        self, images: Sequence[Image.Image | np.ndarray], *, batch_size: int | None = None
    ) -> list[ImageEmbedding]:
        """The embeddings of several images, `batch_size` at a time through the image encoder
        (default: 8 on a GPU, 1 on a CPU; SAM pads every image to a square, so any sizes batch);
        on out-of-memory the batch is halved down to one image, then InferenceError. Each image
        is resized, normalised and padded as SamPredictor.set_image does; embeddings equal
        one-by-one `embed` within float rounding."""
        import torch

        images = list(images)
        if not images:
            return []

        def encode(start: int, stop: int) -> list[ImageEmbedding]:
            inputs = [self._encoder_input(image) for image in images[start:stop]]
            batch = torch.cat([tensor for tensor, _, _ in inputs], dim=0)
            features = self.model.image_encoder(batch).to("cpu", torch.float32).numpy()
            return [
                ImageEmbedding(
                    features=np.ascontiguousarray(features[i : i + 1]),
                    original_size=original_size,
                    input_size=input_size,
                )
                for i, (_, original_size, input_size) in enumerate(inputs)
            ]

        with self._lock, torch.inference_mode():
            return run_in_chunks(
                encode,
                len(images),
                chunk_size=max(1, int(batch_size or DEFAULT_EMBED_BATCH[self._device_type])),
                what=f"SAM image encoder ({len(images)} images)",
                device=self.device,
            )


# -------------------------------------------------------------------- the family (registry)


def load_segmenter(
    name: str, *, checkpoint: str, device: str, cache_dir: Path, sha256: str | None = None
) -> SamSegmenter:
    return SamSegmenter.load(name, checkpoint=checkpoint, device=device, cache_dir=cache_dir, sha256=sha256)


def load_click_segmenter(name: str, *, checkpoint: Path, device: str) -> SamDecoder:
    return SamDecoder.load(name, checkpoint=checkpoint, device=device)
