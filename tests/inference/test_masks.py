"""Mask encodings: RLE and polygon round trips, holes, several parts, boxes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from skimage.draw import disk

from inference.masks import (
    MAX_POLYGON_PARTS,
    PolygonCaps,
    capped_polygons,
    clean_mask,
    clip_to_box,
    encode_mask,
    mask_area,
    mask_box,
    mask_iou,
    mask_to_polygons,
    mask_to_rle,
    polygons_are_faithful,
    polygons_to_mask,
    rle_runs_checked,
    rle_to_mask,
)
from inference.models import tiny_sam

# pycocotools 2.0.11's C decoder trips numpy 2's copy-keyword deprecation on every call.


def ring_with_hole(height=160, width=200) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[disk((80, 90), 60, shape=mask.shape)] = True
    mask[disk((80, 90), 25, shape=mask.shape)] = False
    return mask


def two_parts(height=120, width=240) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[disk((60, 60), 45, shape=mask.shape)] = True
    mask[20:100, 140:220] = True
    return mask


def blobs(seed: int, height: int, width: int) -> np.ndarray:
    """Random smooth blobs (several parts, holes, islands in holes)."""
    noise = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0) > 0.5


NAMED_MASKS = {
    "hole": ring_with_hole(),
    "two parts": two_parts(),
    "empty": np.zeros((30, 40), dtype=bool),
    "full": np.ones((30, 40), dtype=bool),
    "single pixel": np.pad(np.ones((1, 1), dtype=bool), ((3, 4), (5, 2))),
    "one row": np.ones((1, 17), dtype=bool),
}


# --------------------------------------------------------------------------------------- RLE


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trips_random_masks(seed):
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 90, size=2))
    mask = rng.random((height, width)) < rng.uniform(0.05, 0.95)

    rle = mask_to_rle(mask)

    assert rle["size"] == [height, width]
    assert np.array_equal(rle_to_mask(rle), mask)


@pytest.mark.parametrize("name", sorted(NAMED_MASKS))
def test_rle_round_trips_special_masks(name):
    mask = NAMED_MASKS[name]

    decoded = rle_to_mask(mask_to_rle(mask))

    assert decoded.dtype == bool
    assert np.array_equal(decoded, mask)


def test_rle_is_json_safe_and_readable_by_pycocotools():
    mask = ring_with_hole()

    rle = json.loads(json.dumps(mask_to_rle(mask)))

    assert isinstance(rle["counts"], str)
    assert coco_mask.area({"size": rle["size"], "counts": rle["counts"].encode()}) == mask.sum()


def test_rle_to_mask_accepts_bytes_counts():
    mask = two_parts()
    rle = mask_to_rle(mask)

    assert np.array_equal(rle_to_mask({"size": rle["size"], "counts": rle["counts"].encode()}), mask)


def test_rle_to_mask_accepts_uncompressed_counts():
    mask = np.zeros((4, 3), dtype=bool)
    mask[1:3, 1] = True  # column-major: 4 + 1 zeros, 2 ones, then 5 zeros
    assert np.array_equal(rle_to_mask({"size": [4, 3], "counts": [5, 2, 5]}), mask)
    # A mask that starts with ones: COCO counts then start with a zero-length run.
    assert rle_to_mask({"size": [2, 2], "counts": [0, 4]}).all()


def test_rle_to_mask_rejects_malformed_input():
    with pytest.raises(ValueError, match="size"):
        rle_to_mask({"counts": "abc"})
    with pytest.raises(ValueError, match="add up"):
        rle_to_mask({"size": [2, 2], "counts": [1, 1]})


# ---------------------------------------------------------------------------------- polygons


def test_ring_with_hole_round_trips_and_the_hole_stays_a_hole():
    mask = ring_with_hole()

    polygons = mask_to_polygons(mask)
    drawn = polygons_to_mask(polygons, *mask.shape)

    assert len(polygons) == 1
    assert len(polygons[0]) == 2  # the outer boundary, then the hole
    assert mask_iou(drawn, mask) >= 0.99
    assert not drawn[80, 90]  # the hole's centre
    assert not drawn[80, 90 - 20] and not drawn[80 + 20, 90]
    assert drawn[80, 90 - 45]  # the ring itself


def test_two_part_mask_keeps_both_parts():
    mask = two_parts()

    polygons = mask_to_polygons(mask)
    drawn = polygons_to_mask(polygons, *mask.shape)

    assert len(polygons) == 2
    assert all(len(part) == 1 for part in polygons)
    assert mask_iou(drawn, mask) >= 0.99
    assert drawn[60, 60] and drawn[60, 180] and not drawn[60, 120]


@pytest.mark.parametrize("seed", range(6))
def test_zero_tolerance_polygons_reproduce_the_mask_exactly(seed):
    mask = blobs(seed, 50 + 7 * seed, 70)

    polygons = mask_to_polygons(mask, tolerance=0)

    assert np.array_equal(polygons_to_mask(polygons, *mask.shape), mask)


def test_zero_tolerance_is_exact_on_pixel_noise():
    """Single pixels, diagonal contacts, one-pixel holes: the hardest outlines."""
    mask = np.random.default_rng(7).random((40, 50)) < 0.5

    assert np.array_equal(polygons_to_mask(mask_to_polygons(mask, tolerance=0), 40, 50), mask)


def test_a_rectangle_becomes_its_four_pixel_edge_corners():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:6, 3:8] = True  # rows 2..5, columns 3..7

    (part,) = mask_to_polygons(mask)
    (ring,) = part
    corners = set(zip(ring[0::2], ring[1::2], strict=True))

    assert corners == {(3.0, 2.0), (8.0, 2.0), (8.0, 6.0), (3.0, 6.0)}


def test_stair_steps_are_cut_into_diagonals():
    mask = np.tril(np.ones((12, 12), dtype=bool))  # a right triangle with a 45° staircase

    (part,) = mask_to_polygons(mask, tolerance=0.5)

    assert len(part[0]) // 2 <= 4  # not 2 vertices per stair step
    assert np.array_equal(polygons_to_mask([part], 12, 12), mask)


def test_a_box_polygon_covers_exactly_the_box():
    drawn = polygons_to_mask([[[3, 2, 8, 2, 8, 6, 3, 6]]], 10, 12)

    assert mask_box(drawn) == (3, 2, 5, 4)
    assert mask_area(drawn) == 20


def test_pycocotools_rasterises_outer_rings_as_we_do():
    mask = two_parts()
    polygons = mask_to_polygons(mask)

    rles = coco_mask.frPyObjects([part[0] for part in polygons], *mask.shape)
    theirs = coco_mask.decode(coco_mask.merge(rles)).astype(bool)

    assert np.array_equal(theirs, polygons_to_mask(polygons, *mask.shape))


def test_bigger_tolerance_gives_fewer_vertices():
    mask = ring_with_hole()

    fine = mask_to_polygons(mask, tolerance=0.5)
    coarse = mask_to_polygons(mask, tolerance=3.0)

    assert len(coarse[0][0]) < len(fine[0][0])


def test_rings_reduced_below_three_points_are_dropped():
    mask = np.zeros((8, 8), dtype=bool)
    mask[2, 2] = True  # a one-pixel speck simplifies to two points

    assert mask_to_polygons(mask, tolerance=1.0) == []
    assert len(mask_to_polygons(mask, tolerance=0)) == 1


def test_empty_mask_has_no_polygons():
    assert mask_to_polygons(np.zeros((5, 5), dtype=bool)) == []
    assert not polygons_to_mask([], 5, 5).any()


def test_polygons_are_faithful_detects_a_missing_part():
    mask = two_parts()
    polygons = mask_to_polygons(mask)

    assert polygons_are_faithful(mask, polygons)
    assert not polygons_are_faithful(mask, polygons[:1])
    assert not polygons_are_faithful(
        ring_with_hole(), [[part[0]] for part in mask_to_polygons(ring_with_hole())]
    )
    assert polygons_are_faithful(np.zeros((4, 4), dtype=bool), [])


# ------------------------------------------------------------------------------ box and area


def test_mask_box_is_tight():
    mask = np.zeros((20, 30), dtype=bool)
    mask[4, 7] = True
    mask[9, 12] = True

    assert mask_box(mask) == (7, 4, 6, 6)
    assert mask_area(mask) == 2


def test_mask_box_of_empty_mask_is_none():
    assert mask_box(np.zeros((3, 3), dtype=bool)) is None
    assert mask_area(np.zeros((3, 3), dtype=bool)) == 0


def test_mask_box_of_full_mask_is_the_image():
    assert mask_box(np.ones((3, 5), dtype=bool)) == (0, 0, 5, 3)


def test_masks_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros((2, 2, 2), dtype=bool))


# ----------------------------------------------------------------------------------- hygiene


def speckled(height=300, width=400, seed=0) -> np.ndarray:
    """A lattice like a random-weight SAM's: one big part riddled with holes, plus loose specks."""
    rng = np.random.default_rng(seed)
    mask = np.ones((height, width), dtype=bool)
    for row in range(16, height - 16, 26):
        for col in range(16, width - 16, 26):
            radius = int(rng.integers(9, 12))  # holes of 250-400 px: real ones, ~150 of them
            mask[disk((row, col), radius, shape=mask.shape)] = False
    mask[rng.integers(0, height, 300), rng.integers(0, width, 300)] ^= True  # specks and pinholes
    return mask


