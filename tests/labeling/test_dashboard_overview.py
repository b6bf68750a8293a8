"""The dashboard's projects overview (/dashboard/): figures on constructed data, sorting, a
constant number of queries whatever the number of projects, access by role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from labeling.models import Annotation, Image, Membership, PrelabelJob
from labeling.selectors import dashboard
from labeling.services.projects import membership_set, project_create
from tests.labeling.review_helpers import add_annotation, add_images

pytestmark = pytest.mark.django_db

A, R, P = Annotation.State.ACCEPTED, Annotation.State.REJECTED, Annotation.State.PROPOSED
DONE, SKIPPED, PRE, NEW = (Image.Status.DONE, Image.Status.SKIPPED, Image.Status.PRELABELED, Image.Status.NEW)
NOW = timezone.now()


def _build(project, reviewer, *, start: int) -> None:
    """3 done (reviewed 2 h, 30 h and 10 days ago), 1 skipped (5 h ago), 2 pre-labeled, 4 new;
    model proposals: 2 accepted, 1 rejected, 3 proposed; a hand-drawn one (not a proposal)."""
    ago = [timedelta(hours=2), timedelta(hours=30), timedelta(days=10)]
    done = [
        add_images(project, 1, status=DONE, start=start + i, reviewed_by=reviewer, reviewed_at=NOW - a)[0]
        for i, a in enumerate(ago)
    ]
    add_images(
        project,
        1,
        status=SKIPPED,
        start=start + 3,
        reviewed_by=reviewer,
        reviewed_at=NOW - timedelta(hours=5),
    )
    pre = add_images(project, 2, status=PRE, start=start + 4)
    add_images(project, 4, status=NEW, start=start + 6)
    cat = project.classes.first()
    for image, state in ((done[0], A), (done[1], A), (done[2], R), (pre[0], P), (pre[0], P), (pre[1], P)):
        add_annotation(image, label_class=cat, state=state, score=0.9)
    add_annotation(done[0], label_class=cat, state=A, source=Annotation.Source.HUMAN)


def test_overview_figures_on_constructed_data(project, manager, annotator):
    _build(project, annotator, start=0)
    running = PrelabelJob.objects.create(
        project=project,
        status=PrelabelJob.Status.RUNNING,
        stage=PrelabelJob.Stage.RUNNING,
        total=6,
        done=2,
        failed=1,
    )
    (row,) = dashboard.projects_overview(user=manager, now=NOW)
    assert row.project == project
    assert row.images == {"new": 4, "prelabeled": 2, "done": 3, "skipped": 1, "all": 10}
    assert [(s.status, s.count, s.x, s.width) for s in row.segments] == [
        ("done", 3, 0.0, 30.0),
        ("skipped", 1, 30.0, 10.0),
        ("prelabeled", 2, 40.0, 20.0),
        ("new", 4, 60.0, 40.0),
    ]
    assert (row.proposals_decided, row.proposals_open) == (3, 3)
    assert (row.reviewed_24h, row.reviewed_7d) == (2, 3)  # 2 h done, 5 h skipped; + 30 h done
    assert row.running_job == running and row.failed_job is None
    assert row.last_activity == running.created_at  # after the last review (2 h ago)

    page = _html_row(manager, project)
    for part in (
        f"#{running.pk}",
        "Running",
        "3 / 6",
        "50%",
        'class="proposals-decided">3<',
        'class="reviewed-7d">3<',
    ):
        assert part in page, part
    assert reverse("dashboard-project", args=[project.pk]) in page


def _html_row(user, project) -> str:
    client = Client()
    client.force_login(user)
    html = client.get(reverse("dashboard")).content.decode()
    start = html.index(f'data-project-id="{project.pk}"')
    return html[start : html.index("</tr>", start)]


def test_the_last_job_s_failure_is_shown_and_an_ended_job_is_not_running(project, manager):
    PrelabelJob.objects.create(project=project, status=PrelabelJob.Status.SUCCEEDED, total=1, done=1)
    (row,) = dashboard.projects_overview(user=manager)
    assert row.running_job is None and row.failed_job is None
    failed = PrelabelJob.objects.create(
        project=project,
        status=PrelabelJob.Status.FAILED,
        stage=PrelabelJob.Stage.STOPPED,
        error="CUDA out of memory",
    )
    (row,) = dashboard.projects_overview(user=manager)
    assert row.failed_job == failed and row.running_job is None
    assert "CUDA out of memory" in _html_row(manager, project)


def test_an_empty_project_has_zeros_and_no_job(project, manager):
    (row,) = dashboard.projects_overview(user=manager)
    assert row.images["all"] == 0 and all(s.width == 0 for s in row.segments)
    assert (row.proposals_decided, row.proposals_open, row.reviewed_24h, row.reviewed_7d) == (0, 0, 0, 0)
    assert row.last_job is None and row.last_activity == project.created_at


def test_sorted_by_most_recent_activity_or_name(project, manager, annotator):
    older = project_create(user=manager, name="Attic", classes=[{"name": "box"}])
    newest = project_create(user=manager, name="Zoo", classes=[{"name": "lion"}])
    # Kitchen: a review an hour from now (the latest activity); Zoo: created last; Attic: first.
    add_images(
        project, 1, status=DONE, start=500, reviewed_by=annotator, reviewed_at=NOW + timedelta(hours=1)
    )
    by_activity = [o.project.pk for o in dashboard.projects_overview(user=manager)]
    assert by_activity == [project.pk, newest.pk, older.pk]
    # A job started on Attic now makes it more recent than Zoo's creation.
    PrelabelJob.objects.create(project=older, status=PrelabelJob.Status.SUCCEEDED)
    assert [o.project.pk for o in dashboard.projects_overview(user=manager)] == [
        project.pk,
        older.pk,
        newest.pk,
    ]
    by_name = [o.project.name for o in dashboard.projects_overview(user=manager, sort="name")]
    assert by_name == ["Attic", "Kitchen", "Zoo"]


def test_the_page_sorts_as_asked_and_ignores_an_unknown_sort(client_for, project, manager):
    project_create(user=manager, name="Attic", classes=[{"name": "box"}])
    client = client_for(manager)
    assert [o.project.name for o in client.get(reverse("dashboard") + "?sort=name").context["overview"]] == [
        "Attic",
        "Kitchen",
    ]
    response = client.get(reverse("dashboard") + "?sort=bogus")
    assert response.status_code == 200 and response.context["sort"] == "activity"


def _overview_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_constant_query_count_with_1_and_10_projects(client_for, manager, annotator):
    client = client_for(manager)
    first = project_create(user=manager, name="P0", classes=[{"name": "x"}])
    _build(first, annotator, start=0)
    PrelabelJob.objects.create(project=first, status=PrelabelJob.Status.FAILED, error="boom")
    client.get(reverse("dashboard"))  # warm-up: session, content types
    one = _overview_queries(client)
    for n in range(1, 10):
        other = project_create(user=manager, name=f"P{n}", classes=[{"name": "x"}])
        _build(other, annotator, start=100 * n)
        status = PrelabelJob.Status.RUNNING if n % 2 else PrelabelJob.Status.FAILED
        PrelabelJob.objects.create(project=other, status=status, total=10, done=n)
    ten = _overview_queries(client)
    assert len(dashboard.projects_overview(user=manager)) == 10
    assert ten == one
    with CaptureQueriesContext(connection) as captured:
        dashboard.projects_overview(user=manager)
    assert len(captured.captured_queries) == 3


def test_no_count_over_images_or_annotations(client_for, project, manager, annotator):
    _build(project, annotator, start=0)
    with CaptureQueriesContext(connection) as captured:
        dashboard.projects_overview(user=manager)
    for query in captured.captured_queries:
        sql = query["sql"]
        if 'FROM "labeling_annotation"' in sql:
            raise AssertionError(f"the overview reads annotations: {sql}")
        if 'FROM "labeling_image"' in sql and "COUNT(" in sql.upper():
            assert '"reviewed_at" >=' in sql, sql  # only the time windows' range


def test_access_by_role(client, client_for, project, admin_user, manager, annotator, outsider):
    other = project_create(user=outsider, name="Elsewhere", classes=[{"name": "x"}])
    url = reverse("dashboard")
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    staff = client_for(admin_user).get(url)
    assert staff.status_code == 200
    assert {o.project.pk for o in staff.context["overview"]} == {project.pk, other.pk}
    managed = client_for(manager).get(url)
    assert [o.project.pk for o in managed.context["overview"]] == [project.pk]
    # An annotator sees only the projects they manage: none here, so no dashboard.
    assert dashboard.projects_overview(user=annotator) == []
    assert client_for(annotator).get(url).status_code == 403
    # Made a manager of "Elsewhere", the annotator sees that one only (not Kitchen, annotated).
    membership_set(project=other, user=annotator, role=Membership.Role.MANAGER)
    mine = client_for(annotator).get(url)
    assert mine.status_code == 200 and [o.project.pk for o in mine.context["overview"]] == [other.pk]
