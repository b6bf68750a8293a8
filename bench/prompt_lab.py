"""Prompt lab benchmark: the time of a prompt lab job on 50 images reviewed as done.

    .venv/bin/python bench/prompt_lab.py                 # ~4-6 min on 2 CPU cores
    .venv/bin/python bench/prompt_lab.py --images 20 --real-images 1 --json var/bench-prompt-lab.json

A whole 50-image job with the real-size models (random weights, bench/_models.py) costs ~38 s
per image and candidate on this 2-core CPU (Grounding DINO tiny ~20 s, SAM vit_b encoder ~18 s):
~30 min for the baseline and one candidate. So the script measures three things and projects:

1. the whole job (`labeling.services.prompt_lab.prompt_lab_run`: sampling, the database, the
   detection cache, the pipeline, the metrics with COCOeval) on N done images (default 50) with
   the TINY models: its wall time minus the models' own time is the job's overhead;
2. the same job again: every detection comes from the cache (the baseline of the ratio);
3. the real-size models' seconds per image, per candidate, on a few images (default 2), as the
   job measures them (the pipeline's per-image time: detector share + segmenter);

and prints the projected real-size N-image time: overhead + N × (the candidates' real seconds per
image). It is a projection, not a measurement. Each image gets a few accepted annotations (box +
mask) of the class, which keeps at most 10 detections per image (random weights score nearly
every query high); the job measures the class's prompt (the baseline) and one candidate.

The data lives in a throwaway database: DATABASE_URL when set, else the local PostgreSQL's
"bench_prompt_lab" (made when missing; the bench project is deleted and made again each run).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

_HERE, _ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from bench import _models as bm  # noqa: E402 (after the sys.path fix above)

WORK_DIR = _ROOT / "var" / "bench-prompt-lab"
PROJECT_NAME = "bench-prompt-lab"
CANDIDATE = "a person in a space suit"
WIDTH, HEIGHT = 1333, 800
MAX_INSTANCES = 10


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=50, help="done images in the job (N)")
    parser.add_argument(
        "--real-images", type=int, default=2, help="images for the real-size seconds per image"
    )
    parser.add_argument("--skip-real", action="store_true", help="only the tiny-model parts")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.images < 1 or args.real_images < 1:
        parser.error("--images and --real-images must be >= 1")
    return args


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    import psycopg

    with psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
    ) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_prompt_lab'").fetchone():
            c.execute("CREATE DATABASE bench_prompt_lab")
    return "postgres://postgres@127.0.0.1:5432/bench_prompt_lab"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    os.environ["MEDIA_ROOT"] = str(WORK_DIR / "media")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def seed_project(n_images: int):
    """A project with the class "person", N images reviewed as done, each with 1-3 accepted
    annotations (box and mask): made again each run."""
    import numpy as np
    from django.contrib.auth import get_user_model

    from inference.masks import mask_box, mask_to_rle
    from labeling.models import Annotation, Image, Project
    from labeling.services.images import images_ingest
    from labeling.services.projects import project_create

    for old in Project.objects.filter(name=PROJECT_NAME):
        old.images.all().delete()
        old.delete()
    user, _ = get_user_model().objects.get_or_create(username="bench-prompt-lab", defaults={"is_staff": True})
    # Random weights score almost every one of the detector's 900 queries high: the class keeps
    # MAX_INSTANCES per image (a busy real image), as bench/prelabel.py does, or the masks of
    # hundreds of boxes per image (decoder, cleaning, encoding) would be what is measured.
    project = project_create(
        user=user, name=PROJECT_NAME, classes=[{"name": "person", "max_instances": MAX_INSTANCES}]
    )
    project.keep_threshold = 0.1
    project.save()
    files = []
    for i in range(n_images):
        buffer = io.BytesIO()
        bm.test_image(WIDTH, HEIGHT, variant=i + 1).save(buffer, "PNG")
        buffer.seek(0)
        files.append((f"bench-{i:03d}.png", buffer))
    report = images_ingest(project=project, files=files, user=user)
    assert not report.errors, report.errors
    images = list(project.images.order_by("id"))
    Image.objects.filter(project=project).update(status=Image.Status.DONE)
    label_class = project.classes.get()
    rng = np.random.default_rng(0)
    rows = []
    for image in images:
        for _ in range(int(rng.integers(1, 4))):
            w, h = int(rng.integers(80, 400)), int(rng.integers(80, 400))
            x, y = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
            mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
            mask[y : y + h, x : x + w] = True
            bx, by, bw, bh = mask_box(mask)
            rows.append(
                Annotation(
                    image=image,
                    label_class=label_class,
                    x=bx,
                    y=by,
                    w=bw,
                    h=bh,
                    mask=mask_to_rle(mask),
                    source=Annotation.Source.HUMAN,
                    state=Annotation.State.ACCEPTED,
                    created_by=user,
                )
            )
    Annotation.objects.bulk_create(rows)
    return project, user, label_class, len(rows)


def run_job(project, user, label_class, n_images: int) -> tuple[float, object]:
    """Start and run a prompt lab job in this process (as the gpu worker would); its wall time."""
    from labeling.models import PromptLabRun
    from labeling.services import prompt_lab

    run = prompt_lab.prompt_lab_start(
        project=project, user=user, label_class_id=label_class.pk, prompts=[CANDIDATE], sample_size=n_images
    )
    started = time.perf_counter()
    prompt_lab.prompt_lab_run(run_id=run.pk)
    seconds = time.perf_counter() - started
    run = PromptLabRun.objects.get(pk=run.pk)
    if run.status != "succeeded":
        raise RuntimeError(f"the prompt lab run ended {run.status}: {run.error}")
    failed = [c for c in run.candidates.all() if c.status != "succeeded"]
    if failed:
        raise RuntimeError(f"candidate {failed[0].prompt!r} failed: {failed[0].error}")
    return seconds, run


def model_seconds(run) -> float:
    """The models' own time in a run with nothing cached: per candidate, its seconds per image (the
    pipeline's own per-image time) × the images."""
    assert all(c.cached_images == 0 for c in run.candidates.all())
    return sum(c.seconds_per_image * len(run.image_ids) for c in run.candidates.all())


