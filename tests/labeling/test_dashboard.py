"""The dashboard: quality figures on a hand-built set, access, query counts, workers, apply."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inference.masks import mask_to_rle
from labeling import queues, tasks
from labeling.models import Annotation, DashboardSnapshot, Image, PrelabelJob, WorkerBeat
from labeling.selectors import dashboard
from labeling.services.dashboard import dashboard_snapshot_compute
from labeling.services.projects import project_create
from tests.labeling.review_helpers import add_images

A, R, P = Annotation.State.ACCEPTED, Annotation.State.REJECTED, Annotation.State.PROPOSED
MODEL, HUMAN = Annotation.Source.MODEL, Annotation.Source.HUMAN


# Every database test starts with an empty cache (tests/conftest.py).


_counter = iter(range(10**9))


def make_image(project, *, status=Image.Status.NEW, reviewed_by=None, reviewed_at=None) -> Image:
    (image,) = add_images(
        project,
        1,
        status=status,
        start=next(_counter),
        width=100,
        height=100,
        reviewed_by=reviewed_by,
        reviewed_at=reviewed_at,
    )
    return image


def make_annotation(image, label_class, *, score=None, state=A, source=MODEL, box=(0, 0, 10, 10), **fields):
    x, y, w, h = box
    return Annotation.objects.create(
        image=image,
        label_class=label_class,
        x=x,
        y=y,
        w=w,
        h=h,
        score=score,
        state=state,
        source=source,
        **fields,
    )


def make_job(project, prompts: dict) -> PrelabelJob:
    return PrelabelJob.objects.create(
        project=project,
        status=PrelabelJob.Status.SUCCEEDED,
        params={"classes": [{"id": c.pk, "name": c.name, "prompt": p} for c, p in prompts.items()]},
    )


def square_mask(height: int, width: int) -> dict:
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[:height, :width] = 1
    return mask_to_rle(mask)


@pytest.fixture
def hand_built(project, annotator):
    """Class "cat" (threshold: the project's 0.35). On a done image, model proposals:
    0.9 accepted, 0.8 accepted and edited (box IoU 0.5, mask IoU 0.5), 0.6 rejected, 0.4 accepted,
    0.3 rejected and 0.2 accepted (both under the threshold: never shown), 0.5 still proposed, and
    one object drawn by hand. On a pre-labeled (not yet reviewed) image: 0.95 rejected and one
    hand-drawn object. Jobs: prompt "a cat" made 0.9, 0.8, 0.6; "a small cat" made 0.4 and 0.95."""
    cat = project.classes.get(name="cat")
    job1, job2 = make_job(project, {cat: "a cat"}), make_job(project, {cat: "a small cat"})
    now = timezone.now()
    done = make_image(project, status=Image.Status.DONE, reviewed_by=annotator, reviewed_at=now)
    pending = make_image(project, status=Image.Status.PRELABELED)
    make_annotation(done, cat, score=0.9, state=A, job=job1)
    make_annotation(
        done,
        cat,
        score=0.8,
        state=A,
        job=job1,
        box=(0, 0, 10, 20),
        original_box=[0, 0, 10, 10],
        mask=square_mask(20, 10),
        original_mask=square_mask(10, 10),
    )
    make_annotation(done, cat, score=0.6, state=R, job=job1)
    make_annotation(done, cat, score=0.4, state=A, job=job2)
    make_annotation(done, cat, score=0.3, state=R, job=job2)
    make_annotation(done, cat, score=0.2, state=A, job=job2)
    make_annotation(done, cat, score=0.5, state=P, job=job2)
    make_annotation(done, cat, source=HUMAN, state=A)
    make_annotation(pending, cat, score=0.95, state=R, job=job2)
    make_annotation(pending, cat, source=HUMAN, state=A)
    return cat


# Quality figures -------------------------------------------------------------------------------


def test_quality_figures_match_the_hand_computed_ones(project, hand_built):
    quality = {q.name: q for q in dashboard.model_quality(project=project)}
    cat = quality["cat"]
    # Shown (score >= 0.35) and decided: 0.9 A, 0.8 A, 0.6 R, 0.4 A, 0.95 R → 3 / 5.
    assert (cat.shown_accepted, cat.shown_rejected) == (3, 2)
    assert cat.acceptance_rate == pytest.approx(0.6)
    assert cat.mean_box_iou == pytest.approx(0.5)
    assert cat.mean_mask_iou == pytest.approx(0.5)
    assert cat.edited == 1
    assert cat.missed == 1  # the hand-drawn object on the pending image is not counted
    # Sweep over done-image pairs 0.9A 0.8A 0.6R 0.4A 0.3R 0.2A, 1 miss: best at t=0.2,
    # TP 4, FP 2, FN 1 → F1 = 8 / 11.
    s = cat.suggestion
    assert (s.threshold, s.tp, s.fp, s.fn) == (0.2, 4, 2, 1)
    assert s.f1 == pytest.approx(8 / 11)
    assert quality["coffee cup"].suggestion is None
    assert quality["coffee cup"].acceptance_rate is None


def test_quality_per_prompt_uses_the_jobs_snapshot(project, hand_built):
    cat = next(q for q in dashboard.model_quality(project=project) if q.name == "cat")
    prompts = {p.prompt: p for p in cat.prompts}
    assert set(prompts) == {"a cat", "a small cat"}
    assert prompts["a cat"].acceptance_rate == pytest.approx(2 / 3)  # 0.9 A, 0.8 A, 0.6 R
    assert prompts["a cat"].mean_box_iou == pytest.approx(0.5)
    assert prompts["a small cat"].acceptance_rate == pytest.approx(0.5)  # 0.4 A, 0.95 R
    assert prompts["a small cat"].mean_box_iou is None


def test_the_class_threshold_decides_what_was_shown(project, hand_built):
    hand_built.box_threshold = 0.7
    hand_built.save()
    cat = next(q for q in dashboard.model_quality(project=project) if q.name == "cat")
    assert (cat.shown_accepted, cat.shown_rejected) == (2, 1)  # 0.9 A, 0.8 A, 0.95 R


def test_suggested_threshold_ties_go_to_the_higher_one():
    # t=0.8: TP1 FP0 FN1 → 2/3; t=0.6: 1/2; t=0.5: 2/5; t=0.4: TP2 FP2 FN0 → 4/6 = 2/3 (a tie).
    s = dashboard.suggest_threshold([(0.8, A), (0.6, R), (0.5, R), (0.4, A)], missed=0)
    assert s.threshold == 0.8
    assert s.f1 == pytest.approx(2 / 3)


def test_suggested_threshold_with_misses_and_nothing_decided():
    s = dashboard.suggest_threshold([(0.9, A), (0.5, R), (0.4, A)], missed=2)
    # t=0.9: 2/(2+0+3)=0.4; t=0.5: 2/(2+1+3)=1/3; t=0.4: 4/(4+1+2)=4/7.
    assert s.threshold == 0.4 and s.f1 == pytest.approx(4 / 7)
    assert dashboard.suggest_threshold([], missed=3) is None


def test_progress_counts_done_images_by_day(project, annotator):
    now = timezone.now()
    for days_ago, n in ((0, 3), (2, 1), (20, 5)):
        for _ in range(n):
            make_image(
                project,
                status=Image.Status.DONE,
                reviewed_by=annotator,
                reviewed_at=now - timedelta(days=days_ago),
            )
    make_image(project, status=Image.Status.SKIPPED, reviewed_by=annotator, reviewed_at=now)
    chart = dashboard.review_progress(project=project, now=now)
    values = [b.value for b in chart.bars]
    assert len(values) == 14
    assert values[-1] == 3 and values[-3] == 1 and sum(values) == 4
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.value == 3 and tallest.y >= chart.top


def test_throughput_per_person(project, annotator, manager):
    now = timezone.now()
    for _ in range(6):
        make_image(
            project, status=Image.Status.DONE, reviewed_by=annotator, reviewed_at=now - timedelta(hours=1)
        )
    for _ in range(4):
        make_image(
            project, status=Image.Status.DONE, reviewed_by=annotator, reviewed_at=now - timedelta(days=3)
        )
    make_image(
        project, status=Image.Status.SKIPPED, reviewed_by=manager, reviewed_at=now - timedelta(days=10)
    )
    rows = dashboard.annotator_throughput(project=project, now=now)
    assert [(r.username, r.last_24h, r.last_7d) for r in rows] == [("anna", 6, 10)]
    assert rows[0].per_hour_24h == pytest.approx(0.25)
    assert rows[0].per_hour_7d == pytest.approx(10 / 168)


def test_proposal_counts(project, hand_built):
    counts = dashboard.proposal_counts(project=project)
    assert counts == {"total": 8, "accepted": 4, "rejected": 3, "proposed": 1, "edited": 1}


# Access --------------------------------------------------------------------------------------------


def test_dashboard_access_by_role(client, client_for, project, admin_user, manager, annotator, outsider):
    url = reverse("dashboard-project", args=[project.pk])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert client_for(admin_user).get(url).status_code == 200
    assert client_for(manager).get(url).status_code == 200
    assert client_for(annotator).get(url).status_code == 403
    assert client_for(outsider).get(url).status_code == 404


def test_dashboard_index_by_role(client_for, project, admin_user, manager, annotator, outsider):
    url = reverse("dashboard")
    for user in (admin_user, manager):  # the overview, even with one project
        response = client_for(user).get(url)
        assert response.status_code == 200
        assert [o.project.pk for o in response.context["overview"]] == [project.pk]
    assert client_for(annotator).get(url).status_code == 403
    assert client_for(outsider).get(url).status_code == 403


def test_dashboard_index_lists_the_projects_when_there_are_several(client_for, project, admin_user, manager):
    other = project_create(user=manager, name="Garden", classes=[{"name": "snail"}])
    for user in (admin_user, manager):
        response = client_for(user).get(reverse("dashboard") + "?sort=name")
        assert response.status_code == 200
        # By name: Garden, Kitchen.
        assert [p.pk for p in response.context["projects"]] == [other.pk, project.pk], user
        html = response.content.decode()
        for target in (project, other):
            assert reverse("dashboard-project", args=[target.pk]) in html


def test_nav_link_for_staff_and_project_page_link_for_managers(client_for, project, admin_user, manager):
    assert reverse("dashboard").encode() in client_for(admin_user).get(reverse("project-list")).content
    page = client_for(manager).get(reverse("project-detail", args=[project.pk])).content
    assert reverse("dashboard-project", args=[project.pk]).encode() in page


# Query counts -------------------------------------------------------------------------------------


def _fill(project, user, n: int) -> None:
    cat, cup = project.classes.all()
    job = make_job(project, {cat: "a cat", cup: "a cup of coffee"})
    now = timezone.now()
    for i in range(n):
        image = make_image(
            project, status=Image.Status.DONE, reviewed_by=user, reviewed_at=now - timedelta(hours=i % 48)
        )
        state = A if i % 3 else R
        edited = {"original_box": [0, 0, 8, 8]} if i % 5 == 0 else {}
        make_annotation(
            image, cat if i % 2 else cup, score=0.3 + (i % 7) / 10, state=state, job=job, **edited
        )


def test_dashboard_queries_do_not_grow_with_rows(client_for, project, manager, annotator):
    client = client_for(manager)
    url = reverse("dashboard-project", args=[project.pk])
    _fill(project, annotator, 10)
    dashboard_snapshot_compute(project_id=project.pk)  # what the worker does
    client.get(url)  # warm-up: session, content types
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    _fill(project, annotator, 190)
    dashboard_snapshot_compute(project_id=project.pk)
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)
    assert response.status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)
    assert len(small.captured_queries) <= 20


# The page and its chart -----------------------------------------------------------------------------


def test_page_draws_the_svg_chart(client_for, project, manager, annotator, hand_built):
    client = client_for(manager)
    url = reverse("dashboard-project", args=[project.pk])
    dashboard_snapshot_compute(project_id=project.pk)
    html = client.get(url).content.decode()
    svg = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S).group(0)
    assert len(re.findall(r'<rect class="bar"', svg)) == 14
    assert re.search(r"<title>[^<]*: 1</title>", svg)  # today: the one done image
    assert "How:" in html and "F1 = 2TP / (2TP + FP + FN)" in html
    assert 'name="box_threshold" value="0.2"' in html
    hourly = client.get(url, {"by": "hour"}).content.decode()
    assert len(re.findall(r'<rect class="bar"', hourly)) == 24
    assert "offline" in html and "Workers that reported in the last" in html


# Workers ---------------------------------------------------------------------------------------------


def _beat(hostname: str, queues: str, seen_seconds_ago: float) -> None:
    now = timezone.now()
    WorkerBeat.objects.create(
        hostname=hostname, queues=queues, started_at=now - timedelta(hours=1),
        seen_at=now - timedelta(seconds=seen_seconds_ago),
    )  # fmt: skip


@pytest.mark.django_db
def test_workers_status_without_workers_is_offline_on_every_queue():
    status = dashboard.workers_status()
    assert set(status["queues"]) == {"default", "gpu", "interactive"}
    assert {q["state"] for q in status["queues"].values()} == {"offline"}


@pytest.mark.django_db
def test_workers_status_lists_live_workers_per_queue_and_ignores_silent_ones(settings):
    settings.LABELGPT_WORKER_BEAT_SECONDS = 10
    _beat("gpu1@host", "gpu", seen_seconds_ago=5)
    _beat("both@host", "default,interactive", seen_seconds_ago=1)
    _beat("dead@host", "gpu,default", seen_seconds_ago=31)  # three beats missed
    with CaptureQueriesContext(connection) as queries:
        status = dashboard.workers_status()
    assert len(queries) == 1
    assert status["queues"]["gpu"] == {"state": "online", "workers": ["gpu1@host"]}
    assert status["queues"]["default"] == {"state": "online", "workers": ["both@host"]}
    assert status["queues"]["interactive"] == {"state": "online", "workers": ["both@host"]}
    assert "30 s" in status["note"]


# Apply a suggested threshold ----------------------------------------------------------------------


def test_manager_applies_a_threshold(client_for, project, manager):
    cat = project.classes.get(name="cat")
    url = reverse("dashboard-apply-threshold", args=[project.pk])
    response = client_for(manager).post(url, {"class_id": cat.pk, "box_threshold": "0.42"})
    assert response.status_code == 302
    cat.refresh_from_db()
    assert cat.box_threshold == pytest.approx(0.42)


def test_apply_threshold_with_htmx_answers_the_partial(client_for, project, manager):
    cat = project.classes.get(name="cat")
    url = reverse("dashboard-apply-threshold", args=[project.pk])
    client = client_for(manager)
    ok = client.post(url, {"class_id": cat.pk, "box_threshold": "0.5"}, headers={"HX-Request": "true"})
    assert ok.status_code == 200 and b"Applied: 0.500" in ok.content
    bad = client.post(url, {"class_id": cat.pk, "box_threshold": "7"}, headers={"HX-Request": "true"})
    assert bad.status_code == 400 and b"error" in bad.content
    cat.refresh_from_db()
    assert cat.box_threshold == pytest.approx(0.5)


def test_apply_threshold_refused_to_annotators_and_outsiders(client_for, project, annotator, outsider):
    cat = project.classes.get(name="cat")
    url = reverse("dashboard-apply-threshold", args=[project.pk])
    assert client_for(annotator).post(url, {"class_id": cat.pk, "box_threshold": "0.9"}).status_code == 403
    assert client_for(outsider).post(url, {"class_id": cat.pk, "box_threshold": "0.9"}).status_code == 404
    cat.refresh_from_db()
    assert cat.box_threshold is None


def test_apply_threshold_refuses_a_foreign_class(client_for, project, manager, admin_user):
    from labeling.services.projects import project_create

    other = project_create(user=admin_user, name="Other", classes=[{"name": "dog"}])
    dog = other.classes.get()
    url = reverse("dashboard-apply-threshold", args=[project.pk])
    response = client_for(manager).post(url, {"class_id": dog.pk, "box_threshold": "0.9"})
    assert response.status_code == 302
    dog.refresh_from_db()
    assert dog.box_threshold is None


# The snapshot of the quality figures ----------------------------------------------------------------


def _dashboard(client, project):
    return client.get(reverse("dashboard-project", args=[project.pk]))


def _age(project, seconds: float) -> None:
    """Make the project's snapshot `seconds` old."""
    past = timezone.now() - timedelta(seconds=seconds)
    DashboardSnapshot.objects.filter(project=project).update(computed_at=past, requested_at=past)


def test_the_snapshot_holds_model_quality_s_figures(project, hand_built):
    assert dashboard_snapshot_compute(project_id=project.pk) is True
    snapshot = DashboardSnapshot.objects.get(project=project)
    assert snapshot.figures == dashboard.quality_figures(dashboard.model_quality(project=project))
    cat = next(row for row in snapshot.figures if row["name"] == "cat")
    assert (cat["shown_accepted"], cat["shown_rejected"], cat["acceptance_percent"]) == (3, 2, 60)
    assert (cat["mean_box_iou"], cat["box_iou_count"], cat["edited"], cat["missed"]) == (
        pytest.approx(0.5),
        1,
        1,
        1,
    )
    assert cat["suggestion"]["threshold"] == 0.2 and cat["suggestion"]["f1"] == pytest.approx(8 / 11)
    assert {p["prompt"] for p in cat["prompts"]} == {"a cat", "a small cat"}
    assert snapshot.computed_at is not None and snapshot.fingerprint["counts"]["done"] == 1


def test_a_project_never_computed_shows_computing_and_queues_once(
    client_for, project, manager, task_calls, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        html = _dashboard(client, project).content.decode()
    assert 'id="quality-none"' in html and "Computing…" in html
    assert 'id="quality-as-of"' not in html
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == [(project.pk,)]
    with django_capture_on_commit_callbacks(execute=True):
        again = _dashboard(client, project).content.decode()
    assert "Computing…" in again
    assert len(task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE)) == 1  # one waits already


def test_the_page_shows_the_snapshot_and_its_time(client_for, project, manager, hand_built, task_calls):
    dashboard_snapshot_compute(project_id=project.pk)
    snapshot = DashboardSnapshot.objects.get(project=project)
    # A change after the snapshot is not on the page until the figures are computed again.
    done = project.images.get(status=Image.Status.DONE)
    make_annotation(done, hand_built, score=0.99, state=R)
    response = _dashboard(client_for(manager), project)
    html = response.content.decode()
    assert 'id="quality-as-of"' in html
    assert timezone.localtime(snapshot.computed_at).strftime("%Y-%m-%d %H:%M:%S") in html
    assert response.context["quality"] == snapshot.figures
    assert "3/5" in html  # the snapshot's acceptance, not today's 3/6
    assert "Computing…" not in html and "being computed" not in html
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == []  # fresh: nothing queued


def test_stale_snapshot_of_a_changed_project_is_queued_once(
    client_for, project, manager, hand_built, task_calls, django_capture_on_commit_callbacks, settings
):
    settings.LABELGPT_DASHBOARD_SNAPSHOT_SECONDS = 60
    dashboard_snapshot_compute(project_id=project.pk)
    client = client_for(manager)
    _age(project, 120)
    with django_capture_on_commit_callbacks(execute=True):
        _dashboard(client, project)
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == []  # old, but nothing changed

    make_image(project, status=Image.Status.PRELABELED)  # the project changes
    with django_capture_on_commit_callbacks(execute=True):
        html = _dashboard(client, project).content.decode()
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == [(project.pk,)]
    assert "being computed" in html and 'id="quality-as-of"' in html  # the old figures stay
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            _dashboard(client, project)
    assert len(task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE)) == 1

    dashboard_snapshot_compute(project_id=project.pk)  # the worker runs it
    with django_capture_on_commit_callbacks(execute=True):
        html = _dashboard(client, project).content.decode()
    assert "being computed" not in html
    assert len(task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE)) == 1


