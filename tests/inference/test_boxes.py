"""The one numpy box IoU (inference.boxes), against hand-computed values and torchvision.ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_convert
from torchvision.ops import box_iou as torchvision_box_iou

from inference.boxes import box_iou


def test_iou_of_one_box_against_several():
    ious = box_iou([0, 0, 10, 10], [[0, 0, 10, 20], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])

    assert ious.shape == (4,)
    assert ious.tolist() == pytest.approx([0.5, 1 / 3, 0.0, 1.0])


def test_empty_boxes_and_empty_unions_give_zero():
    assert box_iou([0, 0, 10, 10], np.zeros((0, 4))).shape == (0,)
    assert box_iou([5, 5, 0, 0], [[5, 5, 0, 0]]).tolist() == [0.0]


def test_it_agrees_with_torchvision_on_random_boxes():
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(0, 100, (50, 2)), rng.uniform(1, 60, (50, 2))], axis=1)
    xyxy = box_convert(torch.from_numpy(boxes), "xywh", "xyxy")
    expected = torchvision_box_iou(xyxy, xyxy).numpy()

    got = np.stack([box_iou(box, boxes) for box in boxes])

    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
