"""SAM 3's exemplar prompts ("find more like this"): `Sam3Detector.find_similar` gives what
transformers' Sam3Processor + Sam3Model give with the same text and boxes (labels 1 / 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from transformers import Sam3Model, Sam3Processor

from inference.models.sam3 import Sam3Detector
from inference.pipeline import DetectParams, proposals_from_detections
from inference.protocols import ExemplarDetector

POSITIVE = [(30.0, 40.0, 120.0, 90.0)]  # x, y, w, h
NEGATIVE = [(200.0, 150.0, 60.0, 50.0), (10.0, 200.0, 40.0, 40.0)]


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray(data.chelsea())


@pytest.fixture(scope="module")
def detector(tiny_sam3_dir) -> Sam3Detector:
    return Sam3Detector.load(str(tiny_sam3_dir), device="cpu")


def direct(folder, image, text, positive, negative, threshold) -> dict:
    """transformers' own path, boxes given as x0, y0, x1, y1 pixels, nested per image."""
    processor = Sam3Processor.from_pretrained(folder, local_files_only=True)
    model = Sam3Model.from_pretrained(folder, local_files_only=True).eval()
    boxes = [[x, y, x + w, y + h] for x, y, w, h in [*positive, *negative]]
    labels = [1] * len(positive) + [0] * len(negative)
    inputs = processor(
        images=[image], text=[text], input_boxes=[boxes], input_boxes_labels=[labels], return_tensors="pt"
    )
    with torch.no_grad():
        outputs = model(**inputs)
    return processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist()
    )[0]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_sam3_is_an_exemplar_detector(detector):
    assert isinstance(detector, ExemplarDetector)


@pytest.mark.parametrize("negative", [[], NEGATIVE], ids=["positive only", "with negatives"])
def test_parity_with_sam3_model_and_processor_given_the_same_exemplars(
    detector, tiny_sam3_dir, image, negative
):
    threshold = 0.2
    ours = detector.find_similar(
        image, text="cat", positive_boxes=POSITIVE, negative_boxes=negative, keep_threshold=threshold
    )
    theirs = direct(str(tiny_sam3_dir), image, "cat", POSITIVE, negative, threshold)
    order = torch.argsort(theirs["scores"], descending=True, stable=True).tolist()
    assert len(ours) == len(order) > 0
    assert [d.score for d in ours] == sorted((d.score for d in ours), reverse=True)
    for detection, k in zip(ours, order, strict=True):
        assert detection.class_index == 0 and detection.phrase == "cat"
        assert detection.score == pytest.approx(float(theirs["scores"][k]), abs=1e-4)
        x0, y0, x1, y1 = theirs["boxes"][k].tolist()
        x0, x1 = np.clip([x0, x1], 0, image.width)
        y0, y1 = np.clip([y0, y1], 0, image.height)
        assert detection.box == pytest.approx((x0, y0, x1 - x0, y1 - y0), abs=1e-4)
        assert detection.mask.shape == (image.height, image.width)
        assert iou(detection.mask, theirs["masks"][k].numpy().astype(bool)) >= 0.99


def test_negative_exemplars_change_the_answer(detector, image):
    """The negative boxes reach the model (labels 0): the scores are not those of positives alone."""
    alone = detector.find_similar(image, text="cat", positive_boxes=POSITIVE, keep_threshold=0.0)
    both = detector.find_similar(
        image, text="cat", positive_boxes=POSITIVE, negative_boxes=NEGATIVE, keep_threshold=0.0
    )
    assert len(alone) == len(both) > 0
    assert not np.allclose([d.score for d in alone], [d.score for d in both], atol=1e-6)


def test_without_a_positive_box_it_refuses(detector, image):
    with pytest.raises(ValueError, match="positive"):
        detector.find_similar(image, text="cat", positive_boxes=[], keep_threshold=0.1)


def test_the_found_instances_encode_as_proposals_with_masks(detector, image):
    found = detector.find_similar(image, text="cat", positive_boxes=POSITIVE, keep_threshold=0.2)
    proposals = proposals_from_detections(
        found, DetectParams(box_threshold=0.3, text_threshold=0.25, keep_threshold=0.2)
    )
    assert len(proposals) == len(found)
    for proposal, detection in zip(proposals, found, strict=True):
        assert proposal.score == detection.score
        if proposal.mask is not None:  # encoded: the box is the mask's
            assert proposal.mask["size"] == [image.height, image.width]
            assert proposal.detector_box == detection.box