def test_a_changed_project_with_young_figures_waits(
    client_for, project, manager, task_calls, django_capture_on_commit_callbacks, settings
):
    settings.LABELGPT_DASHBOARD_SNAPSHOT_SECONDS = 3600
    dashboard_snapshot_compute(project_id=project.pk)
    make_image(project, status=Image.Status.PRELABELED)
    with django_capture_on_commit_callbacks(execute=True):
        _dashboard(client_for(manager), project)
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == []


def test_a_lost_recompute_is_queued_again_after_the_requeue_delay(
    client_for, project, manager, task_calls, django_capture_on_commit_callbacks, settings
):
    settings.LABELGPT_DASHBOARD_REQUEUE_SECONDS = 600
    client = client_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        _dashboard(client, project)
    DashboardSnapshot.objects.filter(project=project).update(
        requested_at=timezone.now() - timedelta(seconds=601)
    )  # its message was lost: no worker ever ran it
    with django_capture_on_commit_callbacks(execute=True):
        _dashboard(client, project)
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == [(project.pk,), (project.pk,)]


def test_broker_down_lets_the_next_view_queue_again(
    client_for, project, manager, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []

    def down(*, task, args=()):
        sent.append(task)
        raise queues.QueueUnavailable()

    monkeypatch.setattr(queues, "task_send", down)
    client = client_for(manager)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert _dashboard(client, project).status_code == 200
    assert sent == [queues.DASHBOARD_SNAPSHOT_COMPUTE] * 2
    assert DashboardSnapshot.objects.get(project=project).requested_at is None


def test_refresh_by_a_manager_queues_once_and_keeps_the_figures(
    client_for, project, manager, hand_built, task_calls, django_capture_on_commit_callbacks
):
    dashboard_snapshot_compute(project_id=project.pk)
    before = DashboardSnapshot.objects.get(project=project)
    client = client_for(manager)
    url = reverse("dashboard-refresh", args=[project.pk])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url)
        assert response.status_code == 302
        assert response["Location"] == reverse("dashboard-project", args=[project.pk])
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == [(project.pk,)]
    after = DashboardSnapshot.objects.get(project=project)
    assert (after.figures, after.computed_at) == (before.figures, before.computed_at)
    html = client.get(reverse("dashboard-project", args=[project.pk])).content.decode()
    assert "being computed" in html and "3/5" in html


