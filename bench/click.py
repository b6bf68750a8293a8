"""Click → mask latency on a cached SAM vit_b embedding (real size, random weights).

    .venv/bin/python bench/click.py                 # 200 clicks, ~1.5 min on 2 CPU cores
    .venv/bin/python bench/click.py --clicks 500 --json var/bench-click.json

baseline: segment-anything's SamPredictor.predict on the whole SAM with the same embedding and
    prompts (three candidates for a single point, one mask otherwise, as the app asks);
(a) the bare click decoder: `registry.get_click_segmenter(...).mask_from_prompts` (the web's
    decoder-only SAM, on onnxruntime when installed) on an embedding read once through
    `EmbeddingCache` (float16 on disk, as the app stores it);
(a') the same decoder-only path on torch (`click_backend="torch"`);
(b) the endpoint: POST /api/v1/images/<id>/segment/ (JSON {points, labels}) through Django's test client
    as a logged-in project member, the same clicks (all variants in turn), on a throwaway SQLite
    database and media folder under var/bench-click/ (deleted and made again on every run),
    with each decoded mask swapped for an object-shaped one after the decoder ran (random
    weights decode lattices whose polygons take ~1 s; b' times a few clicks with those);
plus the parts of (b) that are not the decoder, timed alone on the same clicks: reading the
embedding file (EmbeddingCache.get, once per request in labeling.segmentation.segment_click) and
encoding the mask (mask_to_rle + mask_to_polygons).

Budgets (docs/architecture.md "Performance budgets", issue 9): click → mask p95 <= 50 ms bare and <= 80 ms
through HTTP on the server's CPU. The parity of (a) and (a') with SamPredictor (low-res logits,
mask IoU) is checked on 20 of the clicks and printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

# `python bench/click.py` puts bench/ first on sys.path, where this file would shadow the `click`
# package (Celery imports it): put the repository there instead and import bench as a package.
_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)

WORK_DIR = bm.ROOT / "var" / "bench-click"
BUDGET_P95_MS = 50.0  # the bare click decoder (docs/architecture.md, issue 9)
BUDGET_HTTP_P95_MS = 80.0  # through HTTP (issue 9)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clicks", type=int, default=200, help="timed clicks per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed clicks before each measurement")
    parser.add_argument("--size", default="1333x800", help="image size WxH")
    parser.add_argument(
        "--lattice-clicks",
        type=int,
        default=20,
        help="clicks for the endpoint with random-weight masks (~1 s each)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WxH, got {args.size!r}")
    if args.clicks < 1 or args.lattice_clicks < 1 or args.warmup < 0:
        parser.error("--clicks and --lattice-clicks must be >= 1, --warmup >= 0")
    args.lattice_clicks = min(args.lattice_clicks, args.clicks)
    return args


def make_clicks(count: int, width: int, height: int, *, seed: int) -> list[dict]:
    """Request bodies as the editor sends them: 1-4 points, the first positive, the others
    positive or negative at random (a user refining a mask)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    clicks = []
    for _ in range(count):
        n = int(rng.integers(1, 5))
        xs, ys = rng.uniform(0, width, size=n), rng.uniform(0, height, size=n)
        points = [[round(float(x), 1), round(float(y), 1)] for x, y in zip(xs, ys, strict=True)]
        labels = [1] + [int(v) for v in rng.integers(0, 2, size=n - 1)]
        clicks.append({"points": points, "labels": labels})
    return clicks


