"""Memory and time of SAM masks for many boxes of one image: chunked decoder calls vs one call.

    .venv/bin/python bench/sam_boxes.py                  # 200 boxes, vit_b (real size, random weights)
    .venv/bin/python bench/sam_boxes.py --boxes 100 --chunks 8,32 --json var/bench-sam-boxes.json

The image's embedding is made once by `SamSegmenter.embed` (SAM vit_b encoder, ~20 s on 2 CPU
cores) and saved; each variant then runs in a FRESH Python process that loads the segmenter
through the project's loader (`SamSegmenter.load("vit_b", ...)`), reads the embedding and calls
`SamSegmenter.masks_for_boxes(embedding, boxes, chunk_size=N)` once. Reported per variant: the
peak RSS growth during that call over the RSS just before it (sampled every 2 ms from
/proc/self/statm, and checked against getrusage's ru_maxrss), and its wall time.

The baseline is the old approach in the same run: every box through the decoder in ONE call
(`chunk_size` = the number of boxes), which copies the 4 MB image embedding once per box and
keeps every box's activations at once. The returned masks themselves (one bool per pixel per
box: 200 x 1333 x 800 = 213 MB) are part of the growth in every variant.

Budget (issue 9): 200 boxes on vit_b, peak RSS growth <= 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)

BUDGET_MB = 500.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--boxes", type=int, default=200, help="boxes on the image")
    parser.add_argument("--chunks", default="32", help="chunk sizes to measure, comma-separated")
    parser.add_argument("--size", default="1333x800", help="image size WxH")
    parser.add_argument(
        "--random-embedding",
        action="store_true",
        help="skip the encoder: a random (1, 256, 64, 64) embedding (memory is the same)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--child", nargs=3, metavar=("EMBEDDING", "BOXES", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
        args.chunk_sizes = [int(v) for v in args.chunks.split(",") if v.strip()]
    except ValueError:
        parser.error("--size must be WxH and --chunks integers")
    if args.boxes < 1 or any(c < 1 for c in args.chunk_sizes):
        parser.error("--boxes and --chunks must be >= 1")
    return args


def make_boxes(count: int, width: int, height: int, *, seed: int) -> list[list[float]]:
    """Boxes (x, y, w, h) of 2-60 % of the image's sides, anywhere in it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        w, h = rng.uniform(0.02, 0.6) * width, rng.uniform(0.02, 0.6) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append([round(float(v), 1) for v in (x, y, w, h)])
    return boxes


# ----------------------------------------------------------------------------- child process


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(embedding_path: str, boxes_path: str, chunk: int) -> dict:
    """In a fresh process: load SAM vit_b, then time and measure one masks_for_boxes call."""
    import resource
    import threading
    import time

    import numpy as np

    from inference.models.sam import SamSegmenter
    from inference.protocols import ImageEmbedding

    bm.set_threads()
    segmenter = SamSegmenter.load("vit_b", checkpoint=bm.ensure_sam_vit_b(), device="cpu")
    stored = np.load(embedding_path)
    embedding = ImageEmbedding(
        features=stored["features"],
        original_size=tuple(int(v) for v in stored["original_size"]),
        input_size=tuple(int(v) for v in stored["input_size"]),
    )
    boxes = json.loads(Path(boxes_path).read_text())
    segmenter.masks_for_boxes(embedding, boxes[:1])  # first-call allocations out of the figure
    before = _rss_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    predictions = segmenter.masks_for_boxes(embedding, boxes, chunk_size=chunk)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "chunk_size": chunk,
        "boxes": len(predictions),
        "seconds": elapsed,
        "rss_before_mb": before / 1e6,
        "peak_growth_mb": (peak[0] - before) / 1e6,
        # ru_maxrss growth: a lower bound when loading peaked higher than the call.
        "maxrss_growth_mb": max(0, maxrss_after - max(maxrss_before, before)) / 1e6,
        "masks_mb": sum(p.mask.nbytes for p in predictions) / 1e6,
        "mean_area": float(np.mean([p.mask.mean() for p in predictions])),
    }


# ---------------------------------------------------------------------------------- parent


def make_embedding(args: argparse.Namespace, folder: Path) -> tuple[Path, float]:
    import time

    import numpy as np

    path = folder / "embedding.npz"
    started = time.perf_counter()
    if args.random_embedding:
        from segment_anything.utils.transforms import ResizeLongestSide

        rng = np.random.default_rng(args.seed)
        features = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
        original = (args.height, args.width)
        input_size = ResizeLongestSide.get_preprocess_shape(*original, 1024)
    else:
        from inference.models.sam import SamSegmenter

        segmenter = SamSegmenter.load("vit_b", checkpoint=bm.ensure_sam_vit_b(), device="cpu")
        embedding = segmenter.embed(bm.test_image(args.width, args.height))
        features, original, input_size = embedding.features, embedding.original_size, embedding.input_size
        del segmenter
    np.savez(path, features=features, original_size=np.array(original), input_size=np.array(input_size))
    return path, time.perf_counter() - started


def run_child(embedding: Path, boxes: Path, chunk: int) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(embedding),
        str(boxes),
        str(chunk),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    bm.ensure_sam_vit_b()
    with tempfile.TemporaryDirectory(prefix="bench-sam-boxes-") as tmp:
        folder = Path(tmp)
        bm.log(
            "the image's embedding " + ("(random)" if args.random_embedding else "(SAM vit_b encoder) ...")
        )
        embedding, embed_s = make_embedding(args, folder)
        boxes_path = folder / "boxes.json"
        boxes_path.write_text(json.dumps(make_boxes(args.boxes, args.width, args.height, seed=args.seed)))
        variants = {"one call (baseline)": args.boxes, **{f"chunks of {c}": c for c in args.chunk_sizes}}
        results = {}
        for label, chunk in variants.items():
            bm.log(f"{label}: {args.boxes} boxes in a fresh process ...")
            results[label] = run_child(embedding, boxes_path, chunk)
    return {
        "image": [args.width, args.height],
        "boxes": args.boxes,
        "embedding_s": embed_s,
        "random_embedding": args.random_embedding,
        "variants": results,
        "budget_mb": BUDGET_MB,
    }


def report(r: dict, env: dict) -> None:
    print(f"device: {env['device']} | torch {env['torch']} | cpu: {env['cpu']} ({env['cpu_count']} cores)")
    made = "random" if r["random_embedding"] else f"computed in {r['embedding_s']:.0f} s"
    print(
        f"SAM vit_b (random weights), image {r['image'][0]}x{r['image'][1]}, {r['boxes']} boxes, "
        f"embedding {made}"
    )
    baseline = r["variants"]["one call (baseline)"]
    for label, v in r["variants"].items():
        ratio = (
            v["peak_growth_mb"] / baseline["peak_growth_mb"] if baseline["peak_growth_mb"] else float("nan")
        )
        verdict = "within" if v["peak_growth_mb"] <= r["budget_mb"] else "OVER"
        print(
            f"{label:>20}: peak RSS growth {v['peak_growth_mb']:7.0f} MB "
            f"(ru_maxrss {v['maxrss_growth_mb']:.0f} MB; "
            f"{ratio:.2f}x the baseline; {verdict} the {r['budget_mb']:.0f} MB budget), "
            f"{v['seconds']:.1f} s ({v['seconds'] / baseline['seconds']:.2f}x), masks {v['masks_mb']:.0f} MB"
        )
    share = r["others_cpu_share"]
    if share is not None:
        print(f"CPU time used by OTHER processes during the run: {share:.0%} (memory does not depend on it)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return 0
    return bm.run_and_report(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
