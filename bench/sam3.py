"""SAM 3 vs Grounding DINO tiny + SAM vit_b: seconds per image of a pre-label job, and click
latency, side by side in one run (real-size architectures with random weights, CPU).

    .venv/bin/python bench/sam3.py                  # 2 photos at 1024x768, 2 classes: 4-14 min, 2 cores
    .venv/bin/python bench/sam3.py --images 3 --clicks 100 --json var/bench-sam3.json
    .venv/bin/python bench/sam3.py --smoke          # the same code paths on the tiny models (~20 s)

1. Pre-labeling: the same skimage photos, resized to the same size, and the same 2 classes
   through `inference.pipeline.prelabel_batch` (what a job's batch costs), one call over all the
   images per family, after an untimed warm-up call on one image each, the families timed in
   turn (`--repeats` rounds):
   - GDINO + SAM: grounding-dino-tiny on the batch, then SAM vit_b's encoder and its decoder on
     every box, mask hygiene and encoding;
   - SAM 3: one vision forward for the batch, one text encoding of the class prompts, one
     DETR + mask-decoder forward over the (image, class) pairs, its own masks through the same
     hygiene and encoding (no SAM pass);
   - SAM 3 + SAM embedding: what a SAM 3 job with "segment" on costs, since click-to-segment
     stays on SAM (the SAM embedding of each image is computed and cached for clicks): the SAM 3
     row plus SAM vit_b's encoder per image, timed in the same rounds.
   Seconds per image and the ratio against GDINO + SAM.
2. Click latency on a cached image embedding (1-4 points a click, the same clicks for both):
   - SAM vit_b: `SamSegmenter.mask_from_prompts` (the worker's torch SAM; the web's ONNX path,
     bench/click.py, is about twice as fast);
   - SAM 3's interactive part: transformers' Sam3TrackerModel (prompt encoder + mask decoder,
     real size) on the image embedding cached by `get_image_embeddings`, masks upscaled to the
     image by `Sam3TrackerProcessor.post_process_masks`: the same work a SAM click does.
   p50 / p95 and the ratio; plus the cost of each embedding (SAM 3's vision encoder runs at
   1008 x 1008, SAM vit_b's at 1024 x 1024).

Random weights cost the compute of trained ones, but not their outputs: the detectors' random
scores are capped at `MAX_INSTANCES` a class so that mask encoding costs alike. The real-size
models are built once into var/bench-models/ (bench/_models.py; SAM 3 ~3.4 GB, built in under a
minute the first time); loaded, the three take ~4.4 GB of float32 weights, and the run prints its
peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/click.py ≠ click
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
CLASSES = ("person", "cat")
THRESHOLDS = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.1}
MAX_INSTANCES = 5  # per class and image, for both families (random weights score many queries)
GDINO, SAM3, SAM3_EMBED = "GDINO + SAM vit_b", "SAM 3", "SAM 3 + SAM embedding"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="the tiny models: checks the code paths")
    parser.add_argument("--images", type=int, default=2, help="photos per timed call (default 2, at most 4)")
    parser.add_argument("--size", default=None, help="WxH of every photo (default 1024x768; smoke 320x240)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed rounds of the pre-label rows (default 1)"
    )
    parser.add_argument("--clicks", type=int, default=None, help="clicks timed (default 60; smoke 10)")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    width, height = (args.size or ("320x240" if args.smoke else "1024x768")).lower().split("x")
    args.size = (int(width), int(height))
    args.clicks = args.clicks or (10 if args.smoke else 60)
    if not 1 <= args.images <= len(PHOTOS) or args.repeats < 1 or args.clicks < 1 or min(args.size) < 16:
        parser.error("--images 1..4, --repeats and --clicks >= 1, --size at least 16x16")
    return args


# ------------------------------------------------------------------------------------- models


def load_models(smoke: bool, workdir: Path) -> dict:
    """{"gdino", "sam", "sam3", "tracker"}: the detectors, SAM and SAM 3's interactive part, on
    the CPU: the real-size random models (bench/_models.py) or, with `smoke`, the tiny ones."""
    from inference.models.grounding_dino import GroundingDinoDetector
    from inference.models.sam import SamSegmenter
    from inference.models.sam3 import Sam3Detector

    if smoke:
        from inference.models.tiny_gdino import build_tiny_grounding_dino
        from inference.models.tiny_sam import build_tiny_sam, load_tiny_sam
        from inference.models.tiny_sam3 import build_tiny_sam3

        gdino = GroundingDinoDetector.load(
            build_tiny_grounding_dino(workdir / "tiny-gdino", seed=bm.SEED), "cpu"
        )
        sam = SamSegmenter(load_tiny_sam(build_tiny_sam(workdir / "tiny-sam", seed=bm.SEED)), name="tiny")
        sam3 = Sam3Detector.load(str(build_tiny_sam3(workdir / "tiny-sam3", seed=bm.SEED)), device="cpu")
    else:
        gdino = GroundingDinoDetector.load(bm.ensure_detector(), "cpu")
        sam = SamSegmenter.load("vit_b", checkpoint=bm.ensure_sam_vit_b(), device="cpu")
        sam3 = Sam3Detector.load(str(bm.ensure_sam3()), device="cpu")
    return {"gdino": gdino, "sam": sam, "sam3": sam3, "tracker": bm.sam3_tracker(sam3.model)}


def photos(size: tuple[int, int], count: int) -> list:
    from PIL import Image
    from skimage import data

    images = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS[:count]]
    return [image.resize(size, Image.Resampling.BILINEAR) for image in images]


def prompts():
    from inference.prompts import ClassPrompt

    return [ClassPrompt(name=name, prompt=name, max_instances=MAX_INSTANCES) for name in CLASSES]


# -------------------------------------------------------------------------------- pre-labeling


class Stages:
    """Seconds spent in some methods of some objects, summed: each method is wrapped on the
    instance for the `with` block (the wrappers are removed after), so a pipeline call is split
    into its model stages at no extra cost; the rest is mask hygiene and encoding."""

    def __init__(self, **targets) -> None:
        self.targets = targets  # stage name -> (object, method name)
        self.seconds = dict.fromkeys(targets, 0.0)

    def __enter__(self) -> Stages:
        for stage, (obj, method) in self.targets.items():
            inner = getattr(obj, method)

            def timed(*args, _inner=inner, _stage=stage, **kwargs):
                started = time.perf_counter()
                try:
                    return _inner(*args, **kwargs)
                finally:
                    bm.sync()
                    self.seconds[_stage] += time.perf_counter() - started

            setattr(obj, method, timed)
        return self

    def __exit__(self, *exc) -> None:
        for obj, method in self.targets.values():
            delattr(obj, method)  # back to the class's method


def prelabel_rows(models: dict, images: list, repeats: int) -> dict:
    """Seconds per image of `prelabel_batch` for each family, the same images and classes, timed
    in turn after a warm-up; the SAM 3 + SAM embedding row adds SAM's encoder, timed alike."""
    from inference.pipeline import BatchImage, DetectParams

    params = DetectParams(**THRESHOLDS)
    classes = prompts()
    sam = models["sam"]

    def batch(tag: str) -> list:
        return [BatchImage(image=image, sha256=f"{tag}-{i}") for i, image in enumerate(images)]

    def run(detector, segmenter, items) -> list:
        return bm.prelabel_checked(items, classes, params, detector=detector, segmenter=segmenter)

    calls = {
        GDINO: lambda items: run(models["gdino"], sam, items),
        SAM3: lambda items: run(models["sam3"], None, items),
        "SAM embedding": lambda items: [sam.embed(item.image) for item in items],
    }
    stages = {
        GDINO: lambda: Stages(
            detector=(models["gdino"], "detect"),
            sam_encoder=(sam, "embed"),
            sam_decoder=(sam, "masks_for_boxes"),
        ),
        SAM3: lambda: Stages(detector=(models["sam3"], "detect")),
    }
    split: dict[str, dict[str, float]] = {}
    for name, call in calls.items():  # warm-up: one image each
        bm.log(f"  warm-up: {name} ...")
        call(batch(f"warm-{name}")[:1])
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    proposals: dict[str, float] = {}
    for round_ in range(repeats):
        for name, call in calls.items():
            bm.log(f"  round {round_ + 1}: {name} on {len(images)} images ...")
            bm.cpu_probe()
            with stages[name]() if name in stages else Stages() as parts:
                started = time.perf_counter()
                out = call(batch(f"{round_}-{name}"))
                elapsed = time.perf_counter() - started
            seconds[name].append(elapsed / len(images))
            if name != "SAM embedding":
                proposals[name] = sum(len(r.proposals) for r in out) / len(images)
            if name in stages and elapsed / len(images) <= min(seconds[name]):  # the best round's split
                split[name] = {stage: t / len(images) for stage, t in parts.seconds.items()}
                split[name]["masks_and_rest"] = (elapsed - sum(parts.seconds.values())) / len(images)
    best = {name: min(values) for name, values in seconds.items()}
    rows = {
        GDINO: {
            "s_per_image": best[GDINO],
            "proposals_per_image": proposals[GDINO],
            "stages_s": split[GDINO],
        },
        SAM3: {"s_per_image": best[SAM3], "proposals_per_image": proposals[SAM3], "stages_s": split[SAM3]},
        SAM3_EMBED: {
            "s_per_image": best[SAM3] + best["SAM embedding"],
            "proposals_per_image": proposals[SAM3],
        },
    }
    for row in rows.values():
        row["ratio_vs_gdino_sam"] = row["s_per_image"] / best[GDINO]
    return {
        "images": len(images),
        "image_size": list(images[0].size),
        "classes": list(CLASSES),
        "repeats": repeats,
        "rows": rows,
        "sam_embedding_s_per_image": best["SAM embedding"],
        "all_s_per_image": seconds,
    }


