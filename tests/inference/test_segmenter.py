"""The SamSegmenter over segment-anything, checked against SamPredictor itself (tiny random SAM)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import SamPredictor
from skimage import data

from inference.errors import InferenceError, ModelLoadError
from inference.masks import mask_box
from inference.models import tiny_sam
from inference.models.sam import SamSegmenter
from inference.models.tiny_sam import CONFIG_NAME, WEIGHTS_NAME, build_tiny_sam, load_tiny_sam
from inference.protocols import ImageEmbedding, MaskPrediction

BOXES = [(40, 30, 200, 160), (250, 100, 300, 250), (0, 0, 600, 400), (420, 10, 90, 60), (10, 300, 60, 80)]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.coffee()  # 400 x 600 RGB: not square, so the encoder input is padded


@pytest.fixture(scope="module")
def segmenter(tiny_sam_dir) -> SamSegmenter:
    return tiny_sam.load_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")


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


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def decoder_low_res(segmenter):
    """Record the low-res logits of every mask decoder call (a forward hook)."""
    calls: list[torch.Tensor] = []
    hook = segmenter.model.mask_decoder.register_forward_hook(
        lambda module, args, output: calls.append(output[0].detach().clone())
    )
    return calls, hook


def test_embedding_matches_sam_predictor(embedding, reference, photo):
    assert embedding.features.dtype == np.float32
    assert embedding.features.shape == tuple(reference.features.shape)
    assert np.allclose(embedding.features, reference.features.numpy(), atol=1e-5)
    assert embedding.original_size == photo.shape[:2] == (400, 600)
    assert embedding.input_size == tuple(reference.input_size)


def test_embed_batch_equals_one_image_at_a_time_in_one_encoder_pass(segmenter, photo):
    images = [Image.fromarray(photo), data.astronaut(), photo[:, :250], photo[:120]]  # 4 aspect ratios
    calls = []
    hook = segmenter.model.image_encoder.register_forward_hook(
        lambda module, args, output: calls.append(output.shape[0])
    )
    try:
        batched = segmenter.embed_batch(images, batch_size=8)
        by_default = segmenter.embed_batch(images[:2])  # on a CPU: one image per encoder call
    finally:
        hook.remove()
    alone = [segmenter.embed(image) for image in images]

    assert calls == [len(images), 1, 1]
    assert len(batched) == len(images)
    assert np.allclose(by_default[1].features, alone[1].features, atol=1e-4)
    for together, single in zip(batched, alone, strict=True):
        assert together.features.shape == single.features.shape
        assert together.features.dtype == np.float32
        assert np.allclose(together.features, single.features, atol=1e-4)
        assert together.original_size == single.original_size
        assert together.input_size == single.input_size
    assert batched[0].input_size != batched[2].input_size
    assert not np.allclose(batched[0].features, batched[1].features, atol=1e-2)


def test_embed_batch_of_no_images_is_empty(segmenter):
    assert segmenter.embed_batch([]) == []


def test_embed_batch_halves_the_batch_on_out_of_memory(segmenter, photo, monkeypatch):
    encoder = segmenter.model.image_encoder
    real_forward, sizes = encoder.forward, []

    def forward(batch):
        sizes.append(batch.shape[0])
        if batch.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(batch)

    monkeypatch.setattr(encoder, "forward", forward)
    embeddings = segmenter.embed_batch([photo, photo[:200], photo[:, :300]], batch_size=4)

    assert sizes == [3, 1, 1, 1]  # the 3 images fail together, then 3 // 2 = 1 at a time
    assert [e.original_size for e in embeddings] == [(400, 600), (200, 600), (400, 300)]


def test_box_mask_equals_sam_predictor(segmenter, embedding, reference):
    calls, hook = decoder_low_res(segmenter)
    try:
        (prediction,) = segmenter.masks_for_boxes(embedding, [BOXES[0]])
    finally:
        hook.remove()
    masks, scores, low_res = reference.predict(box=xyxy(BOXES[0]), multimask_output=False)

    assert prediction.mask.dtype == bool
    assert prediction.mask.shape == (400, 600)
    assert 0 < prediction.mask.mean() < 1  # a real mask, not all or nothing
    assert np.abs(calls[0][0].numpy() - low_res).max() < 1e-4
    assert iou(prediction.mask, masks[0]) > 0.99
    assert prediction.score == pytest.approx(float(np.clip(scores[0], 0, 1)), abs=1e-5)


def test_batched_boxes_equal_one_call_per_box(segmenter, embedding, reference):
    calls, hook = decoder_low_res(segmenter)
    try:
        batched = segmenter.masks_for_boxes(embedding, BOXES, chunk_size=len(BOXES))
        alone = [segmenter.masks_for_boxes(embedding, [box])[0] for box in BOXES]
    finally:
        hook.remove()

    assert len(batched) == len(BOXES)
    batch_logits, single_logits = calls[0], torch.cat(calls[1:])
    assert batch_logits.shape[0] == len(BOXES)
    assert torch.allclose(batch_logits, single_logits, atol=1e-4)
    for box, prediction, single in zip(BOXES, batched, alone, strict=True):
        masks, scores, _ = reference.predict(box=xyxy(box), multimask_output=False)
        assert iou(prediction.mask, single.mask) > 0.99
        assert iou(prediction.mask, masks[0]) > 0.99
        assert prediction.score == pytest.approx(single.score, abs=1e-4)
        assert prediction.score == pytest.approx(float(np.clip(scores[0], 0, 1)), abs=1e-4)
    # Different boxes give different masks: the prompt reaches the decoder.
    assert iou(batched[0].mask, batched[1].mask) < 0.9


def test_boxes_go_through_the_decoder_in_chunks(segmenter, embedding):
    calls = []
    hook = segmenter.model.mask_decoder.register_forward_hook(
        lambda module, args, output: calls.append(output[0].shape[0])
    )
    encoder_calls = []
    encoder_hook = segmenter.model.image_encoder.register_forward_hook(lambda *args: encoder_calls.append(1))
    try:
        one_call = segmenter.masks_for_boxes(embedding, BOXES, chunk_size=32)
        chunked = segmenter.masks_for_boxes(embedding, BOXES, chunk_size=2)
        by_default = segmenter.masks_for_boxes(embedding, BOXES)
    finally:
        hook.remove()
        encoder_hook.remove()

    assert calls == [len(BOXES), 2, 2, 1, 4, 1]  # the default on a CPU: 4 boxes per call
    assert encoder_calls == []  # the cached embedding is used as is
    for a, b, c in zip(one_call, chunked, by_default, strict=True):
        assert iou(a.mask, b.mask) > 0.99 and iou(a.mask, c.mask) > 0.99
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_box_chunks_halve_on_out_of_memory_down_to_one(segmenter, embedding, monkeypatch):
    decoder = segmenter.model.mask_decoder
    real_forward, sizes = decoder.forward, []

    def forward(**kwargs):
        sizes.append(kwargs["sparse_prompt_embeddings"].shape[0])
        if kwargs["sparse_prompt_embeddings"].shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real_forward(**kwargs)

    expected = segmenter.masks_for_boxes(embedding, BOXES)
    monkeypatch.setattr(decoder, "forward", forward)
    chunked = segmenter.masks_for_boxes(embedding, BOXES, chunk_size=8)

    assert sizes == [5, 2, 2, 1]  # the 5 boxes fail together, then 5 // 2 = 2 at a time
    for a, b in zip(expected, chunked, strict=True):
        assert iou(a.mask, b.mask) > 0.99
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_box_chunks_report_out_of_memory_for_a_single_box(segmenter, embedding, monkeypatch):
    sizes = []

    def forward(**kwargs):
        sizes.append(kwargs["sparse_prompt_embeddings"].shape[0])
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(segmenter.model.mask_decoder, "forward", forward)
    with pytest.raises(InferenceError, match="out of memory even one at a time"):
        segmenter.masks_for_boxes(embedding, BOXES, chunk_size=4)

    assert sizes == [4, 2, 1]


def test_other_decoder_errors_are_not_retried(segmenter, embedding, monkeypatch):
    sizes = []

    def forward(**kwargs):
        sizes.append(kwargs["sparse_prompt_embeddings"].shape[0])
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(segmenter.model.mask_decoder, "forward", forward)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        segmenter.masks_for_boxes(embedding, BOXES, chunk_size=8)

    assert sizes == [len(BOXES)]


def test_no_boxes_give_no_predictions(segmenter, embedding):
    assert segmenter.masks_for_boxes(embedding, []) == []


def test_predictions_are_plain_numpy(segmenter, embedding):
    (prediction,) = segmenter.masks_for_boxes(embedding, [BOXES[1]])

    assert isinstance(prediction, MaskPrediction)
    assert type(prediction.mask) is np.ndarray
    assert type(prediction.score) is float
    assert prediction.box == mask_box(prediction.mask)
    assert not any(isinstance(value, torch.Tensor) for value in vars(embedding).values())


def decoder_multimask(segmenter):
    """Record the multimask_output argument of every mask decoder call."""
    seen: list[bool] = []
    hook = segmenter.model.mask_decoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["multimask_output"]), with_kwargs=True
    )
    return seen, hook


def test_a_single_point_gives_the_best_of_three_masks_like_sam_predictor(segmenter, embedding, reference):
    points, labels = [(150.0, 120.0)], [1]
    seen, hook = decoder_multimask(segmenter)
    try:
        prediction = segmenter.mask_from_prompts(embedding, points=points, labels=labels)
    finally:
        hook.remove()
    masks, scores, low_res = reference.predict(
        point_coords=np.array(points), point_labels=np.array(labels), multimask_output=True
    )

    best = int(np.argmax(scores))
    assert seen == [True]
    assert prediction.low_res_logits.dtype == np.float32
    assert prediction.low_res_logits.shape == low_res[best].shape == (64, 64)  # tiny: 4 x 16
    assert np.abs(prediction.low_res_logits - low_res[best]).max() < 1e-4
    assert iou(prediction.mask, masks[best]) > 0.99
    assert prediction.score == pytest.approx(float(np.clip(scores[best], 0, 1)), abs=1e-5)


@pytest.mark.parametrize(
    "prompts",
    [
        {"points": [(150.0, 120.0), (400.0, 300.0)], "labels": [1, 0]},
        {"points": [(300.0, 200.0)], "labels": [1], "box": BOXES[1]},
        {"box": BOXES[3]},
    ],
    ids=["two-points", "point-and-box", "box"],
)
def test_several_prompts_give_one_mask_like_sam_predictor(segmenter, embedding, reference, prompts):
    seen, hook = decoder_multimask(segmenter)
    try:
        prediction = segmenter.mask_from_prompts(embedding, **prompts)
    finally:
        hook.remove()
    points = prompts.get("points")
    masks, scores, low_res = reference.predict(
        point_coords=np.array(points) if points else None,
        point_labels=np.array(prompts["labels"]) if points else None,
        box=xyxy(prompts["box"]) if "box" in prompts else None,
        multimask_output=False,
    )

    assert seen == [False]
    assert np.abs(prediction.low_res_logits - low_res[0]).max() < 1e-4
    assert iou(prediction.mask, masks[0]) > 0.99
    assert prediction.score == pytest.approx(float(np.clip(scores[0], 0, 1)), abs=1e-5)


def test_the_previous_logits_as_mask_input_match_sam_predictor(segmenter, embedding, reference):
    first = segmenter.mask_from_prompts(embedding, points=[(150.0, 120.0)], labels=[1])
    points, labels = [(150.0, 120.0), (420.0, 260.0)], [1, 0]
    seen, hook = decoder_multimask(segmenter)
    try:
        second = segmenter.mask_from_prompts(
            embedding, points=points, labels=labels, mask_input=first.low_res_logits
        )
        again = segmenter.mask_from_prompts(
            embedding, points=points[:1], labels=labels[:1], mask_input=first.low_res_logits[None]
        )
    finally:
        hook.remove()
    without = segmenter.mask_from_prompts(embedding, points=points, labels=labels)
    masks, _, low_res = reference.predict(
        point_coords=np.array(points),
        point_labels=np.array(labels),
        mask_input=first.low_res_logits[None],
        multimask_output=False,
    )

    assert seen == [False, False]  # a mask input means one mask, even with one point
    assert np.abs(second.low_res_logits - low_res[0]).max() < 1e-4
    assert iou(second.mask, masks[0]) > 0.99
    # The mask input reaches the decoder: the logits differ from those without it.
    assert np.abs(second.low_res_logits - without.low_res_logits).max() > 1e-2
    assert again.low_res_logits.shape == (64, 64)


def test_a_mask_input_of_the_wrong_shape_is_refused(segmenter, embedding):
    with pytest.raises(ValueError, match="mask_input must be"):
        segmenter.mask_from_prompts(embedding, points=[(1, 2)], labels=[1], mask_input=np.zeros((256, 256)))
    with pytest.raises(ValueError, match="NaN"):
        segmenter.mask_from_prompts(
            embedding, points=[(1, 2)], labels=[1], mask_input=np.full((64, 64), np.nan)
        )


def test_scores_are_sam_predicted_iou_clamped_to_zero_one(segmenter, embedding, reference):
    rng = np.random.default_rng(0)
    raw = []
    for _ in range(12):
        point = rng.uniform((0, 0), (600, 400))
        prediction = segmenter.mask_from_prompts(embedding, points=[point], labels=[1])
        _, scores, _ = reference.predict(point_coords=point[None], point_labels=np.array([1]))
        best = float(scores.max())
        raw.append(best)
        assert 0.0 <= prediction.score <= 1.0
        assert prediction.score == pytest.approx(min(max(best, 0.0), 1.0), abs=1e-5)
    assert any(value < 0 or value > 1 for value in raw)  # the clamp was needed (random weights)


def test_mask_input_from_mask_is_logits_in_sam_input_frame(segmenter, embedding):
    mask = np.zeros((400, 600), dtype=bool)
    mask[100:300, 150:450] = True  # rows 100-300 of 400, columns 150-450 of 600

    logits = segmenter.mask_input_from_mask(embedding, mask)

    assert logits.shape == (64, 64) and logits.dtype == np.float32
    # The image fills the top 683 / 1024 of the input frame (400 x 600 → 683 x 1024): in the
    # 64² grid, columns 16-48 and rows 11-34 hold the object.
    assert (logits[13:32, 18:46] > 5).all()
    assert (logits[:8] < -5).all() and (logits[40:] < -5).all()  # background and padding
    assert (logits[:, :14] < -5).all() and (logits[:, 50:] < -5).all()
    assert np.abs(logits).max() < 7


def test_refining_an_annotation_from_its_box_and_mask_matches_sam_predictor(segmenter, embedding, reference):
    box = BOXES[1]
    x, y, w, h = box
    mask = np.zeros((400, 600), dtype=bool)
    mask[y : y + h, x : x + w] = True
    mask_input = segmenter.mask_input_from_mask(embedding, mask)

    refined = segmenter.mask_from_prompts(
        embedding, box=box, points=[(320.0, 180.0)], labels=[0], mask_input=mask_input
    )
    masks, _, low_res = reference.predict(
        point_coords=np.array([(320.0, 180.0)]),
        point_labels=np.array([0]),
        box=xyxy(box),
        mask_input=mask_input[None],
        multimask_output=False,
    )

    assert np.abs(refined.low_res_logits - low_res[0]).max() < 1e-4
    assert iou(refined.mask, masks[0]) > 0.99


def test_mask_input_from_mask_refuses_a_mask_of_another_size(segmenter, embedding):
    with pytest.raises(ValueError, match="mask of shape"):
        segmenter.mask_input_from_mask(embedding, np.zeros((10, 10), dtype=bool))


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
        SamSegmenter.load("vit_b", checkpoint=missing, device="cpu")

    assert str(missing) in str(raised.value)
    assert "http" in str(raised.value)  # says where the official weights are


def test_load_of_a_missing_tiny_folder_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=re.escape(str(tmp_path / "absent"))):
        tiny_sam.load_segmenter("tiny", checkpoint=tmp_path / "absent", device="cpu")


def test_load_without_a_checkpoint_explains_how_to_give_one():
    with pytest.raises(ModelLoadError, match="No checkpoint given"):
        SamSegmenter.load("vit_h", checkpoint=None, device="cpu")


def test_load_of_an_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(ModelLoadError, match="vit_b, vit_l, vit_h"):
        SamSegmenter.load("vit_x", checkpoint=tmp_path, device="cpu")


def test_load_of_a_file_that_is_not_a_checkpoint(tmp_path):
    garbage = tmp_path / "sam.pth"
    garbage.write_bytes(b"<html>404 Not Found</html>")

    with pytest.raises(ModelLoadError, match="could not be read as PyTorch weights"):
        SamSegmenter.load("vit_b", checkpoint=garbage, device="cpu")


def test_load_of_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "sam_vit_h.pth"
    torch.save({f"image_encoder.blocks.{i}.norm1.weight": torch.ones(1) for i in range(32)}, path)

    with pytest.raises(ModelLoadError, match="holds vit_h weights"):
        SamSegmenter.load("vit_b", checkpoint=path, device="cpu")


def test_load_of_a_checkpoint_with_wrong_tensors(tmp_path):
    path = tmp_path / "sam_vit_b.pth"
    torch.save({f"image_encoder.blocks.{i}.norm1.weight": torch.ones(1) for i in range(12)}, path)

    with pytest.raises(ModelLoadError, match="does not fit the vit_b architecture"):
        SamSegmenter.load("vit_b", checkpoint=path, device="cpu")


def test_load_of_weights_that_are_not_sam(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.ones(1)}, path)

    with pytest.raises(ModelLoadError, match="not a Segment Anything checkpoint"):
        SamSegmenter.load("vit_l", checkpoint=path, device="cpu")
