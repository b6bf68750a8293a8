"""Write the JS unit tests' fixtures (tests/js/fixtures/coco.json) from pycocotools and numpy, so
that no expected value in tests/js is typed by hand: COCO RLE masks (pycocotools' compressed counts,
area and bbox; the plain run lengths and the column-major pixels from numpy), brush strokes (the
pixels within the radius of the stroke, encoded by pycocotools), boxes moved with their mask, and
image ↔ view points at several zooms and pans.

    .venv/bin/python tests/js/make_fixtures.py [out.json]

tests/test_js_fixtures.py writes them again to a temporary file and checks that the committed file
is what this script makes (the same seed gives the same file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as coco

OUT = Path(__file__).resolve().parent / "fixtures" / "coco.json"


def runs(mask: np.ndarray) -> list[int]:
    """Run lengths of the column-major pixels, starting with a run of zeros (COCO's order)."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    lengths = np.diff(edges).tolist()
    return [0, *lengths] if flat.size and flat[0] == 1 else lengths


def rle_case(name: str, mask: np.ndarray, *, pixels: bool = True) -> dict:
    encoded = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    case = {
        "name": name,
        "size": [int(v) for v in encoded["size"]],
        "counts": encoded["counts"].decode("ascii"),
        "runs": runs(mask),
        "area": int(coco.area(encoded)),
        "bbox": [int(v) for v in coco.toBbox(encoded)] if mask.any() else None,
    }
    # pycocotools reads the plain run lengths back to the same compressed counts.
    again = coco.frPyObjects({"size": case["size"], "counts": case["runs"]}, *case["size"])
    assert again["counts"].decode("ascii") == case["counts"], name
    if pixels:
        case["pixels"] = "".join("1" if v else "0" for v in mask.flatten(order="F"))
    return case


def rle_cases(rng: np.random.Generator) -> list[dict]:
    cases = [
        rle_case("empty", np.zeros((5, 7), bool)),
        rle_case("full", np.ones((6, 4), bool)),
        rle_case("first pixel set", np.pad(np.ones((1, 1), bool), ((0, 4), (0, 3)))),
        rle_case("last pixel set", np.pad(np.ones((1, 1), bool), ((4, 0), (3, 0)))),
        rle_case("noise", rng.random((13, 17)) < 0.5),
        rle_case("sparse noise", rng.random((31, 23)) < 0.05),
    ]
    blobs = np.zeros((40, 50), bool)
    for _ in range(6):
        y, x, r = rng.integers(0, 40), rng.integers(0, 50), rng.integers(2, 9)
        yy, xx = np.ogrid[:40, :50]
        blobs |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    cases.append(rle_case("blobs", blobs))
    # A polygon rasterised by pycocotools at an image's size (long runs, large deltas).
    h, w = 300, 451
    polygon = [60.5, 40.0, 400.0, 20.5, 430.0, 280.0, 200.0, 250.0, 30.0, 290.0]
    from_polygon = coco.decode(coco.merge(coco.frPyObjects([polygon], h, w))).astype(bool)
    cases.append(rle_case("polygon 451x300", from_polygon, pixels=False))
    return cases


def capsule(h: int, w: int, a: tuple[float, float], b: tuple[float, float], r: float) -> np.ndarray:
    """Pixels whose centre is within r of the segment a–b."""
    ys, xs = np.mgrid[:h, :w]
    px, py = xs + 0.5, ys + 0.5
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = np.zeros_like(px) if length2 == 0 else np.clip(((px - a[0]) * dx + (py - a[1]) * dy) / length2, 0, 1)
    return (px - (a[0] + t * dx)) ** 2 + (py - (a[1] + t * dy)) ** 2 <= r * r


def brush_cases(rng: np.random.Generator) -> list[dict]:
    h, w = 48, 64
    start = np.zeros((h, w), bool)
    start[10:30, 12:40] = True
    cases = []
    for name, a, b, r, value in [
        ("dab", (20.3, 5.7), (20.3, 5.7), 4.0, 1),
        ("stroke", (5.0, 40.0), (58.5, 33.2), 3.5, 1),
        ("erase across", (25.0, 0.0), (26.0, 47.0), 5.0, 0),
        ("past the border", (-3.0, 45.0), (70.0, 50.0), 6.0, 1),
        ("one pixel", (30.5, 20.5), (30.5, 20.5), 0.5, 0),
    ]:
        painted = capsule(h, w, a, b, r)
        after = start | painted if value else start & ~painted
        cases.append(
            {
                "name": name,
                "before": rle_case("before", start, pixels=False),
                "a": list(a),
                "b": list(b),
                "radius": r,
                "value": value,
                "after": rle_case("after", after, pixels=False),
                "changed": int((after != start).sum()),
            }
        )
    return cases


def move_cases() -> list[dict]:
    """A mask carried from one box to another: nearest pixel, sampled at pixel centres."""
    h, w = 30, 40
    mask = np.zeros((h, w), bool)
    mask[5:15, 6:20] = True
    mask[8:11, 10:12] = False
    cases = []
    before = [6, 5, 14, 10]
    for after in ([20, 12, 14, 10], [3, 2, 28, 20], [10, 10, 7, 5]):
        sx, sy = after[2] / before[2], after[3] / before[3]
        out = np.zeros_like(mask)
        for col in range(max(0, int(np.floor(after[0]))), min(w, int(np.ceil(after[0] + after[2])))):
            src_col = int(np.floor(before[0] + (col + 0.5 - after[0]) / sx))
            for row in range(max(0, int(np.floor(after[1]))), min(h, int(np.ceil(after[1] + after[3])))):
                src_row = int(np.floor(before[1] + (row + 0.5 - after[1]) / sy))
                if 0 <= src_col < w and 0 <= src_row < h:
                    out[row, col] = mask[src_row, src_col]
        moved = rle_case("moved", out)
        cases.append({"from": before, "to": after, "mask": rle_case("mask", mask), "moved": moved})
    return cases


def view_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    views = [(1.0, 0.0, 0.0), (0.37, 12.5, -40.0), (2.5, -300.25, 88.0), (40.0, -12000.0, -7000.5)]
    for scale, tx, ty in views:
        points = rng.uniform(-50, 500, size=(5, 2))
        view = points * scale + np.array([tx, ty])
        factor = float(rng.uniform(0.5, 2.0))
        anchor = rng.uniform(0, 800, size=2)
        image_under = (anchor - np.array([tx, ty])) / scale
        new_scale = scale * factor
        new_t = anchor - image_under * new_scale
        cases.append(
            {
                "view": {"scale": scale, "tx": tx, "ty": ty},
                "image": points.tolist(),
                "screen": view.tolist(),
                "zoom": {
                    "scale": new_scale,
                    "at": anchor.tolist(),
                    "view": {"scale": new_scale, "tx": float(new_t[0]), "ty": float(new_t[1])},
                },
            }
        )
    return cases


def fixtures() -> dict:
    rng = np.random.default_rng(13)
    return {
        "made_by": "tests/js/make_fixtures.py (pycocotools and numpy); do not edit by hand",
        "rle": rle_cases(rng),
        "brush": brush_cases(rng),
        "move": move_cases(),
        "views": view_cases(rng),
    }


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixtures(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