def test_clean_mask_drops_small_parts_and_keeps_big_ones():
    mask = np.zeros((100, 120), dtype=bool)
    mask[10:60, 10:60] = True  # 2500 px
    mask[80:85, 100:105] = True  # 25 px: a speck
    mask[5, 110] = True  # 1 px

    cleaned = clean_mask(mask, min_area=100, hole_area=0, area_fraction=0)

    assert np.array_equal(cleaned, mask & (np.arange(120)[None, :] < 60))
    assert mask_area(cleaned) == 2500


def test_clean_mask_fills_pinholes_but_not_big_holes_or_the_outside():
    mask = ring_with_hole()  # a hole of radius 25: ~1960 px
    mask[40, 90] = False  # a one-pixel pinhole in the ring
    mask[118:121, 88:91] = False  # a 9 px pinhole
    mask[0:3, 0:3] = True  # a corner blob, so some background touches the border in a small piece
    mask[0:2, 3] = True
    mask[2, 3] = False

    cleaned = clean_mask(mask, min_area=0, hole_area=100, area_fraction=0)

    assert cleaned[40, 90] and cleaned[119, 89]  # pinholes filled
    assert not cleaned[80, 90]  # the real hole stays
    assert np.array_equal(cleaned, ring_with_hole() | (mask & ~ring_with_hole()))


