"""SAM's prompt encoder and mask decoder on a cached image embedding: prompts → masks.

    decoder = SamDecoder.load("vit_b", checkpoint="var/models/sam_vit_b_01ec64.pth")   # ~16 MB
    first = decoder.mask_from_prompts(embedding, points=[(120.0, 80.0)], labels=[1])
    better = decoder.mask_from_prompts(
        embedding, points=[(120.0, 80.0), (200.0, 90.0)], labels=[1, 0], mask_input=first.low_res_logits
    )
    refined = decoder.mask_from_prompts(
        embedding, box=annotation_box, mask_input=decoder.mask_input_from_mask(embedding, annotation_mask)
    )

`SamDecoder.load` builds only segment-anything's PromptEncoder and MaskDecoder and reads only
the `prompt_encoder.*` / `mask_decoder.*` tensors of the checkpoint (memory-mapped, so the image
encoder's weights are never read into memory): what a web process needs to answer clicks on an
embedding computed elsewhere (an `inference.protocols.ClickSegmenter`). `SamSegmenter` (the
whole SAM, for the workers, in `inference.models.sam`) is a SamDecoder over the whole model's
own modules, plus the image encoder, so the two paths cannot drift apart.

The computation is SamPredictor.predict's (same prompt transform, same decoder call), except:
- only the best candidate mask is upsampled to the image size;
- boxes go through the decoder in chunks, halved on out-of-memory.
Boxes are (x, y, w, h) and points (x, y) in image pixels. torch is imported on first use; no
tensor leaves this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..device import free_accelerator_memory, is_out_of_memory, pick_device
from ..errors import InferenceError, ModelLoadError
from ..masks import mask_box
from ..protocols import Checkpoint, ImageEmbedding, MaskPrediction
from . import sam_onnx

if TYPE_CHECKING:
    from segment_anything.modeling import MaskDecoder, PromptEncoder

log = logging.getLogger(__name__)

# The official Segment Anything checkpoints (segment-anything's README), by model type, with
# the sha256 of each file (as micro-sam and others pin them; the hex in the file name is not a
# sha256 prefix).
CHECKPOINTS = {
    "vit_b": Checkpoint(
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    "vit_l": Checkpoint(
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "vit_h": Checkpoint(
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
}
_DEPTH_TO_TYPE = {12: "vit_b", 24: "vit_l", 32: "vit_h"}
DECODER_PREFIXES = ("prompt_encoder.", "mask_decoder.")

# segment_anything.build_sam._build_sam: the prompt encoder and mask decoder are the same for
# vit_b, vit_l and vit_h (only the image encoder differs).
REAL_ARCHITECTURE: dict = {
    "img_size": 1024,
    "patch_size": 16,
    "prompt_embed_dim": 256,
    "mask_in_chans": 16,
    "decoder_depth": 2,
    "decoder_mlp_dim": 2048,
    "decoder_num_heads": 8,
    "iou_head_hidden_dim": 256,
    "num_multimask_outputs": 3,
}
MASK_THRESHOLD = 0.0  # Sam.mask_threshold
# Logit given to inside / outside pixels of a mask turned into a mask prompt: the inverse
# sigmoid of 1 - 1e-3 (micro-sam's `_compute_logits_from_mask` does the same), so a pixel
# half covered after the downsampling gets 0, the decoder's threshold.
_MASK_PROMPT_EPS = 1e-3
# Bytes of float mask logits upsampled at once (100 boxes on a 12 MP photo stay in memory).
_POSTPROCESS_BYTES = 64 * 1024 * 1024
# Boxes per mask-decoder call. The decoder holds ~27 MB of activations per box of vit_b (the
# embedding is copied per box, then upscaled to 256² with 32 channels), so on a CPU server 4
# boxes at a time keep 200 boxes under +500 MB RSS (bench/sam_boxes.py) and are not slower;
# a GPU takes 32.
DEFAULT_BOX_CHUNK = {"cuda": 32, "cpu": 4}


# ------------------------------------------------------------------------------ checkpoints


def how_to_provide(name: str) -> str:
    official = CHECKPOINTS.get(name)
    where = f" (the official one is {official.url})" if official else ""
    return (
        f"Give the path of a segment-anything {name} checkpoint{where}, or its http(s) URL to "
        f"download it once into the cache."
    )


def check_model_name(name: str) -> None:
    if name not in CHECKPOINTS:
        raise ModelLoadError(f'Unknown segmenter "{name}": use one of {", ".join(CHECKPOINTS)}.')


def sam_type_of(state: dict) -> str | None:
    """vit_b / vit_l / vit_h from the number of image-encoder blocks in a state_dict."""
    blocks = {
        key.split(".")[2]
        for key in state
        if isinstance(key, str) and key.startswith("image_encoder.blocks.") and key.count(".") > 2
    }
    return _DEPTH_TO_TYPE.get(len(blocks))


def read_checkpoint(path: Path, name: str, *, mmap: bool = False) -> dict:
    """The state_dict in a SAM checkpoint file (ModelLoadError when it is not one).

    With `mmap`, tensors are memory-mapped from the file and only read when used (falls back to a
    plain read for files in the legacy, non-zip format)."""
    import torch

    state = None
    if mmap:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            state = None
    if state is None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ModelLoadError(
                f"SAM checkpoint {path} could not be read as PyTorch weights "
                f"({type(error).__name__}: {str(error)[:300]}). {how_to_provide(name)}"
            ) from error
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not any(str(key).startswith("image_encoder.") for key in state):
        raise ModelLoadError(
            f"{path} is not a Segment Anything checkpoint (no image_encoder weights). {how_to_provide(name)}"
        )
    found = sam_type_of(state)
    if found is not None and found != name:
        raise ModelLoadError(
            f"{path} holds {found} weights but the segmenter asked for is {name}: "
            f"choose the {found} segmenter or give a {name} checkpoint."
        )
    return state


def build_prompt_encoder(arch: dict) -> PromptEncoder:
    from segment_anything.modeling import PromptEncoder

    img_size, grid = int(arch["img_size"]), int(arch["img_size"]) // int(arch["patch_size"])
    return PromptEncoder(
        embed_dim=int(arch["prompt_embed_dim"]),
        image_embedding_size=(grid, grid),
        input_image_size=(img_size, img_size),
        mask_in_chans=int(arch["mask_in_chans"]),
    )


def build_mask_decoder(arch: dict) -> MaskDecoder:
    from segment_anything.modeling import MaskDecoder, TwoWayTransformer

    embed_dim = int(arch["prompt_embed_dim"])
    return MaskDecoder(
        num_multimask_outputs=int(arch["num_multimask_outputs"]),
        transformer=TwoWayTransformer(
            depth=int(arch["decoder_depth"]),
            embedding_dim=embed_dim,
            mlp_dim=int(arch["decoder_mlp_dim"]),
            num_heads=int(arch["decoder_num_heads"]),
        ),
        transformer_dim=embed_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=int(arch["iou_head_hidden_dim"]),
    )


def load_on_meta(build: Callable[[], Any], state: dict, *, misfit: str, source: str, finish=None) -> Any:
    """The module `build()` makes, built on the meta device (no random initialisation to throw
    away) with the tensors of `state` assigned in, in eval mode. `misfit` starts the
    ModelLoadError raised when they do not fit; `finish(module)` may set what no state_dict
    holds before every tensor is checked to be set."""
    import torch

    with torch.device("meta"):
        module = build()
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ModelLoadError(f"{misfit}: {str(error)[:500]}") from error
    if finish is not None:
        finish(module)
    leftovers = [key for key, value in [*module.named_parameters(), *module.named_buffers()] if value.is_meta]
    if leftovers:  # e.g. a segment-anything version with tensors this code does not know of
        raise ModelLoadError(f"{source}: tensors not set by the checkpoint: {', '.join(leftovers[:5])}")
    return module.eval()


def load_decoder_modules(arch: dict, state: dict, *, source: str) -> tuple[PromptEncoder, MaskDecoder]:
    """PromptEncoder and MaskDecoder of `arch` with the `prompt_encoder.*` / `mask_decoder.*`
    tensors of `state` (copied: a memory-mapped file is not kept open)."""
    modules = []
    for prefix, build in (("prompt_encoder.", build_prompt_encoder), ("mask_decoder.", build_mask_decoder)):
        part = {key[len(prefix) :]: value.clone() for key, value in state.items() if key.startswith(prefix)}
        misfit = f"{source}: the {prefix[:-1]} weights do not fit SAM's architecture"
        modules.append(load_on_meta(lambda build=build: build(arch), part, misfit=misfit, source=source))
    return modules[0], modules[1]


# -------------------------------------------------------------------------- out of memory


def release_freed_memory() -> None:
    """Give the memory that torch freed back to the OS (glibc's malloc_trim; nothing elsewhere).

    Between decoder chunks the freed activations sit in malloc's heap between the masks kept
    for the caller, and the process's RSS keeps them all (+230 MB over 200 boxes in chunks of 4
    without it, bench/sam_boxes.py)."""
    import ctypes
    import ctypes.util

    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


def run_in_chunks(
    run: Callable[[int, int], list], total: int, *, chunk_size: int, what: str, device: str = "cpu"
) -> list:
    """`run(start, stop)` over [0, total) in chunks of at most `chunk_size`; on an out-of-memory
    error the chunk that failed is halved (and stays that small) down to 1, then InferenceError says so."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    results: list = []
    size, start = chunk_size, 0
    while start < total:
        stop = min(total, start + size)
        try:
            part = run(start, stop)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            if str(device).startswith("cuda"):
                free_accelerator_memory()
            if size == 1:
                raise InferenceError(f"{what}: out of memory even one at a time ({error})") from error
            size = max(1, (stop - start) // 2)
            continue
        results.extend(part)
        start = stop
        if start < total and not str(device).startswith("cuda"):
            release_freed_memory()
    return results


# ------------------------------------------------------------------------------- decoding


def upscale_logits(low_res, input_size: tuple[int, int], original_size: tuple[int, int], img_size: int):
    """Sam.postprocess_masks exactly: 256² logits → img_size² → crop the padding → image size.

    (One interpolation of the covering part straight to the image size samples the same points
    but differs by up to ~4 logits where SAM's second step straddles a low-res knot, IoU ~0.985
    on random-weight masks, for ~1 ms saved: not worth leaving SAM's output.)"""
    import torch.nn.functional as F

    masks = F.interpolate(low_res, (img_size, img_size), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)


def upscale_logits_cpu(
    low_res: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int], img_size: int
) -> np.ndarray:
    """`upscale_logits` of one (S, S) float32 mask on the CPU with OpenCV: the same bilinear
    sampling (half-pixel centres, no antialiasing) within float rounding (~1e-4 of the logits),
    ~5x faster than torch here, and on the calling thread alone, so it does not wait for the
    cores that onnxruntime's thread pool keeps spinning on for a moment after each run."""
    import cv2

    masks = cv2.resize(low_res, (img_size, img_size), interpolation=cv2.INTER_LINEAR)
    masks = masks[: input_size[0], : input_size[1]]
    return cv2.resize(masks, (original_size[1], original_size[0]), interpolation=cv2.INTER_LINEAR)


