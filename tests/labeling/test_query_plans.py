"""The queries the pages and the API run at scale use indexes: EXPLAIN on PostgreSQL shows no
sequential scan of the large tables (labeling_image, labeling_annotation) for the image grid's
keyset pages (first, after, before, last), the API image list, an image's annotations, the
review queue's next image, the dashboard's time windows (progress, throughput) and its projects
overview (each project's last review, the windows per project). The SQL is
captured from the real selector, service and view code."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.models import Annotation, Export, Image, Membership, PrelabelJob
from labeling.selectors import dashboard
from labeling.selectors import images as image_selectors
from labeling.services.projects import project_create
from labeling.services.review import image_lease_next
from tests.conftest import make_user

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql" and os.environ.get("CI", "").lower() != "true",
        reason="EXPLAIN plans are PostgreSQL's (CI runs on PostgreSQL)",
    ),
]

LARGE_TABLES = {"labeling_image", "labeling_annotation"}
STATUSES = list(Image.Status.values)
STATES = list(Annotation.State.values)
REVIEWED_SINCE = timezone.now() - timedelta(days=365)


def _bulk_project(user, name: str, images: int, annotations_per_image: int):
    project = project_create(user=user, name=name, classes=[{"name": "cat"}, {"name": "dog"}])
    classes = list(project.classes.all())
    Image.objects.bulk_create(
        [
            Image(
                project=project,
                file=f"projects/{project.pk}/images/{n}.png",
                sha256=f"{project.pk:08x}{n:056x}",
                width=640,
                height=480,
                original_name=f"{n}.png",
                status=STATUSES[n % len(STATUSES)],
                # Reviewed images spread over the past year (the dashboard's windows).
                reviewed_by=user if STATUSES[n % len(STATUSES)] in ("done", "skipped") else None,
                reviewed_at=(
                    REVIEWED_SINCE + timedelta(hours=n % (365 * 24))
                    if STATUSES[n % len(STATUSES)] in ("done", "skipped")
                    else None
                ),
            )
            for n in range(images)
        ],
        batch_size=2000,
    )
    image_ids = list(project.images.values_list("pk", flat=True))
    Annotation.objects.bulk_create(
        [
            Annotation(
                image_id=image_id,
                label_class=classes[k % 2],
                x=1,
                y=1,
                w=10,
                h=10,
                state=STATES[(image_id + k) % len(STATES)],
            )
            for image_id in image_ids
            for k in range(annotations_per_image)
        ],
        batch_size=5000,
    )
    return project


def _seq_scans(node: dict) -> list[str]:
    """The large tables a plan node or its children read by a sequential scan."""
    found = []
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in LARGE_TABLES:
        found.append(node["Relation Name"])
    for child in node.get("Plans", []):
        found.extend(_seq_scans(child))
    return found


def _node_types(node: dict) -> list[str]:
    name = node["Node Type"] + (f" on {node['Relation Name']}" if "Relation Name" in node else "")
    if "Index Name" in node:
        name += f" using {node['Index Name']}"
    return [name] + [t for child in node.get("Plans", []) for t in _node_types(child)]


def _plan(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def _large_table_queries(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if any(f'"{table}"' in q["sql"] for table in LARGE_TABLES)
        and q["sql"].lstrip().upper().startswith(("SELECT", "UPDATE"))
    ]


@pytest.fixture(params=["analyzed", "before-analyze"])
def scale(request, client):
    """Two projects in bulk; their statistics gathered (ANALYZE), or not yet (as after a big
    import, before autovacuum has run: the planner then guesses the tables' contents)."""
    manager = make_user("plans-manager")
    other = make_user("plans-other")
    # The project under test is a fifth of the tables, beside a larger one.
    project = _bulk_project(manager, "Measured", images=1000, annotations_per_image=8)
    _bulk_project(other, "Beside", images=4000, annotations_per_image=8)
    if request.param == "analyzed":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_image")
            cursor.execute("ANALYZE labeling_annotation")
    assert Membership.objects.filter(project=project, user=manager).exists()
    client.force_login(manager)
    return project, manager, client


def _captures(project, manager, client) -> dict[str, CaptureQueriesContext]:
    """Each query to check, captured by running the code the pages and the API run."""
    runs = {}
    image = project.images.order_by("id")[500]
    actions = {
        "images_with_counts (API, filtered by status)": lambda: list(
            image_selectors.images_with_counts(project=project, status=Image.Status.NEW)[200:250]
        ),
        "images_with_counts (API, all)": lambda: list(
            image_selectors.images_with_counts(project=project)[:50]
        ),
        "image_page (grid, first page)": lambda: image_selectors.image_page(project=project, size=48),
        "image_page (grid, status, after an id)": lambda: image_selectors.image_page(
            project=project, size=48, status=Image.Status.PRELABELED, after=image.pk
        ),
        "image_page (grid, before an id)": lambda: image_selectors.image_page(
            project=project, size=48, before=image.pk
        ),
        "image_page (grid, status, last page)": lambda: image_selectors.image_page(
            project=project, size=48, status=Image.Status.DONE, last=True
        ),
        "GET /projects/<id>/images/ (the grid partial, after an id)": lambda: client.get(
            f"/projects/{project.pk}/images/?status=new&after={image.pk}", HTTP_HX_REQUEST="true"
        ),
        "GET /api/v1/images/<id>/annotations/": lambda: client.get(f"/api/v1/images/{image.pk}/annotations/"),
        "image_lease_next (review queue)": lambda: image_lease_next(project=project, user=manager),
        "review_progress by day (dashboard)": lambda: dashboard.review_progress(project=project),
        "review_progress by hour (dashboard)": lambda: dashboard.review_progress(project=project, by="hour"),
        "annotator_throughput (dashboard)": lambda: dashboard.annotator_throughput(project=project),
        "projects_overview (dashboard overview, by activity)": lambda: dashboard.projects_overview(
            user=manager
        ),
        "projects_overview (dashboard overview, by name)": lambda: dashboard.projects_overview(
            user=manager, sort="name"
        ),
    }
    for name, action in actions.items():
        with CaptureQueriesContext(connection) as captured:
            action()
        runs[name] = captured
    return runs


def test_scale_queries_use_indexes_not_sequential_scans(scale):
    project, manager, client = scale
    offenders = {}
    checked = 0
    for name, captured in _captures(project, manager, client).items():
        queries = _large_table_queries(captured)
        assert queries, f"{name}: no query on the large tables was captured"
        for sql in queries:
            plan = _plan(sql)
            checked += 1
            if _seq_scans(plan):
                offenders.setdefault(name, []).append(" > ".join(_node_types(plan)))
    assert checked >= 21  # (the project page's status counts read its counts row: no large table)
    assert not offenders, json.dumps(offenders, indent=2)


def _plan_nodes(node: dict) -> list[dict]:
    return [node] + [n for child in node.get("Plans", []) for n in _plan_nodes(child)]


@pytest.mark.parametrize(
    ("route", "table", "index"),
    [
        ("exports", "labeling_export", "export_project_recent_id_idx"),
        ("jobs", "labeling_prelabeljob", "job_project_recent_id_idx"),
    ],
)
def test_newest_first_keyset_pages_are_index_range_reads(client, route, table, index):
    """The jobs and exports lists' next and previous pages: one range read on (project,
    created_at, id) with the LIMIT, no sort, whatever the depth (issue 12)."""
    manager = make_user("lists-manager")
    projects = [project_create(user=manager, name=f"P{n}", classes=[{"name": "x"}]) for n in range(4)]
    if route == "exports":
        Export.objects.bulk_create(
            Export(project=projects[n % 4], format="coco", created_by=manager) for n in range(6000)
        )
    else:
        PrelabelJob.objects.bulk_create(
            PrelabelJob(project=projects[n % 4], params={}, status=PrelabelJob.Status.SUCCEEDED)
            for n in range(6000)
        )
    with connection.cursor() as cursor:  # instants spread over an hour, many shared
        cursor.execute(f"UPDATE {table} SET created_at = now() - (id % 1200) * interval '3 seconds'")
        cursor.execute(f"ANALYZE {table}")
    client.force_login(manager)
    url = f"/api/v1/projects/{projects[1].pk}/{route}/"
    for _ in range(6):  # a few pages in, then a page back
        body = client.get(url).json()
        url = body["next"]
    checked = 0
    for page in (url, body["previous"]):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(page).status_code == 200
        for sql in [q["sql"] for q in captured.captured_queries if f'FROM "{table}"' in q["sql"]]:
            nodes = _plan_nodes(_plan(sql))
            kinds = [node["Node Type"] for node in nodes]
            assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
            assert any(node.get("Index Name") == index for node in nodes), _node_types(nodes[0])
            checked += 1
    assert checked == 2


def test_the_prelabel_tabs_job_history_pages_are_index_range_reads(client):
    """The Pre-label tab's job history (HTML, a job's id as the cursor): an older and a newer page
    are one range read on (project, created_at, id) with the LIMIT, no sort."""
    manager = make_user("history-manager")
    projects = [project_create(user=manager, name=f"H{n}", classes=[{"name": "x"}]) for n in range(4)]
    PrelabelJob.objects.bulk_create(
        PrelabelJob(project=projects[n % 4], params={}, status=PrelabelJob.Status.SUCCEEDED)
        for n in range(6000)
    )
    with connection.cursor() as cursor:  # instants spread over an hour, many shared
        cursor.execute(
            "UPDATE labeling_prelabeljob SET created_at = now() - (id % 1200) * interval '3 seconds'"
        )
        cursor.execute("ANALYZE labeling_prelabeljob")
    client.force_login(manager)
    middle = PrelabelJob.objects.filter(project=projects[1]).order_by("-created_at", "-id")[700]
    panel = f"/projects/{projects[1].pk}/jobs/"
    checked = 0
    for query in ({"after": middle.pk}, {"before": middle.pk}):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(panel, query, HTTP_HX_REQUEST="true").status_code == 200
        ranges = [
            q["sql"] for q in captured.captured_queries if '"labeling_prelabeljob"."created_at", ' in q["sql"]
        ]
        ranges = [sql for sql in ranges if ") < (" in sql or ") > (" in sql]
        assert len(ranges) == 1, ranges
        nodes = _plan_nodes(_plan(ranges[0]))
        kinds = [node["Node Type"] for node in nodes]
        assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
        assert any(node.get("Index Name") == "job_project_recent_id_idx" for node in nodes), kinds
        checked += 1
    assert checked == 2


def test_plan_walker_finds_a_sequential_scan_of_a_large_table():
    """The check above can fail: a query with no usable index (a filter on the phrase) is seen."""
    with CaptureQueriesContext(connection) as captured:
        list(Annotation.objects.filter(phrase="zebra"))
    (sql,) = _large_table_queries(captured)
    assert _seq_scans(_plan(sql)) == ["labeling_annotation"]


def test_web_connections_run_without_jit():
    """JIT compiling added about 200 ms to the grid at scale (issue 12): the connections turn it off."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_every_grid_sort_and_search_is_an_index_range_read_with_its_limit(scale, request):
    """The grid's sorts (issue 14), each way, with and without a status filter, with a search, on
    every kind of page (first, after, before, last): the page's ids are read on an index under
    their LIMIT, never by a sequential scan; once the tables have statistics (ANALYZE), it is one
    index scan that gives the order (no Sort node). Before any ANALYZE (right after a big import)
    the planner guesses the project holds a few rows and may sort the index's bitmap instead."""
    project, _, _ = scale
    analyzed = request.node.callspec.params["scale"] == "analyzed"
    middle = project.images.order_by("id")[500]
    checked = 0
    offenders = {}
    for sort in image_selectors.SORTS:
        cursor = image_selectors.Cursor(middle.pk, image_selectors.sort_value(middle, sort))
        for status in (None, Image.Status.PRELABELED):
            for search in ("", "12"):
                pages = {
                    "first": {},
                    "after": {"after": cursor},
                    "before": {"before": cursor},
                    "last": {"last": True},
                }
                for kind, page in pages.items():
                    if search and sort not in image_selectors.NAME_SORTS:
                        continue  # a search pages by name (grid_sort): the same queries as "name"
                    with CaptureQueriesContext(connection) as captured:
                        image_selectors.image_page(
                            project=project, size=48, status=status, sort=sort, search=search, **page
                        )
                    sql = captured.captured_queries[0]["sql"]
                    nodes = _plan_nodes(_plan(sql))
                    kinds = [node["Node Type"] for node in nodes]
                    name = f"{sort} status={status} search={search!r} {kind}"
                    checked += 1
                    if (
                        _seq_scans(nodes[0])
                        or (analyzed and ("Sort" in kinds or "Incremental Sort" in kinds))
                        or kinds[0] != "Limit"
                        or not any("Index" in node["Node Type"] for node in nodes)
                    ):
                        offenders[name] = " > ".join(_node_types(nodes[0]))
    assert checked == len(image_selectors.SORTS) * 2 * 4 + 2 * 2 * 4
    assert not offenders, json.dumps(offenders, indent=2)
