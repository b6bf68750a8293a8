"""The prompt lab's metrics (labeling/evaluation.py): precision / recall / F1 at a threshold and
the F1-best threshold against figures worked out by hand, COCO AP against pycocotools' own
COCOeval run here on the same data written as COCO json files. Pure: no database."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.masks import rle_string_runs
from labeling.evaluation import EvalImage, Guess, Scores, Truth, evaluate, match

# 101 recall thresholds (0, 0.01, ..., 1): AP is the mean precision over them.
RECALL_POINTS = 101


def rle(mask: np.ndarray) -> dict:
    """A mask as stored on Annotation.mask: compressed COCO RLE, counts a str."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def ellipse(height: int, width: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    return ((cols + 0.5 - cx) / rx) ** 2 + ((rows + 0.5 - cy) / ry) ** 2 <= 1.0


def rect_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask


def mask_box(mask: dict) -> tuple[float, float, float, float]:
    x, y, w, h = coco_mask.toBbox({"size": mask["size"], "counts": mask["counts"].encode()})
    return float(x), float(y), float(w), float(h)


# The constructed set of the issue ------------------------------------------------------------

IMAGES = [EvalImage(1, 100, 100), EvalImage(2, 100, 100)]
TRUTHS = [
    Truth(1, (10, 10, 20, 20)),
    Truth(1, (50, 50, 20, 20)),
    Truth(2, (10, 10, 30, 30)),
    Truth(2, (60, 60, 20, 20)),
]


def test_two_prompts_precision_one_recall_half_and_the_reverse():
    # Prompt A finds two of the four objects and nothing else.
    prompt_a = [Guess(1, (10, 10, 20, 20), 0.9), Guess(2, (10, 10, 30, 30), 0.8)]
    # Prompt B finds all four, and as many things that are not there (lower scores).
    prompt_b = [Guess(t.image_id, t.box, 0.9) for t in TRUTHS] + [
        Guess(1, (80, 0, 15, 15), 0.6),
        Guess(1, (0, 80, 15, 15), 0.6),
        Guess(2, (80, 0, 15, 15), 0.6),
        Guess(2, (40, 80, 10, 10), 0.6),
    ]
    a = evaluate(IMAGES, TRUTHS, prompt_a, threshold=0.5)
    b = evaluate(IMAGES, TRUTHS, prompt_b, threshold=0.5)

    # A at 0.5: TP 2, FP 0, FN 4 - 2 = 2; P = 2 / 2 = 1, R = 2 / 4 = 0.5, F1 = 2·1·0.5 / 1.5 = 2/3.
    assert (a.truths, a.guesses, a.true_positives, a.false_positives, a.false_negatives) == (4, 2, 2, 0, 2)
    assert a.precision == 1.0
    assert a.recall == 0.5
    assert a.f1 == pytest.approx(2 * 1.0 * 0.5 / (1.0 + 0.5)) == pytest.approx(2 / 3)
    # B at 0.5: TP 4, FP 4, FN 0; P = 4 / 8 = 0.5, R = 4 / 4 = 1, F1 = 2·0.5·1 / 1.5 = 2/3.
    assert (b.truths, b.guesses, b.true_positives, b.false_positives, b.false_negatives) == (4, 8, 4, 4, 0)
    assert b.precision == 0.5
    assert b.recall == 1.0
    assert b.f1 == pytest.approx(2 * 0.5 * 1.0 / (0.5 + 1.0)) == pytest.approx(2 / 3)

    # Best thresholds. A: at 0.9 TP 1 of 1 guess, F1 = 2·1 / (1 + 4) = 0.4; at 0.8 F1 = 2/3 → 0.8.
    assert (a.best_threshold, a.best_precision, a.best_recall) == (0.8, 1.0, 0.5)
    assert a.best_f1 == pytest.approx(2 / 3)
    # B: at 0.9 the four hits only, P = R = F1 = 1; at 0.6 F1 = 2/3 → 0.9.
    assert (b.best_threshold, b.best_precision, b.best_recall, b.best_f1) == (0.9, 1.0, 1.0, 1.0)

    # AP. A: precision 1 up to recall 0.5, then no more guesses: the recall thresholds 0, 0.01,
    # ..., 0.50 (51 of 101) have precision 1, the other 50 have 0, at every IoU (exact boxes).
    assert a.ap_box == pytest.approx(51 / RECALL_POINTS)
    assert a.ap50_box == pytest.approx(51 / RECALL_POINTS)
    # B: the four hits come first (score 0.9): precision 1 at every recall → AP 1.
    assert b.ap_box == pytest.approx(1.0)
    assert b.ap50_box == pytest.approx(1.0)
    assert a.ap_mask is None and b.ap_mask is None  # boxes only