def test_clean_mask_thresholds_grow_with_the_mask():
    mask = np.zeros((400, 400), dtype=bool)
    mask[20:380, 20:380] = True  # 129600 px: 0.2 % is 259 px
    mask[100:114, 100:114] = False  # a 196 px hole

    assert not clean_mask(mask, hole_area=100, area_fraction=0)[107, 107]
    assert clean_mask(mask, hole_area=100, area_fraction=0.002)[107, 107]


def test_clean_mask_with_zero_thresholds_changes_nothing():
    mask = speckled()

    assert np.array_equal(clean_mask(mask, min_area=0, hole_area=0, area_fraction=0), mask)
    assert not clean_mask(np.zeros((5, 5), dtype=bool)).any()


def test_clean_mask_rejects_negative_thresholds():
    with pytest.raises(ValueError, match="min_area"):
        clean_mask(two_parts(), min_area=-1)


def test_capped_polygons_match_mask_to_polygons_within_the_caps():
    for mask in (ring_with_hole(), two_parts(), blobs(3, 80, 90)):
        assert capped_polygons(mask) == mask_to_polygons(mask)


def test_capped_polygons_give_up_on_too_many_parts_rings_or_vertices():
    separate = np.zeros((60, 200), dtype=bool)
    for k in range(MAX_POLYGON_PARTS + 1):
        separate[10:20, 3 + 9 * k : 9 + 9 * k] = True

    assert capped_polygons(separate) is None
    assert (
        len(capped_polygons(separate, caps=PolygonCaps(parts=MAX_POLYGON_PARTS + 1))) == MAX_POLYGON_PARTS + 1
    )
    assert capped_polygons(speckled()) is None  # hundreds of holes
    assert capped_polygons(ring_with_hole(), caps=PolygonCaps(rings=1)) is None
    assert capped_polygons(ring_with_hole(), caps=PolygonCaps(vertices=10)) is None


def test_polygon_coordinates_are_rounded_to_hundredths():
    for part in mask_to_polygons(blobs(1, 90, 90)):
        for ring in part:
            assert all(round(v, 2) == v for v in ring)


@pytest.mark.parametrize("name", ["hole", "two parts", "person"])
def test_encode_mask_keeps_normal_shapes_faithful(name):
    if name == "person":
        mask = np.zeros((480, 640), dtype=bool)
        mask[disk((120, 320), 50, shape=mask.shape)] = True
        mask[170:460, 250:390] = True
        mask[300:320, 300:340] = False  # a real hole (800 px)
    else:
        mask = NAMED_MASKS[name]

    encoded = encode_mask(mask)

    assert np.array_equal(rle_to_mask(encoded.rle), mask)  # nothing to clean
    assert encoded.box == mask_box(mask) and encoded.area == mask_area(mask)
    assert mask_iou(polygons_to_mask(encoded.polygons, *mask.shape), mask) >= 0.99


