"""Scale benchmark: every page and API route of a small project next to a large one, through a
real gunicorn, with the SQL queries each request ran.

    .venv/bin/python bench/scale.py                      # 1k / 10k and 100k / 1M, 50 requests a route
    .venv/bin/python bench/scale.py --requests 20 --large 20000,200000 --json var/bench-scale.json

What it does (docs: bench/README.md, "bench/scale.py"):

1. Creates its own PostgreSQL database (`--database`, default labelgpt_scale, on the server of
   --server, default postgresql://postgres@127.0.0.1:5432) and migrates it; its media, broker and
   logs live in var/bench-scale/.
2. Builds two projects with psycopg 3 COPY: small (1,000 images, 10,000 annotations) and large
   (100,000 / 1,000,000). Images: statuses mixed new / prelabeled / done / skipped, reviewed_at
   of the done and skipped ones spread over the past year (so "the last 14 days" sees ~4 %) by
   five annotators; annotations on the images that are not new: boxes, COCO RLE masks (an ellipse
   in the box, 640 × 480 images; one in ten a box only), scores, states proposed / accepted /
   rejected, sources model / human, a tenth of the accepted ones on done images edited (the
   model's box and mask kept). 20 pre-label jobs and 20 exports each. Then ANALYZE.
3. In-process, once per size and not in the ratio table: the export service (COCO,
   labeling.services.exports.export_write) and the dashboard's quality snapshot
   (labeling.services.dashboard.dashboard_snapshot_compute, what its Celery task runs).
4. Starts gunicorn (2 workers, webapp.wsgi, DEBUG off, LABELGPT_QUERY_COUNT_HEADER on: each
   response says its number of SQL queries in X-Query-Count), logs in through the login form as a
   manager of both projects, and times each route `--requests` times, small and large in turn
   (small, large, small, ...), after one warm-up request each.
5. Prints the table: p50 / p95 per size, queries per request per size, the large / small p95
   ratio; "!" marks a ratio over 1.3 or a different number of queries.

Whatever happens (an error, Ctrl-C, SIGTERM) it stops gunicorn, drops its database and deletes
var/bench-scale/. No GPU, no model weights.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

# `python bench/scale.py` puts bench/ first on sys.path, where bench/click.py would shadow the
# `click` package (Celery imports it): put the repository there instead.
_HERE, ROOT = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402

from bench import _server as srv  # noqa: E402

WORK_DIR = ROOT / "var" / "bench-scale"
WIDTH, HEIGHT = 640, 480
PASSWORD = "bench-scale-password-1"  # noqa: S105 (a throwaway user in a throwaway database)
ANNOTATORS = ("ada", "bo", "cy", "di", "ed")
STATUS_SHARES = (("new", 0.20), ("prelabeled", 0.40), ("done", 0.35), ("skipped", 0.05))
RATIO_LIMIT = 1.3
# The grid and the panels are htmx partials: without this header they redirect to the project page.
HTMX = {"HX-Request": "true"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", default="1000,10000", help="images,annotations of the small project")
    parser.add_argument("--large", default="100000,1000000", help="images,annotations of the large project")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per route and size")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server")
    parser.add_argument("--database", default="labelgpt_scale", help="the throwaway database's name")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    for name in ("small", "large"):
        try:
            images, annotations = (int(v) for v in getattr(args, name).split(","))
        except ValueError:
            parser.error(f"--{name} must be IMAGES,ANNOTATIONS")
        if images < 100 or annotations < 0:
            parser.error(f"--{name}: at least 100 images")
        setattr(args, name, (images, annotations))
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database):
        parser.error("--database: lower-case letters, digits and _")
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    return args


# The throwaway database and folder ---------------------------------------------------------------


def admin_execute(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def drop_database(server: str, name: str) -> None:
    admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Interrupted(Exception):
    pass


def on_sigterm(signum, frame) -> None:
    raise Interrupted(f"signal {signum}")


# The data ------------------------------------------------------------------------------------------


def mask_library(rng: random.Random, size: int = 64) -> list[tuple[tuple[int, int, int, int], str, str]]:
    """(box, mask JSON, polygons JSON): an ellipse filling its box on a 640 × 480 image, as COCO RLE
    and as its traced polygon (the pre-labeler stores both)."""
    from inference.masks import mask_to_polygons, mask_to_rle

    library = []
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for _ in range(size):
        w, h = rng.randint(20, 200), rng.randint(20, 160)
        x, y = rng.randint(0, WIDTH - w), rng.randint(0, HEIGHT - h)
        cx, cy = x + w / 2, y + h / 2
        mask = ((xx + 0.5 - cx) / (w / 2)) ** 2 + ((yy + 0.5 - cy) / (h / 2)) ** 2 <= 1
        rle = json.dumps(mask_to_rle(mask), separators=(",", ":"))
        polygons = json.dumps(mask_to_polygons(mask), separators=(",", ":"))
        library.append(((x, y, w, h), rle, polygons))
    return library


def copy_text(value: str) -> str:
    """A value in COPY's text format (backslashes doubled; RLE strings may hold one)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@dataclass