class SamDecoder:
    """SAM's prompt encoder and mask decoder. Thread-safe: calls on one instance run one at a time."""

    def __init__(
        self,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        *,
        img_size: int,
        name: str,
        device: str = "cpu",
        checkpoint: Path | None = None,
    ) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide

        self.name = name
        self.device = device
        self.img_size = int(img_size)
        self.prompt_encoder = prompt_encoder.to(device).eval()
        self.mask_decoder = mask_decoder.to(device).eval()
        self.transform = ResizeLongestSide(self.img_size)
        self.mask_threshold = MASK_THRESHOLD
        self.checkpoint = checkpoint  # where the weights came from (names the ONNX export)
        self.onnx = None  # an inference.models.sam_onnx.OnnxDecoder once `attach_onnx` succeeded
        self._lock = threading.Lock()
        self._pe = None

    @classmethod
    def load(cls, name: str, *, checkpoint: str | Path, device: str = "cpu") -> SamDecoder:
        """The decoder of SAM `name` ("vit_b", "vit_l" or "vit_h") from a LOCAL .pth checkpoint,
        without ever building the image encoder or reading its weights. Every failure raises
        ModelLoadError."""

        check_model_name(name)
        resolved_device = pick_device(device)
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f'Checkpoint for the segmenter "{name}" not found: {path} '
                f"{'is a folder' if path.is_dir() else 'does not exist'}. {how_to_provide(name)}"
            )
        state = read_checkpoint(path, name, mmap=True)
        prompt_encoder, mask_decoder = load_decoder_modules(REAL_ARCHITECTURE, state, source=str(path))
        del state
        return cls(
            prompt_encoder,
            mask_decoder,
            img_size=REAL_ARCHITECTURE["img_size"],
            name=name,
            device=resolved_device,
            checkpoint=path,
        )

    def export_onnx(self, folder: Path) -> Path | None:
        """Write this decoder's ONNX graph into `folder` unless it is there already (a worker
        does it when it loads SAM, so that web processes find it ready); None when it cannot
        (no onnx installed, no checkpoint file known). Errors other than a missing package raise."""
        import copy

        if self.checkpoint is None or not sam_onnx.onnxruntime_available():
            return None
        path = sam_onnx.graph_path(Path(folder), self.name, self.checkpoint)
        if path.is_file():
            return path
        with self._lock:
            prompt_encoder, mask_decoder = self.prompt_encoder, self.mask_decoder
            if not str(self.device).startswith("cpu"):
                prompt_encoder = copy.deepcopy(prompt_encoder).cpu()
                mask_decoder = copy.deepcopy(mask_decoder).cpu()
            return sam_onnx.export_graph(prompt_encoder, mask_decoder, self.img_size, path)

    def attach_onnx(self, folder: Path, *, threads: int = 0) -> bool:
        """Run clicks (`mask_from_prompts`) through onnxruntime from now on: the decoder is
        exported into `folder` once per checkpoint (inference.models.sam_onnx). Only on the CPU and
        when onnx / onnxruntime are installed; on any failure the torch modules stay in use
        (logged). Returns whether onnxruntime is in use."""

        if self.onnx is not None:
            return True
        if not str(self.device).startswith("cpu") or self.checkpoint is None:
            return False
        if not sam_onnx.onnxruntime_available():
            log.warning("onnxruntime is not installed: SAM clicks run on the torch decoder")
            return False
        try:
            with self._lock:
                self.onnx = sam_onnx.prepare(
                    self.prompt_encoder,
                    self.mask_decoder,
                    img_size=self.img_size,
                    name=self.name,
                    checkpoint=self.checkpoint,
                    folder=Path(folder),
                    threads=threads,
                )
        except Exception:
            log.exception("the ONNX export of the SAM %s decoder failed: clicks run on torch", self.name)
            self.onnx = None
        return self.onnx is not None

    # ------------------------------------------------------------------------------ helpers

    @property
    def default_box_chunk(self) -> int:
        return DEFAULT_BOX_CHUNK["cuda" if str(self.device).startswith("cuda") else "cpu"]

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution mask logits (256 for the real models)."""
        return 4 * int(self.prompt_encoder.image_embedding_size[0])

    def _features(self, embedding: ImageEmbedding):
        import torch

        features = np.asarray(embedding.features)
        grid = tuple(self.prompt_encoder.image_embedding_size)
        expected = (1, int(self.prompt_encoder.embed_dim), *grid)
        if tuple(features.shape) != expected:
            raise ValueError(
                f"an embedding of shape {tuple(features.shape)} does not fit the segmenter {self.name} "
                f"(it expects {expected}): was it made by another model?"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        return tensor.to(self.device)

    def _dense_pe(self):
        """The decoder's positional encoding: fixed for a model, so computed once, not per click."""
        if self._pe is None:
            self._pe = self.prompt_encoder.get_dense_pe()
        return self._pe

    @staticmethod
    def _sizes(embedding: ImageEmbedding) -> tuple[tuple[int, int], tuple[int, int]]:
        original = (int(embedding.original_size[0]), int(embedding.original_size[1]))
        return original, (int(embedding.input_size[0]), int(embedding.input_size[1]))

    def _mask_prompt(self, mask_input: Any):
        import torch

        side = self.low_res_size
        array = np.asarray(mask_input, dtype=np.float32)
        if array.ndim == 2:
            array = array[None]
        if array.shape != (1, side, side):
            raise ValueError(
                f"mask_input must be ({side}, {side}) or (1, {side}, {side}) logits, got {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError("mask_input holds NaN or infinite values")
        return torch.from_numpy(np.ascontiguousarray(array))[None].to(self.device)  # (1, 1, side, side)

    def mask_input_from_mask(self, embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
        """A (256, 256) float32 logits prompt, in SAM's input frame, from a full-resolution binary
        mask of the embedding's image (an annotation to refine): the mask is resized like the
        image (long side to 1024), padded to 1024², averaged down to 256², and each pixel's
        coverage p turned into the logit log(p / (1 - p)), clipped to ±6.9 (p in [1e-3, 1 - 1e-3])."""
        import torch
        import torch.nn.functional as F

        original, input_size = self._sizes(embedding)
        array = np.asarray(mask)
        if array.shape != original:
            raise ValueError(f"mask of shape {array.shape} for an image of size {original}")
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
            resized = F.interpolate(tensor, input_size, mode="bilinear", align_corners=False)
            padded = F.pad(resized, (0, self.img_size - input_size[1], 0, self.img_size - input_size[0]))
            side = self.low_res_size
            coverage = F.adaptive_avg_pool2d(padded, (side, side))[0, 0]
            coverage = coverage.clamp(_MASK_PROMPT_EPS, 1.0 - _MASK_PROMPT_EPS)
            logits = torch.log(coverage / (1.0 - coverage))
        return logits.numpy().astype(np.float32)

    # -------------------------------------------------------------------------------- masks

    def mask_from_prompts(
        self,
        embedding: ImageEmbedding,
        *,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
        mask_input: np.ndarray | None = None,
    ) -> MaskPrediction:
        """The mask for clicks (x, y) labelled 1 (object) or 0 (background), a box (x, y, w, h)
        and/or `mask_input` (the `low_res_logits` of the previous click on the same object, or
        `mask_input_from_mask` of an annotation being refined).

        A single point alone is ambiguous: SAM proposes three masks and the one with the highest
        predicted IoU is returned. With several points, a box or a mask input SAM gives one mask
        (its authors' advice). The score is SAM's predicted IoU, clamped to [0, 1].
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
        multimask = len(coords) == 1 and box is None and mask_input is None
        original_size, input_size = self._sizes(embedding)
        with self._lock, torch.inference_mode():
            features = self._features(embedding)
            masks_prompt = self._mask_prompt(mask_input) if mask_input is not None else None
            scaled = None
            if coords:
                scaled = self.transform.apply_coords(np.array(coords, dtype=np.float64), original_size)
            scaled_box = None
            if box_xyxy is not None:
                scaled_box = self.transform.apply_boxes(box_xyxy, original_size)
            decode = self._decode_onnx if self.onnx is not None else self._decode_torch
            low_res, scores = decode(features, scaled, point_labels, scaled_box, masks_prompt, multimask)
            best = int(np.argmax(scores))
            low_res_logits = low_res[0, best].to("cpu", torch.float32).numpy().copy()
            logits = upscale_logits_cpu(low_res_logits, input_size, original_size, self.img_size)
            mask = logits > self.mask_threshold
        return MaskPrediction(
            mask=mask,
            score=float(np.clip(scores[best], 0.0, 1.0)),
            box=mask_box(mask),
            low_res_logits=low_res_logits,
        )

    def _decode_torch(self, features, coords, labels, box, masks_prompt, multimask):
        """The candidate masks (1, 3 or 1, S, S) of one prompt set and their predicted IoU (3 or 1,)."""
        import torch

        point_prompt = None
        if coords is not None:
            point_prompt = (
                torch.as_tensor(coords, dtype=torch.float, device=self.device)[None],
                torch.as_tensor(labels, dtype=torch.int, device=self.device)[None],
            )
        box_prompt = None if box is None else torch.as_tensor(box, dtype=torch.float, device=self.device)
        low_res, iou = self._decode(
            features, points=point_prompt, boxes=box_prompt, masks=masks_prompt, multimask=multimask
        )
        return low_res, iou[0].to("cpu", torch.float32).numpy()

    def _decode(self, features, *, points=None, boxes=None, masks=None, multimask: bool):
        """PromptEncoder then MaskDecoder, as SamPredictor.predict_torch calls them: the low-res
        masks (N, 1 or 3, S, S) and their predicted IoU (N, 1 or 3), as tensors."""
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.mask_decoder(
            image_embeddings=features,
            image_pe=self._dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    def _decode_onnx(self, features, coords, labels, box, masks_prompt, multimask):
        """The same through onnxruntime: points as PromptEncoder embeds them (a padding point
        when there is no box, the box as two corner points labelled 2 and 3); of the four
        masks, 1-3 are the multimask candidates and 0 the single mask (MaskDecoder.forward)."""
        import torch

        points = [] if coords is None else [np.asarray(coords, dtype=np.float32).reshape(-1, 2)]
        point_labels = [np.asarray(labels, dtype=np.float32)] if coords is not None else []
        if box is None:
            points.append(np.zeros((1, 2), np.float32))
            point_labels.append(np.array([-1.0], np.float32))
        else:
            points.append(np.asarray(box, dtype=np.float32).reshape(2, 2))
            point_labels.append(np.array([2.0, 3.0], np.float32))
        mask = None if masks_prompt is None else masks_prompt.cpu().numpy()
        low_res, iou = self.onnx.run(
            features.cpu().numpy(),
            np.concatenate(points),
            np.concatenate(point_labels),
            mask,
            self.low_res_size,
        )
        picked = slice(1, None) if multimask else slice(0, 1)
        return torch.from_numpy(np.ascontiguousarray(low_res[:, picked])), iou[0, picked]

    def masks_for_boxes(
        self,
        embedding: ImageEmbedding,
        boxes_xywh: Sequence[Sequence[float]],
        *,
        chunk_size: int | None = None,
    ) -> list[MaskPrediction]:
        """One mask per box (x, y, w, h): SamPredictor.predict_torch(boxes=..., multimask_output=False)
        on at most `chunk_size` boxes per decoder call (default: DEFAULT_BOX_CHUNK for the
        device, 32 on a GPU, 4 on a CPU); on out-of-memory the chunk is halved down to one box,
        then InferenceError."""
        import torch

        boxes = [tuple(float(v) for v in box) for box in boxes_xywh]
        if not boxes:
            return []
        if any(len(box) != 4 for box in boxes):
            raise ValueError("boxes must be (x, y, w, h)")
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=np.float64)
        original_size, input_size = self._sizes(embedding)
        with self._lock, torch.inference_mode():
            features = self._features(embedding)
            scaled_all = self.transform.apply_boxes(xyxy, original_size)

            def decode(start: int, stop: int) -> list[MaskPrediction]:
                box_tensor = torch.as_tensor(scaled_all[start:stop], dtype=torch.float, device=self.device)
                low_res, iou = self._decode(features, boxes=box_tensor, multimask=False)
                scores = iou[:, 0].to("cpu", torch.float32).numpy()
                height, width = original_size
                per_mask = 4 * (height * width + self.img_size**2)
                step = max(1, _POSTPROCESS_BYTES // per_mask)
                masks: list[np.ndarray] = []
                for first in range(0, stop - start, step):
                    logits = upscale_logits(
                        low_res[first : first + step], input_size, original_size, self.img_size
                    )
                    masks.extend((logits[:, 0] > self.mask_threshold).cpu().numpy())
                    del logits
                return [
                    MaskPrediction(mask=mask, score=float(np.clip(score, 0.0, 1.0)), box=mask_box(mask))
                    for mask, score in zip(masks, scores, strict=True)
                ]

            return run_in_chunks(
                decode,
                len(boxes),
                chunk_size=chunk_size or self.default_box_chunk,
                what=f"SAM mask decoder ({len(boxes)} boxes)",
                device=self.device,
            )
