"""SAM 3 as a detector family whose detections carry masks (inference.models.sam3), on the tiny
random SAM 3: the same masks, boxes and scores as transformers' Sam3Model + Sam3Processor +
post_process_instance_segmentation called directly, through the pipeline with no segmenter
pass, and through the registry's tiny mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from transformers import Sam3Model, Sam3Processor

from inference import registry
from inference.masks import rle_to_mask
from inference.models import grounding_dino, sam3
from inference.models.sam3 import Sam3Detector
from inference.pipeline import BatchImage, DetectParams, prelabel_batch
from inference.prompts import ClassPrompt

PROMPTS = [ClassPrompt(name="cat", prompt="a cat"), ClassPrompt(name="cup", prompt="coffee cup")]


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]


@pytest.fixture(scope="module")
def detector(tiny_sam3_dir) -> Sam3Detector:
    return Sam3Detector.load(str(tiny_sam3_dir), device="cpu")


def direct(folder, images, text: str, threshold: float) -> list[dict]:
    """transformers' own path: processor → Sam3Model → post_process_instance_segmentation."""
    processor = Sam3Processor.from_pretrained(folder, local_files_only=True)
    model = Sam3Model.from_pretrained(folder, local_files_only=True).eval()
    inputs = processor(images=images, text=[text] * len(images), return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist()
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_the_family_takes_sam3_folders_and_hub_ids_only(tiny_sam3_dir, tiny_detector_dir):
    assert sam3.accepts(str(tiny_sam3_dir)) and sam3.accepts("facebook/sam3") and sam3.accepts("sam3-tiny")
    assert not sam3.accepts(str(tiny_detector_dir)) and not sam3.accepts("IDEA-Research/grounding-dino-tiny")
    assert registry.detector_family(str(tiny_sam3_dir)) is sam3
    assert registry.detector_family(str(tiny_detector_dir)) is grounding_dino


def test_parity_with_sam3_model_and_processor_called_directly(detector, tiny_sam3_dir, images):
    threshold = 0.2
    ours = detector.detect(images, PROMPTS, box_threshold=0.3, text_threshold=0.25, keep_threshold=threshold)
    compared = 0
    for class_index, prompt in enumerate(PROMPTS):
        theirs = direct(str(tiny_sam3_dir), images, prompt.text, threshold)
        for image, found, expected in zip(images, ours, theirs, strict=True):
            mine = sorted((d for d in found if d.class_index == class_index), key=lambda d: -d.score)
            order = torch.argsort(expected["scores"], descending=True, stable=True)
            assert len(mine) == len(order) > 0
            for detection, k in zip(mine, order.tolist(), strict=True):
                assert detection.score == pytest.approx(float(expected["scores"][k]), abs=1e-4)
                x0, y0, x1, y1 = expected["boxes"][k].tolist()
                x0, x1 = np.clip([x0, x1], 0, image.width)
                y0, y1 = np.clip([y0, y1], 0, image.height)
                assert detection.box == pytest.approx((x0, y0, x1 - x0, y1 - y0), abs=1e-4)
                reference = expected["masks"][k].numpy().astype(bool)
                assert detection.mask.shape == (image.height, image.width)
                assert iou(detection.mask, reference) >= 0.99
                compared += 1
    assert compared >= 4


def test_every_detection_scores_above_the_keep_threshold_and_best_first(detector, images):
    everything = detector.detect(images, PROMPTS, box_threshold=0.3, text_threshold=0.25, keep_threshold=0.0)
    scores = sorted(d.score for found in everything for d in found)
    keep = scores[len(scores) // 2]
    kept = detector.detect(images, PROMPTS, box_threshold=0.3, text_threshold=0.25, keep_threshold=keep)
    flat = [d for found in kept for d in found]
    assert 0 < len(flat) < len(scores)
    assert all(d.score > keep for d in flat)
    assert all([d.score for d in found] == sorted((d.score for d in found), reverse=True) for found in kept)
    assert {d.class_index for d in flat} <= {0, 1}


def test_max_instances_keeps_the_best_k_of_a_class(detector, images):
    prompts = [ClassPrompt(name="cat", prompt="a cat", max_instances=2), PROMPTS[1]]
    found = detector.detect(images, prompts, box_threshold=0.3, text_threshold=0.25, keep_threshold=0.0)
    for per_image in found:
        assert sum(d.class_index == 0 for d in per_image) == 2
        assert sum(d.class_index == 1 for d in per_image) > 2


class CountingSegmenter:
    """A segmenter wrapper counting its decoder calls (the pipeline must make none for SAM 3)."""

    def __init__(self, inner):
        self.inner, self.name, self.box_calls, self.embeds = inner, inner.name, 0, 0

    def embed(self, image):
        self.embeds += 1
        return self.inner.embed(image)

    def masks_for_boxes(self, embedding, boxes, **kwargs):
        self.box_calls += 1
        return self.inner.masks_for_boxes(embedding, boxes, **kwargs)


@pytest.mark.parametrize("with_segmenter", [False, True])
def test_the_pipeline_keeps_sam3_masks_with_no_segmenter_pass(detector, images, tiny_sam_dir, with_segmenter):
    from inference.models.tiny_sam import load_segmenter

    scores = sorted(d.score for found in detector.detect(images, PROMPTS, keep_threshold=0.0) for d in found)
    keep = scores[len(scores) // 3]
    params = DetectParams(
        box_threshold=0.5, text_threshold=0.25, keep_threshold=keep, min_area=1, hole_area=0
    )
    segmenter = None
    if with_segmenter:
        segmenter = CountingSegmenter(
            load_segmenter("tiny", checkpoint=str(tiny_sam_dir), device="cpu", cache_dir=tiny_sam_dir)
        )
    items = [BatchImage(image=image, sha256=f"{i:064x}") for i, image in enumerate(images)]

    results = prelabel_batch(items, PROMPTS, params, detector=detector, segmenter=segmenter)

    expected = detector.detect(images, PROMPTS, keep_threshold=keep)
    for image, result, detections in zip(images, results, expected, strict=True):
        assert not result.error
        assert len(result.proposals) == len(detections) > 0
        for proposal, detection in zip(result.proposals, detections, strict=True):
            assert proposal.score == detection.score > keep
            assert proposal.detector_box == detection.box
            if proposal.mask is not None:  # a mask left empty after cleaning keeps its box alone
                mask = rle_to_mask(proposal.mask)
                assert mask.shape == (image.height, image.width)
                assert iou(mask, detection.mask) >= 0.9
                _, _, w, h = proposal.box
                assert w > 0 and h > 0
    assert any(p.mask is not None and p.polygons is not None for r in results for p in r.proposals)
    if with_segmenter:  # the SAM embedding is made (for clicks) but its decoder is never asked
        assert segmenter.embeds == len(images) and segmenter.box_calls == 0


def test_tiny_mode_maps_a_sam3_name_to_the_tiny_sam3(tmp_path, clean_registry):
    config = registry.ModelConfig(
        mode="tiny",
        models_dir=tmp_path,
        device="cpu",
        detectors={
            "sam3-tiny": "sam3-tiny",
            "ours": "facebook/sam3",
            "gdino": "IDEA-Research/grounding-dino-tiny",
        },
    )
    assert config.detector_source("sam3-tiny") == str(tmp_path / "tiny" / "sam3")
    assert config.detector_source("ours") == str(tmp_path / "tiny" / "sam3")
    assert config.detector_source("gdino") == str(tmp_path / "tiny" / "grounding-dino")
    assert config.detector_segments("ours") and not config.detector_segments("gdino")

    loaded = registry.get_detector(config, "sam3-tiny")

    assert isinstance(loaded, Sam3Detector)
    assert registry.get_detector(config, "ours") is loaded  # loaded once per process
    assert isinstance(registry.get_detector(config, "gdino"), grounding_dino.GroundingDinoDetector)
    found = loaded.detect([Image.fromarray(data.coffee())], PROMPTS[1:], keep_threshold=0.0)
    assert found[0] and all(d.mask is not None and d.class_index == 0 for d in found[0])


THREE = [
    ClassPrompt(name="cat", prompt="a cat"),
    ClassPrompt(name="cup", prompt="coffee cup"),
    ClassPrompt(name="rocket", prompt="red rocket on the left"),
]


def per_class_loop(detector: Sam3Detector, images, prompts, threshold: float) -> list[list[dict]]:
    """The unbatched way, per class: one text + DETR + mask-decoder forward per class prompt on
    the images' cached vision features, whole outputs through the processor (results[class][image])."""
    processor, model = detector.processor, detector.model
    with torch.inference_mode():
        vision = model.get_vision_features(
            pixel_values=processor(images=images, return_tensors="pt")["pixel_values"]
        )
        results = []
        for prompt in prompts:
            text = processor(text=[prompt.text] * len(images), return_tensors="pt")
            outputs = model(
                vision_embeds=vision, input_ids=text["input_ids"], attention_mask=text["attention_mask"]
            )
            results.append(
                processor.post_process_instance_segmentation(
                    outputs,
                    threshold=threshold,
                    mask_threshold=0.5,
                    target_sizes=[im.size[::-1] for im in images],
                )
            )
    return results


def assert_same(found: list[list], expected: list[list[dict]], images, n_classes: int) -> int:
    """Our detections per image equal `expected[class][image]` (the processor's dicts)."""
    compared = 0
    for class_index in range(n_classes):
        for image, mine_all, theirs in zip(images, found, expected[class_index], strict=True):
            mine = [d for d in mine_all if d.class_index == class_index]
            order = torch.argsort(theirs["scores"], descending=True, stable=True).tolist()
            assert len(mine) == len(order)
            for detection, k in zip(mine, order, strict=True):
                assert detection.score == pytest.approx(float(theirs["scores"][k]), abs=1e-4)
                x0, y0, x1, y1 = theirs["boxes"][k].tolist()
                x0, x1 = np.clip([x0, x1], 0, image.width)
                y0, y1 = np.clip([y0, y1], 0, image.height)
                assert detection.box == pytest.approx((x0, y0, x1 - x0, y1 - y0), abs=1e-4)
                assert detection.mask.shape == (image.height, image.width)
                assert iou(detection.mask, theirs["masks"][k].numpy().astype(bool)) >= 0.99
                compared += 1
    return compared


@pytest.mark.parametrize("pairs_per_forward", [1, 4, 64])
def test_classes_batched_equal_the_per_class_loop_and_direct_calls(tiny_sam3_dir, pairs_per_forward):
    """3 classes x 2 images of different sizes: one text encoding and (images x classes) pairs
    per forward, whatever the chunking, give what a forward per class gives and what
    Sam3Model + Sam3Processor called directly give."""
    images = [Image.fromarray(data.chelsea()), Image.fromarray(data.astronaut()).resize((173, 301))]
    assert images[0].size != images[1].size
    detector = Sam3Detector.load(str(tiny_sam3_dir), device="cpu")
    detector.pairs_per_forward = pairs_per_forward
    threshold = 0.2

    ours = detector.detect(images, THREE, keep_threshold=threshold)

    loop = per_class_loop(detector, images, THREE, threshold)
    directly = [direct(str(tiny_sam3_dir), images, prompt.text, threshold) for prompt in THREE]
    assert assert_same(ours, loop, images, len(THREE)) >= 6
    assert assert_same(ours, directly, images, len(THREE)) >= 6
    assert {d.class_index for found in ours for d in found} == {0, 1, 2}


def test_upsampling_the_kept_queries_in_chunks_equals_the_unfiltered_post_processing(tiny_sam3_dir, images):
    """One query per chunk (a pixel cap below one mask) or all at once: the same detections as
    the processor's post-processing of the whole outputs (every query, upsampled together)."""
    detector = Sam3Detector.load(str(tiny_sam3_dir), device="cpu")
    threshold = 0.15
    whole = per_class_loop(detector, images, THREE, threshold)
    for cap in (1, 10**12):
        detector.upsample_pixels = cap
        found = detector.detect(images, THREE, keep_threshold=threshold)
        assert assert_same(found, whole, images, len(THREE)) >= 6


def test_max_instances_upsamples_only_the_best_k_and_equals_the_best_k_of_all(detector, images):
    capped = [ClassPrompt(name=p.name, prompt=p.prompt, max_instances=2) for p in THREE]
    everything = detector.detect(images, THREE, keep_threshold=0.0)
    best = detector.detect(images, capped, keep_threshold=0.0)
    for all_found, found in zip(everything, best, strict=True):
        for class_index in range(len(THREE)):
            expected = [d for d in all_found if d.class_index == class_index][:2]
            mine = [d for d in found if d.class_index == class_index]
            assert len(mine) == len(expected) == 2
            for a, b in zip(mine, expected, strict=True):
                assert a.score == pytest.approx(b.score, abs=1e-6) and a.box == pytest.approx(b.box, abs=1e-4)
                assert iou(a.mask, b.mask) >= 0.99