class Project:
    label: str
    pk: int
    images: int
    annotations: int
    by_status: Counter = field(default_factory=Counter)
    review_ids: list[int] = field(default_factory=list)  # pre-labeled images to open in review
    edit_ids: list[int] = field(default_factory=list)  # (annotation id) to PATCH, one per request
    image_ids_tail: list[int] = field(default_factory=list)  # the last ids (API's last page)
    seed_s: float = 0.0


def seed_project(conn, *, label: str, images: int, annotations: int, owner, annotators, rng) -> Project:
    """One project with its classes, jobs and exports (ORM), images and annotations (COPY)."""
    from django.utils import timezone

    from labeling.models import Export, Membership, PrelabelJob
    from labeling.services.projects import membership_set, project_create

    started = time.perf_counter()
    project = project_create(
        user=owner,
        name=f"Scale {label}",
        classes=[{"name": "cat"}, {"name": "dog"}, {"name": "coffee cup", "prompt": "a cup of coffee"}],
    )
    for user in annotators:
        membership_set(project=project, user=user, role=Membership.Role.ANNOTATOR)
    classes = list(project.classes.all())
    now = timezone.now()
    params = {"classes": [{"id": c.pk, "name": c.name, "prompt": c.prompt} for c in classes]}
    jobs = PrelabelJob.objects.bulk_create(
        [
            PrelabelJob(
                project=project, params=params, status=PrelabelJob.Status.SUCCEEDED,
                stage=PrelabelJob.Stage.STOPPED, total=images, done=images,
                started_at=now - timedelta(days=30 - i), finished_at=now - timedelta(days=30 - i),
            )
            for i in range(20)
        ]
    )  # fmt: skip
    Export.objects.bulk_create(
        [
            Export(project=project, format="coco", status=Export.Status.SUCCEEDED, finished_at=now)
            for _ in range(20)
        ]
    )
    job_ids = [j.pk for j in jobs]
    class_ids = [c.pk for c in classes]
    reviewer_ids = [u.pk for u in annotators]

    names, weights = zip(*STATUS_SHARES, strict=True)
    statuses = rng.choices(names, weights=weights, k=images)
    year = 365 * 24 * 3600
    with conn.cursor() as cur:
        columns = (
            "project_id, file, thumbnail, sha256, width, height, original_name, size_bytes, format, "
            "status, assignee_id, lease_expires_at, version, reviewed_by_id, reviewed_at, "
            "uploaded_by_id, created_at, updated_at"
        )
        with cur.copy(f"COPY labeling_image ({columns}) FROM STDIN") as copy:
            for n, status in enumerate(statuses):
                reviewed = status in ("done", "skipped")
                copy.write_row(
                    (
                        project.pk, f"projects/{project.pk}/images/{n % 256:02x}/img_{n:07d}.jpg",
                        f"projects/{project.pk}/thumbs/{n % 256:02x}/img_{n:07d}.jpg",
                        f"{project.pk:08x}{n:056x}", WIDTH, HEIGHT, f"img_{n:07d}.jpg", 120_000, "JPEG",
                        status, None, None, 1,
                        rng.choice(reviewer_ids) if reviewed else None,
                        now - timedelta(seconds=rng.uniform(0, year)) if reviewed else None,
                        owner.pk, now, now,
                    )
                )  # fmt: skip
        cur.execute("SELECT id, status FROM labeling_image WHERE project_id = %s ORDER BY id", (project.pk,))
        rows = cur.fetchall()
    result = Project(label=label, pk=project.pk, images=images, annotations=annotations)
    result.by_status = Counter(status for _, status in rows)
    result.image_ids_tail = [pk for pk, _ in rows[-200:]]
    annotated = [(pk, status) for pk, status in rows if status != "new"]
    copy_annotations(
        conn, annotated=annotated, total=annotations, class_ids=class_ids, job_ids=job_ids, now=now, rng=rng
    )
    with conn.cursor() as cur:
        prelabeled = [pk for pk, status in rows if status == "prelabeled"]
        result.review_ids = rng.sample(prelabeled, min(len(prelabeled), 200))
        # One model annotation of a pre-labeled image per save (each PATCH its own annotation).
        cur.execute(
            "SELECT DISTINCT ON (image_id) id FROM labeling_annotation "
            "WHERE image_id = ANY(%s) AND source = 'model' ORDER BY image_id, id",
            (result.review_ids,),
        )
        result.edit_ids = [pk for (pk,) in cur.fetchall()]
    conn.commit()
    result.seed_s = time.perf_counter() - started
    return result


