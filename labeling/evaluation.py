"""The prompt lab's metrics: one class's model proposals ("guesses") scored against the
human-final annotations ("truths") on a set of images. Pure: numpy and pycocotools (plus our own
numpy box IoU and RLE check from inference); no Django, no torch. Everything is in image pixels,
boxes (x, y, w, h), masks COCO RLE {"size": [h, w], "counts": str} as stored on Annotation.mask.

`evaluate(images, truths, guesses, threshold=t, iou=0.5)` gives `Scores`:

Precision, recall and F1 at the threshold
    A guess counts at threshold t when ``score >= t`` (the review page and the exports use
    ``score__gte``). Matching (`match`): on each image, the guesses in descending score order
    (equal scores: in the order given), each matched to the still-unmatched truth with the
    highest box IoU (`inference.boxes.box_iou`) when that IoU is >= `iou`; a truth can be
    matched once. This is COCOeval's greedy matching at one IoU threshold (same order, same
    tie rule: among truths of equal IoU the last one), so at ``iou=0.5`` the true positives are
    COCOeval's matches at IoU .50 (without its 100-per-image cut). TP = matched guesses
    reaching t, FP = guesses reaching t - TP, FN = truths - TP. precision = TP / guesses
    (None when no guess reaches t), recall = TP / truths (None when there is no truth),
    F1 = 2PR / (P + R) = 2 TP / (guesses + truths) (None when P or R is None; 0.0 when TP = 0).

The F1-best threshold
    Every distinct guess score is tried as the threshold (a threshold between two scores keeps
    the same guesses as the next score above it, and one above the top score keeps none, so
    these are all the distinct outcomes); the best F1 wins, ties go to the highest threshold.
    One matching over all the guesses serves every threshold, exactly: the guesses reaching t
    are a prefix of the matching's order (all the guesses of one score are on the same side of
    t), and greedy matching decides each guess from the guesses before it only, so matching
    just that prefix takes the same decisions. TP(t) is therefore the number of matched guesses
    with score >= t, and the sweep is a sort and a cumulative sum. None when there is no guess
    or no truth (F1 undefined everywhere); when nothing matches at all, the best F1 is 0.0 at
    the top score.

COCO AP (pycocotools' COCOeval)
    AP@[.50:.95] and AP@.50, area "all", of the boxes (iouType "bbox") and of the masks ("segm"),
    over *all* the guesses (not only those reaching the threshold: AP sweeps the score itself).
    Ground truth: every image of `images` (COCOeval evaluates each listed image, so guesses on an
    image without truth count as false positives there), one category, iscrowd 0, area the
    mask's pixel count (pycocotools.mask.area) or else w * h; detections through `loadRes`
    (for masks loadRes takes the area and box from the mask). COCOeval keeps at most
    maxDets[-1] = 100 guesses per image (the best scored); when an image has more, that last
    value is raised to the largest per-image count so that no guess is dropped. Because
    `COCOeval.summarize` reads stats[0] at a hard-coded maxDets of 100 (it returns -1 when the
    last value is anything else), both figures are read from ``eval["precision"]`` exactly as
    summarize reads them (the mean of the entries > -1 over IoU thresholds, recall thresholds,
    the one category, area "all", the last maxDets; AP50 the same at IoU .50): with the default
    maxDets that is stats[0] and stats[1] (the tests compare them). pycocotools prints while it
    works; its output is swallowed (contextlib.redirect_stdout: process-wide for that moment).
    AP is None when there is no truth, 0.0 when there are truths and no guess. Mask AP is None
    as well when any truth or guess has no mask. Masks are checked before pycocotools reads
    them (size = the image's, runs covering it: `inference.masks.rle_runs_checked`), since its
    decoder trusts a counts string and writes past its buffer on a bad one; counts given as a
    str are passed to pycocotools as bytes, counts given as a list of integers are compressed.

Bad input raises ValueError saying what is wrong: a truth or guess on an image id not in
`images`, duplicate image ids, a non-finite score, box or threshold, a negative box size, an
`iou` outside (0, 1], a malformed mask or one whose size is not its image's.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.boxes import box_iou
from inference.masks import rle_runs_checked

COCO_MAX_DETS = 100  # COCOeval's default maxDets[-1]: guesses kept per image
CATEGORY_ID = 1  # the one category of the COCO data built here


@dataclass(frozen=True)
class EvalImage:
    id: int
    width: int
    height: int


@dataclass(frozen=True)
class Truth:
    image_id: int
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels
    mask: dict | None = None  # COCO RLE {"size": [h, w], "counts": str}, as stored on Annotation.mask


@dataclass(frozen=True)
class Guess:
    image_id: int
    box: tuple[float, float, float, float]
    score: float
    mask: dict | None = None


@dataclass(frozen=True)
class Scores:
    threshold: float
    truths: int
    guesses: int  # guesses with score >= threshold
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float | None  # None when no guess reaches the threshold
    recall: float | None  # None when there is no truth
    f1: float | None  # None when precision or recall is None; 0.0 when both are 0
    best_threshold: float | None  # the F1-best threshold over every distinct guess score (ties: the highest)
    best_precision: float | None
    best_recall: float | None
    best_f1: float | None
    ap_box: float | None  # COCO AP@[.50:.95] of the boxes; None when there is no truth
    ap50_box: float | None
    ap_mask: float | None  # the same for masks; None when no truth or any truth or guess lacks a mask
    ap50_mask: float | None
    iou: float = 0.5  # the box IoU a guess needs to match a truth (precision, recall, F1; not AP)

    def as_dict(self) -> dict:
        """Every field, JSON-ready (Python ints, floats and None)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Rates:
    """Counts and rates at one threshold (the F1-best one in `Scores`)."""

    threshold: float
    guesses: int
    true_positives: int
    precision: float | None
    recall: float | None
    f1: float | None


