"""The registry: a new model family is one module plus one registry entry.

This test module is itself such a family (a detector and a segmenter family: the functions and
CHECKPOINTS at its top level), added to the registry by one entry each; the pipeline then runs
on it through the registry with nothing else changed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference import protocols, registry
from inference.errors import ModelLoadError
from inference.masks import rle_to_mask
from inference.pipeline import BatchImage, DetectParams, prelabel_batch
from inference.prompts import ClassPrompt
from inference.protocols import Checkpoint, Detection, ImageEmbedding, MaskPrediction

# ------------------------------------------------------------------ the family (this module)

CHECKPOINTS = {
    "box_filler": None,
    "box_filler_hub": Checkpoint(url="https://example.invalid/bf.pth", sha256="0" * 64),
}
loads: list[dict] = []


def accepts(source: str) -> bool:
    return source.startswith("fixed-boxes:")


class FixedBoxes:
    """Detects the same boxes in every image (given in the name: "fixed-boxes:x,y,w,h;...")."""

    def __init__(self, source: str) -> None:
        self.name = source
        self.boxes = [tuple(float(v) for v in part.split(",")) for part in source.split(":", 1)[1].split(";")]

    def detect(self, images, prompts, *, box_threshold, text_threshold, keep_threshold, prompt_mode, nms_iou):
        return [[Detection(0, box, 0.9, prompts[0].prompt) for box in self.boxes] for _ in images]


class BoxFiller:
    """A segmenter whose mask of a box is the box itself."""

    def __init__(self, name: str) -> None:
        self.name = name

    def embed(self, image) -> ImageEmbedding:
        return self.embed_batch([image])[0]

    def embed_batch(self, images, *, batch_size=None) -> list[ImageEmbedding]:
        sizes = [(image.height, image.width) for image in images]
        return [ImageEmbedding(np.zeros((1, 1, 1, 1), np.float32), size, size) for size in sizes]

    def masks_for_boxes(self, embedding, boxes_xywh: Sequence[Sequence[float]], *, chunk_size=None):
        predictions = []
        for x, y, w, h in boxes_xywh:
            mask = np.zeros(embedding.original_size, dtype=bool)
            mask[int(y) : int(y + h), int(x) : int(x + w)] = True
            predictions.append(MaskPrediction(mask=mask, score=1.0, box=(int(x), int(y), int(w), int(h))))
        return predictions

    def mask_from_prompts(self, embedding, *, points=(), labels=(), box=None, mask_input=None):
        return self.masks_for_boxes(embedding, [box])[0]

    def mask_input_from_mask(self, embedding, mask):
        return np.asarray(mask, dtype=np.float32)

    def export_onnx(self, folder: Path) -> None:
        return None

    def attach_onnx(self, folder: Path) -> bool:
        return False


def load_detector(source: str, *, device: str, dtype: str) -> FixedBoxes:
    return FixedBoxes(source)


def load_segmenter(name, *, checkpoint, device, cache_dir, sha256=None) -> BoxFiller:
    loads.append({"name": name, "checkpoint": checkpoint, "sha256": sha256, "decoder_only": False})
    return BoxFiller(name)


def load_click_segmenter(name, *, checkpoint, device) -> BoxFiller:
    loads.append({"name": name, "checkpoint": checkpoint, "decoder_only": True})
    return BoxFiller(name)


# ---------------------------------------------------------------------------------- tests


@pytest.fixture
def with_this_family(monkeypatch, clean_registry):
    """The one registry entry each (the detector family first: Grounding DINO takes any name)."""
    monkeypatch.setattr(registry, "DETECTOR_FAMILIES", (__name__, *registry.DETECTOR_FAMILIES))
    monkeypatch.setattr(registry, "SEGMENTER_FAMILIES", (*registry.SEGMENTER_FAMILIES, __name__))
    loads.clear()


def test_a_new_family_is_offered_and_loaded_through_the_registry(with_this_family, tmp_path):
    weights = tmp_path / "box_filler.bin"
    config = registry.ModelConfig(
        mode="real", models_dir=tmp_path, sam_checkpoints={"box_filler": str(weights)}
    )

    segmenter = registry.get_segmenter(config, "box_filler")
    click = registry.get_click_segmenter(config, "box_filler")

    assert registry.segmenter_names() == ["box_filler", "box_filler_hub", "vit_b", "vit_h", "vit_l"]
    assert isinstance(segmenter, BoxFiller) and isinstance(click, BoxFiller)
    assert registry.get_segmenter(config, "box_filler") is segmenter  # loaded once
    assert loads == [
        {"name": "box_filler", "checkpoint": str(weights), "sha256": None, "decoder_only": False},
        {"name": "box_filler", "checkpoint": weights, "decoder_only": True},
    ]
    assert registry.segmenter_cache_name(config, "box_filler").startswith("box_filler-")


def test_the_official_checkpoint_of_a_new_family_comes_with_its_sha256(with_this_family, tmp_path):
    config = registry.ModelConfig(mode="real", models_dir=tmp_path)

    registry.get_segmenter(config, "box_filler_hub")

    assert loads == [
        {
            "name": "box_filler_hub",
            "checkpoint": "https://example.invalid/bf.pth",
            "sha256": "0" * 64,
            "decoder_only": False,
        }
    ]


def test_the_pipeline_runs_a_new_family_from_the_registry(with_this_family, tmp_path):
    config = registry.ModelConfig(mode="real", models_dir=tmp_path, sam_checkpoints={"box_filler": "x.bin"})
    detector = registry.get_detector(config, "fixed-boxes:10,20,30,40;50,5,20,10")
    segmenter = registry.get_segmenter(config, "box_filler")
    image = BatchImage(image=Image.new("RGB", (100, 80)), sha256="ab" * 32)
    params = DetectParams(
        box_threshold=0.35, text_threshold=0.25, keep_threshold=0.1, min_area=1, hole_area=0
    )

    (result,) = prelabel_batch(
        [image], [ClassPrompt(name="cat", prompt="cat")], params, detector=detector, segmenter=segmenter
    )

    assert result.error == ""
    assert [p.box for p in result.proposals] == [(10.0, 20.0, 30.0, 40.0), (50.0, 5.0, 20.0, 10.0)]
    assert [int(rle_to_mask(p.mask).sum()) for p in result.proposals] == [1200, 200]


def test_an_unknown_segmenter_lists_every_family_s_names(with_this_family, tmp_path):
    config = registry.ModelConfig(mode="real", models_dir=tmp_path)

    with pytest.raises(ModelLoadError, match="use one of box_filler, box_filler_hub, vit_b, vit_h, vit_l"):
        registry.get_segmenter(config, "sam2_hiera_l")


def test_tiny_mode_loads_the_tiny_sam_for_any_name(tmp_path, clean_registry):
    config = registry.ModelConfig(mode="tiny", models_dir=tmp_path, device="cpu", click_backend="torch")

    segmenter = registry.get_segmenter(config, "vit_h")

    assert segmenter.name == "tiny"
    assert registry.segmenter_cache_name(config, "vit_h") == "tiny"
    assert (tmp_path / "tiny" / "sam").is_dir() and (tmp_path / "tiny" / "grounding-dino").is_dir()


# The families in the registry implement the protocols (names of parameters and keywords) ----------


def _parameters(function) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(function).parameters.items() if name != "self"}


def _check_implements(implementation, protocol) -> None:
    members = [name for name in vars(protocol) if not name.startswith("_")]
    for name in members:
        if not callable(vars(protocol)[name]):
            continue
        wanted, offered = _parameters(vars(protocol)[name]), _parameters(getattr(implementation, name))
        for parameter in wanted.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # **options: Unpack[SomeTypedDict]
                typed_dict = getattr(
                    protocols, parameter.annotation.removeprefix("Unpack[").removesuffix("]")
                )
                assert set(typed_dict.__annotations__) <= set(offered), (implementation, name)
            else:
                assert parameter.name in offered, (implementation, name, parameter.name)
        accepted = {p.name for p in wanted.values()} | {
            key
            for p in wanted.values()
            if p.kind is inspect.Parameter.VAR_KEYWORD
            for key in getattr(
                protocols, p.annotation.removeprefix("Unpack[").removesuffix("]")
            ).__annotations__
        }
        required = {p.name for p in offered.values() if p.default is inspect.Parameter.empty}
        assert required <= accepted, (implementation, name, required - accepted)


@pytest.mark.parametrize(
    ("implementation", "protocol"),
    [
        ("inference.models.grounding_dino", protocols.DetectorFamily),
        ("inference.models.grounding_dino:GroundingDinoDetector", protocols.Detector),
        ("inference.models.sam3", protocols.DetectorFamily),
        ("inference.models.sam3:Sam3Detector", protocols.Detector),
        ("inference.models.sam", protocols.SegmenterFamily),
        ("inference.models.tiny_sam", protocols.SegmenterFamily),
        ("inference.models.sam:SamSegmenter", protocols.Segmenter),
        ("inference.models.sam:SamSegmenter", protocols.PromptMasks),
        ("inference.models.sam_decoder:SamDecoder", protocols.ClickSegmenter),
        ("inference.models.sam_decoder:SamDecoder", protocols.PromptMasks),
    ],
)
def test_the_families_implement_the_protocols(implementation, protocol):
    module, _, attribute = implementation.partition(":")
    target = importlib.import_module(module)
    target = getattr(target, attribute) if attribute else target

    _check_implements(target, protocol)
