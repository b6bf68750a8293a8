"""The Segmenter over segment-anything, checked against SamPredictor itself (tiny random SAM)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import SamPredictor
from skimage import data

from inference.errors import ModelLoadError
from inference.masks import mask_box
from inference.segmenter import ImageEmbedding, MaskPrediction, Segmenter
from inference.tiny_sam import CONFIG_NAME, WEIGHTS_NAME, build_tiny_sam, load_tiny_sam

BOXES = [(40, 30, 200, 160), (250, 100, 300, 250), (0, 0, 600, 400), (420, 10, 90, 60), (10, 300, 60, 80)]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.coffee()  # 400 x 600 RGB: not square, so the encoder input is padded


@pytest.fixture(scope="module")
def segmenter(tiny_sam_dir) -> Segmenter:
    return Segmenter.load("tiny", checkpoint=tiny_sam_dir, device="cpu")


@pytest.fixture(scope="module")
def embedding(segmenter, photo) -> ImageEmbedding:
    return segmenter.embed(Image.fromarray(photo))


@pytest.fixture(scope="module")
def reference(tiny_sam_dir, photo) -> SamPredictor:
    """segment-anything's own predictor, on a separate copy of the same weights."""
    predictor = SamPredictor(load_tiny_sam(tiny_sam_dir))
    predictor.set_image(photo)
    return predictor


def xyxy(box):
    x, y, w, h = box
    return np.array([x, y, x + w, y + h])


def test_embedding_matches_sam_predictor(embedding, reference, photo):
    assert embedding.features.dtype == np.float32
    assert embedding.features.shape == tuple(reference.features.shape)
    assert np.array_equal(embedding.features, reference.features.numpy())
    assert embedding.original_size == photo.shape[:2] == (400, 600)
    assert embedding.input_size == tuple(reference.input_size)


def test_box_mask_equals_sam_predictor(segmenter, embedding, reference):
    (prediction,) = segmenter.masks_for_boxes(embedding, [BOXES[0]])
    masks, scores, _ = reference.predict(box=xyxy(BOXES[0]), multimask_output=False)

    assert prediction.mask.dtype == bool
    assert prediction.mask.shape == (400, 600)
    assert 0 < prediction.mask.mean() < 1  # a real mask, not all or nothing
    assert np.array_equal(prediction.mask, masks[0])
    assert prediction.score == pytest.approx(float(scores[0]), abs=1e-5)


def test_batched_boxes_equal_one_call_per_box(segmenter, embedding, reference):
    batched = segmenter.masks_for_boxes(embedding, BOXES)

    assert len(batched) == len(BOXES)
    for box, prediction in zip(BOXES, batched, strict=True):
        (alone,) = segmenter.masks_for_boxes(embedding, [box])
        masks, scores, _ = reference.predict(box=xyxy(box), multimask_output=False)
        assert np.array_equal(prediction.mask, alone.mask)
        assert np.array_equal(prediction.mask, masks[0])
        assert prediction.score == pytest.approx(float(scores[0]), abs=1e-5)
    # Different boxes give different masks: the prompt reaches the decoder.
    assert not np.array_equal(batched[0].mask, batched[1].mask)


def test_all_boxes_go_through_the_decoder_in_one_call(segmenter, embedding):
    calls = []
    hook = segmenter.model.mask_decoder.register_forward_hook(
        lambda module, args, output: calls.append(output[0].shape[0])
    )
    encoder_calls = []
    encoder_hook = segmenter.model.image_encoder.register_forward_hook(lambda *args: encoder_calls.append(1))
    try:
        segmenter.masks_for_boxes(embedding, BOXES)
    finally:
        hook.remove()
        encoder_hook.remove()

    assert calls == [len(BOXES)]
    assert encoder_calls == []  # the cached embedding is used as is


def test_no_boxes_give_no_predictions(segmenter, embedding):
    assert segmenter.masks_for_boxes(embedding, []) == []


def test_predictions_are_plain_numpy(segmenter, embedding):
    (prediction,) = segmenter.masks_for_boxes(embedding, [BOXES[1]])

    assert isinstance(prediction, MaskPrediction)
    assert type(prediction.mask) is np.ndarray
    assert type(prediction.score) is float
    assert prediction.box == mask_box(prediction.mask)
    assert not any(isinstance(value, torch.Tensor) for value in vars(embedding).values())


