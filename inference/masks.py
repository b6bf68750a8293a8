"""Mask encodings: COCO RLE, polygons with holes, boxes and areas.

Plain numpy in and out. Masks are boolean arrays of shape (H, W).

Coordinate convention (the COCO one): pixel (row i, column j) covers the square
[j, j + 1] x [i, i + 1], so its centre is (j + 0.5, i + 0.5); a polygon covers the pixels whose
centres lie inside it. A box (x, y, w, h) = (column of the leftmost pixel, row of the topmost
pixel, number of columns, number of rows), so a box drawn as a polygon is
[x, y, x + w, y, x + w, y + h, x, y + h].

`mask_to_polygons` traces the exact pixel outline (the "cracks" between pixels) and cuts its
corners through the midpoints of the pixel edges (the contour marching squares would give),
which keeps every pixel centre on its side: with `tolerance=0`, `polygons_to_mask` gives back
the very same mask, and pycocotools (`annToMask`) rasterises the rings the same way. Vertices
are on integer or half-integer coordinates before simplification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

Polygons = list[list[list[float]]]  # parts → rings (outer first, then holes) → [x0, y0, x1, y1, ...]

# Mask hygiene (`clean_mask`, `encode_mask`): parts smaller than MIN_PART_AREA pixels are
# dropped and holes smaller than MIN_HOLE_AREA filled (a 10x10 square: SAM's own examples clean
# masks with 100), or than MIN_AREA_FRACTION of the mask's area when that is more (specks and
# pinholes scale with the object: 0.2 % of a 1000x500 object is a 30x30 square). A mask needing
# more than MAX_POLYGON_PARTS parts, MAX_POLYGON_RINGS rings
# (outer rings and holes) or MAX_POLYGON_VERTICES vertices in all (`PolygonCaps`) keeps its exact
# RLE and gets no polygons: such lattices (random-weight SAM masks) took ~0.1-1 s to trace and 50-700 kB.
MIN_PART_AREA = 100
MIN_HOLE_AREA = 100
MIN_AREA_FRACTION = 0.002
MAX_POLYGON_PARTS = 20
MAX_POLYGON_RINGS = 50
MAX_POLYGON_VERTICES = 1000
MIN_POLYGON_IOU = 0.99  # polygons kept only when they rasterise back to the mask this well


@dataclass(frozen=True)
class PolygonCaps:
    """How fragmented a mask may be and still get polygons (`capped_polygons`, `encode_mask`):
    at most `parts` parts, `rings` rings (outer rings and holes) and `vertices` vertices in all."""

    parts: int = MAX_POLYGON_PARTS
    rings: int = MAX_POLYGON_RINGS
    vertices: int = MAX_POLYGON_VERTICES

    def __post_init__(self) -> None:
        if min(self.parts, self.rings, self.vertices) < 0:
            raise ValueError("polygon caps (parts, rings, vertices) must be >= 0")


def _as_bool_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    return mask.astype(bool, copy=False)


# --------------------------------------------------------------------------------------- RLE


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a boolean (H, W) mask: {"size": [H, W], "counts": str}."""
    mask = _as_bool_mask(mask)
    rle = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Decode a COCO RLE: compressed (counts as str or bytes) or uncompressed (counts as a list)."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f'an RLE needs "size": [H, W] and "counts", got {rle!r:.100}') from error
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            raise ValueError(f"uncompressed RLE counts do not add up to {height}x{width}")
        compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, str | bytes):
        compressed = {
            "size": [height, width],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    else:
        raise ValueError(f"RLE counts must be a str, bytes or a list of ints, not {type(counts).__name__}")
    return coco_mask.decode(compressed).astype(bool)


# ---------------------------------------------------------------------------------- polygons


def _next(values: np.ndarray) -> np.ndarray:
    """values[i + 1] at i, cyclically (np.roll(values, -1, axis=0), without its overhead)."""
    return np.concatenate((values[1:], values[:1]))


def _previous(values: np.ndarray) -> np.ndarray:
    """values[i - 1] at i, cyclically."""
    return np.concatenate((values[-1:], values[:-1]))


def _ring_to_outline(contour: np.ndarray) -> np.ndarray:
    """A contour traced on the 2x-upsampled mask → the exact pixel outline (integer corners).

    On the 2x grid each traced point is the centre of a foreground sub-pixel that touches the
    outline, a quarter pixel away from a pixel edge or corner: (c + 0.5) / 2 always ends in .25
    or .75 and rounds to that edge or corner. Repeats (from diagonal steps) are dropped. The
    result is rectilinear: every segment runs along pixel edges.
    """
    points = np.rint((contour.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    points = points[keep]
    if len(points) > 1 and np.array_equal(points[0], points[-1]):
        points = points[:-1]
    return points


def _cut_corners(outline: np.ndarray) -> np.ndarray:
    """Cut the outline's stair steps: a polygon as exact, but straight along diagonals.

    A corner between two runs of at least 2 pixels is kept (a box stays a 4-corner box); a
    corner next to a 1-pixel run is replaced by the midpoints of its two edges, as marching
    squares would draw it. Either way the polygon stays at least 0.35 px from every pixel centre
    (the mask is unchanged when rasterised) while 45° staircases become straight lines, which
    is what lets Douglas–Peucker simplify them without biting into the mask.
    """
    # Merge collinear runs first, so that every vertex is a turn.
    steps = np.sign(_next(outline) - outline)
    turns = np.any(steps != _previous(steps), axis=1)
    outline = outline[turns]
    if len(outline) < 3:
        return outline
    after = _next(outline) - outline  # the run leaving each vertex
    before = _previous(after)  # the run arriving at it
    length_after = np.abs(after).max(axis=1)
    length_before = np.abs(before).max(axis=1)
    cut = ((length_after < 2) | (length_before < 2))[:, None]
    # Two points per vertex: the midpoints of its two edges where it is cut, else itself twice.
    entering = np.where(cut, outline - 0.5 * before / length_before[:, None], outline)
    leaving = np.where(cut, outline + 0.5 * after / length_after[:, None], outline)
    polygon = np.stack([entering, leaving], axis=1).reshape(-1, 2)
    # Repeats (an uncut vertex, a unit edge cut from both ends): keep each point once.
    distinct = np.any(polygon != _previous(polygon), axis=1)
    return polygon[distinct]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas–Peucker (cv2.approxPolyDP), then each kept edge refitted to preserve area.

    Plain Douglas–Peucker keeps vertices on the outline, so its chords run inside every convex
    stretch and outside every concave one: a systematic bias that costs ~1.5 % IoU on a
    ring-shaped mask at tolerance 1. Each chord is therefore moved along its normal by the mean
    offset of the stretch of outline it replaces (their signed area over its length), and the
    vertices become the intersections of consecutive moved chords (or the mean of the two
    moves where the chords are almost parallel). The vertex count is Douglas–Peucker's.
    Vectorised: the stretch areas come from prefix sums of the outline's cross products.
    """
    if tolerance <= 0 or len(points) <= 3:
        return points
    kept = cv2.approxPolyDP(points.reshape(-1, 1, 2).astype(np.float32), float(tolerance), True)
    kept = kept.reshape(-1, 2).astype(np.float64)
    count = len(kept)
    if count < 3:
        return kept
    # Where each kept vertex sits on the outline (points lie on a half-pixel grid: exact keys).
    keys = _point_keys(points)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    wanted = _point_keys(kept)
    found = np.searchsorted(sorted_keys, wanted)
    found = np.minimum(found, len(sorted_keys) - 1)
    if np.unique(keys).size != len(keys) or not np.array_equal(sorted_keys[found], wanted):
        return kept  # cannot tell which stretch each chord replaces: no refit
    indices = np.sort(order[found])
    if np.unique(indices).size != count:
        return kept
    vertices = points[indices]
    n = len(points)
    # Twice the signed area swept from stretch[0] along the outline to its end: for the stretch
    # from index s to e (wrapping), sum of cross(p_i, p_i+1) over s..e-1 plus cross(p_e, p_s).
    doubled = np.vstack([points, points])
    steps = _cross(doubled[:-1], doubled[1:])
    prefix = np.concatenate([[0.0], np.cumsum(steps)])
    starts = indices
    ends = _next(indices)
    ends = np.where(ends > starts, ends, ends + n)
    first, last = doubled[starts], doubled[ends]
    area2 = prefix[ends] - prefix[starts] + _cross(last, first)
    chords = last - first
    lengths = np.hypot(chords[:, 0], chords[:, 1])
    if np.any(lengths == 0):
        return kept
    normals = np.stack([-chords[:, 1] / lengths, chords[:, 0] / lengths], axis=1)
    moves = -0.5 * area2 / lengths
    # Vertex k joins chord k - 1 (arriving) and chord k (leaving): solve both moved lines.
    n_before, n_after = _previous(normals), normals
    m_before, m_after = _previous(moves), moves
    determinant = _cross(n_before, n_after)
    solvable = np.abs(determinant) > 0.2
    safe = np.where(solvable, determinant, 1.0)
    solved = np.stack(
        [
            (m_before * n_after[:, 1] - m_after * n_before[:, 1]) / safe,
            (n_before[:, 0] * m_after - n_after[:, 0] * m_before) / safe,
        ],
        axis=1,
    )
    averaged = (m_before[:, None] * n_before + m_after[:, None] * n_after) / 2
    shift = np.where(solvable[:, None], solved, averaged)
    norm = np.hypot(shift[:, 0], shift[:, 1])
    limit = 2 * tolerance
    too_far = norm > limit  # never let a vertex fly off
    shift[too_far] *= (limit / norm[too_far])[:, None]
    return vertices + shift


def _point_keys(points: np.ndarray) -> np.ndarray:
    """One int64 per point of the half-pixel grid (coordinates within ±2**30)."""
    doubled = np.rint(np.asarray(points, dtype=np.float64) * 2).astype(np.int64)
    return doubled[:, 0] * (1 << 32) + doubled[:, 1]


def _flat(points: np.ndarray) -> list[float]:
    """Flat coordinates rounded to 1/100 pixel (a refitted vertex has ~17 digits, which would
    triple the JSON of every mask for nothing; exact outlines lie on half pixels, unchanged)."""
    return np.round(points.reshape(-1), 2).tolist()


def mask_to_polygons(mask: np.ndarray, tolerance: float = 1.0) -> Polygons:
    """The parts of a mask as polygons: [[outer, hole, hole, ...], [outer, ...], ...].

    Each ring is a flat [x0, y0, x1, y1, ...] in pixel-edge coordinates (see the module doc).
    Rings are simplified with Douglas–Peucker (`cv2.approxPolyDP`, epsilon=`tolerance` pixels;
    0 keeps the exact outline) whose edges are then refitted to keep the area (see `_simplify`:
    vertices may move up to 2 x tolerance), and rings left with fewer than 3 points are dropped
    (with the default tolerance, specks of a pixel or two vanish). Simplification still costs
    a little on small objects: at tolerance 1, IoU ~0.987 for a disk of radius 10 px, ~0.99 at
    radius 20, ~0.998 at 100; check with `polygons_are_faithful` and fall back to a lower
    tolerance (0 is exact) or to RLE. Parts are 8-connected components (cv2.findContours); an
    island inside a hole is a part of its own.

    Cost: about 0.1-0.3 ms per ring, so a fragmented mask (hundreds of specks and holes) takes
    100+ ms: `capped_polygons` gives up early on those, and `encode_mask` cleans first.
    """
    padded, offset = _padded_crop(_as_bool_mask(mask))
    polygons = _trace(padded, offset, tolerance, caps=None)
    assert polygons is not None  # no caps: always traced
    return polygons


def capped_polygons(
    mask: np.ndarray, tolerance: float = 1.0, *, caps: PolygonCaps = PolygonCaps()
) -> Polygons | None:
    """`mask_to_polygons`, or None when the mask is too fragmented for polygons worth drawing,
    storing or sending (keep its RLE instead): more parts, rings (outer rings and holes) or
    vertices in all than `caps` allows.

    Gives up before the costly per-ring work: parts and rings are counted on the traced
    contours (specks that simplification would drop count too: clean the mask first), the
    vertices estimated with one `cv2.approxPolyDP` per ring (it undercounts by ~15 %), then
    counted exactly while the rings are simplified.
    """
    padded, offset = _padded_crop(_as_bool_mask(mask))
    return _trace(padded, offset, tolerance, caps=caps)


def _padded_crop(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The mask's box with a 1-pixel empty margin (uint8), and the image (x, y) of its (0, 0)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros((2, 2), dtype=np.uint8), (0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    padded = np.zeros((bottom - top + 2, right - left + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask[top:bottom, left:right]
    return padded, (int(left) - 1, int(top) - 1)


def _contours(padded: np.ndarray) -> tuple[Sequence[np.ndarray], np.ndarray | None]:
    """The contours of a padded crop traced on its 2x upsampling (on that grid a contour lies a
    quarter pixel inside the real outline), and their hierarchy (next, previous, first child,
    parent per contour; None when there are none). They do not depend on the tolerance."""
    height, width = padded.shape
    upsampled = cv2.resize(padded, (2 * width, 2 * height), interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(upsampled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return contours, None if hierarchy is None else hierarchy[0]


def _trace(
    padded: np.ndarray | tuple,
    offset: tuple[int, int],
    tolerance: float,
    *,
    caps: PolygonCaps | None,
) -> Polygons | None:
    """Polygons of a padded crop (`_padded_crop`, or its `_contours`); None when over `caps`."""
    contours, hierarchy = _contours(padded) if isinstance(padded, np.ndarray) else padded
    if hierarchy is None:
        return []
    max_vertices = None
    if caps is not None:
        max_vertices = caps.vertices
        if int(np.count_nonzero(hierarchy[:, 3] == -1)) > caps.parts or len(contours) > caps.rings:
            return None
        # On the 2x grid a tolerance of t pixels is 2t; +1 for the staircases that corner
        # cutting straightens. It only decides to give up before simplifying every ring.
        epsilon = 2.0 * tolerance + 1.0
        if sum(len(cv2.approxPolyDP(contour, epsilon, True)) for contour in contours) > max_vertices:
            return None
    shift = np.array(offset)
    vertices = 0

    def ring(index: int) -> list[float] | None:
        nonlocal vertices
        outline = _ring_to_outline(contours[index])
        points = _simplify(_cut_corners(outline), tolerance)
        # The refit may put a corner a fraction of a pixel past the outline's extent (past the
        # image's edge for a mask touching it): keep every vertex inside the exact outline's box.
        points = np.clip(points, outline.min(axis=0), outline.max(axis=0))
        if len(points) < 3:
            return None
        vertices += len(points)
        return _flat(points + shift)

    def over_budget() -> bool:
        return max_vertices is not None and vertices > max_vertices

    parts: Polygons = []
    for index in range(len(contours)):
        if hierarchy[index][3] != -1:  # a hole: handled with its outer ring
            continue
        outer = ring(index)
        if outer is None:
            continue
        rings = [outer]
        child = hierarchy[index][2]
        while child != -1:
            if over_budget():
                return None
            hole = ring(child)
            if hole is not None:
                rings.append(hole)
            child = hierarchy[child][0]
        if over_budget():
            return None
        parts.append(rings)
    return parts


def _ring_mask(ring: Sequence[float], height: int, width: int) -> np.ndarray:
    coords = [float(v) for v in ring]
    if len(coords) < 6 or len(coords) % 2:
        return np.zeros((height, width), dtype=bool)
    rle = coco_mask.frPyObjects([coords], height, width)
    return coco_mask.decode(rle)[:, :, 0].astype(bool)


def polygons_to_mask(polygons: Polygons, height: int, width: int) -> np.ndarray:
    """Rasterise parts (outer ring then holes, as from `mask_to_polygons`) to a boolean mask.

    A pixel is set when its centre is inside an outer ring and outside that part's holes
    (pycocotools' rasteriser, as COCO readers use). Rings with fewer than 3 points are ignored.
    """
    mask = np.zeros((height, width), dtype=bool)
    for part in polygons:
        if not part:
            continue
        outer = _ring_mask(part[0], height, width)
        for hole in part[1:]:
            outer &= ~_ring_mask(hole, height, width)
        mask |= outer
    return mask


def _ring_patch(ring: Sequence[float], height: int, width: int) -> tuple[int, int, np.ndarray] | None:
    """(top, left, pixels) of a ring rasterised by pycocotools within its own bounding box: a
    small hole costs its size, not the image's. None for fewer than 3 points or off the image."""
    coords = np.asarray([float(v) for v in ring], dtype=np.float64)
    if len(coords) < 6 or len(coords) % 2:
        return None
    xs, ys = coords[0::2], coords[1::2]
    left, top = max(0, int(np.floor(xs.min())) - 1), max(0, int(np.floor(ys.min())) - 1)
    right, bottom = min(width, int(np.ceil(xs.max())) + 1), min(height, int(np.ceil(ys.max())) + 1)
    if right <= left or bottom <= top:
        return None
    shifted = coords.copy()
    shifted[0::2] -= left
    shifted[1::2] -= top
    rle = coco_mask.frPyObjects([shifted.tolist()], bottom - top, right - left)
    return top, left, coco_mask.decode(rle)[:, :, 0].astype(bool)


def _rasterise_quickly(polygons: Polygons, height: int, width: int) -> np.ndarray:
    """`polygons_to_mask`, each ring rasterised within its own box: ~8x faster on a mask with
    many small holes, and the same pixels but for rare ones on a rounding edge (pycocotools
    is not exactly shift-invariant), which is fine for a faithfulness check."""
    mask = np.zeros((height, width), dtype=bool)
    for part in polygons:
        outer = _ring_patch(part[0], height, width) if part else None
        if outer is None:
            continue
        top, left, pixels = outer
        pixels = pixels.copy()
        bottom, right = top + pixels.shape[0], left + pixels.shape[1]
        for ring in part[1:]:
            hole = _ring_patch(ring, height, width)
            if hole is None:
                continue
            h_top, h_left, h_pixels = hole
            y0, y1 = max(top, h_top), min(bottom, h_top + h_pixels.shape[0])
            x0, x1 = max(left, h_left), min(right, h_left + h_pixels.shape[1])
            if y0 < y1 and x0 < x1:
                pixels[y0 - top : y1 - top, x0 - left : x1 - left] &= ~h_pixels[
                    y0 - h_top : y1 - h_top, x0 - h_left : x1 - h_left
                ]
        mask[top:bottom, left:right] |= pixels
    return mask


def polygons_are_faithful(mask: np.ndarray, polygons: Polygons, min_iou: float = 0.99) -> bool:
    """Whether the rasterised polygons match the mask with IoU >= min_iou (two empties match).

    Holes count as holes here. COCO's polygon format has none (readers fill every ring), so to
    ask "may this mask be exported as COCO polygons?" pass only the outer rings:
    `polygons_are_faithful(mask, [[part[0]] for part in polygons])`.
    """
    mask = _as_bool_mask(mask)
    return mask_iou(mask, polygons_to_mask(polygons, *mask.shape)) >= min_iou


# ----------------------------------------------------------------------------------- hygiene


def clean_mask(
    mask: np.ndarray,
    *,
    min_area: int = MIN_PART_AREA,
    hole_area: int = MIN_HOLE_AREA,
    area_fraction: float = MIN_AREA_FRACTION,
) -> np.ndarray:
    """The mask without its specks and pinholes: 8-connected parts of fewer than `min_area`
    pixels are dropped, then 4-connected holes (background not reaching the image border) of
    fewer than `hole_area` pixels are filled; either threshold is raised to `area_fraction` of
    the mask's area when that is more. 0 disables a step. Returns a new bool array.

    cv2.connectedComponentsWithStats does both, on the object's box only (skimage's
    remove_small_objects + remove_small_holes took ~2x longer on 0.25-0.8 MP masks, and they
    fill background that touches the border).
    """
    mask = _as_bool_mask(mask)
    padded, (x, y) = _padded_crop(mask)
    _clean_padded(padded, min_area, hole_area, area_fraction)
    out = np.zeros(mask.shape, dtype=bool)
    height, width = padded.shape
    out[y + 1 : y + height - 1, x + 1 : x + width - 1] = padded[1:-1, 1:-1].view(bool)
    return out


def _clean_padded(padded: np.ndarray, min_area: int, hole_area: int, area_fraction: float) -> None:
    """`clean_mask` in place on a padded crop. Its empty margin is one background component that
    stands for all the background outside the box: "touches the margin" is "reaches the border"."""
    if min_area < 0 or hole_area < 0 or not 0 <= area_fraction < 1:
        raise ValueError("min_area and hole_area must be >= 0, area_fraction in [0, 1)")
    if area_fraction > 0 and (min_area or hole_area):
        relative = area_fraction * int(np.count_nonzero(padded))
        min_area = max(min_area, int(relative)) if min_area else 0
        hole_area = max(hole_area, int(relative)) if hole_area else 0
    # Labelling components costs ~1 ms per 0.15 MP; tracing contours ~20x less. Contours tell
    # which passes can matter: a part's outer contour (through its boundary pixels' centres)
    # encloses less than its pixel count, and a hole's contour encloses less than the hole's
    # pixels plus the contour's length. Most object masks need neither pass.
    maybe_part, maybe_hole = min_area > 1, hole_area > 1
    if maybe_part or maybe_hole:
        contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hierarchy is None:
            return
        outer = hierarchy[0][:, 3] == -1
        maybe_part = maybe_part and any(
            cv2.contourArea(c) < min_area for c, is_outer in zip(contours, outer, strict=True) if is_outer
        )
        maybe_hole = maybe_hole and any(
            cv2.contourArea(c) - cv2.arcLength(c, True) < hole_area
            for c, is_outer in zip(contours, outer, strict=True)
            if not is_outer
        )
    if maybe_part:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(padded, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] < min_area
        small[0] = False  # the background
        if small.any():
            padded[small[labels]] = 0
    if maybe_hole and padded.any():
        _, labels, stats, _ = cv2.connectedComponentsWithStats(1 - padded, connectivity=4)
        fill = stats[:, cv2.CC_STAT_AREA] < hole_area
        fill[0] = False  # label 0 is the mask itself here
        fill[labels[0, 0]] = False  # the margin
        if fill.any():
            padded[fill[labels]] = 1


def clip_to_box(mask: np.ndarray, box: Sequence[float], margin: float = 0.0) -> np.ndarray:
    """The mask's pixels within box (x, y, w, h) grown by `margin` x its width (height) on each
    side; a new bool array. A pixel is in when its centre is."""
    mask = _as_bool_mask(mask)
    x, y, w, h = (float(v) for v in box)
    if margin < 0 or w < 0 or h < 0:
        raise ValueError("box sides and margin must be >= 0")
    height, width = mask.shape
    # Pixel j is in when x0 <= j + 0.5 <= x1: columns ceil(x0 - 0.5) .. floor(x1 - 0.5).
    x0, x1 = x - margin * w, x + w + margin * w
    y0, y1 = y - margin * h, y + h + margin * h
    left, right = max(0, int(np.ceil(x0 - 0.5))), min(width, int(np.floor(x1 - 0.5)) + 1)
    top, bottom = max(0, int(np.ceil(y0 - 0.5))), min(height, int(np.floor(y1 - 0.5)) + 1)
    out = np.zeros(mask.shape, dtype=bool)
    if left < right and top < bottom:
        out[top:bottom, left:right] = mask[top:bottom, left:right]
    return out


@dataclass(frozen=True)
class EncodedMask:
    """A cleaned mask as stored: its exact RLE, its polygons ([] when it is too fragmented: RLE
    only), tight box (x, y, w, h) and area. `rle` and `box` are None when cleaning left nothing."""

    rle: dict | None
    polygons: Polygons
    box: tuple[int, int, int, int] | None
    area: int


def encode_mask(
    mask: np.ndarray,
    *,
    tolerance: float = 1.0,
    min_area: int = MIN_PART_AREA,
    hole_area: int = MIN_HOLE_AREA,
    area_fraction: float = MIN_AREA_FRACTION,
    caps: PolygonCaps = PolygonCaps(),
    min_iou: float = MIN_POLYGON_IOU,
) -> EncodedMask:
    """`clean_mask`, then the cleaned mask's RLE, polygons, box and area: what the pipeline stores
    for every proposal and answers for every click.

    Polygons are `capped_polygons` at `tolerance`, checked against the cleaned mask: below
    `min_iou` (small or ragged shapes) they are traced again at half the tolerance, then exactly
    (tolerance 0); [] (RLE only) when over the caps or never faithful. A few ms for an object
    mask: the mask's box is cropped once for every step.
    """
    mask = _as_bool_mask(mask)
    padded, (x, y) = _padded_crop(mask)
    _clean_padded(padded, min_area, hole_area, area_fraction)
    box = mask_box(padded)
    if box is None:
        return EncodedMask(rle=None, polygons=[], box=None, area=0)
    cleaned = np.zeros(mask.shape, dtype=bool)
    height, width = padded.shape
    cleaned[y + 1 : y + height - 1, x + 1 : x + width - 1] = padded[1:-1, 1:-1].view(bool)
    polygons: Polygons = []
    contours = _contours(padded)
    for attempt in dict.fromkeys((tolerance, tolerance / 2, 0.0)):
        traced = _trace(contours, (0, 0), attempt, caps=caps)
        if traced is None:  # more vertices at a lower tolerance: no point going on
            break
        if mask_iou(_rasterise_quickly(traced, height, width), padded.view(bool)) >= min_iou:
            shift = np.array([x, y])
            polygons = [[_flat(np.reshape(ring, (-1, 2)) + shift) for ring in part] for part in traced]
            break
    return EncodedMask(
        rle=mask_to_rle(cleaned),
        polygons=polygons,
        box=(box[0] + x, box[1] + y, box[2], box[3]),
        area=int(np.count_nonzero(padded)),
    )


# ------------------------------------------------------------------------------ box and area


def stored_mask(rle: dict | None, polygons: Polygons | None, height: int, width: int) -> np.ndarray | None:
    """An annotation's mask at the image's size from what is stored: its RLE, else its polygons;
    None when it has neither or its RLE is of another size."""
    if rle:
        pixels = rle_to_mask(rle)
        return pixels if pixels.shape == (height, width) else None
    if polygons:
        return polygons_to_mask(polygons, height, width)
    return None


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box (x, y, w, h) around the set pixels, in pixels; None for an empty mask."""
    mask = _as_bool_mask(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def mask_area(mask: np.ndarray) -> int:
    """The number of set pixels."""
    return int(np.count_nonzero(_as_bool_mask(mask)))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks of the same shape (1.0 for two empty masks)."""
    a, b = _as_bool_mask(a), _as_bool_mask(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def rle_string_runs(counts: str) -> list[int]:
    """The run lengths of a COCO compressed RLE string (pycocotools' rleFrString, checked: a bad
    string must be refused here, pycocotools' decoder trusts it and writes past its buffer)."""
    values: list[int] = []
    position, length = 0, len(counts)
    while position < length:
        value, shift, more = 0, 0, True
        while more:
            if position >= length:
                raise ValueError("the counts string ends in the middle of a number")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"unexpected character {counts[position]!r} in the counts string")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def rle_runs_checked(counts: Any, *, height: int, width: int) -> list[int]:
    """The run lengths of a COCO RLE's counts (a compressed string or a list of integers), checked
    to cover exactly height × width pixels; ValueError saying what is wrong otherwise."""
    if isinstance(counts, str):
        runs = rle_string_runs(counts)
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = counts
    else:
        raise ValueError("counts must be a COCO string or a list of integers")
    if any(run < 0 or run >= 2**32 for run in runs):
        raise ValueError("a run length is out of range")
    if sum(runs) != height * width:
        raise ValueError(f"the runs cover {sum(runs)} pixels, not {height} × {width}")
    return runs