def copy_annotations(conn, *, annotated, total, class_ids, job_ids, now, rng) -> None:
    library = mask_library(rng)
    stamp = now.isoformat()
    per, extra = divmod(total, max(len(annotated), 1))
    columns = (
        "image_id, label_class_id, x, y, w, h, mask, polygons, score, phrase, source, state, "
        "original_box, original_mask, job_id, created_by_id, updated_by_id, version, created_at, updated_at"
    )
    with conn.cursor() as cur, cur.copy(f"COPY labeling_annotation ({columns}) FROM STDIN") as copy:
        lines = []
        for i, (image_id, status) in enumerate(annotated):
            count = per + (1 if i < extra else 0)
            for k in range(count):
                (x, y, w, h), mask, polygons = library[rng.randrange(len(library))]
                box_only = rng.random() < 0.1
                human = status == "done" and k == 0 and count > 1  # one object the model missed
                r = rng.random()
                if human:
                    state = "accepted"
                elif status == "prelabeled":
                    state = "proposed" if r < 0.9 else ("accepted" if r < 0.95 else "rejected")
                elif status == "done":
                    state = "accepted" if r < 0.7 else "rejected"
                else:  # skipped
                    state = "proposed" if r < 0.5 else "rejected"
                original_box = original_mask = "\\N"
                if not human and status == "done" and state == "accepted" and rng.random() < 0.1:
                    original_box = json.dumps([max(x - 3, 0), max(y - 2, 0), w, h])
                    original_mask = copy_text(library[rng.randrange(len(library))][1])
                lines.append(
                    "\t".join(
                        (
                            str(image_id), str(rng.choice(class_ids)), str(x), str(y), str(w), str(h),
                            "\\N" if box_only else copy_text(mask), "\\N" if box_only else polygons,
                            "\\N" if human else f"{rng.uniform(0.1, 0.99):.3f}",
                            "" if human else "object", "human" if human else "model", state,
                            original_box, original_mask,
                            "\\N" if human else str(rng.choice(job_ids)), "\\N", "\\N", "1", stamp, stamp,
                        )
                    )
                )  # fmt: skip
            if len(lines) >= 20_000:
                copy.write("\n".join(lines) + "\n")
                lines.clear()
        if lines:
            copy.write("\n".join(lines) + "\n")


# In-process services (reported apart) ----------------------------------------------------------------


