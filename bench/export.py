"""Export benchmark: a project with 100k images and 1M annotations exported to COCO.

    .venv/bin/python bench/export.py                              # full size (~100k / 1M)
    .venv/bin/python bench/export.py --images 10000 --annotations 100000
    .venv/bin/python bench/export.py --json var/bench-export.json --reseed

The data lives in a throwaway database: DATABASE_URL when set, else the local PostgreSQL
database "bench" (created with psycopg when missing) when 127.0.0.1:5432 answers, else SQLite
under var/bench-export/. Rows are made with bulk_create (no image files: COCO JSON needs none);
a seeded project of the same size is reused by later runs (--reseed makes it again).

Annotations are like the pre-labeler's: a box, a mask (COCO RLE) and its polygons, drawn from a
library of blob, box and ring (with a hole) shapes on 640 × 480 images; one in ten is a box only.
So the export does the real work: the faithful-polygon check, RLE for holes, JSON writing.

The export runs in a child process (`manage.py export` equivalent: labeling.services.exports.export_write);
its peak memory is the child's ru_maxrss (resource.getrusage(RUSAGE_CHILDREN)), its wall time is
measured around it. Seeding is timed separately.

Budget (docs/architecture.md "Performance budgets"): 100k images / 1M annotations to COCO in ≤ 60 s with
< 1 GB memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# `python bench/x.py` puts bench/ first on sys.path, where bench/click.py would shadow the `click`
# package (Celery imports it): put the repository there instead.
_HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))
WORK_DIR = ROOT / "var" / "bench-export"
PROJECT_NAME = "bench-export"
WIDTH, HEIGHT = 640, 480
SECONDS_BUDGET, MEMORY_BUDGET = 60.0, 1024**3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--format", default="coco", help="coco (the budgeted one); yolo/voc need image files")
    parser.add_argument("--rle", action="store_true", help="COCO: every mask as RLE")
    parser.add_argument("--reseed", action="store_true", help="seed the project again even if it exists")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--child", nargs=2, metavar=("PROJECT_ID", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.images < 1 or args.annotations < 0:
        parser.error("--images must be >= 1 and --annotations >= 0")
    return args


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        ) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'").fetchone():
                c.execute("CREATE DATABASE bench")
        return "postgres://postgres@127.0.0.1:5432/bench"
    except Exception as exc:  # no PostgreSQL here: SQLite
        print(f"PostgreSQL not reachable ({exc.__class__.__name__}); using SQLite.", file=sys.stderr)
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{WORK_DIR / 'bench.sqlite3'}"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    os.environ.setdefault("MEDIA_ROOT", str(WORK_DIR / "media"))
    import django

    django.setup()


def shape_library():
    """(mask RLE, polygons, box) for 60 shapes: blobs of several sizes, boxes, rings with a hole."""
    import numpy as np

    from inference.masks import mask_box, mask_to_polygons, mask_to_rle

    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    rng = np.random.default_rng(0)
    shapes = []
    for i in range(60):
        cx, cy = rng.uniform(80, WIDTH - 80), rng.uniform(80, HEIGHT - 80)
        r = rng.uniform(8, 70)
        kind = i % 6
        if kind in (0, 1, 2):  # an ellipse-ish blob
            a, b = r, r * rng.uniform(0.5, 1.0)
            mask = ((xx + 0.5 - cx) / a) ** 2 + ((yy + 0.5 - cy) / b) ** 2 <= 1
        elif kind in (3, 4):  # a box
            mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
            mask[int(cy - r) : int(cy + r), int(cx - r / 2) : int(cx + r)] = True
        else:  # a ring: a hole, so RLE
            d2 = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2
            mask = (d2 <= r * r) & (d2 >= (r / 2) ** 2)
        shapes.append((mask_to_rle(mask), mask_to_polygons(mask), mask_box(mask)))
    return shapes


def seed(n_images: int, n_annotations: int) -> tuple[int, float]:
    """The bench project (reused when it has this size); returns (project id, seconds spent seeding)."""
    from django.db import connection, transaction

    from labeling.models import Annotation, Image, LabelClass, Project

    name = f"{PROJECT_NAME} {n_images}x{n_annotations}"
    existing = Project.objects.filter(name=name).first()
    if existing is not None:
        return existing.pk, 0.0
    start = time.perf_counter()
    shapes = shape_library()
    with transaction.atomic():
        project = Project.objects.create(name=name)
        classes = [
            LabelClass.objects.create(project=project, name=n, order=i)
            for i, n in enumerate(("person", "car", "dog", "helmet"))
        ]
        batch = 10_000
        made = 0
        while made < n_images:
            count = min(batch, n_images - made)
            Image.objects.bulk_create(
                [
                    Image(
                        project=project,
                        file=f"bench/{made + i}.jpg",
                        sha256=f"{made + i:064x}",
                        width=WIDTH,
                        height=HEIGHT,
                        original_name=f"img_{made + i:07d}.jpg",
                        status="done",
                    )
                    for i in range(count)
                ],
                batch_size=batch,
            )
            made += count
        image_ids = list(Image.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        made = 0
        while made < n_annotations:
            count = min(batch, n_annotations - made)
            rows = []
            for k in range(made, made + count):
                rle, polygons, (x, y, w, h) = shapes[k % len(shapes)]
                box_only = k % 10 == 9
                rows.append(
                    Annotation(
                        image_id=image_ids[k * len(image_ids) // max(1, n_annotations)],
                        label_class=classes[k % len(classes)],
                        x=x + 0.25,
                        y=y + 0.5,
                        w=w - 0.5,
                        h=h - 0.75,
                        mask=None if box_only else rle,
                        polygons=None if box_only else polygons,
                        score=0.9,
                        source="model",
                        state="accepted",
                    )
                )
            Annotation.objects.bulk_create(rows, batch_size=2000)
            made += count
            print(f"  seeded {made} / {n_annotations} annotations", end="\r", file=sys.stderr)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_image; ANALYZE labeling_annotation")
    print(file=sys.stderr)
    return project.pk, time.perf_counter() - start


def child(project_id: int, out: str, fmt: str, rle: bool) -> None:
    from labeling.formats.base import ExportOptions
    from labeling.models import Project
    from labeling.services.exports import export_write

    start = time.perf_counter()
    images, annotations = export_write(
        project=Project.objects.get(pk=project_id),
        fmt=fmt,
        options=ExportOptions(rle=rle, images="all"),  # every image, whatever its status
        out=out,
    )
    print(json.dumps({"images": images, "annotations": annotations, "export_s": time.perf_counter() - start}))


def main(argv=None) -> int:
    args = parse_args(argv)
    url = database_url()
    setup_django(url)
    if args.child:
        child(int(args.child[0]), args.child[1], args.format, args.rle)
        return 0
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    if args.reseed:
        from labeling.models import Annotation, Image, Project

        for project in Project.objects.filter(name=f"{PROJECT_NAME} {args.images}x{args.annotations}"):
            Annotation.objects.filter(image__project=project)._raw_delete(Annotation.objects.db)
            Image.objects.filter(project=project)._raw_delete(Image.objects.db)
            project.delete()
    project_id, seed_s = seed(args.images, args.annotations)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / f"export-{project_id}.{'json' if args.format == 'coco' else 'zip'}"
    command = [sys.executable, __file__, "--format", args.format, "--child", str(project_id), str(out)]
    if args.rle:
        command.append("--rle")
    start = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    if result.returncode:
        print(result.stderr, file=sys.stderr)
        return result.returncode
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    report = {
        "database": url.split("://", 1)[0],
        "format": args.format,
        "images": figures["images"],
        "annotations": figures["annotations"],
        "seed_s": round(seed_s, 1),
        "export_s": round(figures["export_s"], 1),
        "wall_s (child process, with start-up)": round(wall_s, 1),
        "peak_rss_mib": round(peak / 1024**2),
        "file_mib": round(out.stat().st_size / 1024**2),
        "within_budget": figures["export_s"] <= SECONDS_BUDGET and peak < MEMORY_BUDGET,
    }
    for key, value in report.items():
        print(f"{key:>40}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    out.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