def setup_django(checkpoint: Path) -> None:
    """A throwaway database, media folder and broker under var/bench-click/, real models with
    the random vit_b checkpoint; then django.setup() and migrate."""
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    (WORK_DIR / "media").mkdir(parents=True)
    (WORK_DIR / "staticfiles").mkdir()  # whitenoise warns when STATIC_ROOT is missing
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "LABELGPT_VAR_DIR": str(WORK_DIR),
            "DATABASE_URL": f"sqlite:///{WORK_DIR / 'bench.sqlite3'}",
            "MEDIA_ROOT": str(WORK_DIR / "media"),
            "LABELGPT_EMBEDDINGS_DIR": "",
            "LABELGPT_MODELS": "real",
            "LABELGPT_MODELS_DIR": str(WORK_DIR / "models"),
            "LABELGPT_SAM_CHECKPOINT_VIT_B": str(checkpoint),
            "CELERY_BROKER_URL": "memory://",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_image(width: int, height: int):
    """A user, a project (segmenter vit_b) and one image in it, with its embedding cached."""
    from django.contrib.auth import get_user_model

    from labeling.services import segmentation
    from labeling.services.images import images_ingest
    from labeling.services.projects import project_create

    user = get_user_model().objects.create_user("bench", password="bench-password-not-secret")  # noqa: S106
    project = project_create(user=user, name="bench", classes=[{"name": "person"}], segmenter="vit_b")
    png = io.BytesIO()
    bm.test_image(width, height).save(png, format="PNG")
    report = images_ingest(project=project, files=[("astronaut.png", png)], user=user)
    if not report.created:
        raise RuntimeError(f"the benchmark image was not stored: {report.as_dict()}")
    image = project.images.get(pk=report.created[0][1])
    started = time.perf_counter()
    made = segmentation.embeddings_compute(image_ids=[image.pk])
    if made != 1:
        raise RuntimeError("embeddings_compute did not make the embedding")
    return user, image, time.perf_counter() - started


def object_masks(count: int, width: int, height: int, *, seed: int) -> list:
    """`count` object-shaped masks (a union of 2-4 overlapping ellipses, 2-20% of the image):
    what a trained SAM returns for a click, unlike the random-weight model (see `run`)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        canvas = np.zeros((height, width), dtype=np.uint8)
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        scale = rng.uniform(0.08, 0.25) * min(width, height)
        for _ in range(int(rng.integers(2, 5))):
            center = (int(cx + rng.normal(0, scale / 2)), int(cy + rng.normal(0, scale / 2)))
            axes = (int(scale * rng.uniform(0.5, 1.5)), int(scale * rng.uniform(0.5, 1.5)))
            cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
        masks.append(canvas.astype(bool))
    return masks


def sam_predictor(segmenter, embedding):
    """segment-anything's SamPredictor on the whole SAM, with the cached embedding set (no encoder)."""
    import torch
    from segment_anything import SamPredictor

    predictor = SamPredictor(segmenter.model)
    predictor.reset_image()
    predictor.features = torch.from_numpy(embedding.features).to(segmenter.device)
    predictor.original_size = tuple(embedding.original_size)
    predictor.input_size = tuple(embedding.input_size)
    predictor.is_image_set = True
    return predictor


def parity_check(click, torch_click, predictor, embedding, bodies: list[dict]) -> dict:
    """Worst low-res logit difference and mask IoU of the click paths against SamPredictor."""
    import numpy as np

    worst = {"click_max_abs_logit": 0.0, "torch_max_abs_logit": 0.0, "click_min_iou": 1.0}
    for body in bodies:
        points, labels = np.array(body["points"], dtype=np.float64), np.array(body["labels"])
        masks, scores, low_res = predictor.predict(
            point_coords=points, point_labels=labels, multimask_output=len(points) == 1
        )
        best = int(np.argmax(scores))
        ours = click.mask_from_prompts(embedding, points=body["points"], labels=body["labels"])
        theirs = torch_click.mask_from_prompts(embedding, points=body["points"], labels=body["labels"])
        union = np.logical_or(ours.mask, masks[best]).sum()
        iou = float(np.logical_and(ours.mask, masks[best]).sum() / union) if union else 1.0
        worst["click_max_abs_logit"] = max(
            worst["click_max_abs_logit"], float(np.abs(ours.low_res_logits - low_res[best]).max())
        )
        worst["torch_max_abs_logit"] = max(
            worst["torch_max_abs_logit"], float(np.abs(theirs.low_res_logits - low_res[best]).max())
        )
        worst["click_min_iou"] = min(worst["click_min_iou"], iou)
    return worst