def test_a_guess_counts_when_its_score_reaches_the_threshold_and_its_iou_reaches_iou():
    images = [EvalImage(1, 50, 50)]
    truths = [Truth(1, (0, 0, 10, 10)), Truth(1, (30, 30, 10, 10))]
    guesses = [
        Guess(1, (0, 0, 10, 20), 0.5),  # IoU 100 / 200 = 0.5 with the first truth: a match
        Guess(1, (30, 30, 10, 21), 0.5),  # IoU 100 / 210 < 0.5 with the second: no match
    ]
    at_score = evaluate(images, truths, guesses, threshold=0.5)
    assert (at_score.guesses, at_score.true_positives, at_score.false_positives) == (2, 1, 1)
    just_above = evaluate(images, truths, guesses, threshold=0.5000001)
    assert (just_above.guesses, just_above.precision, just_above.recall, just_above.f1) == (
        0,
        None,
        0.0,
        None,
    )
    # A stricter IoU: neither matches.
    strict = evaluate(images, truths, guesses, threshold=0.5, iou=0.6)
    assert (strict.true_positives, strict.precision, strict.recall, strict.f1) == (0, 0.0, 0.0, 0.0)
    assert strict.iou == 0.6


def test_each_truth_is_matched_once_the_higher_score_first():
    images = [EvalImage(1, 50, 50)]
    truths = [Truth(1, (0, 0, 10, 10))]
    # Both overlap the one truth; the better-scored one (listed second) takes it, even with the
    # lower IoU; the other is a false positive.
    guesses = [Guess(1, (0, 0, 10, 10), 0.4), Guess(1, (1, 1, 10, 10), 0.8)]
    assert match(truths, guesses, iou=0.5).tolist() == [False, True]
    # Equal scores: the one listed first goes first (COCOeval's stable sort), whatever its IoU.
    tied = [Guess(1, (1, 1, 10, 10), 0.8), Guess(1, (0, 0, 10, 10), 0.8)]
    assert match(truths, tied, iou=0.5).tolist() == [True, False]
    scores = evaluate(images, truths, guesses, threshold=0.0)
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (1, 1, 0)


# The F1-best threshold -----------------------------------------------------------------------


def test_best_threshold_ties_go_to_the_highest():
    images = [EvalImage(1, 200, 40)]
    truths = [Truth(1, (x, 0, 20, 20)) for x in (0, 40, 80, 120)]  # T = 4
    hit = [Guess(1, t.box, 0.0) for t in truths]
    guesses = [
        Guess(1, hit[0].box, 0.9),  # TP
        Guess(1, hit[1].box, 0.8),  # TP
        Guess(1, (0, 25, 10, 10), 0.7),  # FP (no truth there)
        Guess(1, (40, 25, 10, 10), 0.6),  # FP
        Guess(1, hit[2].box, 0.5),  # TP
    ]
    # F1 = 2 TP / (guesses + truths):
    #   t = 0.9: 2·1 / (1 + 4) = 0.4
    #   t = 0.8: 2·2 / (2 + 4) = 2/3   ← best (tie)
    #   t = 0.7: 2·2 / (3 + 4) = 4/7
    #   t = 0.6: 2·2 / (4 + 4) = 0.5
    #   t = 0.5: 2·3 / (5 + 4) = 2/3   ← best (tie): the highest threshold wins, 0.8
    scores = evaluate(images, truths, guesses, threshold=0.5)
    assert scores.f1 == pytest.approx(2 / 3)
    assert scores.best_threshold == 0.8
    assert scores.best_f1 == pytest.approx(2 / 3)
    assert scores.best_precision == 1.0  # 2 of 2
    assert scores.best_recall == 0.5  # 2 of 4

    # One more hit at 0.5 breaks the tie: t = 0.5: 2·4 / (6 + 4) = 0.8.
    more = evaluate(images, truths, [*guesses, Guess(1, hit[3].box, 0.5)], threshold=0.9)
    assert (more.best_threshold, more.best_precision, more.best_recall) == (0.5, 4 / 6, 1.0)
    assert more.best_f1 == pytest.approx(0.8)
    assert (more.guesses, more.true_positives, more.f1) == (1, 1, pytest.approx(0.4))


