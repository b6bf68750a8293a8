"""The decoder-only SAM (prompt encoder + mask decoder) and the web's click segmenter (tiny SAM)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from skimage import data

from inference import registry
from inference.errors import InferenceError, ModelLoadError
from inference.models import tiny_sam
from inference.models.sam import SamSegmenter
from inference.models.sam_decoder import SamDecoder

CLICKS = [
    {"points": [(150.0, 120.0)], "labels": [1]},
    {"points": [(150.0, 120.0), (400.0, 300.0), (50.0, 50.0)], "labels": [1, 0, 1]},
    {"points": [(300.0, 200.0)], "labels": [1], "box": (250, 100, 300, 250)},
    {"box": (40, 30, 200, 160)},
]


@pytest.fixture(scope="module")
def segmenter(tiny_sam_dir) -> SamSegmenter:
    return tiny_sam.load_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")


@pytest.fixture(scope="module")
def embedding(segmenter):
    return segmenter.embed(data.coffee())


@pytest.fixture
def no_image_encoder(monkeypatch):
    """Building segment-anything's image encoder fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("the image encoder was built")

    monkeypatch.setattr(ImageEncoderViT, "__init__", refuse)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_the_decoder_loads_without_building_the_image_encoder(tiny_sam_dir, segmenter, no_image_encoder):
    decoder = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")

    modules = [*decoder.prompt_encoder.modules(), *decoder.mask_decoder.modules()]
    assert not any(isinstance(module, ImageEncoderViT) for module in modules)
    assert not hasattr(decoder, "model")
    own = {name: p for part in ("prompt_encoder", "mask_decoder") for name, p in _named(decoder, part)}
    full = {name: p for name, p in segmenter.model.named_parameters()}
    # Exactly the decoder's parameters of the whole SAM, with the same values.
    assert own.keys() == {name for name in full if not name.startswith("image_encoder.")}
    assert all(torch.equal(own[name], full[name]) for name in own)


def _named(decoder: SamDecoder, part: str):
    return [(f"{part}.{name}", p) for name, p in getattr(decoder, part).named_parameters()]


@pytest.mark.parametrize("prompts", CLICKS, ids=["point", "points", "point-and-box", "box"])
def test_the_decoder_gives_the_masks_of_the_whole_segmenter(tiny_sam_dir, segmenter, embedding, prompts):
    decoder = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")

    alone = decoder.mask_from_prompts(embedding, **prompts)
    whole = segmenter.mask_from_prompts(embedding, **prompts)

    assert np.abs(alone.low_res_logits - whole.low_res_logits).max() < 1e-5
    assert iou(alone.mask, whole.mask) > 0.99
    assert alone.score == pytest.approx(whole.score, abs=1e-5)


def test_the_decoder_refines_with_the_previous_logits_like_the_segmenter(tiny_sam_dir, segmenter, embedding):
    decoder = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")
    first = decoder.mask_from_prompts(embedding, points=[(150.0, 120.0)], labels=[1])
    prompts = {
        "points": [(150.0, 120.0), (420.0, 260.0)],
        "labels": [1, 0],
        "mask_input": first.low_res_logits,
    }

    alone = decoder.mask_from_prompts(embedding, **prompts)
    whole = segmenter.mask_from_prompts(embedding, **prompts)

    assert np.abs(alone.low_res_logits - whole.low_res_logits).max() < 1e-5


def test_the_decoder_decodes_boxes_in_chunks(tiny_sam_dir, segmenter, embedding):
    decoder = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")
    boxes = [(40, 30, 200, 160), (250, 100, 300, 250), (0, 0, 600, 400)]

    chunked = decoder.masks_for_boxes(embedding, boxes, chunk_size=1)
    whole = segmenter.masks_for_boxes(embedding, boxes)

    assert [iou(a.mask, b.mask) > 0.99 for a, b in zip(chunked, whole, strict=True)] == [True] * 3


def test_the_decoder_of_an_unknown_model_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="vit_b, vit_l, vit_h"):
        SamDecoder.load("vit_x", checkpoint=tmp_path)


def test_the_decoder_of_a_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        SamDecoder.load("vit_b", checkpoint=tmp_path / "sam_vit_b_01ec64.pth")


def test_the_decoder_of_a_checkpoint_without_decoder_weights_is_refused(tmp_path):
    path = tmp_path / "sam_vit_b.pth"
    torch.save({f"image_encoder.blocks.{i}.norm1.weight": torch.ones(1) for i in range(12)}, path)

    with pytest.raises(ModelLoadError, match="prompt_encoder weights do not fit"):
        SamDecoder.load("vit_b", checkpoint=path)


# ------------------------------------------------------------------- registry: the web's path


def test_the_click_segmenter_is_decoder_only_and_loaded_once(tmp_path, clean_registry, monkeypatch):
    config = registry.ModelConfig(mode="tiny", models_dir=tmp_path, device="cpu")
    registry.build_tiny_models(config.tiny_dir)  # as `manage.py build_tiny_models` does
    built = []
    real_init = ImageEncoderViT.__init__
    monkeypatch.setattr(
        ImageEncoderViT, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k)
    )

    first = registry.get_click_segmenter(config, "vit_b")
    second = registry.get_click_segmenter(config, "vit_b")

    assert isinstance(first, SamDecoder)
    assert first is second
    assert built == []  # the image encoder was never built in this "web process"
    n_params = sum(p.numel() for p in [*first.prompt_encoder.parameters(), *first.mask_decoder.parameters()])
    whole = registry.get_segmenter(config, "vit_b")  # a worker's: the whole SAM
    assert built == [1]
    assert n_params == sum(
        p.numel() for name, p in whole.model.named_parameters() if not name.startswith("image_encoder.")
    )


