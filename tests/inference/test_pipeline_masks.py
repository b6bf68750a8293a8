"""Mask hygiene in the pre-labeling pipeline (inference.pipeline._segment), on the tiny models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from inference.masks import PolygonCaps, clean_mask, mask_box, mask_iou, polygons_to_mask, rle_to_mask
from inference.models import tiny_sam
from inference.pipeline import BatchImage, DetectParams, prelabel_batch
from inference.prompts import ClassPrompt
from inference.protocols import MaskPrediction

PROMPTS = [ClassPrompt(name=n, prompt=n) for n in ("person", "rocket", "cat")]


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_sam_dir):
    return tiny_sam.load_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")


@pytest.fixture(scope="module")
def astronaut():
    image = Image.fromarray(data.astronaut())
    return [BatchImage(image=image, sha256="astronaut")]


def params(**overrides) -> DetectParams:
    return DetectParams(box_threshold=0.35, text_threshold=0.25, keep_threshold=0.1, **overrides)


def test_proposal_masks_are_clean_boxed_and_their_polygons_faithful(tiny_detector, tiny_segmenter, astronaut):
    (result,) = prelabel_batch(astronaut, PROMPTS, params(), detector=tiny_detector, segmenter=tiny_segmenter)

    masked = [p for p in result.proposals if p.mask]
    assert masked, "the tiny models should give some masks"
    for proposal in masked:
        mask = rle_to_mask(proposal.mask)
        assert np.array_equal(clean_mask(mask), mask)  # already clean: no specks, no pinholes
        assert proposal.box == tuple(float(v) for v in mask_box(mask))  # the box is the mask's
        x, y, w, h = proposal.detector_box
        bx, by, bw, bh = proposal.box
        assert bx >= x - 0.25 * w - 1 and by >= y - 0.25 * h - 1  # inside the grown detector box
        assert bx + bw <= x + w + 0.25 * w + 1 and by + bh <= y + h + 0.25 * h + 1
        # Cut to the grown box, each of the tiny models' masks on this photo is traced (one too
        # fragmented for the caps would go out as RLE only: test_masks covers that case).
        assert proposal.polygons, proposal.box
        assert mask_iou(polygons_to_mask(proposal.polygons, *mask.shape), mask) >= 0.99


def test_without_box_margin_masks_may_leave_the_box(tiny_detector, tiny_segmenter, astronaut):
    (clipped,) = prelabel_batch(
        astronaut, PROMPTS, params(), detector=tiny_detector, segmenter=tiny_segmenter
    )
    (free,) = prelabel_batch(
        astronaut, PROMPTS, params(box_margin=None), detector=tiny_detector, segmenter=tiny_segmenter
    )

    assert len(free.proposals) == len(clipped.proposals)
    areas = [
        (rle_to_mask(a.mask).sum(), rle_to_mask(b.mask).sum())
        for a, b in zip(free.proposals, clipped.proposals, strict=True)
        if a.mask and b.mask
    ]
    assert all(free_area >= clipped_area for free_area, clipped_area in areas)
    assert any(free_area > clipped_area for free_area, clipped_area in areas)  # random masks leak


def test_a_mask_cleaned_to_nothing_keeps_the_detector_box_only(
    tiny_detector, tiny_segmenter, astronaut, monkeypatch
):
    def specks_only(embedding, boxes):
        height, width = embedding.original_size
        mask = np.zeros((height, width), dtype=bool)
        mask[::9, ::9] = True  # one-pixel specks everywhere
        return [MaskPrediction(mask=mask, score=0.5, box=mask_box(mask)) for _ in boxes]

    monkeypatch.setattr(tiny_segmenter, "masks_for_boxes", specks_only)

    (result,) = prelabel_batch(astronaut, PROMPTS, params(), detector=tiny_detector, segmenter=tiny_segmenter)

    assert result.proposals and not result.error
    for proposal in result.proposals:
        assert proposal.mask is None and proposal.polygons is None
        assert proposal.box == proposal.detector_box


def test_hygiene_can_be_turned_off(tiny_detector, tiny_segmenter, astronaut):
    off = params(
        min_area=0,
        hole_area=0,
        box_margin=None,
        polygon_caps=PolygonCaps(parts=10**6, rings=10**6, vertices=10**7),
    )
    (result,) = prelabel_batch(astronaut, PROMPTS, off, detector=tiny_detector, segmenter=tiny_segmenter)
    raw = tiny_segmenter.masks_for_boxes(
        tiny_segmenter.embed(astronaut[0].image), [p.detector_box for p in result.proposals]
    )

    for proposal, prediction in zip(result.proposals, raw, strict=True):
        assert np.array_equal(rle_to_mask(proposal.mask), prediction.mask)
        assert proposal.polygons  # traced whatever it costs


def test_a_demo_photos_proposals_stay_small(tiny_detector, tiny_segmenter, astronaut):
    """The review page carries every proposal's RLE and polygons: with the tiny models a demo
    photo's ~30 proposals were 2-3 MB of JSON (speckled masks traced to thousands of rings)."""
    import json

    (result,) = prelabel_batch(astronaut, PROMPTS, params(), detector=tiny_detector, segmenter=tiny_segmenter)
    payload = json.dumps([{"box": p.box, "mask": p.mask, "polygons": p.polygons} for p in result.proposals])

    assert len(result.proposals) >= 10
    assert len(payload) < 150_000