def test_guesses_of_equal_score_are_one_threshold():
    images = [EvalImage(1, 100, 100)]
    truths = [Truth(1, (0, 0, 10, 10)), Truth(1, (50, 50, 10, 10))]
    guesses = [
        Guess(1, (0, 0, 10, 10), 0.7),
        Guess(1, (80, 80, 10, 10), 0.7),  # FP at the same score: cannot be left out alone
        Guess(1, (50, 50, 10, 10), 0.3),
    ]
    # t = 0.7: TP 1 of 2 guesses, F1 = 2 / (2 + 2) = 0.5;  t = 0.3: TP 2 of 3, F1 = 4 / 5 = 0.8.
    scores = evaluate(images, truths, guesses, threshold=0.7)
    assert (scores.guesses, scores.true_positives, scores.f1) == (2, 1, 0.5)
    assert (scores.best_threshold, scores.best_f1) == (0.3, pytest.approx(0.8))


def test_no_match_at_all_best_f1_is_zero_at_the_top_score():
    images = [EvalImage(1, 100, 100)]
    scores = evaluate(
        images,
        [Truth(1, (0, 0, 10, 10))],
        [Guess(1, (50, 50, 10, 10), 0.4), Guess(1, (70, 70, 10, 10), 0.6)],
        threshold=0.5,
    )
    assert (scores.best_threshold, scores.best_precision, scores.best_recall, scores.best_f1) == (
        0.6,
        0.0,
        0.0,
        0.0,
    )


# A non-trivial random set, and pycocotools run on it independently ------------------------------


def random_set(seed: int = 15):
    """Six images of different sizes (two without any truth), elliptic objects, guesses that are
    shifted and rescaled copies of them (some twice), misses, and false alarms; scores rounded to
    one decimal so that some are equal."""
    rng = np.random.default_rng(seed)
    images, truths, guesses = [], [], []
    for image_id in range(1, 7):
        width, height = int(rng.integers(48, 121)), int(rng.integers(40, 101))
        images.append(EvalImage(image_id, width, height))
        count = 0 if image_id in (3, 6) else int(rng.integers(1, 5))
        for _ in range(count):
            cx, cy = rng.uniform(8, width - 8), rng.uniform(8, height - 8)
            rx, ry = rng.uniform(4, 16), rng.uniform(4, 16)
            mask = rle(ellipse(height, width, cx, cy, rx, ry))
            truths.append(Truth(image_id, mask_box(mask), mask))
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                shifted = ellipse(
                    height,
                    width,
                    cx + rng.uniform(-4, 4),
                    cy + rng.uniform(-4, 4),
                    rx * rng.uniform(0.75, 1.25),
                    ry * rng.uniform(0.75, 1.25),
                )
                guess_mask = rle(shifted)
                score = round(float(rng.uniform(0.05, 1.0)), 1)
                guesses.append(Guess(image_id, mask_box(guess_mask), score, guess_mask))
        for _ in range(int(rng.integers(0, 4))):
            box = (
                int(rng.integers(0, width - 10)),
                int(rng.integers(0, height - 10)),
                int(rng.integers(4, 11)),
                int(rng.integers(4, 11)),
            )
            false_mask = rle(rect_mask(height, width, box))
            guesses.append(Guess(image_id, box, round(float(rng.uniform(0.05, 1.0)), 1), false_mask))
    return images, truths, guesses


def pycocotools_eval(tmp_path, images, truths, guesses, iou_type: str) -> COCOeval:
    """COCOeval as its own documentation runs it: json files for the ground truth and the
    results, COCO(file), loadRes(file), the default parameters."""
    ground = {
        "images": [{"id": i.id, "width": i.width, "height": i.height} for i in images],
        "categories": [{"id": 7, "name": "thing"}],
        "annotations": [
            {
                "id": n,
                "image_id": t.image_id,
                "category_id": 7,
                "bbox": list(t.box),
                "area": int(coco_mask.area({"size": t.mask["size"], "counts": t.mask["counts"].encode()})),
                "segmentation": t.mask,
                "iscrowd": 0,
            }
            for n, t in enumerate(truths, start=1)
        ],
    }
    if iou_type == "bbox":
        results = [
            {"image_id": g.image_id, "category_id": 7, "bbox": list(g.box), "score": g.score} for g in guesses
        ]
    else:
        results = [
            {"image_id": g.image_id, "category_id": 7, "segmentation": g.mask, "score": g.score}
            for g in guesses
        ]
    (tmp_path / "ground.json").write_text(json.dumps(ground))
    (tmp_path / f"results_{iou_type}.json").write_text(json.dumps(results))
    coco_ground = COCO(str(tmp_path / "ground.json"))
    coco_results = coco_ground.loadRes(str(tmp_path / f"results_{iou_type}.json"))
    cocoeval = COCOeval(coco_ground, coco_results, iouType=iou_type)
    cocoeval.evaluate()
    cocoeval.accumulate()
    cocoeval.summarize()
    return cocoeval


