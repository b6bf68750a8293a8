"""A tiny, randomly initialised Segment Anything for tests, CI and offline demos.

Built from segment-anything's own classes (ImageEncoderViT, PromptEncoder, MaskDecoder with a
TwoWayTransformer, Sam), so every code path of the real model runs, only with small sizes:
a 256-pixel input, a 16x16 embedding of 32 channels. Its masks mean nothing, but they are
deterministic for a given seed. `build_tiny_sam` writes `sam_tiny.pth` (the state_dict, ~0.5 MB)
and `sam_tiny.json` (the architecture); `load_tiny_sam` reads them back.

As a family (`inference.protocols.SegmenterFamily`) it is what `inference.registry` loads for
every segmenter name in tiny mode: `load_segmenter` gives a `SamSegmenter` and
`load_click_segmenter` a `SamDecoder` (the SAM family's own classes), from the folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..device import pick_device
from ..download import is_url
from ..errors import ModelLoadError
from .sam import SamSegmenter
from .sam_decoder import SamDecoder, build_mask_decoder, build_prompt_encoder, load_decoder_modules

if TYPE_CHECKING:
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam


WEIGHTS_NAME = "sam_tiny.pth"
CONFIG_NAME = "sam_tiny.json"
FORMAT = "labelgpt-tiny-sam"

DEFAULT_CONFIG: dict = {
    "format": FORMAT,
    "version": 1,
    "img_size": 256,
    "patch_size": 16,
    "encoder_embed_dim": 32,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
    "encoder_window_size": 8,
    "mlp_ratio": 2.0,
    "prompt_embed_dim": 32,
    "mask_in_chans": 4,
    "decoder_depth": 2,
    "decoder_mlp_dim": 64,
    "decoder_num_heads": 2,
    "iou_head_hidden_dim": 32,
    "num_multimask_outputs": 3,
    "pixel_mean": [123.675, 116.28, 103.53],
    "pixel_std": [58.395, 57.12, 57.375],
}


def _build(config: dict) -> Sam:
    import torch
    from segment_anything.modeling import ImageEncoderViT, Sam

    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=int(config["img_size"]),
            patch_size=int(config["patch_size"]),
            embed_dim=int(config["encoder_embed_dim"]),
            depth=int(config["encoder_depth"]),
            num_heads=int(config["encoder_num_heads"]),
            mlp_ratio=float(config["mlp_ratio"]),
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(config["encoder_global_attn_indexes"]),
            window_size=int(config["encoder_window_size"]),
            out_chans=int(config["prompt_embed_dim"]),
        ),
        prompt_encoder=build_prompt_encoder(config),
        mask_decoder=build_mask_decoder(config),
        pixel_mean=list(config["pixel_mean"]),
        pixel_std=list(config["pixel_std"]),
    )
    return sam.eval()


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_tiny_sam(folder: Path, *, seed: int = 0) -> Path:
    """Write a tiny random SAM into `folder` (created if needed); returns the folder.

    The same seed gives the same weights; the global torch RNG is left untouched.
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**DEFAULT_CONFIG, "seed": int(seed)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = _build(config)
    state = sam.state_dict()
    _atomic_write(folder / WEIGHTS_NAME, lambda handle: torch.save(state, handle))
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    _atomic_write(folder / CONFIG_NAME, lambda handle: handle.write(text.encode()))
    return folder


def _read(folder: Path) -> tuple[dict, Path]:
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelLoadError(
                f"Tiny SAM not found: {path} is missing. Build it with "
                f"`python manage.py build_tiny_models` (or inference.models.tiny_sam.build_tiny_sam)."
            )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"Tiny SAM config {config_path} is unreadable: {error}") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelLoadError(f'{config_path} is not a tiny SAM config (no "format": "{FORMAT}").')
    return {**DEFAULT_CONFIG, **config}, weights_path


def load_tiny_sam(folder: Path) -> Sam:
    """The tiny SAM saved in `folder` by `build_tiny_sam`, on the CPU, in eval mode."""
    import torch

    config, weights_path = _read(folder)
    try:
        sam = _build(config)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    except Exception as error:
        raise ModelLoadError(f"Tiny SAM weights {weights_path} do not load: {error}") from error
    return sam.eval()


def load_tiny_decoder(folder: Path) -> tuple[PromptEncoder, MaskDecoder, int]:
    """Only the prompt encoder and mask decoder of the tiny SAM in `folder` (the image encoder
    is never built), with the input image size."""
    import torch

    config, weights_path = _read(folder)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelLoadError(f"Tiny SAM weights {weights_path} do not load: {error}") from error
    prompt_encoder, mask_decoder = load_decoder_modules(config, state, source=str(weights_path))
    return prompt_encoder, mask_decoder, int(config["img_size"])


# -------------------------------------------------------------------- the family (registry)

CHECKPOINTS: dict = {}  # no name a project chooses: the registry uses this family in tiny mode


def _folder(checkpoint: str | Path) -> Path:

    if is_url(str(checkpoint)):
        raise ModelLoadError(f"The tiny segmenter loads from a local folder, not a URL ({checkpoint}).")
    return Path(checkpoint)


def load_segmenter(
    name: str,
    *,
    checkpoint: str | Path,
    device: str,
    cache_dir: Path | None = None,
    sha256: str | None = None,
) -> SamSegmenter:
    """The whole tiny SAM in the folder `checkpoint` (`cache_dir` and `sha256` are unused: it is
    never downloaded)."""

    folder = _folder(checkpoint)
    return SamSegmenter(load_tiny_sam(folder), name=name, device=pick_device(device), checkpoint=folder)


def load_click_segmenter(name: str, *, checkpoint: str | Path, device: str) -> SamDecoder:
    """The tiny SAM's prompt encoder and mask decoder alone (the image encoder is never built)."""

    folder = _folder(checkpoint)
    prompt_encoder, mask_decoder, img_size = load_tiny_decoder(folder)
    return SamDecoder(
        prompt_encoder,
        mask_decoder,
        img_size=img_size,
        name=name,
        device=pick_device(device),
        checkpoint=folder,
    )