def test_points_mask_equals_sam_predictor(segmenter, embedding, reference):
    points, labels = [(150.0, 120.0), (400.0, 300.0)], [1, 0]

    prediction = segmenter.mask_from_prompts(embedding, points=points, labels=labels)
    masks, scores, _ = reference.predict(
        point_coords=np.array(points), point_labels=np.array(labels), multimask_output=True
    )

    best = int(np.argmax(scores))
    assert np.array_equal(prediction.mask, masks[best])
    assert prediction.score == pytest.approx(float(scores[best]), abs=1e-5)


def test_points_and_box_single_mask_equals_sam_predictor(segmenter, embedding, reference):
    points, labels, box = [(300.0, 200.0)], [1], BOXES[1]

    prediction = segmenter.mask_from_prompts(
        embedding, points=points, labels=labels, box=box, multimask=False
    )
    masks, _, _ = reference.predict(
        point_coords=np.array(points), point_labels=np.array(labels), box=xyxy(box), multimask_output=False
    )

    assert np.array_equal(prediction.mask, masks[0])


def test_mask_from_prompts_needs_a_point_or_a_box(segmenter, embedding):
    with pytest.raises(ValueError, match="at least one point or a box"):
        segmenter.mask_from_prompts(embedding)
    with pytest.raises(ValueError, match="labels"):
        segmenter.mask_from_prompts(embedding, points=[(1, 2)], labels=[])
    with pytest.raises(ValueError, match=r"1 \(object\) or 0"):
        segmenter.mask_from_prompts(embedding, points=[(1, 2)], labels=[2])


def test_an_embedding_of_another_model_is_refused(segmenter, embedding):
    foreign = ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), embedding.original_size, (1024, 1024))

    with pytest.raises(ValueError, match="another model"):
        segmenter.masks_for_boxes(foreign, [BOXES[0]])


def test_tiny_sam_is_deterministic_and_small(tmp_path, tiny_sam_dir):
    again = build_tiny_sam(tmp_path / "again", seed=0)
    other = build_tiny_sam(tmp_path / "other", seed=1)

    first, second, third = (
        torch.load(folder / WEIGHTS_NAME, weights_only=True) for folder in (tiny_sam_dir, again, other)
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not all(torch.equal(first[key], third[key]) for key in first)
    assert (tiny_sam_dir / WEIGHTS_NAME).stat().st_size < 2_000_000
    config = json.loads((tiny_sam_dir / CONFIG_NAME).read_text())
    assert config["img_size"] == 256 and config["seed"] == 0


def test_building_tiny_sam_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_sam(tmp_path, seed=5)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------- loading


def test_load_with_a_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "sam_vit_b.pth"

    with pytest.raises(ModelLoadError, match=r"sam_vit_b\.pth") as raised:
        Segmenter.load("vit_b", checkpoint=missing, device="cpu")

    assert str(missing) in str(raised.value)
    assert "http" in str(raised.value)  # says where the official weights are


def test_load_of_a_missing_tiny_folder_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=re.escape(str(tmp_path / "absent"))):
        Segmenter.load("tiny", checkpoint=tmp_path / "absent", device="cpu")


def test_load_without_a_checkpoint_explains_how_to_give_one():
    with pytest.raises(ModelLoadError, match="No checkpoint given"):
        Segmenter.load("vit_h", checkpoint=None, device="cpu")


def test_load_of_an_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(ModelLoadError, match="vit_b, vit_l, vit_h, tiny"):
        Segmenter.load("vit_x", checkpoint=tmp_path, device="cpu")


def test_load_of_a_file_that_is_not_a_checkpoint(tmp_path):
    garbage = tmp_path / "sam.pth"
    garbage.write_bytes(b"<html>404 Not Found</html>")

    with pytest.raises(ModelLoadError, match="could not be read as PyTorch weights"):
        Segmenter.load("vit_b", checkpoint=garbage, device="cpu")


def test_load_of_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "sam_vit_h.pth"
    torch.save({f"image_encoder.blocks.{i}.norm1.weight": torch.ones(1) for i in range(32)}, path)

    with pytest.raises(ModelLoadError, match="holds vit_h weights"):
        Segmenter.load("vit_b", checkpoint=path, device="cpu")


def test_load_of_a_checkpoint_with_wrong_tensors(tmp_path):
    path = tmp_path / "sam_vit_b.pth"
    torch.save({f"image_encoder.blocks.{i}.norm1.weight": torch.ones(1) for i in range(12)}, path)

    with pytest.raises(ModelLoadError, match="does not fit the vit_b architecture"):
        Segmenter.load("vit_b", checkpoint=path, device="cpu")


def test_load_of_weights_that_are_not_sam(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.ones(1)}, path)

    with pytest.raises(ModelLoadError, match="not a Segment Anything checkpoint"):
        Segmenter.load("vit_l", checkpoint=path, device="cpu")