@pytest.mark.parametrize("seed", [15, 7, 3])
def test_ap_equals_pycocotools_on_a_random_set(tmp_path, seed):
    images, truths, guesses = random_set(seed)
    assert len(truths) >= 8 and len(guesses) >= 15 and len({g.score for g in guesses}) < len(guesses)
    scores = evaluate(images, truths, guesses, threshold=0.5)

    boxes = pycocotools_eval(tmp_path, images, truths, guesses, "bbox")
    masks = pycocotools_eval(tmp_path, images, truths, guesses, "segm")
    assert scores.ap_box == pytest.approx(boxes.stats[0], abs=1e-12)
    assert scores.ap50_box == pytest.approx(boxes.stats[1], abs=1e-12)
    assert scores.ap_mask == pytest.approx(masks.stats[0], abs=1e-12)
    assert scores.ap50_mask == pytest.approx(masks.stats[1], abs=1e-12)
    # Not a trivial set: neither perfect nor empty, boxes and masks differ.
    for value in (scores.ap_box, scores.ap50_box, scores.ap_mask, scores.ap50_mask):
        assert 0.05 < value < 0.95
    assert scores.ap_box != scores.ap_mask
    assert scores.ap_box < scores.ap50_box


def test_true_positives_equal_cocoevals_matches_at_iou_half(tmp_path):
    """The module's greedy matching is COCOeval's at IoU .50 (same order and tie rule)."""
    images, truths, guesses = random_set(seed=7)
    cocoeval = pycocotools_eval(tmp_path, images, truths, guesses, "bbox")
    everything = [0, 1e5**2]  # COCOeval's area range "all"
    coco_matches = sum(
        int(np.count_nonzero(e["dtMatches"][0]))  # row 0: IoU threshold .50
        for e in cocoeval.evalImgs
        if e is not None and e["aRng"] == everything
    )
    scores = evaluate(images, truths, guesses, threshold=min(g.score for g in guesses))
    assert scores.guesses == len(guesses)
    assert scores.true_positives == coco_matches > 0


def test_the_sweep_equals_matching_each_thresholds_guesses_alone():
    """TP(t) from the one matching of all guesses = TP of matching only the guesses >= t."""
    images, truths, guesses = random_set(seed=3)
    by_threshold = {}
    for t in sorted({g.score for g in guesses}):
        kept = [g for g in guesses if g.score >= t]
        tp = int(match(truths, kept, iou=0.5).sum())
        at_t = evaluate(images, truths, guesses, threshold=t)
        assert (at_t.guesses, at_t.true_positives) == (len(kept), tp)
        by_threshold[t] = 2 * tp / (len(kept) + len(truths))
    best_f1 = max(by_threshold.values())
    highest_best = max(t for t, f1 in by_threshold.items() if f1 == best_f1)
    scores = evaluate(images, truths, guesses, threshold=0.5)
    assert scores.best_f1 == pytest.approx(best_f1)
    assert scores.best_threshold == highest_best


# Hand-checkable AP ---------------------------------------------------------------------------


def test_a_perfect_set_scores_one_everywhere():
    images = [EvalImage(1, 60, 40), EvalImage(2, 30, 30)]
    masks = [
        (1, ellipse(40, 60, 20, 20, 10, 8)),
        (1, rect_mask(40, 60, (40, 5, 15, 25))),
        (2, ellipse(30, 30, 15, 15, 9, 12)),
    ]
    truths = [Truth(i, mask_box(rle(m)), rle(m)) for i, m in masks]
    guesses = [Guess(t.image_id, t.box, 0.9 - 0.1 * n, t.mask) for n, t in enumerate(truths)]
    scores = evaluate(images, truths, guesses, threshold=0.5)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    for value in (scores.ap_box, scores.ap50_box, scores.ap_mask, scores.ap50_mask):
        assert value == pytest.approx(1.0)