def test_refresh_refused_to_annotators_outsiders_and_gets(
    client_for, project, annotator, outsider, manager, task_calls
):
    url = reverse("dashboard-refresh", args=[project.pk])
    assert client_for(annotator).post(url).status_code == 403
    assert client_for(outsider).post(url).status_code == 404
    assert client_for(manager).get(url).status_code == 405
    assert not DashboardSnapshot.objects.filter(project=project).exists()


def test_the_snapshot_task_computes_and_a_missing_project_is_a_no_op(project, hand_built):
    assert tasks.dashboard_snapshot_compute.run(project.pk) is True
    assert DashboardSnapshot.objects.get(project=project).figures
    assert tasks.dashboard_snapshot_compute.run(10**9) is False
    assert queues.DASHBOARD_SNAPSHOT_COMPUTE.queue == queues.DEFAULT


def test_applying_a_threshold_queues_a_recompute(
    client_for, project, manager, task_calls, django_capture_on_commit_callbacks
):
    dashboard_snapshot_compute(project_id=project.pk)
    cat = project.classes.get(name="cat")
    url = reverse("dashboard-apply-threshold", args=[project.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(manager).post(url, {"class_id": cat.pk, "box_threshold": "0.42"})
    assert response.status_code == 302
    assert task_calls.of(queues.DASHBOARD_SNAPSHOT_COMPUTE) == [(project.pk,)]
    dashboard_snapshot_compute(project_id=project.pk)
    row = next(r for r in DashboardSnapshot.objects.get(project=project).figures if r["name"] == "cat")
    assert row["threshold"] == pytest.approx(0.42) and row["own_threshold"] == pytest.approx(0.42)