def main(argv=None) -> dict:
    args = parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    setup_django(database_url())
    from django.conf import settings

    from labeling import queues
    from labeling.models import DetectionCache
    from labeling.services.prelabel import embedding_cache

    queues.task_send = lambda **kwargs: None  # no broker: this process runs the job
    threads = bm.set_threads()
    env = bm.environment()
    bm.log(f"device {env['device']}, torch {env['torch']}, {threads} threads")
    settings.LABELGPT_EMBEDDINGS_DIR = str(WORK_DIR / "embeddings")
    settings.LABELGPT_CLICK_BACKEND = "torch"  # no ONNX export of the decoder (the web's clicks)
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 4

    bm.log(f"seeding {args.images} done images ...")
    seeding = time.perf_counter()
    project, user, label_class, truths = seed_project(args.images)
    seeding = time.perf_counter() - seeding

    # 1-2. The whole job on N images with the tiny models, then again from the cache.
    settings.LABELGPT_MODELS = "tiny"
    settings.LABELGPT_MODELS_DIR = WORK_DIR / "models"
    DetectionCache.objects.all().delete()
    embedding_cache().delete_every_model([i.sha256 for i in project.images.all()])
    bm.log("tiny models: warming up (load) ...")
    run_job(project, user, label_class, 1)  # loads the tiny models once (not timed)
    DetectionCache.objects.all().delete()
    bm.log(f"tiny models: the whole job on {args.images} images ...")
    tiny_wall, tiny_run = run_job(project, user, label_class, args.images)
    tiny_models = model_seconds(tiny_run)
    overhead = tiny_wall - tiny_models
    bm.log("tiny models: the same job again (the cache) ...")
    cached_wall, cached_run = run_job(project, user, label_class, args.images)
    assert all(c.cached_images == len(cached_run.image_ids) for c in cached_run.candidates.all())

    results = {
        "environment": env,
        "images": args.images,
        "truths": truths,
        "candidates": [c.prompt for c in tiny_run.candidates.all()],
        "seeding_s": seeding,
        "tiny_job_s": tiny_wall,
        "tiny_models_s": tiny_models,
        "overhead_s": overhead,
        "overhead_per_image_s": overhead / args.images,
        "cached_job_s": cached_wall,
        "cached_vs_first": cached_wall / tiny_wall,
    }

    # 3. Real-size seconds per image (the pipeline's own figure per candidate), on a few images.
    if not args.skip_real:
        detector, sam = bm.ensure_detector(), bm.ensure_sam_vit_b()
        settings.LABELGPT_MODELS = "real"
        settings.LABELGPT_DETECTORS = {"gdino-tiny-random": str(detector)}
        settings.LABELGPT_SEGMENTERS = {"vit_b": str(sam)}
        project.detector, project.segmenter, project.segment = "gdino-tiny-random", "vit_b", True
        project.save()
        bm.log(f"real-size models: the job on {args.real_images} images (~40 s per image and candidate) ...")
        real_wall, real_run = run_job(project, user, label_class, args.real_images)
        per_candidate = {c.prompt: c.seconds_per_image for c in real_run.candidates.all()}
        per_image = sum(per_candidate.values())
        results.update(
            {
                "real_images": args.real_images,
                "real_job_s": real_wall,
                "real_seconds_per_image": per_candidate,
                "real_seconds_per_image_all_candidates": per_image,
                "projected_real_job_s": overhead + args.images * per_image,
            }
        )
    print_table(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def print_table(r: dict) -> None:
    env = r["environment"]
    n = r["images"]
    print(f"\nPrompt lab job, {n} done images ({r['truths']} accepted annotations), candidates: "
          f"{', '.join(repr(c) for c in r['candidates'])} (the first is the baseline)")  # fmt: skip
    print(f"device {env['device']} · {env['cpu']} · {env['cpu_count']} cores · torch {env['torch']}\n")
    rows = [
        (f"whole job, tiny models, {n} images", r["tiny_job_s"], ""),
        ("  of which the tiny models' own time", r["tiny_models_s"], ""),
        (
            "  overhead (sampling, DB, cache, metrics)",
            r["overhead_s"],
            f"{r['overhead_per_image_s']:.3f} s/img",
        ),
        (
            f"same job again from the cache, {n} images",
            r["cached_job_s"],
            f"{r['cached_vs_first']:.3f} × first",
        ),
    ]
    if "real_job_s" in r:
        for prompt, seconds in r["real_seconds_per_image"].items():
            rows.append((f"real-size s/image, candidate {prompt!r}", seconds, "measured"))
        rows.append((f"real-size job, {r['real_images']} images (measured)", r["real_job_s"], ""))
        rows.append(
            (
                f"PROJECTED real-size job, {n} images",
                r["projected_real_job_s"],
                f"projection: overhead + {n} × {r['real_seconds_per_image_all_candidates']:.1f} s",
            )
        )
    width = max(len(label) for label, _, _ in rows)
    print(f"{'':{width}}  {'seconds':>10}")
    for label, seconds, note in rows:
        print(f"{label:{width}}  {seconds:10.2f}  {note}")
    if "real_job_s" in r and r["real_images"] >= n:
        print(f"\nMeasured: {r['real_job_s'] / 60:.1f} min for {n} images on this machine.")
    elif "projected_real_job_s" in r:
        minutes = r["projected_real_job_s"] / 60
        print(f"\nProjected, not measured: {minutes:.1f} min for {n} images on this machine.")


if __name__ == "__main__":
    main()
