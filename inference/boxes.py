"""Box IoU on numpy arrays: the one implementation for code that holds boxes as numpy or lists
(the pre-labeling's "already decided" check, the dashboard's proposal-vs-final quality). Model
code on tensors uses torchvision.ops (box_iou, batched_nms) instead."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(box: Sequence[float], boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """IoU of one (x, y, w, h) box against each of N (x, y, w, h) boxes: an (N,) float array;
    0 where the union is empty."""
    a = np.asarray(box, dtype=np.float64).reshape(4)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[0], b[:, 0])
    y1 = np.maximum(a[1], b[:, 1])
    x2 = np.minimum(a[0] + a[2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[1] + a[3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