def run(args: argparse.Namespace) -> dict:
    checkpoint = bm.ensure_sam_vit_b()
    setup_django(checkpoint)

    import numpy as np
    from django.test import Client
    from django.urls import reverse

    from inference import registry
    from inference.masks import mask_box, mask_to_polygons, mask_to_rle
    from inference.protocols import MaskPrediction
    from labeling.services import prelabel

    bm.log("setting up the database, the image and its embedding (SAM vit_b encoder) ...")
    user, image, embed_s = make_image(args.width, args.height)
    config = prelabel.model_config()
    cache_name = registry.segmenter_cache_name(config, image.project.segmenter)
    store = prelabel.embedding_cache()
    embedding_path = store.path(image.sha256, cache_name)
    segmenter = registry.get_segmenter(config, image.project.segmenter)  # the worker's whole SAM
    embedding = store.get(image.sha256, cache_name)  # float16 file → float32, as segment_click does
    # The web's decoder-only click path (onnxruntime when installed), and the same on torch.
    clicker = registry.get_click_segmenter(config, image.project.segmenter)
    torch_click = registry.get_click_segmenter(
        dataclasses.replace(config, click_backend="torch"), image.project.segmenter
    )
    predictor = sam_predictor(segmenter, embedding)
    clicks = make_clicks(args.clicks + args.warmup, image.width, image.height, seed=args.seed)
    warm, timed = clicks[: args.warmup], clicks[args.warmup :]

    probes: dict[str, list[float]] = {"decoder": [], "endpoint": []}

    def timed_ms(fn, click: dict, key: str = "") -> float:
        probe = bm.cpu_probe()
        if key:
            probes[key].append(probe)
        started = time.perf_counter()
        fn(click)
        bm.sync()
        return (time.perf_counter() - started) * 1000.0

    client = Client()
    client.force_login(user)
    url = reverse("api-image-segment", args=[image.pk])
    sizes: list[int] = []

    def post(click: dict) -> None:
        response = client.post(url, data=json.dumps(click), content_type="application/json")
        if response.status_code != 200:
            raise RuntimeError(f"POST {url} answered {response.status_code}: {response.content[:300]!r}")
        sizes.append(len(response.content))

    # Random weights decode every click into a fine lattice of thousands of specks and holes
    # (not the compact object a trained SAM returns), which makes the mask's polygons cost ~1 s.
    # So the endpoint is timed with each decoded mask swapped, after the full decoder ran, for an
    # object-shaped one (same decoder compute, realistic mask encoding), and on a few clicks with
    # the masks as decoded (the worst case). Whichever decoder the endpoint uses (the web's
    # click segmenter, or the whole SAM) is swapped, and counted.
    shapes = [(mask, mask_box(mask)) for mask in object_masks(20, image.width, image.height, seed=args.seed)]
    used: dict[str, int] = {"click segmenter": 0, "whole SAM": 0}

    def swapping(model, label: str):
        original = model.mask_from_prompts

        def with_object_mask(embedding, **prompts) -> MaskPrediction:
            used[label] += 1
            prediction = original(embedding, **prompts)
            mask, box = shapes[int(sum(prompts["points"][0])) % len(shapes)]
            return MaskPrediction(
                mask=mask, score=prediction.score, box=box, low_res_logits=prediction.low_res_logits
            )

        return original, with_object_mask

    decode_click, swap_click = swapping(clicker, "click segmenter")
    _, swap_whole = swapping(segmenter, "whole SAM")

    def decode(click: dict):
        return decode_click(embedding, points=click["points"], labels=click["labels"])

    def decode_torch(click: dict):
        return torch_click.mask_from_prompts(embedding, points=click["points"], labels=click["labels"])

    def baseline(click: dict):
        return predictor.predict(
            point_coords=np.array(click["points"], dtype=np.float64),
            point_labels=np.array(click["labels"]),
            multimask_output=len(click["points"]) == 1,  # the app's rule: 3 candidates for 1 point
        )

    # All variants take turns click by click, so a slow spell of a shared host hits all alike.
    bm.log(
        f"SamPredictor.predict, (a) the click decoder ({'onnxruntime' if clicker.onnx else 'torch'}), "
        f"(a') decoder-only torch, (b) POST {url}: {len(timed)} clicks in turn ..."
    )
    predictor_ms, decoder, decoder_torch, endpoint = [], [], [], []
    clicker.mask_from_prompts, segmenter.mask_from_prompts = swap_click, swap_whole
    try:
        for click_body in warm:
            baseline(click_body)
            decode(click_body)
            decode_torch(click_body)
            post(click_body)
        sizes.clear()
        bm.log(f"  (waited {bm.settle():.1f} s for a quiet CPU)")
        for click_body in timed:
            predictor_ms.append(timed_ms(baseline, click_body))
            decoder.append(timed_ms(decode, click_body, "decoder"))
            decoder_torch.append(timed_ms(decode_torch, click_body))
            endpoint.append(timed_ms(post, click_body, "endpoint"))
    finally:
        del clicker.mask_from_prompts  # back to the class's method
        del segmenter.mask_from_prompts
    object_bytes = statistics.median(sizes)
    paired_overhead = [b - a for a, b in zip(decoder, endpoint, strict=True)]

    lattice_clicks = timed[: args.lattice_clicks]
    bm.log(f"(b') POST {url}, masks as the random weights decode them: {len(lattice_clicks)} clicks ...")
    post(warm[0] if warm else timed[0])
    sizes.clear()
    endpoint_lattice = [timed_ms(post, click) for click in lattice_clicks]
    lattice_bytes = statistics.median(sizes)

    def encode_times(masks: list) -> list[float]:
        times = []
        for mask in masks:
            started = time.perf_counter()
            mask_to_rle(mask)
            mask_to_polygons(mask)
            times.append((time.perf_counter() - started) * 1000.0)
        return times

    encode_object = encode_times([mask for mask, _ in shapes] * 3)
    encode_lattice = encode_times([decode(click).mask for click in lattice_clicks[:10]])
    read = []
    for _ in range(50):
        started = time.perf_counter()
        store.get(image.sha256, cache_name)
        read.append((time.perf_counter() - started) * 1000.0)

    a, b, b_lattice = bm.latency(decoder), bm.latency(endpoint), bm.latency(endpoint_lattice)
    parity = parity_check(clicker, torch_click, predictor, embedding, timed[:20])
    return {
        "click_backend": "onnxruntime" if clicker.onnx else "torch",
        "endpoint_decoder": max(used, key=used.get),
        "sam_predictor": bm.latency(predictor_ms),
        "decoder_torch": bm.latency(decoder_torch),
        "decoder_vs_predictor_p50": bm.percentile(decoder, 50) / bm.percentile(predictor_ms, 50),
        "parity": parity,
        "image": [image.width, image.height],
        "clicks": len(timed),
        "embedding_compute_s": embed_s,
        "embedding_file_bytes": embedding_path.stat().st_size,
        "embedding_dtype": str(store.dtype),
        "decoder": a,
        "endpoint": b,
        "decoder_quiet_host": bm.latency(bm.quiet_only(decoder, probes["decoder"])),
        "endpoint_quiet_host": bm.latency(bm.quiet_only(endpoint, probes["endpoint"])),
        "endpoint_random_weight_masks": b_lattice,
        "http_overhead_p50_ms": b["p50_ms"] - a["p50_ms"],
        "http_overhead_p95_ms": b["p95_ms"] - a["p95_ms"],
        "http_overhead_paired_p50_ms": bm.percentile(paired_overhead, 50),
        "embedding_read_ms": bm.latency(read),
        "mask_encode_object_ms": bm.latency(encode_object),
        "mask_encode_random_weight_ms": bm.latency(encode_lattice),
        "response_bytes_object": object_bytes,
        "response_bytes_random_weight": lattice_bytes,
        "budget_p95_ms": BUDGET_P95_MS,
        "budget_http_p95_ms": BUDGET_HTTP_P95_MS,
        "decoder_within_budget": a["p95_ms"] <= BUDGET_P95_MS,
        "endpoint_within_budget": b["p95_ms"] <= BUDGET_HTTP_P95_MS,
        "cpu_probe": bm.probe_summary(),
    }