def time_services(projects: list[Project]) -> dict:
    from labeling.formats.base import ExportOptions
    from labeling.models import Project as ProjectModel
    from labeling.services.dashboard import dashboard_snapshot_compute
    from labeling.services.exports import export_write

    figures = {}
    for p in projects:
        project = ProjectModel.objects.get(pk=p.pk)
        started = time.perf_counter()
        images, annotations = export_write(
            project=project,
            fmt="coco",
            options=ExportOptions(images="all"),  # every image, whatever its status
            out=WORK_DIR / f"export-{p.label}.json",
        )
        export_s = time.perf_counter() - started
        size = (WORK_DIR / f"export-{p.label}.json").stat().st_size
        (WORK_DIR / f"export-{p.label}.json").unlink()
        started = time.perf_counter()
        dashboard_snapshot_compute(project_id=p.pk)
        snapshot_s = time.perf_counter() - started
        figures[p.label] = {
            "export_s": export_s,
            "export_images": images,
            "export_annotations": annotations,
            "export_bytes": size,
            "dashboard_snapshot_s": snapshot_s,
        }
    return figures


def explain_dashboard_windows(project: Project) -> list[str]:
    """EXPLAIN ANALYZE of the dashboard's time-window queries (progress by day and by hour,
    throughput) on a project, as captured from the selectors: the plan's nodes and the time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labeling.models import Project as ProjectModel
    from labeling.selectors import dashboard

    model = ProjectModel.objects.get(pk=project.pk)
    calls = {
        "review_progress (day)": lambda: dashboard.review_progress(project=model),
        "review_progress (hour)": lambda: dashboard.review_progress(project=model, by="hour"),
        "annotator_throughput": lambda: dashboard.annotator_throughput(project=model),
    }
    lines = []
    for name, call in calls.items():
        with CaptureQueriesContext(connection) as captured:
            call()
        for query in captured.captured_queries:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
                raw = cursor.fetchone()[0]
            top = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            nodes = []

            def walk(node, nodes=nodes):
                label = node["Node Type"]
                if "Index Name" in node:
                    label += f" using {node['Index Name']}"
                elif "Relation Name" in node:
                    label += f" on {node['Relation Name']}"
                nodes.append(label)
                for child in node.get("Plans", []):
                    walk(child)

            walk(top["Plan"])
            lines.append(f"{name}: {top['Execution Time']:.1f} ms: {' > '.join(nodes)}")
    return lines


# HTTP --------------------------------------------------------------------------------------------------


def login(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{base}/accounts/login/",
        data={"username": "bench-manager", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
    )
    if answer.status_code != 200 or "/accounts/login/" in answer.url:
        raise SystemExit(f"login failed ({answer.status_code} at {answer.url})")
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    session.headers["Referer"] = f"{base}/"
    return session


def grid_url(
    session: requests.Session, base: str, project: Project, *, status: str, last: bool, view: str = ""
) -> str:
    """The image grid's first or last page, filtered by status (and sorted or searched by `view`,
    a query string): the last is the grid's own "Last" link (keyset pages)."""
    first = f"/projects/{project.pk}/images/?status={status}" + (f"&{view}" if view else "")
    if not last:
        return first
    page = session.get(base + first, headers=HTMX, timeout=60).text
    link = re.search(r"<a\b[^>]*>\s*Last\b", page)
    if not link:
        raise RuntimeError("the grid's first page has no Last link")
    attributes = dict(re.findall(r'(hx-get|href)="([^"]*)"', link.group(0)))
    target = html.unescape(attributes.get("hx-get") or attributes.get("href", ""))
    if target.startswith("?"):
        target = f"/projects/{project.pk}/images/{target}"
    return target


def api_images_last_url(project: Project) -> str:
    """The API image list's last page: DRF's own cursor for a position a page before the end."""
    from rest_framework.pagination import Cursor

    from labeling.api.pagination import ByIdCursorPagination

    pagination = ByIdCursorPagination()
    pagination.base_url = f"/api/v1/projects/{project.pk}/images/"
    position = project.image_ids_tail[-pagination.page_size - 1]
    return pagination.encode_cursor(Cursor(offset=0, reverse=False, position=str(position)))


@dataclass
class Sample:
    seconds: float
    queries: int