# -------------------------------------------------------------------------------------- clicks


def make_clicks(count: int, size: tuple[int, int], *, seed: int = 0) -> list[tuple[list, list]]:
    """`count` clicks of 1-4 points (the first positive), uniform over the image."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width, height = size
    clicks = []
    for _ in range(count):
        n = int(rng.integers(1, 5))
        points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(n)]
        clicks.append((points, [1] + [int(v) for v in rng.integers(0, 2, n - 1)]))
    return clicks


class Sam3Clicker:
    """A click on SAM 3's interactive part: points → the best of its masks at the image's size,
    on an image embedding computed once (`embed`), as SAM's `mask_from_prompts` does."""

    def __init__(self, tracker, image_processor) -> None:
        from transformers import Sam3TrackerProcessor

        self.tracker = tracker
        self.device = next(tracker.parameters()).device
        self.processor = Sam3TrackerProcessor(image_processor=image_processor)

    def embed(self, image) -> dict:
        import torch

        inputs = self.processor(images=[image], return_tensors="pt")
        with torch.inference_mode():
            embeddings = self.tracker.get_image_embeddings(
                pixel_values=inputs["pixel_values"].to(self.device)
            )
        return {"embeddings": embeddings, "original_sizes": inputs["original_sizes"]}

    def mask(self, cached: dict, points: list, labels: list):
        import torch

        inputs = self.processor(
            input_points=[[[list(p) for p in points]]],
            input_labels=[[labels]],
            original_sizes=cached["original_sizes"],
            return_tensors="pt",
        )
        with torch.inference_mode():
            out = self.tracker(
                image_embeddings=cached["embeddings"],
                input_points=inputs["input_points"].to(self.device),
                input_labels=inputs["input_labels"].to(self.device),
                multimask_output=len(points) == 1,  # as the app asks SAM: 3 candidates for one point
            )
        masks = self.processor.post_process_masks(out.pred_masks, cached["original_sizes"])[0]
        best = int(out.iou_scores[0, 0].argmax())
        return masks[0, best].cpu().numpy()


