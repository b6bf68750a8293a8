"""GPU check: detector precision (fp32 / TF32 / bf16), pipeline throughput, SAM encoder batching
and click latency, on real-size architectures with random weights, in one short run.

    python bench/gpu_check.py                 # on a CUDA machine (~1-3 min); refuses to run without
    python bench/gpu_check.py --smoke         # the same code paths, tiny models, on the CPU (~1 min)
    OUT=/some/dir python bench/gpu_check.py   # also writes /some/dir/gpu_check.json (or --json PATH)

What it prints (a compact table, then the JSON path):

1. Detector agreement on real photos (skimage: astronaut, chelsea, coffee, rocket): the same
   Grounding DINO run in fp32 (TF32 off: the reference), fp32 with TF32 matmuls (the default on
   CUDA) and bf16 autocast. Per variant: raw outputs vs the reference (max |logit| and |box|
   differences), detections with the same class and box IoU >= 0.9 (matched greedily, best
   score first), max |score| difference over matched pairs, and ms per image.
2. Whole pipeline (`inference.pipeline.prelabel_batch`: detector on the batch, SAM encoder,
   SAM decoder on every box, mask hygiene and encoding) in images/s at batch 1, 4 and 8.
3. SAM encoder: `SamSegmenter.embed_batch` (batches of 8) vs `embed` one image at a time (ms per
   image, speed-up, max |feature| difference).
4. Click latency: `SamSegmenter.mask_from_prompts` on a cached embedding (decoder only: 1-4
   points per click), p50 / p95.
5. SAM 3 (facebook/sam3's architecture) vs Grounding DINO + SAM at the same image size, side by
   side (bench/sam3.py's rows): seconds per image through `prelabel_batch` (SAM 3 alone, and
   with the SAM embedding a "segment" job caches for clicks), and click latency of SAM 3's
   interactive part (Sam3TrackerModel on a cached embedding) vs SAM's decoder, p50 / p95.

Random weights cost the same compute as trained ones, so throughput and latency are real; but
a random detector scores nearly every query ~1.0, so the detection-level agreement is a
pessimistic stress test of near-ties (the raw-output differences are the robust figure).
Imports only `inference.*` modules that do not need Django, and `bench._models`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/click.py ≠ click
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)
from bench import sam3 as sam3_bench  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
CLASSES = ("person", "cat", "coffee cup", "rocket")
THRESHOLDS = {"box_threshold": 0.35, "text_threshold": 0.25, "keep_threshold": 0.1}
MAX_INSTANCES = 5  # random weights score every query ~1: 4 classes x 5 = up to 20 boxes an image
MATCH_IOU = 0.9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models on the CPU, few repeats: checks the code paths"
    )
    parser.add_argument("--batches", default=None, help="pipeline batch sizes (default 1,4,8; smoke 1,2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 3)")
    parser.add_argument("--clicks", type=int, default=None, help="clicks timed (default 200; smoke 10)")
    parser.add_argument("--json", metavar="PATH", help="write the results here (default $OUT/gpu_check.json)")
    args = parser.parse_args(argv)
    args.batches = [int(v) for v in (args.batches or ("1,2" if args.smoke else "1,4,8")).split(",")]
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.clicks = args.clicks or (10 if args.smoke else 200)
    if min(args.batches) < 1 or args.repeats < 1 or args.clicks < 1:
        parser.error("--batches, --repeats and --clicks must be >= 1")
    if args.json is None and os.environ.get("OUT"):
        args.json = str(Path(os.environ["OUT"]) / "gpu_check.json")
    return args


# ------------------------------------------------------------------------------------- models


def build_models(smoke: bool, device: str, workdir: Path):
    """(model, processor) of Grounding DINO and a SAM, built in memory with seeded random weights:
    real-size architectures (bench/_models.py), or the tiny test models with --smoke."""
    import torch

    if smoke:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        from inference.models.tiny_gdino import build_tiny_grounding_dino
        from inference.models.tiny_sam import build_tiny_sam, load_tiny_sam

        folder = build_tiny_grounding_dino(workdir / "tiny-gdino", seed=bm.SEED)
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(folder, local_files_only=True)
        sam = load_tiny_sam(build_tiny_sam(workdir / "tiny-sam", seed=bm.SEED))
        return model, processor, "tiny", sam

    from segment_anything import sam_model_registry
    from transformers import (
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from inference.models.tiny_gdino import make_tokenizer

    tokenizer = make_tokenizer(bm.bert_layout_vocabulary(), workdir / "vocab.txt")
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 800, "longest_edge": 1333})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(bm.SEED)
        with torch.device(device):  # random init where it runs: seconds, not a minute on the CPU
            model = GroundingDinoForObjectDetection(bm.detector_config())
            sam = sam_model_registry["vit_b"](checkpoint=None)
    return model, processor, "vit_b", sam


def photos(size: tuple[int, int] | None = None) -> list:
    from PIL import Image
    from skimage import data

    images = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    return [image.resize(size, Image.Resampling.BILINEAR) for image in images] if size else images


def prompts():
    from inference.prompts import ClassPrompt

    return [ClassPrompt(name=name, prompt=name, max_instances=MAX_INSTANCES) for name in CLASSES]


# -------------------------------------------------------------------------------------- parts


def box_iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match(reference: list, other: list) -> tuple[int, float]:
    """(pairs with the same class and box IoU >= MATCH_IOU, max |score diff| over them); greedy,
    best reference score first, each detection used once."""
    used: set[int] = set()
    pairs, worst = 0, 0.0
    for ref in sorted(reference, key=lambda d: -d.score):
        best, best_iou = None, MATCH_IOU
        for k, det in enumerate(other):
            if k in used or det.class_index != ref.class_index:
                continue
            iou = box_iou(ref.box, det.box)
            if iou >= best_iou:
                best, best_iou = k, iou
        if best is not None:
            used.add(best)
            pairs += 1
            worst = max(worst, abs(other[best].score - ref.score))
    return pairs, worst


def raw_outputs(detector, image, caption_prompts) -> tuple:
    """(token probabilities, boxes) of the first caption, as numpy, through the detector's own
    forward (its precision settings included)."""
    encoded = detector._encode_prompts(caption_prompts, "joint")[0]
    return next(iter(detector._forward([image], encoded)))


def check_detector(model, processor, device: str, repeats: int) -> dict:
    import numpy as np

    from inference.device import pick_dtype
    from inference.models.grounding_dino import GroundingDinoDetector

    images = photos()
    caption_prompts = prompts()
    variants = {"fp32": {"dtype": "fp32", "allow_tf32": False}, "tf32": {"dtype": "fp32", "allow_tf32": True}}
    try:
        pick_dtype(device, "bf16")
        variants["bf16"] = {"dtype": "bf16", "allow_tf32": True}
    except Exception as exc:  # a GPU without bf16: say so, measure the rest
        bm.log(f"bf16 skipped: {exc}")
    detectors = {
        name: GroundingDinoDetector(model, processor, name="gdino", device=device, batch_size=8, **options)
        for name, options in variants.items()
    }
    results: dict = {"images": list(PHOTOS), "variants": {}}
    found: dict = {}
    raw: dict = {}
    for name, detector in detectors.items():
        detector.detect(images[:1], caption_prompts, **THRESHOLDS)  # warm-up (kernels, autotune)
        bm.sync()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            found[name] = [detector.detect([image], caption_prompts, **THRESHOLDS)[0] for image in images]
            bm.sync()
            times.append((time.perf_counter() - started) * 1000 / len(images))
        raw[name] = [raw_outputs(detector, image, caption_prompts) for image in images]
        results["variants"][name] = {"ms_per_image": min(times), "detections": sum(map(len, found[name]))}
    for name in detectors:
        if name == "fp32":
            continue
        pairs, worst, classes_same = 0, 0.0, True
        for ref, other in zip(found["fp32"], found[name], strict=True):
            matched, diff = match(ref, other)
            pairs += matched
            worst = max(worst, diff)
            classes_same &= sorted(d.class_index for d in ref) == sorted(d.class_index for d in other)
        logit_diff = max(
            float(np.abs(a[0] - b[0]).max()) for a, b in zip(raw["fp32"], raw[name], strict=True)
        )
        box_diff = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(raw["fp32"], raw[name], strict=True))
        results["variants"][name].update(
            {
                "reference_detections": sum(map(len, found["fp32"])),
                "matched": pairs,
                "same_class_counts": bool(classes_same),
                "max_score_diff": worst,
                "max_prob_diff": logit_diff,
                "max_box_diff": box_diff,
            }
        )
    return results


def check_pipeline(detector, segmenter, batches: list[int], repeats: int, size: tuple[int, int]) -> dict:
    from PIL import ImageOps

    from inference.pipeline import BatchImage, DetectParams

    base = photos(size)
    pool = base + [ImageOps.mirror(image) for image in base]  # 8 distinct same-size images
    while len(pool) < max(batches):
        pool += [image.rotate(180) for image in pool]
    params = DetectParams(**THRESHOLDS)
    caption_prompts = prompts()
    results: dict = {"image_size": list(size), "batches": {}}
    for batch in batches:
        items = [BatchImage(image=image, sha256=f"{batch}-{i}") for i, image in enumerate(pool[:batch])]

        def run(items=items) -> list:
            return bm.prelabel_checked(items, caption_prompts, params, detector=detector, segmenter=segmenter)

        run(items[:1])  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - started)
        best = min(times)
        results["batches"][str(batch)] = {
            "images_per_s": batch / best,
            "ms_per_image": best * 1000 / batch,
            "proposals_per_image": sum(len(r.proposals) for r in out) / batch,
            "rle_only_per_image": sum(1 for r in out for p in r.proposals if p.mask and not p.polygons)
            / batch,
        }
    return results


def check_encoder(segmenter, repeats: int, size: tuple[int, int], batch: int) -> dict:
    import numpy as np
    from PIL import ImageOps

    base = photos(size)
    images = (base + [ImageOps.mirror(image) for image in base])[:batch]
    if not hasattr(segmenter, "embed_batch"):
        return {"skipped": "SamSegmenter.embed_batch is missing (merge the sam branch)"}
    segmenter.embed_batch(images[:2], batch_size=2)  # warm-up
    segmenter.embed(images[0])
    bm.sync()
    one, batched = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        alone = [segmenter.embed(image) for image in images]
        bm.sync()
        one.append((time.perf_counter() - started) * 1000 / len(images))
        started = time.perf_counter()
        together = segmenter.embed_batch(images, batch_size=batch)
        bm.sync()
        batched.append((time.perf_counter() - started) * 1000 / len(images))
    diff = max(float(np.abs(a.features - b.features).max()) for a, b in zip(alone, together, strict=True))
    return {
        "images": len(images),
        "one_by_one_ms_per_image": min(one),
        "batched_ms_per_image": min(batched),
        "speedup": min(one) / min(batched),
        "max_feature_diff": diff,
    }


def check_clicks(segmenter, clicks: int, size: tuple[int, int]) -> dict:
    image = photos(size)[0]
    embedding = segmenter.embed(image)
    prompts_list = sam3_bench.make_clicks(clicks + 5, size, seed=0)
    for points, labels in prompts_list[:5]:  # warm-up
        segmenter.mask_from_prompts(embedding, points=points, labels=labels)
    times = []
    for points, labels in prompts_list[5:]:
        bm.sync()
        started = time.perf_counter()
        segmenter.mask_from_prompts(embedding, points=points, labels=labels)
        bm.sync()
        times.append((time.perf_counter() - started) * 1000)
    return {"clicks": clicks, "image_size": list(size), **bm.latency(times)}


def build_sam3(smoke: bool, device: str, workdir: Path):
    """A SAM 3 detector (seeded random weights): facebook/sam3's architecture built in memory on
    `device`, or with --smoke the tiny SAM 3."""
    import torch
    from transformers import Sam3ImageProcessor, Sam3Model, Sam3Processor

    from inference.models.sam3 import Sam3Detector
    from inference.models.tiny_sam3 import build_tiny_sam3

    if smoke:
        return Sam3Detector.load(str(build_tiny_sam3(workdir / "tiny-sam3", seed=bm.SEED)), device=device)
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=bm.clip_layout_tokenizer())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(bm.SEED)
        with torch.device(device):
            model = Sam3Model(bm.sam3_config())
    return Sam3Detector(model.eval(), processor, device=device, name="sam3")


def check_sam3(detector, segmenter, sam3, size: tuple[int, int], repeats: int, clicks: int) -> dict:
    """bench/sam3.py's rows: s/image of SAM 3 vs Grounding DINO + SAM through prelabel_batch on 4
    photos of `size`, and click latency of SAM 3's tracker vs SAM's decoder."""
    models = {"gdino": detector, "sam": segmenter, "sam3": sam3, "tracker": bm.sam3_tracker(sam3.model)}
    return {
        "prelabel": sam3_bench.prelabel_rows(models, sam3_bench.photos(size, len(PHOTOS)), repeats),
        "clicks": sam3_bench.click_rows(models, size, clicks),
    }


# ------------------------------------------------------------------------------------- report


def report(results: dict) -> None:
    env = results["environment"]
    print(f"device: {env['device']} | torch {env['torch']} | transformers {env['transformers']}")
    print(f"models: {results['models']} (random weights) | total {results['total_s']:.0f} s")
    det = results.get("detector", {})
    if det:
        print(f"\n{'detector':8s} {'ms/img':>8s} {'dets':>5s} {'matched':>8s} {'classes':>8s} "
              f"{'|dscore|':>9s} {'|dprob|':>9s} {'|dbox|':>9s}")  # fmt: skip
        for name, v in det["variants"].items():
            if name == "fp32":
                print(f"{name:8s} {v['ms_per_image']:8.1f} {v['detections']:5d} {'(reference)':>8s}")
                continue
            print(
                f"{name:8s} {v['ms_per_image']:8.1f} {v['detections']:5d} "
                f"{v['matched']:>3d}/{v['reference_detections']:<4d} "
                f"{'same' if v['same_class_counts'] else 'DIFFER':>8s} "
                f"{v['max_score_diff']:9.2e} {v['max_prob_diff']:9.2e} {v['max_box_diff']:9.2e}"
            )
    pipe = results.get("pipeline", {})
    if pipe:
        columns = f"{'batch':>5s} {'images/s':>9s} {'ms/img':>8s} {'proposals/img':>14s} {'RLE-only/img':>13}"
        print(f"\npipeline {pipe['image_size'][0]}x{pipe['image_size'][1]}: {columns}")
        for batch, v in pipe["batches"].items():
            print(
                f"{'':19s}{batch:>5s} {v['images_per_s']:9.2f} {v['ms_per_image']:8.1f} "
                f"{v['proposals_per_image']:14.1f} {v['rle_only_per_image']:13.1f}"
            )
    enc = results.get("encoder", {})
    if enc.get("skipped"):
        print(f"\nSAM encoder: skipped ({enc['skipped']})")
    elif enc:
        print(
            f"\nSAM encoder, {enc['images']} images: one by one {enc['one_by_one_ms_per_image']:.1f} ms/img, "
            f"batched {enc['batched_ms_per_image']:.1f} ms/img (x{enc['speedup']:.2f}); "
            f"max |feature diff| {enc['max_feature_diff']:.1e}"
        )
    clicks = results.get("clicks", {})
    if clicks:
        print(
            f"click (decoder only, {clicks['clicks']} clicks of 1-4 points): p50 {clicks['p50_ms']:.1f} ms, "
            f"p95 {clicks['p95_ms']:.1f} ms, max {clicks['max_ms']:.1f} ms"
        )
    sam3 = results.get("sam3", {})
    if sam3:
        pre = sam3["prelabel"]
        print(f"\nSAM 3 vs GDINO + SAM, prelabel_batch on {pre['images']} images of "
              f"{pre['image_size'][0]}x{pre['image_size'][1]}, {len(pre['classes'])} classes:")  # fmt: skip
        for name, row in pre["rows"].items():
            print(f"  {name:24s} {row['s_per_image'] * 1000:9.1f} ms/img  x{row['ratio_vs_gdino_sam']:.2f}")
        for name, row in sam3["clicks"]["rows"].items():
            print(f"  click {name:10s} p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms "
                  f"(embedding {row['embed_ms']:.0f} ms)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("gpu_check: no CUDA device here, nothing to check (--smoke runs the code paths on the CPU).")
        return 0
    device = "cpu" if args.smoke else "cuda"
    if args.smoke:
        bm.set_threads()
    started = time.perf_counter()
    results: dict = {"environment": bm.environment(), "options": vars(args).copy(), "device_used": device}
    if cuda:
        index = torch.cuda.current_device()
        results["environment"]["capability"] = list(torch.cuda.get_device_capability(index))
    from inference.models.grounding_dino import GroundingDinoDetector
    from inference.models.sam import SamSegmenter

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        bm.log("building the models ...")
        model, processor, sam_name, sam = build_models(args.smoke, device, Path(workdir))
        model.to(device).eval()
        results["models"] = (
            "tiny Grounding DINO + tiny SAM, tiny SAM 3"
            if args.smoke
            else "grounding-dino-tiny + SAM vit_b, SAM 3"
        )
        results["build_s"] = time.perf_counter() - started
        size = (320, 240) if args.smoke else (1024, 768)
        bm.log("detector fp32 / tf32 / bf16 ...")
        results["detector"] = check_detector(model, processor, device, args.repeats)
        detector = GroundingDinoDetector(
            model, processor, name="gdino", device=device, batch_size=max(args.batches)
        )
        segmenter = SamSegmenter(sam, name=sam_name, device=device)
        bm.log("pipeline ...")
        results["pipeline"] = check_pipeline(detector, segmenter, args.batches, args.repeats, size)
        bm.log("SAM encoder ...")
        results["encoder"] = check_encoder(segmenter, args.repeats, size, max(args.batches))
        bm.log("clicks ...")
        results["clicks"] = check_clicks(segmenter, args.clicks, size)
        bm.log("SAM 3 vs GDINO + SAM ...")
        sam3 = build_sam3(args.smoke, device, Path(workdir))
        results["sam3"] = check_sam3(detector, segmenter, sam3, size, args.repeats, args.clicks)
    results["django_imported"] = "django" in sys.modules
    results["total_s"] = time.perf_counter() - started
    report(results)
    if args.json:
        bm.write_json(args.json, results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