def evaluate(
    images: Sequence[EvalImage],
    truths: Sequence[Truth],
    guesses: Sequence[Guess],
    *,
    threshold: float,
    iou: float = 0.5,
) -> Scores:
    """Score the guesses against the truths on these images (the module docstring says how)."""
    sizes = _image_sizes(images)
    threshold = _finite(threshold, "the threshold")
    iou = _finite(iou, "the IoU")
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"the IoU must be in (0, 1], not {iou}")
    for kind, items in (("truth", truths), ("guess", guesses)):
        for n, item in enumerate(items):
            _check_item(item, n, kind, sizes)

    matched = match(truths, guesses, iou=iou)
    scores = np.array([float(g.score) for g in guesses], dtype=np.float64)
    at = rates_at(scores, matched, len(truths), threshold)
    best = f1_best(scores, matched, len(truths))
    ap_box, ap50_box = coco_ap(images, truths, guesses, iou_type="bbox")
    ap_mask, ap50_mask = coco_ap(images, truths, guesses, iou_type="segm")
    return Scores(
        threshold=threshold,
        truths=len(truths),
        guesses=at.guesses,
        true_positives=at.true_positives,
        false_positives=at.guesses - at.true_positives,
        false_negatives=len(truths) - at.true_positives,
        precision=at.precision,
        recall=at.recall,
        f1=at.f1,
        best_threshold=best.threshold if best else None,
        best_precision=best.precision if best else None,
        best_recall=best.recall if best else None,
        best_f1=best.f1 if best else None,
        ap_box=ap_box,
        ap50_box=ap50_box,
        ap_mask=ap_mask,
        ap50_mask=ap50_mask,
        iou=iou,
    )