def click_rows(models: dict, size: tuple[int, int], clicks: int) -> dict:
    """Click → mask on a cached embedding: SAM vit_b's `mask_from_prompts` and SAM 3's tracker,
    the same clicks in turn after 5 warm-up clicks; and each embedding's cost (once: SAM 3's is
    a minute or more on a small CPU, and the same vision forward the pre-label rows time)."""
    image = photos(size, 1)[0]
    sam = models["sam"]
    sam3 = Sam3Clicker(models["tracker"], models["sam3"].processor.image_processor)
    embed_ms = {}
    started = time.perf_counter()
    sam_embedding = sam.embed(image)
    embed_ms["SAM vit_b"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    sam3_embedding = sam3.embed(image)
    embed_ms["SAM 3"] = (time.perf_counter() - started) * 1000
    fns = {
        "SAM vit_b": lambda click: sam.mask_from_prompts(sam_embedding, points=click[0], labels=click[1]),
        "SAM 3": lambda click: sam3.mask(sam3_embedding, *click),
    }
    sequence = make_clicks(clicks + 5, size)
    for click in sequence[:5]:
        for fn in fns.values():
            fn(click)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for click in sequence[5:]:
        for name, fn in fns.items():
            started = time.perf_counter()
            mask = fn(click)
            bm.sync()
            times[name].append((time.perf_counter() - started) * 1000)
            shape = mask.mask.shape if hasattr(mask, "mask") else mask.shape
            if tuple(shape) != (size[1], size[0]):
                raise RuntimeError(f"{name}: a mask of {shape} for a {size} image")
    embed_mb = {  # what a worker would cache per image for clicks, float32
        "SAM vit_b": sam_embedding.features.nbytes / 2**20,
        "SAM 3": sum(t.numel() * t.element_size() for t in sam3_embedding["embeddings"]) / 2**20,
    }
    rows = {
        name: {**bm.latency(values), "embed_ms": embed_ms[name], "embedding_mb": embed_mb[name]}
        for name, values in times.items()
    }
    rows["SAM 3"]["p50_ratio_vs_sam"] = rows["SAM 3"]["p50_ms"] / rows["SAM vit_b"]["p50_ms"]
    rows["SAM 3"]["p95_ratio_vs_sam"] = rows["SAM 3"]["p95_ms"] / rows["SAM vit_b"]["p95_ms"]
    return {"clicks": clicks, "image_size": list(size), "rows": rows}


# ------------------------------------------------------------------------------------- report


def report(results: dict, env: dict) -> None:
    print(f"device: {env['device']} ({env['cpu']}, {env['torch_threads']} threads) | torch {env['torch']} "
          f"| transformers {env['transformers']}")  # fmt: skip
    print(f"models: {results['models']} (random weights)")
    pre = results["prelabel"]
    width, height = pre["image_size"]
    print(
        f"\npre-label (prelabel_batch), {pre['images']} images of {width}x{height}, classes {pre['classes']}:"
    )
    print(f"  {'family':24s} {'s/image':>9s} {'x GDINO+SAM':>12s} {'proposals/img':>14s}")
    for name, row in pre["rows"].items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in row.get("stages_s", {}).items())
        print(f"  {name:24s} {row['s_per_image']:9.2f} {row['ratio_vs_gdino_sam']:12.2f} "
              f"{row['proposals_per_image']:14.1f}  {stages}")  # fmt: skip
    print(f"  (SAM vit_b's encoder alone: {pre['sam_embedding_s_per_image']:.2f} s/image)")
    clicks = results["clicks"]
    print(f"\nclick -> mask on a cached embedding ({clicks['clicks']} clicks of 1-4 points):")
    print(f"  {'model':10s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} {'embed ms':>9s} {'cached MB':>10s}")
    for name, row in clicks["rows"].items():
        figures = f"{row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['max_ms']:8.1f} {row['embed_ms']:9.0f}"
        figures += f" {row['embedding_mb']:10.1f}"
        print(f"  {name:10s} {figures}")
    sam3 = clicks["rows"]["SAM 3"]
    print(f"  SAM 3 / SAM vit_b: p50 x{sam3['p50_ratio_vs_sam']:.2f}, p95 x{sam3['p95_ratio_vs_sam']:.2f}")
    print(f"\nother processes' CPU share during the run: {results.get('others_cpu_share') or 0:.0%}; "
          f"total {results['total_s']:.0f} s, peak RSS {results['peak_rss_gb']:.1f} GB")  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sam3-") as workdir:
        bm.log("loading the models ...")
        models = load_models(args.smoke, Path(workdir))
        results: dict = {
            "models": "tiny GDINO + tiny SAM, tiny SAM 3"
            if args.smoke
            else "grounding-dino-tiny + SAM vit_b, SAM 3 (facebook/sam3 architecture)",
            "load_s": time.perf_counter() - started,
        }
        bm.log("pre-labeling ...")
        results["prelabel"] = prelabel_rows(models, photos(args.size, args.images), args.repeats)
        bm.log("clicks ...")
        results["clicks"] = click_rows(models, args.size, args.clicks)
    results["total_s"] = time.perf_counter() - started
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bm.run_and_report(args, run, report)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