def test_one_exact_hit_of_two_truths_with_masks():
    images = [EvalImage(1, 64, 64)]
    found, missed = rect_mask(64, 64, (4, 4, 20, 20)), ellipse(64, 64, 45, 45, 10, 10)
    truths = [Truth(1, mask_box(rle(m)), rle(m)) for m in (found, missed)]
    guesses = [Guess(1, truths[0].box, 0.8, rle(found))]
    scores = evaluate(images, truths, guesses, threshold=0.5)
    # Recall reaches 0.5 at precision 1: 51 of the 101 recall thresholds (0 ... 0.50) score 1.
    for value in (scores.ap_box, scores.ap50_box, scores.ap_mask, scores.ap50_mask):
        assert value == pytest.approx(51 / RECALL_POINTS)


def test_false_positives_on_an_image_without_truth_lower_ap():
    images = [EvalImage(1, 64, 64), EvalImage(2, 64, 64)]
    truths = [Truth(1, (0, 0, 10, 10))]
    # The false alarm on image 2 outscores the hit: precision is 1/2 at recall 1 → AP 0.5.
    guesses = [Guess(2, (0, 0, 10, 10), 0.9), Guess(1, (0, 0, 10, 10), 0.8)]
    scores = evaluate(images, truths, guesses, threshold=0.5)
    assert scores.ap_box == pytest.approx(0.5)
    assert scores.ap50_box == pytest.approx(0.5)
    assert (scores.precision, scores.recall) == (0.5, 1.0)


def test_more_than_100_guesses_on_an_image_all_count():
    images = [EvalImage(1, 2000, 40)]
    truths = [Truth(1, (0, 0, 10, 10))]
    # 149 false alarms side by side, then the one hit with the lowest score of all 150.
    guesses = [Guess(1, (20 + 12 * n, 20, 10, 10), 0.9) for n in range(149)]
    guesses.append(Guess(1, (0, 0, 10, 10), 0.1))
    scores = evaluate(images, truths, guesses, threshold=0.0)
    # The hit is the 150th guess: precision 1/150 at recall 1, for every recall threshold and IoU.
    assert scores.ap_box == pytest.approx(1 / 150)
    assert scores.ap50_box == pytest.approx(1 / 150)
    assert (scores.true_positives, scores.false_positives) == (1, 149)
    # COCOeval's default 100 per image would have dropped the hit: AP 0 there.
    ground = COCO()
    ground.dataset = {
        "images": [{"id": 1, "width": 2000, "height": 40}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}
        ],
    }
    ground.createIndex()
    default = COCOeval(
        ground,
        ground.loadRes(
            [{"image_id": 1, "category_id": 1, "bbox": list(g.box), "score": g.score} for g in guesses]
        ),
        iouType="bbox",
    )
    default.evaluate()
    default.accumulate()
    default.summarize()
    assert default.stats[0] == 0.0


# Masks in the forms they come in ------------------------------------------------------------


def test_mask_counts_as_str_bytes_or_runs_give_the_same_ap():
    images, truths, guesses = random_set(seed=11)
    as_str = evaluate(images, truths, guesses, threshold=0.5)

    def as_bytes(mask: dict) -> dict:
        return {"size": mask["size"], "counts": mask["counts"].encode()}

    def as_runs(mask: dict) -> dict:
        return {"size": mask["size"], "counts": rle_string_runs(mask["counts"])}

    for form in (as_bytes, as_runs):
        other = evaluate(
            images,
            [Truth(t.image_id, t.box, form(t.mask)) for t in truths],
            [Guess(g.image_id, g.box, g.score, form(g.mask)) for g in guesses],
            threshold=0.5,
        )
        assert (other.ap_mask, other.ap50_mask) == (as_str.ap_mask, as_str.ap50_mask)
    assert as_str.ap_mask is not None


def test_mask_ap_is_none_when_a_truth_or_a_guess_has_no_mask():
    images, truths, guesses = random_set(seed=11)
    no_guess_mask = [*guesses[:-1], Guess(guesses[-1].image_id, guesses[-1].box, guesses[-1].score)]
    no_truth_mask = [Truth(truths[0].image_id, truths[0].box), *truths[1:]]
    for t, g in ((truths, no_guess_mask), (no_truth_mask, guesses)):
        scores = evaluate(images, t, g, threshold=0.5)
        assert (scores.ap_mask, scores.ap50_mask) == (None, None)
        assert scores.ap_box is not None