class Route:
    """One timed route: `call(session, base, project, i)` makes its request(s) and returns the
    responses (several for the review open: all must succeed, their times and queries add up)."""

    def __init__(self, name: str, call: Callable) -> None:
        self.name = name
        self.call = call
        self.samples: dict[str, list[Sample]] = {"small": [], "large": []}
        self.last_requests: dict[str, list[tuple]] = {}  # size → [(method, path, headers)]

    def run(self, session, base, project: Project, i: int, *, record: bool) -> None:
        started = time.perf_counter()
        responses = self.call(session, base, project, i)
        seconds = time.perf_counter() - started
        for r in responses:
            if r.status_code >= 400 or r.history:  # a redirect: not the route meant
                what = f"{r.request.method} {r.url} → {r.status_code}"
                raise SystemExit(f"{self.name} ({project.label}): {what}: {r.text[:300]}")
        queries = sum(int(r.headers.get("X-Query-Count", -1)) for r in responses)
        self.last_requests[project.label] = [
            (r.request.method, r.request.path_url, dict(HTMX) if "HX-Request" in r.request.headers else {})
            for r in responses
        ]
        if record:
            self.samples[project.label].append(Sample(seconds, queries))


def routes(session, base, projects: dict[str, Project]) -> list[Route]:
    views = {"": "", "most annotations": "sort=-annotations", "by name": "sort=name", "search": "q=img_00"}
    grids = {
        (label, last, view): grid_url(session, base, p, status="done", last=last, view=query)
        for label, p in projects.items()
        for last in (False, True)
        for view, query in views.items()
    }
    api_last = {label: api_images_last_url(p) for label, p in projects.items()}
    versions: dict[int, int] = {}
    box_step: dict[int, int] = {}

    def get(path, htmx=False):
        headers = HTMX if htmx else {}
        return lambda s, b, p, i: [s.get(b + path.format(p=p), headers=headers, timeout=120)]

    def grid(last, view=""):
        return lambda s, b, p, i: [s.get(b + grids[(p.label, last, view)], headers=HTMX, timeout=120)]

    def review_open(s, b, p, i):
        image_id = p.review_ids[i % len(p.review_ids)]
        return [
            s.get(f"{b}/images/{image_id}/review/", timeout=120),
            s.post(f"{b}/api/v1/images/{image_id}/lease/", timeout=120),
            s.get(f"{b}/api/v1/images/{image_id}/annotations/", timeout=120),
        ]

    def annotation_save(s, b, p, i):
        pk = p.edit_ids[i % len(p.edit_ids)]
        if pk not in versions:  # not timed apart: the first PATCH reads its version first
            current = s.get(f"{b}/api/v1/annotations/{pk}/", timeout=120).json()
            versions[pk] = current["version"]
            box_step[pk] = 0
        box_step[pk] += 1
        x = 1 + box_step[pk] % 2  # move the box by a pixel and back
        response = s.patch(
            f"{b}/api/v1/annotations/{pk}/",
            json={"box": [x, 1, 20, 20]},
            headers={"If-Match": f'"{versions[pk]}"'},
            timeout=120,
        )
        if response.ok:
            versions[pk] = response.json()["version"]
        return [response]

    def export_start(s, b, p, i):
        return [s.post(f"{b}/api/v1/projects/{p.pk}/exports/", json={"format": "coco"}, timeout=120)]

    return [
        Route("project page", get("/projects/{p.pk}/")),
        Route("image grid (htmx), done, first page", grid(False)),
        Route("image grid (htmx), done, last page", grid(True)),
        Route("image grid (htmx), done, most annotations first, first page", grid(False, "most annotations")),
        Route("image grid (htmx), done, most annotations first, last page", grid(True, "most annotations")),
        Route("image grid (htmx), done, by name, last page", grid(True, "by name")),
        Route("image grid (htmx), done, name starts with img_00, last page", grid(True, "search")),
        Route("review open (page + lease + annotations)", review_open),
        Route("annotation save (PATCH, If-Match)", annotation_save),
        Route("API image list, first page", get("/api/v1/projects/{p.pk}/images/")),
        Route("API image list, last page", lambda s, b, p, i: [s.get(b + api_last[p.label], timeout=120)]),
        Route("API project list", get("/api/v1/projects/")),
        Route("API jobs list", get("/api/v1/projects/{p.pk}/jobs/")),
        Route("API exports list", get("/api/v1/projects/{p.pk}/exports/")),
        Route("jobs panel (htmx)", get("/projects/{p.pk}/jobs/", htmx=True)),
        Route("exports panel (htmx)", get("/projects/{p.pk}/exports/", htmx=True)),
        Route("dashboard", get("/dashboard/projects/{p.pk}/")),
        Route("dashboard overview (every project)", get("/dashboard/")),
        Route("export start (POST)", export_start),
    ]


