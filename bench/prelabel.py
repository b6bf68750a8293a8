"""Pre-labeling benchmark: detector, SAM encoder, SAM decoder (batched vs one box at a time) and
the whole pipeline (inference.pipeline.prelabel_batch), with real-size random-weight models.

    .venv/bin/python bench/prelabel.py                      # everything (~4-7 min on 2 CPU cores)
    .venv/bin/python bench/prelabel.py --only decoder,masks # parts: detector,encoder,decoder,masks,pipeline
    .venv/bin/python bench/prelabel.py --repeats 3 --json var/bench-prelabel.json

Times are milliseconds per image, warm-up calls excluded. The device is picked like the app
does (device="auto": CUDA when available, else the CPU with torch using every core).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# `python bench/x.py` puts bench/ first on sys.path, where bench/click.py would shadow the `click`
# package: put the repository there instead and import bench as a package.
_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)

PARTS = ("detector", "encoder", "decoder", "masks", "pipeline")
# Detector thresholds as a project's defaults; random weights score almost every query ~1.0, so
# max_instances caps each class (2 classes x 5 = 10 boxes per image, like a busy real image).
THRESHOLDS = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.1}
CLASSES = ("person", "helmet")
MAX_INSTANCES = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of the detector and encoder parts")
    parser.add_argument("--decoder-repeats", type=int, default=10, help="timed runs of the decoder part")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    parser.add_argument("--images", type=int, default=2, help="images per pipeline batch (N)")
    parser.add_argument("--pipeline-repeats", type=int, default=1, help="timed runs of the pipeline part")
    parser.add_argument(
        "--raw-masks",
        action="store_true",
        help="pipeline: keep the random-weight masks (fine lattices: ~10-25 ms each to clean and "
        "encode, RLE only) instead of swapping in object-shaped ones after the decoder ran",
    )
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image for the decoder part")
    parser.add_argument("--size", default="1333x800", help="image size WxH (default: the detector's max)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WxH, got {args.size!r}")
    if min(args.repeats, args.decoder_repeats, args.pipeline_repeats, args.images, args.boxes) < 1:
        parser.error("--repeats, --decoder-repeats, --pipeline-repeats, --images, --boxes must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def class_prompts():
    from inference.prompts import ClassPrompt

    return [ClassPrompt(name=name, prompt=name, max_instances=MAX_INSTANCES) for name in CLASSES]


def random_boxes(count: int, width: int, height: int, *, seed: int = 0) -> list[tuple[float, ...]]:
    """`count` boxes (x, y, w, h) inside the image, 8-40% of its sides."""
    import numpy as np

    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        w = float(rng.uniform(0.08, 0.4) * width)
        h = float(rng.uniform(0.08, 0.4) * height)
        boxes.append((float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h)), w, h))
    return boxes


def swap_in_object_masks(segmenter) -> None:
    """Make `segmenter.masks_for_boxes` run the real decoder, then return an ellipse inscribed in
    each box instead of the decoded mask. Random weights decode every box into a fine lattice of
    thousands of specks and holes (a trained SAM returns compact objects): mask hygiene keeps
    their cost down (~10-25 ms, RLE only; the raw polygons took ~1 s), but the swap keeps the
    figures about the masks a deployment sees."""
    import cv2
    import numpy as np

    from inference.masks import mask_box
    from inference.protocols import MaskPrediction

    original = segmenter.masks_for_boxes

    def with_object_masks(embedding, boxes_xywh):
        predictions = original(embedding, boxes_xywh)
        height, width = embedding.original_size
        swapped = []
        for (x, y, w, h), prediction in zip(boxes_xywh, predictions, strict=True):
            canvas = np.zeros((height, width), dtype=np.uint8)
            center = (int(x + w / 2), int(y + h / 2))
            cv2.ellipse(canvas, center, (max(1, int(w / 2)), max(1, int(h / 2))), 0, 0, 360, 1, thickness=-1)
            mask = canvas.astype(bool)
            swapped.append(MaskPrediction(mask=mask, score=prediction.score, box=mask_box(mask)))
        return swapped

    segmenter.masks_for_boxes = with_object_masks


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.image = bm.test_image(args.width, args.height)
        self._detector = None
        self._segmenter = None
        self._embedding = None
        self.results: dict = {}

    # Models are loaded on first use, so `--only decoder` never loads the detector.
    @property
    def detector(self):
        if self._detector is None:
            from inference.models.grounding_dino import GroundingDinoDetector

            folder = bm.ensure_detector()
            started = time.perf_counter()
            self._detector = GroundingDinoDetector.load(folder, device="auto")
            self.results.setdefault("load_s", {})["detector"] = time.perf_counter() - started
        return self._detector

    @property
    def segmenter(self):
        if self._segmenter is None:
            from inference.models.sam import SamSegmenter

            checkpoint = bm.ensure_sam_vit_b()
            started = time.perf_counter()
            self._segmenter = SamSegmenter.load("vit_b", checkpoint=checkpoint, device="auto")
            self.results.setdefault("load_s", {})["segmenter"] = time.perf_counter() - started
        return self._segmenter

    @property
    def embedding(self):
        if self._embedding is None:
            self._embedding = self.segmenter.embed(self.image)
        return self._embedding

    def detect(self, images) -> list:
        return self.detector.detect(images, class_prompts(), **THRESHOLDS)

    # ------------------------------------------------------------------------------ parts

    def run_detector(self) -> None:
        args = self.args
        pair = [self.image, bm.test_image(args.width, args.height, variant=1)]
        bm.log("detector: one image, and a batch of 2 same-size images ...")
        last: list = []

        def single_image() -> None:
            last[:] = self.detect([self.image])

        for _ in range(args.warmup):  # one image warms the model up for both
            single_image()
        times = bm.time_interleaved(
            {"single": single_image, "batch2": lambda: self.detect(pair)}, repeats=args.repeats, warmup=0
        )
        single, batch = times["single"], times["batch2"]
        detections = last[0]
        self.results["detector"] = {
            "single": bm.summary(single),
            "batch2_per_image": bm.summary([t / 2 for t in batch]),
            "batch2_speedup": 2 * bm.summary(single)["median_ms"] / bm.summary(batch)["median_ms"],
            "detections": len(detections),
            "processed_size": self._processed_size(),
        }

    def _processed_size(self) -> list[int]:
        processor = self.detector.processor.image_processor
        pixels = processor(images=[self.image], return_tensors="pt")["pixel_values"]
        return [int(pixels.shape[-2]), int(pixels.shape[-1])]

    def run_encoder(self) -> None:
        bm.log("SAM vit_b encoder ...")
        times = bm.time_calls(
            lambda: self.segmenter.embed(self.image), repeats=self.args.repeats, warmup=self.args.warmup
        )
        self.results["encoder"] = {"embed": bm.summary(times)}

    def run_decoder(self) -> None:
        args = self.args
        segmenter, embedding = self.segmenter, self.embedding
        boxes = random_boxes(args.boxes, args.width, args.height)
        bm.log(f"SAM decoder: {len(boxes)} boxes in one call vs one call per box ...")

        def chunked(size: int):
            return lambda: [
                segmenter.masks_for_boxes(embedding, boxes[start : start + size])
                for start in range(0, len(boxes), size)
            ]

        variants = {"one_call": chunked(len(boxes)), "loop_of_single": chunked(1)}
        variants.update({f"chunks_of_{size}": chunked(size) for size in (2, 5) if 1 < size < len(boxes)})
        times = bm.time_interleaved(variants, repeats=args.decoder_repeats, warmup=max(args.warmup, 1))
        # The two ways must give the same masks, or the comparison is meaningless.
        one_call = segmenter.masks_for_boxes(embedding, boxes)
        per_box = [segmenter.masks_for_boxes(embedding, [box])[0] for box in boxes]
        same = all((a.mask == b.mask).mean() > 0.999 for a, b in zip(one_call, per_box, strict=True))
        stats = {name: bm.summary(values) for name, values in times.items()}
        self.results["decoder"] = {
            "boxes": len(boxes),
            **stats,
            "loop_over_one_call": stats["loop_of_single"]["median_ms"] / stats["one_call"]["median_ms"],
            "same_masks": bool(same),
        }

    def run_masks(self) -> None:
        """Encoding one proposal's mask, before mask hygiene (RLE + polygons of the raw mask, as
        the pipeline did) and after (cut to the grown box, cleaned, capped: `encode_mask`), on
        the masks the random-weight decoder gives for the decoder part's boxes (speckled
        lattices) and on object-shaped ones (an ellipse in each box)."""
        import json

        import cv2
        import numpy as np

        from inference.masks import clip_to_box, encode_mask, mask_to_polygons, mask_to_rle
        from inference.pipeline import DetectParams

        args = self.args
        boxes = random_boxes(args.boxes, args.width, args.height)
        margin = DetectParams(**THRESHOLDS).box_margin
        bm.log(f"mask encoding before / after hygiene, {len(boxes)} masks of each kind ...")
        decoded = [p.mask for p in self.segmenter.masks_for_boxes(self.embedding, boxes)]
        ellipses = []
        for x, y, w, h in boxes:
            canvas = np.zeros((args.height, args.width), dtype=np.uint8)
            center, axes = (int(x + w / 2), int(y + h / 2)), (max(1, int(w / 2)), max(1, int(h / 2)))
            cv2.ellipse(canvas, center, axes, 0, 0, 360, 1, thickness=-1)
            ellipses.append(canvas.astype(bool))

        def before(mask, box):
            return {"mask": mask_to_rle(mask), "polygons": mask_to_polygons(mask)}

        def after(mask, box):
            encoded = encode_mask(clip_to_box(mask, box, margin) if margin is not None else mask)
            return {"mask": encoded.rle, "polygons": encoded.polygons}

        results = {}
        for kind, masks in (("random-weight", decoded), ("object-shaped", ellipses)):
            row = {}
            for name, encode in (("before", before), ("after", after)):
                times, sizes, with_polygons = [], [], 0
                for mask, box in zip(masks, boxes, strict=True):
                    bm.cpu_probe()
                    started = time.perf_counter()
                    out = encode(mask, box)
                    times.append((time.perf_counter() - started) * 1000.0)
                    sizes.append(len(json.dumps(out)))
                    with_polygons += bool(out["polygons"])
                row[name] = {
                    "ms_per_mask": bm.summary(times),
                    "json_bytes_per_mask": sum(sizes) / len(sizes),
                    "with_polygons": with_polygons,
                }
            results[kind] = row
        self.results["masks"] = {"masks": len(boxes), "box_margin": margin, **results}

    def run_pipeline(self) -> None:
        from inference.embeddings import EmbeddingCache
        from inference.pipeline import BatchImage, DetectParams, prelabel_batch

        args = self.args
        items = [
            BatchImage(image=image, sha256=bm.image_sha256(image))
            for image in (bm.test_image(args.width, args.height, variant=i) for i in range(args.images))
        ]
        params = DetectParams(**THRESHOLDS)
        detector, segmenter = self.detector, self.segmenter

        def run(batch) -> list:
            # A fresh embedding cache each run: a first pre-labeling computes every embedding.
            with tempfile.TemporaryDirectory(prefix="bench-embeddings-") as folder:
                results = prelabel_batch(
                    batch,
                    class_prompts(),
                    params,
                    detector=detector,
                    segmenter=segmenter,
                    cache=EmbeddingCache(folder),
                    cache_name="vit_b",
                )
            failed = [r.error for r in results if r.error]
            if failed:
                raise RuntimeError(f"the pipeline failed on some images: {failed}")
            return results

        bm.log(f"pipeline: prelabel_batch on {len(items)} images ...")
        if not args.raw_masks:
            swap_in_object_masks(segmenter)
        try:
            if not {"detector", "encoder"} <= set(args.parts):  # the models are still cold
                for _ in range(args.warmup):
                    run(items[:1])
            runs = []
            for _ in range(args.pipeline_repeats):
                bm.cpu_probe()
                started = time.perf_counter()
                results = run(items)
                bm.sync()
                runs.append(time.perf_counter() - started)
        finally:
            if not args.raw_masks:
                del segmenter.masks_for_boxes  # back to the class's method
        median = sorted(runs)[len(runs) // 2]
        self.results["pipeline"] = {
            "images": len(items),
            "seconds": runs,
            "images_per_s": len(items) / median,
            "ms_per_image": median * 1000 / len(items),
            "proposals_per_image": sum(len(r.proposals) for r in results) / len(items),
            "masks_per_image": sum(1 for r in results for p in r.proposals if p.mask) / len(items),
            "masks": "random-weight" if args.raw_masks else "object-shaped",
        }


def report(results: dict, env: dict, args: argparse.Namespace) -> None:
    probe = results.get("cpu_probe") or {}
    print(f"device: {env['device']} | torch {env['torch']} | transformers {env['transformers']}")
    print(f"cpu: {env['cpu']} ({env['cpu_count']} cores, {env['torch_threads']} torch threads)")
    print(f"image: {args.width}x{args.height}; warm-up runs excluded; ms per image (median of runs)")
    if "detector" in results:
        d = results["detector"]
        print(
            f"detector (grounding-dino-tiny, processed {d['processed_size'][1]}x{d['processed_size'][0]}): "
            f"{d['single']['median_ms']:.0f} ms/image alone, "
            f"{d['batch2_per_image']['median_ms']:.0f} ms/image in a batch of 2 "
            f"(batching x{d['batch2_speedup']:.2f})"
        )
    if "encoder" in results:
        print(f"SAM vit_b encoder (embed): {results['encoder']['embed']['median_ms']:.0f} ms/image")
    if "decoder" in results:
        d = results["decoder"]
        print(
            f"SAM decoder, {d['boxes']} boxes: one call {d['one_call']['median_ms']:.0f} ms, "
            f"loop of single-box calls {d['loop_of_single']['median_ms']:.0f} ms "
            f"(loop / one call = {d['loop_over_one_call']:.2f}; same masks: {d['same_masks']})"
        )
        for name, s in d.items():
            if name.startswith("chunks_of_"):
                print(f"  in calls of {name.removeprefix('chunks_of_')} boxes: {s['median_ms']:.0f} ms")
    if "masks" in results:
        m = results["masks"]
        for kind in ("random-weight", "object-shaped"):
            b, a = m[kind]["before"], m[kind]["after"]
            b_ms, a_ms = b["ms_per_mask"]["median_ms"], a["ms_per_mask"]["median_ms"]
            b_kb, a_kb = b["json_bytes_per_mask"] / 1000, a["json_bytes_per_mask"] / 1000
            print(
                f"mask encoding, {m['masks']} {kind} masks: before hygiene {b_ms:.1f} ms/mask, "
                f"{b_kb:.1f} kB/mask; after {a_ms:.1f} ms/mask, {a_kb:.1f} kB/mask "
                f"({a['with_polygons']}/{m['masks']} with polygons, the rest RLE only)"
            )
    if "pipeline" in results:
        p = results["pipeline"]
        print(
            f"pipeline (prelabel_batch, {p['images']} images, {p['masks_per_image']:.0f} {p['masks']} "
            "masks/image): "
            f"{p['images_per_s']:.3f} images/s = {p['ms_per_image']:.0f} ms/image"
        )
    if probe:
        print(
            f"CPU probe before each timed run: p50 {probe['p50_ms']:.1f} ms, max {probe['max_ms']:.1f} ms"
            + (" (the host slowed down during the run)" if probe["max_ms"] > 2 * probe["p50_ms"] else "")
        )
    shares = {part: share for part, share in results.get("others_cpu_share", {}).items() if share is not None}
    if shares:
        listed = ", ".join(f"{part} {share:.0%}" for part, share in shares.items())
        print(f"CPU time used by OTHER processes while each part ran: {listed}")
        if max(shares.values()) > 0.1:
            print("WARNING: the machine was busy with other work: these figures are too slow; run again")
    print(f"total {results['total_s']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bm.set_threads()
    env = bm.environment()
    bench = Bench(args)
    started = time.perf_counter()
    bm.settle()
    shares = {}
    for part in PARTS:
        if part in args.parts:
            since = bm.cpu_snapshot()
            getattr(bench, f"run_{part}")()
            shares[part] = bm.others_cpu_share(since)
    bench.results["others_cpu_share"] = shares
    bench.results["total_s"] = time.perf_counter() - started
    bench.results["cpu_probe"] = bm.probe_summary()
    report(bench.results, env, args)
    if args.json:
        bm.write_json(
            args.json,
            {"environment": env, "options": {k: v for k, v in vars(args).items()}, "results": bench.results},
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
