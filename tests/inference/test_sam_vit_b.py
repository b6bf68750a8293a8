"""Real-size SAM vit_b (random weights) through the project's own loaders, against SamPredictor.

The image encoder is never run: the decoder works on a random (1, 256, 64, 64) embedding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor, sam_model_registry
from segment_anything.modeling import ImageEncoderViT
from segment_anything.utils.transforms import ResizeLongestSide

from inference import registry
from inference.models.sam import SamSegmenter
from inference.models.sam_decoder import SamDecoder
from inference.protocols import ImageEmbedding

pytestmark = pytest.mark.slow

ORIGINAL = (800, 1333)
PROMPTS = [
    {"points": [(400.0, 300.0)], "labels": [1]},
    {"points": [(400.0, 300.0), (900.0, 500.0), (100.0, 700.0)], "labels": [1, 0, 1]},
    {"points": [(600.0, 400.0)], "labels": [1], "box": (300, 200, 600, 400)},
    {"box": (50, 60, 500, 300)},
]
BOXES = [(50, 60, 500, 300), (300, 200, 600, 400), (0, 0, 1333, 800), (1000, 600, 200, 150), (10, 10, 40, 30)]


@pytest.fixture(scope="session")
def vit_b(tmp_path_factory):
    """A random vit_b written as a checkpoint once per session, and the model that wrote it."""
    path = tmp_path_factory.mktemp("sam-vit-b") / "sam_vit_b_random.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = sam_model_registry["vit_b"](checkpoint=None).eval()
    torch.save(sam.state_dict(), path)
    return path, sam


@pytest.fixture(scope="session")
def embedding() -> ImageEmbedding:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
    return ImageEmbedding(features, ORIGINAL, ResizeLongestSide.get_preprocess_shape(*ORIGINAL, 1024))


@pytest.fixture(scope="session")
def reference(vit_b, embedding) -> SamPredictor:
    """SamPredictor on the writer's model with the embedding set (no encoder call)."""
    predictor = SamPredictor(vit_b[1])
    predictor.reset_image()
    predictor.features = torch.from_numpy(embedding.features)
    predictor.original_size = embedding.original_size
    predictor.input_size = embedding.input_size
    predictor.is_image_set = True
    return predictor


@pytest.fixture(scope="session")
def segmenter(vit_b) -> SamSegmenter:
    return SamSegmenter.load("vit_b", checkpoint=vit_b[0], device="cpu")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def expected(reference: SamPredictor, prompts: dict):
    points = prompts.get("points")
    box = prompts.get("box")
    masks, scores, low_res = reference.predict(
        point_coords=np.array(points) if points else None,
        point_labels=np.array(prompts["labels"]) if points else None,
        box=np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]]) if box else None,
        mask_input=prompts["mask_input"][None] if "mask_input" in prompts else None,
        multimask_output=bool(points) and len(points) == 1 and box is None and "mask_input" not in prompts,
    )
    best = int(np.argmax(scores))
    return masks[best], float(np.clip(scores[best], 0, 1)), low_res[best]


def check(prediction, reference, prompts):
    mask, score, low_res = expected(reference, prompts)
    assert prediction.low_res_logits.shape == (256, 256)
    assert np.abs(prediction.low_res_logits - low_res).max() < 1e-4
    assert iou(prediction.mask, mask) > 0.99
    assert prediction.score == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("prompts", PROMPTS, ids=["point", "points", "point-and-box", "box"])
def test_segmenter_clicks_equal_sam_predictor(segmenter, embedding, reference, prompts):
    prediction = segmenter.mask_from_prompts(embedding, **prompts)
    check(prediction, reference, prompts)
    follow_up = {"points": [(410.0, 310.0), (700.0, 100.0)], "labels": [1, 0]}
    follow_up["mask_input"] = prediction.low_res_logits
    check(segmenter.mask_from_prompts(embedding, **follow_up), reference, follow_up)


def test_segmenter_boxes_in_chunks_equal_sam_predictor(segmenter, embedding, reference):
    one_call = segmenter.masks_for_boxes(embedding, BOXES)
    chunked = segmenter.masks_for_boxes(embedding, BOXES, chunk_size=2)

    for box, a, b in zip(BOXES, one_call, chunked, strict=True):
        mask, score, _ = expected(reference, {"box": box})
        assert iou(a.mask, mask) > 0.99 and iou(b.mask, mask) > 0.99
        assert a.score == pytest.approx(score, abs=1e-4) and b.score == pytest.approx(score, abs=1e-4)


@pytest.fixture(scope="session")
def decoder(vit_b):
    patched = ImageEncoderViT.__init__

    def refuse(self, *args, **kwargs):
        raise AssertionError("the image encoder was built")

    ImageEncoderViT.__init__ = refuse
    try:
        return SamDecoder.load("vit_b", checkpoint=vit_b[0], device="cpu")
    finally:
        ImageEncoderViT.__init__ = patched


def test_the_vit_b_decoder_loads_only_the_decoder_weights(decoder, vit_b):
    sam = vit_b[1]
    own = dict(decoder.prompt_encoder.named_parameters(prefix="prompt_encoder"))
    own.update(decoder.mask_decoder.named_parameters(prefix="mask_decoder"))
    full = dict(sam.named_parameters())

    assert own.keys() == {name for name in full if not name.startswith("image_encoder.")}
    assert all(torch.equal(own[name], full[name]) for name in own)
    decoder_count = sum(p.numel() for p in own.values())
    assert decoder_count < 5_000_000 < sum(p.numel() for p in full.values()) / 10  # ~4M of ~94M


@pytest.mark.parametrize("prompts", PROMPTS, ids=["point", "points", "point-and-box", "box"])
def test_the_vit_b_decoder_equals_sam_predictor(decoder, embedding, reference, prompts):
    check(decoder.mask_from_prompts(embedding, **prompts), reference, prompts)


def test_the_vit_b_decoder_on_onnxruntime_equals_sam_predictor(decoder, embedding, reference, tmp_path):
    onnx = SamDecoder.load("vit_b", checkpoint=decoder.checkpoint, device="cpu")
    assert onnx.attach_onnx(tmp_path)

    for prompts in PROMPTS:
        prediction = onnx.mask_from_prompts(embedding, **prompts)
        check(prediction, reference, prompts)
        mask_input = onnx.mask_input_from_mask(embedding, prediction.mask)
        refine = {"box": (300, 200, 600, 400), "mask_input": mask_input}
        check(onnx.mask_from_prompts(embedding, **refine), reference, refine)


def test_the_click_segmenter_uses_a_checkpoint_a_worker_downloaded(
    vit_b, tmp_path, monkeypatch, clean_registry
):
    def no_network(*args, **kwargs):
        raise AssertionError("the web process tried to download")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    cached = tmp_path / "checkpoints" / "sam_vit_b_01ec64.pth"  # where a worker downloads the URL to
    cached.parent.mkdir()
    cached.symlink_to(vit_b[0])
    config = registry.ModelConfig(mode="real", models_dir=tmp_path, device="cpu", click_backend="torch")

    decoder = registry.get_click_segmenter(config, "vit_b")

    assert isinstance(decoder, SamDecoder)
    assert decoder.checkpoint == cached