def report(r: dict, env: dict) -> None:
    print(f"device: {env['device']} | torch {env['torch']} | cpu: {env['cpu']} ({env['cpu_count']} cores)")
    print(f"image {r['image'][0]}x{r['image'][1]}, {r['clicks']} clicks (1-4 points each), warm-up excluded")
    print(
        f"the web's click decoder runs on {r['click_backend']}; the endpoint used the {r['endpoint_decoder']}"
    )
    rows = {
        "sam_predictor": "baseline: SamPredictor.predict (whole SAM, torch)",
        "decoder": f"(a) click decoder ({r['click_backend']}), mask_from_prompts",
        "decoder_torch": "(a') decoder-only on torch, mask_from_prompts",
        "endpoint": "(b) POST segment/, object-shaped masks",
        "decoder_quiet_host": "(a) on a quiet host (probe <= 1.5x median)",
        "endpoint_quiet_host": "(b) on a quiet host (probe <= 1.5x median)",
        "endpoint_random_weight_masks": "(b') POST segment/, random-weight masks",
    }
    for name, label in rows.items():
        s = r[name]
        print(
            f"{label}: p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms, "
            f"max {s['max_ms']:.1f} ms (n={s['n']})"
        )
    print(
        f"HTTP overhead (b - a): p50 {r['http_overhead_p50_ms']:.1f} ms, "
        f"p95 {r['http_overhead_p95_ms']:.1f} ms (median of per-click differences "
        f"{r['http_overhead_paired_p50_ms']:.1f} ms); "
        f"in it: embedding file read p50 {r['embedding_read_ms']['p50_ms']:.1f} ms, mask RLE + polygons "
        f"p50 {r['mask_encode_object_ms']['p50_ms']:.1f} ms "
        f"({r['mask_encode_random_weight_ms']['p50_ms']:.0f} ms on a random-weight mask)"
    )
    print(
        f"(a) / SamPredictor.predict, p50: {r['decoder_vs_predictor_p50']:.2f} "
        f"(< 1: the click decoder is faster)"
    )
    parity = r["parity"]
    print(
        f"parity with SamPredictor on 20 clicks: low-res logits max |diff| "
        f"{parity['click_max_abs_logit']:.1e} (a), {parity['torch_max_abs_logit']:.1e} (a'); "
        f"mask IoU >= {parity['click_min_iou']:.4f}"
    )
    for name, label, budget in (
        ("decoder", "decoder", r["budget_p95_ms"]),
        ("endpoint", "endpoint", r["budget_http_p95_ms"]),
    ):
        verdict = "within" if r[name]["p95_ms"] <= budget else "OVER"
        print(f"{label} p95 {r[name]['p95_ms']:.1f} ms: {verdict} the {budget:.0f} ms budget")
    print(
        f"cached embedding file: {r['embedding_file_bytes'] / 1e6:.2f} MB ({r['embedding_dtype']} npz), "
        f"computed in {r['embedding_compute_s']:.1f} s; response {r['response_bytes_object'] / 1e3:.1f} kB "
        f"({r['response_bytes_random_weight'] / 1e3:.0f} kB with a random-weight mask)"
    )
    probe = r["cpu_probe"]
    print(
        f"CPU probe before each timed click: p50 {probe['p50_ms']:.1f} ms, max {probe['max_ms']:.1f} ms"
        + (" (the host slowed down during the run)" if probe["max_ms"] > 2 * probe["p50_ms"] else "")
    )
    share = r.get("others_cpu_share")
    if share is not None:
        print(f"CPU time used by OTHER processes during the run: {share:.0%}")
        if share > 0.1:
            print("WARNING: the machine was busy with other work: these figures are too slow; run again")


def main(argv: list[str] | None = None) -> int:
    return bm.run_and_report(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
