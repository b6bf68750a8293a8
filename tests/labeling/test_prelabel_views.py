"""The pre-label pages: start a job, the jobs panel (htmx polling), a job's page, cancel."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from labeling import queues
from labeling.models import JobStatus, PrelabelJob, PrelabelJobItem, WorkerBeat
from labeling.services import prelabel
from tests.conftest import plain_images

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tiny_models", "task_calls")]

HTMX = {"HTTP_HX_REQUEST": "true"}
POLLING = 'hx-trigger="every 2s"'


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def prelabel_url(project) -> str:
    return reverse("project-prelabel", kwargs={"project_id": project.pk})


def jobs_url(project) -> str:
    return reverse("project-jobs", kwargs={"project_id": project.pk})


def job_url(job, name: str = "job-detail") -> str:
    return reverse(name, kwargs={"job_id": job.pk})


def form_data(project, **overrides) -> dict:
    data = {
        "classes": [c.pk for c in project.classes.all()],
        "box_threshold": "0.4",
        "text_threshold": "0.3",
        "scope": "new",
    }
    data.update(overrides)
    return data


def goes_to_login(response) -> bool:
    return response.status_code == 302 and urlsplit(response["Location"]).path == reverse("login")


@pytest.fixture
def active_job(project):
    plain_images(project, 3)
    return prelabel.prelabel_job_start(project=project, user=None)


# Starting -----------------------------------------------------------------------------------------------


def test_a_manager_starts_a_job_and_goes_back_to_the_prelabel_tab(
    client_for, manager, project, task_calls, django_capture_on_commit_callbacks
):
    plain_images(project, 2)
    cat = project.classes.get(name="cat")

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(manager).post(prelabel_url(project), form_data(project, classes=[cat.pk]))

    assert response.status_code == 302
    assert response["Location"] == prelabel_url(project)
    job = PrelabelJob.objects.get()
    assert (job.project, job.created_by, job.total, job.status) == (project, manager, 2, JobStatus.QUEUED)
    assert (job.params["box_threshold"], job.params["text_threshold"]) == (0.4, 0.3)
    assert [c["id"] for c in job.params["classes"]] == [cat.pk]
    assert messages_of(response) == ["Pre-labeling of 2 images started."]
    assert task_calls.of(queues.PRELABEL_JOB_DISPATCH) == [(job.pk,)]


def test_an_htmx_start_answers_with_the_jobs_panel_polling_the_new_job(
    client_for, manager, project, task_calls, django_capture_on_commit_callbacks
):
    plain_images(project, 2)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(manager).post(prelabel_url(project), form_data(project), **HTMX)

    assert response.status_code == 200
    job = PrelabelJob.objects.get()
    text = response.content.decode()
    assert "<html" not in text and 'id="images"' not in text  # the partial alone
    assert POLLING in text and f'hx-get="{jobs_url(project)}"' in text
    assert f'data-job="{job.pk}"' in text and 'data-status="queued"' in text
    assert "0 / 2 images" in text
    assert task_calls.of(queues.PRELABEL_JOB_DISPATCH) == [(job.pk,)]


def test_an_annotator_cannot_start_a_job(client_for, annotator, project):
    plain_images(project, 1)
    response = client_for(annotator).post(prelabel_url(project), form_data(project))
    assert response.status_code == 403
    assert not PrelabelJob.objects.exists()


def test_an_outsider_cannot_start_a_job_nor_learn_the_project_exists(client_for, outsider, project):
    plain_images(project, 1)
    response = client_for(outsider).post(prelabel_url(project), form_data(project))
    assert response.status_code == 404
    assert not PrelabelJob.objects.exists()


def test_starting_a_job_needs_a_login(client, project):
    plain_images(project, 1)
    response = client.post(prelabel_url(project), form_data(project))
    assert goes_to_login(response)
    assert not PrelabelJob.objects.exists()


def test_a_get_shows_the_prelabel_tab_and_starts_nothing(client_for, manager, project, task_calls):
    plain_images(project, 1)
    response = client_for(manager).get(prelabel_url(project))
    assert response.status_code == 200
    assert 'id="prelabel-form"' in response.content.decode()
    assert not PrelabelJob.objects.exists()
    assert task_calls.calls == []


@pytest.mark.parametrize(("field", "value"), [("box_threshold", "1.5"), ("text_threshold", "-0.2")])
def test_a_threshold_outside_zero_to_one_is_refused_and_nothing_is_created(
    client_for, manager, project, task_calls, field, value
):
    plain_images(project, 1)
    client = client_for(manager)

    htmx = client.post(prelabel_url(project), form_data(project, **{field: value}), **HTMX)
    plain = client.post(prelabel_url(project), form_data(project, **{field: value}))

    assert htmx.status_code == 400
    assert f'<p class="error">{field}:' in htmx.content.decode()
    assert 'id="prelabel-form"' in htmx.content.decode()  # the form is shown again
    assert plain.status_code == 302
    (message,) = messages_of(plain)
    assert message.startswith("Pre-labeling not started:") and field in message
    assert not PrelabelJob.objects.exists()
    assert task_calls.calls == []


def test_a_class_of_another_project_is_refused(client_for, manager, project):
    from labeling.services.projects import project_create

    plain_images(project, 1)
    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    response = client_for(manager).post(
        prelabel_url(project), form_data(project, classes=[other.classes.get().pk]), **HTMX
    )
    assert response.status_code == 400
    assert "classes:" in response.content.decode()
    assert not PrelabelJob.objects.exists()


def test_a_project_without_new_images_says_so(client_for, manager, project):
    htmx = client_for(manager).post(prelabel_url(project), form_data(project), **HTMX)
    plain = client_for(manager).post(prelabel_url(project), form_data(project))

    assert htmx.status_code == 400
    assert "There are no images to pre-label in this scope." in htmx.content.decode()
    assert messages_of(plain) == ["Pre-labeling not started: There are no images to pre-label in this scope."]
    assert not PrelabelJob.objects.exists()


def test_a_second_job_is_refused_while_one_is_active(client_for, manager, project, active_job):
    response = client_for(manager).post(prelabel_url(project), form_data(project))

    assert response.status_code == 302
    (message,) = messages_of(response)
    assert "already running" in message
    assert list(PrelabelJob.objects.all()) == [active_job]


# The jobs panel ----------------------------------------------------------------------------------------


def test_the_jobs_panel_polls_only_while_a_job_is_active(client_for, manager, project, active_job):
    client = client_for(manager)

    active = client.get(jobs_url(project), **HTMX)
    assert active.status_code == 200
    assert POLLING in active.content.decode()
    assert f'data-job="{active_job.pk}"' in active.content.decode()
    assert job_url(active_job, "job-cancel") in active.content.decode()

    prelabel.prelabel_job_cancel(job=active_job)
    ended = client.get(jobs_url(project), **HTMX)
    assert ended.status_code == 200
    text = ended.content.decode()
    assert POLLING not in text
    assert 'id="prelabel-form"' in text  # a new job can be started
    assert "job-cancelled" in text and f'href="{job_url(active_job)}"' in text


def test_the_jobs_panel_of_a_project_without_jobs_shows_the_form_and_does_not_poll(
    client_for, manager, project
):
    plain_images(project, 1)
    response = client_for(manager).get(jobs_url(project), **HTMX)
    assert response.status_code == 200
    assert POLLING not in response.content.decode()
    assert 'id="prelabel-form"' in response.content.decode()


def test_an_annotator_sees_the_progress_without_cancel_or_start(client_for, annotator, project, active_job):
    response = client_for(annotator).get(jobs_url(project), **HTMX)
    text = response.content.decode()
    assert response.status_code == 200
    assert POLLING in text and f'data-job="{active_job.pk}"' in text
    assert job_url(active_job, "job-cancel") not in text

    prelabel.prelabel_job_cancel(job=active_job)
    ended = client_for(annotator).get(jobs_url(project), **HTMX).content.decode()
    assert 'id="prelabel-form"' not in ended and "No job running." in ended


def test_the_panel_shows_the_stage_rate_and_eta_once_images_are_done(
    client_for, annotator, project, active_job
):
    now = timezone.now()
    WorkerBeat.objects.create(hostname="gpu@t", queues="gpu", started_at=now, seen_at=now)
    client = client_for(annotator)

    queued = client.get(jobs_url(project), **HTMX).content.decode()
    assert '<strong class="job-stage">Queued</strong>' in queued
    assert "job-rate" not in queued and "job-eta" not in queued and "job-no-worker" not in queued

    PrelabelJob.objects.filter(pk=active_job.pk).update(stage=PrelabelJob.Stage.LOADING, status="running")
    assert "Loading models" in client.get(jobs_url(project), **HTMX).content.decode()

    PrelabelJob.objects.filter(pk=active_job.pk).update(
        stage=PrelabelJob.Stage.RUNNING, started_at=now - timedelta(seconds=60), done=1
    )
    running = client.get(jobs_url(project), **HTMX).content.decode()
    assert '<strong class="job-stage">Running</strong> · 1 / 3 images' in running
    assert re.search(r'class="job-rate">1\.0 images/min<', running)
    assert 'class="job-eta">about 2 min left<' in running  # 2 images left at 1 a minute


def test_the_panel_says_when_no_worker_takes_the_queued_job(client_for, manager, project, active_job):
    text = client_for(manager).get(jobs_url(project), **HTMX).content.decode()
    assert "job-no-worker" in text and "celery -A webapp worker -Q gpu" in text


def test_the_panel_costs_the_same_queries_whatever_the_number_of_jobs(client_for, manager, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(manager)
    plain_images(project, 2)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(jobs_url(project), **HTMX).status_code == 200
        return len(captured)

    job = prelabel.prelabel_job_start(project=project, user=None)
    one = queries()
    for _ in range(4):
        prelabel.prelabel_job_cancel(job=job)
        job = prelabel.prelabel_job_start(
            project=project, user=None, options=prelabel.JobOptions(scope="not_done")
        )
    assert queries() == one


def test_the_project_page_polls_the_panel_while_a_job_is_active(client_for, annotator, project, active_job):
    page = client_for(annotator).get(reverse("project-detail", kwargs={"project_id": project.pk}))
    assert page.status_code == 200
    assert POLLING in page.content.decode()


def test_the_jobs_panel_is_for_members_only(client_for, outsider, client, project, active_job):
    assert goes_to_login(client.get(jobs_url(project), **HTMX))
    assert client_for(outsider).get(jobs_url(project), **HTMX).status_code == 404


def test_the_jobs_panel_without_htmx_goes_to_the_prelabel_tab(client_for, manager, project):
    response = client_for(manager).get(jobs_url(project), {"after": "7"})
    assert response.status_code == 302
    assert response["Location"] == prelabel_url(project) + "?after=7"


# A job's page --------------------------------------------------------------------------------------------


@pytest.fixture
def failed_job(project):
    images = plain_images(project, 3)
    job = PrelabelJob.objects.create(
        project=project,
        params={"detector": "some/detector", "segmenter": "vit_b", "segment": True, "classes": []},
        status=JobStatus.FAILED,
        total=3,
        done=1,
        failed=2,
        error="The models cannot be loaded: detector folder /nowhere does not exist",
    )
    reasons = ["", "The image file is missing from storage.", "The image file cannot be read: truncated"]
    for image, reason in zip(images, reasons, strict=True):
        PrelabelJobItem.objects.create(
            job=job, image=image, status="failed" if reason else "done", error=reason
        )
    return job


def test_a_member_sees_the_jobs_failures_with_their_reasons(client_for, annotator, failed_job):
    response = client_for(annotator).get(job_url(failed_job))

    assert response.status_code == 200
    text = response.content.decode()
    assert "1 done, 2 failed, of 3 images" in text
    assert "detector folder /nowhere does not exist" in text
    assert '<td>plain-1.png</td><td class="error">The image file is missing from storage.</td>' in text
    assert '<td>plain-2.png</td><td class="error">The image file cannot be read: truncated</td>' in text
    assert "plain-0.png" not in text  # done, not a failure


def test_a_jobs_page_is_hidden_from_outsiders(client_for, outsider, client, failed_job):
    assert client_for(outsider).get(job_url(failed_job)).status_code == 404
    client.logout()  # client_for logs in on this same client
    assert goes_to_login(client.get(job_url(failed_job)))


def test_an_unknown_job_is_404(client_for, manager, failed_job):
    assert (
        client_for(manager).get(reverse("job-detail", kwargs={"job_id": failed_job.pk + 1000})).status_code
        == 404
    )


# Cancelling --------------------------------------------------------------------------------------------


def test_a_manager_cancels_the_active_job(client_for, manager, project, active_job):
    response = client_for(manager).post(job_url(active_job, "job-cancel"))

    assert response.status_code == 302
    assert response["Location"] == prelabel_url(project)
    active_job.refresh_from_db()
    assert active_job.status == JobStatus.CANCELLED
    assert messages_of(response) == [f"Job {active_job.pk} was cancelled; it stops before its next image."]


def test_an_htmx_cancel_answers_with_the_panel_no_longer_polling(client_for, manager, project, active_job):
    response = client_for(manager).post(job_url(active_job, "job-cancel"), **HTMX)

    assert response.status_code == 200
    assert POLLING not in response.content.decode()
    assert "job-cancelled" in response.content.decode()
    active_job.refresh_from_db()
    assert active_job.status == JobStatus.CANCELLED


def test_cancelling_an_ended_job_says_it_had_ended(client_for, manager, failed_job):
    response = client_for(manager).post(job_url(failed_job, "job-cancel"))
    assert messages_of(response) == [f"Job {failed_job.pk} had already ended."]
    failed_job.refresh_from_db()
    assert failed_job.status == JobStatus.FAILED


@pytest.mark.parametrize(
    ("who", "method", "answer"),
    [
        ("annotator", "post", 403),  # may not cancel
        ("outsider", "post", 404),  # does not learn the job exists
        ("anonymous", "post", "login"),
        ("manager", "get", 200),  # a GET shows the confirm page: cancelling needs a POST
    ],
)
def test_a_refused_cancel_leaves_the_job_queued(client_for, client, request, active_job, who, method, answer):
    browser = client if who == "anonymous" else client_for(request.getfixturevalue(who))
    response = getattr(browser, method)(job_url(active_job, "job-cancel"))
    assert ("login" if goes_to_login(response) else response.status_code) == answer
    active_job.refresh_from_db()
    assert active_job.status == JobStatus.QUEUED