def test_encode_mask_keeps_only_the_rle_of_a_fragmented_mask():
    mask = speckled()

    encoded = encode_mask(mask)
    cleaned = clean_mask(mask)

    assert encoded.polygons == []
    assert np.array_equal(rle_to_mask(encoded.rle), cleaned)  # exact, cleaned
    assert encoded.area == mask_area(cleaned) and encoded.box == mask_box(cleaned)
    assert mask_area(cleaned ^ mask) > 0  # specks and pinholes went


def test_encode_mask_of_specks_only_is_empty():
    mask = np.zeros((50, 50), dtype=bool)
    mask[::7, ::7] = True

    encoded = encode_mask(mask)

    assert encoded.rle is None and encoded.box is None and encoded.polygons == [] and encoded.area == 0
    assert encode_mask(np.zeros((4, 4), dtype=bool)).rle is None


def test_encode_mask_box_is_in_image_coordinates():
    mask = np.zeros((100, 100), dtype=bool)
    mask[30:50, 60:90] = True
    mask[90:92, 0:2] = True  # a speck far away: dropped

    encoded = encode_mask(mask)

    assert encoded.box == (60, 30, 30, 20)
    (part,) = encoded.polygons
    xs, ys = part[0][0::2], part[0][1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == (60.0, 30.0, 90.0, 50.0)


def test_tiny_sam_masks_encode_fast_paths_faithfully(tiny_sam_dir):
    """Random-weight tiny-SAM masks are the speckled lattices that made pre-labeling slow: after
    hygiene each one has either faithful polygons within the caps or its exact RLE only."""
    from PIL import Image
    from skimage import data

    segmenter = tiny_sam.load_segmenter("tiny", checkpoint=tiny_sam_dir, device="cpu")
    image = Image.fromarray(data.astronaut())
    boxes = [(40, 30, 200, 180), (250, 100, 220, 300), (10, 300, 480, 200)]
    traced, rle_only = [], []
    for prediction in segmenter.masks_for_boxes(segmenter.embed(image), boxes):
        encoded = encode_mask(prediction.mask)
        cleaned = clean_mask(prediction.mask)
        assert np.array_equal(rle_to_mask(encoded.rle), cleaned)
        (traced if encoded.polygons else rle_only).append((encoded, cleaned))
    # The seeded tiny SAM gives both kinds on these boxes, so both checks below run.
    assert traced and rle_only, (len(traced), len(rle_only))
    for encoded, cleaned in traced:
        assert mask_iou(polygons_to_mask(encoded.polygons, *cleaned.shape), cleaned) >= 0.99
        assert sum(len(ring) // 2 for part in encoded.polygons for ring in part) <= 1000
    for encoded, _ in rle_only:
        assert encoded.polygons == []


def test_clip_to_box_keeps_the_grown_box_only():
    mask = np.ones((100, 100), dtype=bool)

    clipped = clip_to_box(mask, (20, 30, 40, 20), margin=0.25)  # grown: x 10..70, y 25..55

    assert mask_box(clipped) == (10, 25, 60, 30)
    assert mask_box(clip_to_box(mask, (20, 30, 40, 20))) == (20, 30, 40, 20)
    assert mask_box(clip_to_box(mask, (-50, -50, 500, 500), margin=1.0)) == (0, 0, 100, 100)
    assert not clip_to_box(mask, (200, 200, 10, 10)).any()


def test_encode_mask_traces_small_shapes_finer_until_faithful():
    mask = np.zeros((60, 60), dtype=bool)
    mask[disk((30, 30), 10, shape=mask.shape)] = True
    assert mask_iou(polygons_to_mask(mask_to_polygons(mask, tolerance=1.0), 60, 60), mask) < 0.99

    encoded = encode_mask(mask, tolerance=1.0)

    assert encoded.polygons
    assert mask_iou(polygons_to_mask(encoded.polygons, 60, 60), mask) >= 0.99


def test_rle_runs_checked_takes_both_count_forms_and_refuses_what_does_not_cover_the_image():
    mask = np.zeros((3, 4), dtype=bool)
    mask[1, 1:3] = True
    rle = mask_to_rle(mask)  # a compressed string
    runs = rle_runs_checked(rle["counts"], height=3, width=4)

    assert sum(runs) == 12 and rle_runs_checked(runs, height=3, width=4) == runs
    with pytest.raises(ValueError, match="cover 12 pixels, not 4 × 4"):
        rle_runs_checked(runs, height=4, width=4)
    with pytest.raises(ValueError, match="out of range"):
        rle_runs_checked([13, -1], height=3, width=4)
    with pytest.raises(ValueError, match="a COCO string or a list of integers"):
        rle_runs_checked([6.0, 6.0], height=3, width=4)
    with pytest.raises(ValueError, match="a COCO string or a list of integers"):
        rle_runs_checked([True, 11], height=3, width=4)