def slowest_queries(routes: list[Route], rows: list[dict], *, label: str = "large", top: int = 3) -> dict:
    """For each flagged route: its GET requests made again in-process (Django's test client, as
    the bench's manager) on the `label` project, and their `top` slowest SQL queries (ms, SQL)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-manager"))
    found = {}
    for route, row in zip(routes, rows, strict=True):
        if not row["flag"]:
            continue
        timed = []
        for method, path, headers in route.last_requests.get(label, []):
            if method != "GET":
                continue
            with CaptureQueriesContext(connection) as captured:
                client.get(path, headers=headers)
            for query in captured.captured_queries:
                timed.append((float(query["time"]) * 1000, " ".join(query["sql"].split())))
        found[route.name] = sorted(timed, reverse=True)[:top]
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarise(route: Route) -> dict:
    out = {"route": route.name}
    for label, samples in route.samples.items():
        ms = [s.seconds * 1000 for s in samples]
        queries = Counter(s.queries for s in samples)
        out[label] = {
            "p50_ms": statistics.median(ms),
            "p95_ms": percentile(ms, 0.95),
            "queries": queries.most_common(1)[0][0],
            "queries_seen": sorted(queries),
        }
    out["ratio_p95"] = out["large"]["p95_ms"] / out["small"]["p95_ms"]
    out["flag"] = out["ratio_p95"] > RATIO_LIMIT or out["small"]["queries"] != out["large"]["queries"]
    return out


def print_table(rows: list[dict], projects: dict[str, Project]) -> None:
    s, lg = projects["small"], projects["large"]
    print(
        f"\nsmall = {s.images:,} images / {s.annotations:,} annotations; "
        f"large = {lg.images:,} / {lg.annotations:,}\n"
    )
    print("| Route | p50 small | p95 small | p50 large | p95 large | queries small / large | p95 ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        qs, ql = r["small"]["queries"], r["large"]["queries"]
        mark = " !" if r["flag"] else ""
        print(
            f"| {r['route']} | {r['small']['p50_ms']:.1f} ms | {r['small']['p95_ms']:.1f} ms "
            f"| {r['large']['p50_ms']:.1f} ms | {r['large']['p95_ms']:.1f} ms | {qs} / {ql} "
            f"| {r['ratio_p95']:.2f}{mark} |"
        )
    flagged = [r["route"] for r in rows if r["flag"]]
    print(f"\n! = p95 ratio over {RATIO_LIMIT} or a different number of queries: ", end="")
    print(", ".join(flagged) or "none")


# Main ----------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C cleans up too, even when started in the background (where SIGINT comes ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    database_url = f"{args.server}/{args.database}"
    created = False
    try:
        srv.local_app_env(
            WORK_DIR,
            DEBUG="0",
            LABELGPT_QUERY_COUNT_HEADER="1",
            # The snapshot is computed below; the 2 minutes of timing must not queue another.
            LABELGPT_DASHBOARD_SNAPSHOT_SECONDS=str(24 * 3600),
        )
        os.environ["DATABASE_URL"] = database_url.replace("postgresql://", "postgres://", 1)
        (WORK_DIR / "staticfiles").mkdir()  # WhiteNoise's STATIC_ROOT (served from the finders)
        drop_database(args.server, args.database)
        admin_execute(args.server, f'CREATE DATABASE "{args.database}"')
        created = True
        print(f"database {args.database}, folder {WORK_DIR.relative_to(ROOT)}", flush=True)
        srv.manage("migrate", "--verbosity", "0")

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection

        user_model = get_user_model()
        manager = user_model.objects.create_user("bench-manager", password=PASSWORD)
        annotators = [user_model.objects.create_user(name, password=PASSWORD) for name in ANNOTATORS]
        rng = random.Random(args.seed)
        connection.ensure_connection()
        projects = {}
        with psycopg.connect(database_url) as conn:
            for label, (images, annotations) in (("small", args.small), ("large", args.large)):
                projects[label] = seed_project(
                    conn, label=label, images=images, annotations=annotations, owner=manager,
                    annotators=annotators, rng=rng,
                )  # fmt: skip
                print(f"seeded {label}: {images:,} images, {annotations:,} annotations "
                      f"in {projects[label].seed_s:.1f} s", flush=True)  # fmt: skip
            analyze_started = time.perf_counter()
            conn.execute("ANALYZE")
            conn.commit()
            print(f"ANALYZE: {time.perf_counter() - analyze_started:.1f} s", flush=True)

        services = time_services(list(projects.values()))
        for label, f in services.items():
            print(
                f"in-process {label}: export (COCO) {f['export_s']:.1f} s "
                f"({f['export_annotations']:,} annotations, {f['export_bytes'] / 1e6:.0f} MB); "
                f"dashboard snapshot {f['dashboard_snapshot_s']:.2f} s",
                flush=True,
            )
        plans = {label: explain_dashboard_windows(p) for label, p in projects.items()}
        for label, lines in plans.items():
            for line in lines:
                print(f"EXPLAIN {label}: {line}", flush=True)
        connection.close()

        port = srv.free_port()
        command = [
            str(ROOT / ".venv" / "bin" / "gunicorn"), "--workers", str(args.workers),
            "--bind", f"127.0.0.1:{port}", "--timeout", "300", "webapp.wsgi:application",
        ]  # fmt: skip
        if not Path(command[0]).exists():
            command[0] = str(Path(sys.executable).with_name("gunicorn"))
        load_before = os.getloadavg()
        with srv.command_served(command, port=port, log=WORK_DIR / "gunicorn.log", start_s=60) as base:
            session = login(base)
            table = routes(session, base, projects)
            for route in table:
                route_started = time.perf_counter()
                for p in projects.values():  # one warm-up each (connections, templates, caches)
                    route.run(session, base, p, 10_000, record=False)
                for i in range(args.requests):
                    for p in projects.values():  # small, large, small, large, ...
                        route.run(session, base, p, i, record=True)
                print(f"  {route.name}: {time.perf_counter() - route_started:.1f} s", flush=True)
        load_after = os.getloadavg()
        rows = [summarise(route) for route in table]
        print_table(rows, projects)
        print(
            f"Load average (1, 5, 15 min) before the timing: {', '.join(f'{v:.2f}' for v in load_before)}; "
            f"after: {', '.join(f'{v:.2f}' for v in load_after)} ({os.cpu_count()} CPUs)"
        )
        print("\nIn-process, once (not in the ratio table):")
        for label, f in services.items():
            print(
                f"  {label}: export service (COCO, export_write) {f['export_s']:.2f} s; "
                f"dashboard snapshot (dashboard_snapshot_compute) {f['dashboard_snapshot_s']:.2f} s"
            )
        slowest = slowest_queries(table, rows)
        print("\nThe slowest queries of each flagged route's GET requests, large project (in-process):")
        for name, queries in slowest.items():
            print(f"  {name}:" + ("" if queries else " (no GET request)"))
            for ms, sql in queries:
                print(f"    {ms:7.1f} ms  {sql[:160]}")
        print("\nThe dashboard's time windows (EXPLAIN ANALYZE, in-process):")
        for label, lines in plans.items():
            for line in lines:
                print(f"  {label}: {line}")
        total = time.perf_counter() - started
        print(f"\nTotal: {total / 60:.1f} min")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(
                json.dumps(
                    {
                        "sizes": {k: [p.images, p.annotations] for k, p in projects.items()},
                        "requests": args.requests,
                        "workers": args.workers,
                        "routes": rows,
                        "services": services,
                        "dashboard_window_plans": plans,
                        "slowest_queries_large": slowest,
                        "seconds": total,
                        "load_before": load_before,
                        "load_after": load_after,
                    },
                    indent=2,
                )
            )
        return 0
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): cleaning up", file=sys.stderr)
        return 130
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 (Django may not be set up yet)
            pass
        if created:
            drop_database(args.server, args.database)
        shutil.rmtree(WORK_DIR, ignore_errors=True)
        where = WORK_DIR.relative_to(ROOT)
        print(f"cleaned up: database {args.database} dropped, {where} deleted", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