def test_the_click_segmenter_never_downloads(tmp_path, clean_registry, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the web process tried to download")

    monkeypatch.setattr("inference.download.fetch_checkpoint", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    config = registry.ModelConfig(mode="real", models_dir=tmp_path, device="cpu")

    with pytest.raises(ModelLoadError) as raised:
        registry.get_click_segmenter(config, "vit_b")

    message = str(raised.value)
    assert "LABELGPT_SAM_CHECKPOINT_VIT_B=/path/to/sam_vit_b_01ec64.pth" in message
    assert "worker" in message
    assert isinstance(raised.value, InferenceError)


def test_the_click_segmenter_with_a_missing_local_checkpoint_names_the_model_and_logs_the_path(
    tmp_path, clean_registry, caplog
):
    missing = tmp_path / "sam_vit_l.pth"
    config = registry.ModelConfig(mode="real", models_dir=tmp_path, sam_checkpoints={"vit_l": str(missing)})

    unavailable = r'The segmenter "vit_l" is not available on this server\.'
    with (
        caplog.at_level(logging.ERROR, logger="inference.registry"),
        pytest.raises(ModelLoadError, match=unavailable),
    ):
        registry.get_click_segmenter(config, "vit_l")

    assert f"{missing} does not exist" in caplog.text  # the reason, for the admin only


# ------------------------------------------------------------------------ onnxruntime backend


@pytest.fixture(scope="module")
def onnx_decoder(tiny_sam_dir, tmp_path_factory) -> SamDecoder:
    decoder = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")
    assert decoder.attach_onnx(tmp_path_factory.mktemp("onnx"))
    return decoder


@pytest.mark.parametrize("prompts", CLICKS, ids=["point", "points", "point-and-box", "box"])
def test_onnxruntime_gives_the_logits_of_sam_predictor(onnx_decoder, segmenter, embedding, prompts):
    from segment_anything import SamPredictor

    reference = SamPredictor(segmenter.model)
    reference.set_image(data.coffee())
    points = prompts.get("points")
    masks, scores, low_res = reference.predict(
        point_coords=np.array(points) if points else None,
        point_labels=np.array(prompts["labels"]) if points else None,
        box=np.array(_xyxy(prompts["box"])) if "box" in prompts else None,
        multimask_output=points is not None and len(points) == 1 and "box" not in prompts,
    )
    best = int(np.argmax(scores))

    prediction = onnx_decoder.mask_from_prompts(embedding, **prompts)

    assert onnx_decoder.onnx is not None
    assert np.abs(prediction.low_res_logits - low_res[best]).max() < 1e-4
    assert iou(prediction.mask, masks[best]) > 0.99
    assert prediction.score == pytest.approx(float(np.clip(scores[best], 0, 1)), abs=1e-4)


def _xyxy(box):
    x, y, w, h = box
    return [x, y, x + w, y + h]


def test_onnxruntime_takes_the_mask_input_like_torch(onnx_decoder, segmenter, embedding):
    first = segmenter.mask_from_prompts(embedding, points=[(150.0, 120.0)], labels=[1])
    mask = np.zeros((400, 600), dtype=bool)
    mask[100:300, 250:550] = True
    for prompts in (
        {"points": [(150.0, 120.0), (420.0, 260.0)], "labels": [1, 0], "mask_input": first.low_res_logits},
        {"box": (250, 100, 300, 200), "mask_input": onnx_decoder.mask_input_from_mask(embedding, mask)},
    ):
        with_onnx = onnx_decoder.mask_from_prompts(embedding, **prompts)
        with_torch = segmenter.mask_from_prompts(embedding, **prompts)
        assert np.abs(with_onnx.low_res_logits - with_torch.low_res_logits).max() < 1e-4
        assert iou(with_onnx.mask, with_torch.mask) > 0.99


def test_the_onnx_export_is_made_once_per_checkpoint(tiny_sam_dir, tmp_path):
    decoder = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")
    folder = tmp_path / "onnx"

    path = decoder.export_onnx(folder)
    stamp = path.stat().st_mtime_ns
    again = tiny_sam.load_click_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu").export_onnx(folder)

    assert again == path and path.stat().st_mtime_ns == stamp
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left behind


def test_the_click_segmenter_runs_on_onnxruntime_unless_told_torch(tmp_path, clean_registry):
    config = registry.ModelConfig(mode="tiny", models_dir=tmp_path, device="cpu")
    registry.build_tiny_models(config.tiny_dir)
    torch_config = registry.ModelConfig(mode="tiny", models_dir=tmp_path, device="cpu", click_backend="torch")

    assert registry.get_click_segmenter(config, "vit_b").onnx is not None
    assert list(config.onnx_dir.glob("*.onnx"))
    assert registry.get_click_segmenter(torch_config, "vit_b").onnx is None


def test_a_worker_exports_the_decoder_for_the_web(tmp_path, clean_registry):
    config = registry.ModelConfig(mode="tiny", models_dir=tmp_path, device="cpu")
    registry.build_tiny_models(config.tiny_dir)

    registry.get_segmenter(config, "vit_b")
    exported = list(config.onnx_dir.glob("*.onnx"))
    decoder = registry.get_click_segmenter(config, "vit_b")

    assert len(exported) == 1
    assert decoder.onnx.path == exported[0]
