"""SAM's prompt encoder + mask decoder exported to ONNX and run with onnxruntime.

On a 2-core CPU onnxruntime runs the vit_b decoder about twice as fast as eager PyTorch, with
the same logits (within 1e-6): see bench/click.py and bench/README.md. `SamDecoder` uses it for
clicks when `attach_onnx` succeeded, and falls back to its torch modules otherwise.

The graph is segment-anything's own `SamOnnxModel` minus the mask postprocessing and the mask
selection (those stay in SamDecoder, shared with the torch path): inputs are the image
embedding, the prompt points in SAM's 1024 frame with their labels (1 object, 0 background,
-1 padding, 2 / 3 box corners, exactly as PromptEncoder embeds them), a low-res mask input and
a has-mask flag; outputs are the four low-res masks and their predicted IoU.

The export (~2 s) is made once per checkpoint into `<models_dir>/onnx/`, named after the
checkpoint file's identity (path, size, modification time) and this module's graph version, by
whichever process needs it first (a worker loading SAM, or the web process on its first
click), written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segment_anything.modeling import MaskDecoder, PromptEncoder

log = logging.getLogger(__name__)

GRAPH_VERSION = 1
OPSET = 17
INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def graph_path(folder: Path, name: str, checkpoint: str | Path) -> Path:
    """Where the ONNX decoder of `checkpoint` lives in `folder` (a new name when the file changes)."""
    source = Path(checkpoint).expanduser().resolve()
    stat = source.stat() if source.is_file() else None
    identity = f"{source}|{stat.st_size if stat else 0}|{stat.st_mtime_ns if stat else 0}|v{GRAPH_VERSION}"
    if source.is_dir():  # the tiny model: a folder holding sam_tiny.pth
        weights = next(iter(sorted(source.glob("*.pth"))), None)
        if weights is not None:
            wstat = weights.stat()
            identity += f"|{weights.name}|{wstat.st_size}|{wstat.st_mtime_ns}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(folder) / f"sam-{name}-decoder-{digest}.onnx"


def _graph_module(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, img_size: int):
    import torch

    class ClickGraph(torch.nn.Module):
        """SamOnnxModel's prompt embedding and decoder call (segment_anything.utils.onnx)."""

        def __init__(self) -> None:
            super().__init__()
            self.prompt_encoder = prompt_encoder
            self.mask_decoder = mask_decoder

        def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
            pe = self.prompt_encoder
            coords = (point_coords + 0.5) / img_size
            points = pe.pe_layer._pe_encoding(coords)
            labels = point_labels.unsqueeze(-1).expand_as(points)
            points = points * (labels != -1)
            points = points + pe.not_a_point_embed.weight * (labels == -1)
            for i in range(pe.num_point_embeddings):
                points = points + pe.point_embeddings[i].weight * (labels == i)
            dense = has_mask_input * pe.mask_downscaling(mask_input)
            dense = dense + (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
            return self.mask_decoder.predict_masks(
                image_embeddings=image_embeddings,
                image_pe=pe.get_dense_pe(),
                sparse_prompt_embeddings=points,
                dense_prompt_embeddings=dense,
            )

    return ClickGraph().eval()


def export_graph(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, img_size: int, path: Path) -> Path:
    """Write the ONNX graph of these modules to `path` (atomically); returns `path`."""
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _graph_module(prompt_encoder, mask_decoder, img_size)
    grid = tuple(int(v) for v in prompt_encoder.image_embedding_size)
    side = 4 * grid[0]
    example = (
        torch.zeros(1, int(prompt_encoder.embed_dim), *grid),
        torch.zeros(1, 2, 2),
        torch.tensor([[1.0, -1.0]]),
        torch.zeros(1, 1, side, side),
        torch.zeros(1),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about python floats in the graph
            torch.onnx.export(
                module,
                example,
                tmp,
                input_names=list(INPUTS),
                output_names=["low_res_masks", "iou_predictions"],
                dynamic_axes={"point_coords": {1: "points"}, "point_labels": {1: "points"}},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class OnnxDecoder:
    """An onnxruntime session over the exported graph (thread-safe: onnxruntime's `run` is)."""

    def __init__(self, path: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(
        self,
        features: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
        side: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(low-res masks (1, 4, side, side), predicted IoU (1, 4)) as float32 arrays."""
        feeds = {
            "image_embeddings": np.ascontiguousarray(features, dtype=np.float32),
            "point_coords": np.ascontiguousarray(coords, dtype=np.float32)[None],
            "point_labels": np.ascontiguousarray(labels, dtype=np.float32)[None],
            "mask_input": (
                np.zeros((1, 1, side, side), np.float32)
                if mask_input is None
                else np.ascontiguousarray(mask_input, dtype=np.float32).reshape(1, 1, side, side)
            ),
            "has_mask_input": np.array([0.0 if mask_input is None else 1.0], np.float32),
        }
        low_res, iou = self.session.run(None, feeds)
        return low_res, iou


def prepare(
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    *,
    img_size: int,
    name: str,
    checkpoint: str | Path,
    folder: Path,
    threads: int = 0,
) -> OnnxDecoder:
    """The onnxruntime decoder for `checkpoint`, exported into `folder` first when not there."""
    path = graph_path(folder, name, checkpoint)
    if not path.is_file():
        log.info("exporting the SAM %s decoder to %s (once per checkpoint)", name, path)
        export_graph(prompt_encoder, mask_decoder, img_size, path)
    return OnnxDecoder(path, threads=threads)