# Edge cases ----------------------------------------------------------------------------------


def test_no_guesses():
    images = [EvalImage(1, 32, 32)]
    mask = rle(rect_mask(32, 32, (2, 2, 8, 8)))
    scores = evaluate(images, [Truth(1, (2, 2, 8, 8), mask)], [], threshold=0.5)
    assert (scores.guesses, scores.true_positives, scores.false_negatives) == (0, 0, 1)
    assert (scores.precision, scores.recall, scores.f1) == (None, 0.0, None)
    assert (scores.best_threshold, scores.best_precision, scores.best_recall, scores.best_f1) == (None,) * 4
    assert (scores.ap_box, scores.ap50_box, scores.ap_mask, scores.ap50_mask) == (0.0, 0.0, 0.0, 0.0)


def test_no_truths():
    images = [EvalImage(1, 32, 32)]
    scores = evaluate(images, [], [Guess(1, (2, 2, 8, 8), 0.7), Guess(1, (20, 2, 8, 8), 0.2)], threshold=0.5)
    assert (scores.truths, scores.guesses, scores.false_positives, scores.false_negatives) == (0, 1, 1, 0)
    assert (scores.precision, scores.recall, scores.f1) == (0.0, None, None)
    assert (scores.best_threshold, scores.best_f1) == (None, None)
    assert (scores.ap_box, scores.ap50_box, scores.ap_mask, scores.ap50_mask) == (None,) * 4


def test_nothing_at_all():
    scores = evaluate([EvalImage(1, 8, 8)], [], [], threshold=0.5)
    assert (scores.precision, scores.recall, scores.f1, scores.best_f1, scores.ap_box) == (None,) * 5


def test_as_dict_is_json_ready_with_every_field():
    images, truths, guesses = random_set()
    scores = evaluate(images, truths, guesses, threshold=0.5)
    data = scores.as_dict()
    assert list(data) == [f.name for f in fields(Scores)]
    assert json.loads(json.dumps(data)) == data
    assert all(type(v) in (int, float) or v is None for v in data.values())


@pytest.mark.parametrize(
    ("truths", "guesses", "message"),
    [
        ([], [Guess(9, (0, 0, 5, 5), 0.5)], "guess 0 is on image 9, which is not among the evaluated images"),
        ([Truth(4, (0, 0, 5, 5))], [], "truth 0 is on image 4, which is not among the evaluated images"),
        ([], [Guess(1, (0, 0, 5, 5), float("nan"))], "the score must be a finite number"),
        ([], [Guess(1, (0, 0, -5, 5), 0.5)], "negative size"),
        ([Truth(1, (0, 0, 5, float("inf")))], [], "a box coordinate must be a finite number"),
        ([], [Guess(1, (0, 0, 5), 0.5)], "a box is (x, y, w, h)"),
        (
            [Truth(1, (0, 0, 5, 5), rle(np.ones((10, 20), bool)))],
            [],
            "the mask is 10 × 20, its image 20 × 20",
        ),
        ([Truth(1, (0, 0, 5, 5), {"size": [20, 20], "counts": "0ó"})], [], "bad mask: unexpected character"),
        ([Truth(1, (0, 0, 5, 5), {"size": [20, 20], "counts": "Q3"})], [], "bad mask: the runs cover"),
        ([], [Guess(1, (0, 0, 5, 5), 0.5, {"counts": "Q3"})], "a mask is a COCO RLE"),
    ],
)
def test_bad_input_is_refused_saying_why(truths, guesses, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate([EvalImage(1, 20, 20)], truths, guesses, threshold=0.5)


def test_bad_images_threshold_and_iou_are_refused():
    with pytest.raises(ValueError, match="image 1 is listed twice"):
        evaluate([EvalImage(1, 8, 8), EvalImage(1, 8, 8)], [], [], threshold=0.5)
    with pytest.raises(ValueError, match="the threshold must be a finite number"):
        evaluate([EvalImage(1, 8, 8)], [], [], threshold=float("nan"))
    with pytest.raises(ValueError, match=r"the IoU must be in \(0, 1\]"):
        evaluate([EvalImage(1, 8, 8)], [], [], threshold=0.5, iou=0.0)