def match(truths: Sequence[Truth], guesses: Sequence[Guess], *, iou: float = 0.5) -> np.ndarray:
    """Which guesses match a truth (a bool array in the guesses' order), matching all of them
    once: per image, guesses by descending score (stable), each to the still-unmatched truth of
    highest box IoU >= `iou` (the last of equal ones, as COCOeval does)."""
    truth_boxes: dict[int, list[tuple[float, float, float, float]]] = defaultdict(list)
    for truth in truths:
        truth_boxes[truth.image_id].append(truth.box)
    on_image: dict[int, list[int]] = defaultdict(list)
    for n, guess in enumerate(guesses):
        on_image[guess.image_id].append(n)
    matched = np.zeros(len(guesses), dtype=bool)
    for image_id, indices in on_image.items():
        boxes = np.asarray(truth_boxes.get(image_id, ()), dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        free = np.ones(len(boxes), dtype=bool)
        for n in sorted(indices, key=lambda i: -float(guesses[i].score)):  # sorted() is stable
            overlaps = np.where(free, box_iou(guesses[n].box, boxes), -1.0)
            best = overlaps.max()
            if best >= iou:
                truth = int(np.flatnonzero(overlaps == best)[-1])
                matched[n] = True
                free[truth] = False
                if not free.any():
                    break
    return matched


def rates_at(scores: np.ndarray, matched: np.ndarray, truths: int, threshold: float) -> Rates:
    """Counts and rates of the guesses with score >= threshold, given the one matching."""
    reaching = scores >= threshold
    return _rates(threshold, int(reaching.sum()), int(matched[reaching].sum()), truths)


def f1_best(scores: np.ndarray, matched: np.ndarray, truths: int) -> Rates | None:
    """The F1-best of the distinct scores as threshold (ties: the highest), from the one
    matching (exact: see the module docstring). None when there is no guess or no truth."""
    if not len(scores) or not truths:
        return None
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    tp = np.cumsum(matched[order])
    # The last guess of each run of equal scores: the guesses reaching that score.
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    f1 = 2.0 * tp[ends] / (ends + 1 + truths)
    best = int(ends[int(np.argmax(f1))])  # argmax: the first maximum, the highest threshold
    return _rates(float(ordered[best]), best + 1, int(tp[best]), truths)


def _rates(threshold: float, guesses: int, true_positives: int, truths: int) -> Rates:
    precision = true_positives / guesses if guesses else None
    recall = true_positives / truths if truths else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * true_positives / (guesses + truths)
    return Rates(threshold, guesses, true_positives, precision, recall, f1)


def coco_ap(
    images: Sequence[EvalImage], truths: Sequence[Truth], guesses: Sequence[Guess], *, iou_type: str
) -> tuple[float | None, float | None]:
    """(AP@[.50:.95], AP@.50) by COCOeval with iou_type "bbox" or "segm" (module docstring).
    Expects checked input (`evaluate` checks it)."""
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', not {iou_type!r}")
    if not truths:
        return None, None
    segm = iou_type == "segm"
    if segm and any(item.mask is None for item in (*truths, *guesses)):
        return None, None
    if not guesses:
        return 0.0, 0.0

    annotations = []
    for n, truth in enumerate(truths, start=1):  # COCOeval needs ids > 0 (0 means "unmatched")
        annotation = {
            "id": n,
            "image_id": truth.image_id,
            "category_id": CATEGORY_ID,
            "bbox": [float(v) for v in truth.box],
            "iscrowd": 0,
        }
        if truth.mask is not None:
            rle = _coco_rle(truth.mask)
            annotation["area"] = float(coco_mask.area(rle))
            if segm:
                annotation["segmentation"] = rle
        else:
            annotation["area"] = float(truth.box[2]) * float(truth.box[3])
        annotations.append(annotation)
    dataset = {
        "images": [{"id": image.id, "width": image.width, "height": image.height} for image in images],
        "categories": [{"id": CATEGORY_ID, "name": "object"}],
        "annotations": annotations,
    }
    if segm:
        results = [
            {
                "image_id": g.image_id,
                "category_id": CATEGORY_ID,
                "segmentation": _coco_rle(g.mask),
                "score": float(g.score),
            }
            for g in guesses
        ]
    else:
        results = [
            {
                "image_id": g.image_id,
                "category_id": CATEGORY_ID,
                "bbox": [float(v) for v in g.box],
                "score": float(g.score),
            }
            for g in guesses
        ]
    per_image: dict[int, int] = defaultdict(int)
    for guess in guesses:
        per_image[guess.image_id] += 1

    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = dataset
        ground.createIndex()
        found = ground.loadRes(results)
        cocoeval = COCOeval(ground, found, iouType=iou_type)
        cocoeval.params.maxDets = [1, 10, max(COCO_MAX_DETS, *per_image.values())]
        cocoeval.evaluate()
        cocoeval.accumulate()
    params = cocoeval.params
    precision = cocoeval.eval["precision"]  # [IoU threshold, recall threshold, category, area, maxDets]
    everything = params.areaRngLbl.index("all")
    at_most = len(params.maxDets) - 1
    ap = _mean_defined(precision[:, :, :, everything, at_most])
    ap50 = _mean_defined(precision[np.isclose(params.iouThrs, 0.5), :, :, everything, at_most])
    return ap, ap50


def _mean_defined(values: np.ndarray) -> float | None:
    """summarize's mean: over the entries > -1 (-1 marks "no truth"); None when there is none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else None


def _coco_rle(mask: dict) -> dict:
    """A checked mask as pycocotools wants it: compressed, counts as bytes."""
    height, width = (int(v) for v in mask["size"])
    counts = mask["counts"]
    if isinstance(counts, list):
        return coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _image_sizes(images: Sequence[EvalImage]) -> dict[int, tuple[int, int]]:
    sizes: dict[int, tuple[int, int]] = {}
    for image in images:
        if image.id in sizes:
            raise ValueError(f"image {image.id} is listed twice")
        if image.width <= 0 or image.height <= 0:
            raise ValueError(f"image {image.id} has no pixels ({image.width} × {image.height})")
        sizes[image.id] = (int(image.height), int(image.width))
    return sizes


def _finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return number


def _check_item(item: Truth | Guess, n: int, kind: str, sizes: dict[int, tuple[int, int]]) -> None:
    where = f"{kind} {n} (image {item.image_id})"
    if item.image_id not in sizes:
        raise ValueError(f"{kind} {n} is on image {item.image_id}, which is not among the evaluated images")
    if len(item.box) != 4:
        raise ValueError(f"{where}: a box is (x, y, w, h), not {item.box!r}")
    box = [_finite(v, f"{where}: a box coordinate") for v in item.box]
    if box[2] < 0 or box[3] < 0:
        raise ValueError(f"{where}: the box has a negative size {item.box!r}")
    if isinstance(item, Guess):
        _finite(item.score, f"{where}: the score")
    if item.mask is not None:
        _check_mask(item.mask, where, sizes[item.image_id])


def _check_mask(mask: dict, where: str, size: tuple[int, int]) -> None:
    if not isinstance(mask, dict) or "size" not in mask or "counts" not in mask:
        raise ValueError(f'{where}: a mask is a COCO RLE {{"size": [h, w], "counts": ...}}')
    try:
        height, width = (int(v) for v in mask["size"])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: the mask's size must be [height, width]") from None
    if (height, width) != size:
        raise ValueError(f"{where}: the mask is {height} × {width}, its image {size[0]} × {size[1]}")
    counts = mask["counts"]
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{where}: the mask's counts are not a COCO string") from None
    try:
        rle_runs_checked(counts, height=height, width=width)
    except ValueError as error:
        raise ValueError(f"{where}: bad mask: {error}") from None
