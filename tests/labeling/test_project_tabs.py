"""The project's tabs (Images, Pre-label, Review, Export & import, Prompt lab, Settings, Members): who sees
which, the tab bar, the empty states, the old URLs; the job panel (failure reasons, stages, the
cancel's confirm step, the history's keyset pages); deleting a project."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import numpy as np
import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inference.protocols import ImageEmbedding
from labeling.models import (
    Annotation,
    DashboardSnapshot,
    Export,
    Image,
    ImportJob,
    JobStatus,
    LabelClass,
    Membership,
    PrelabelJob,
    PrelabelJobItem,
    Project,
    ProjectCounts,
)
from labeling.services import prelabel
from labeling.services.prelabel import embedding_cache
from labeling.services.projects import project_create, project_delete
from labeling.views.prelabel import JOBS_PER_PAGE
from tests.conftest import plain_images
from tests.labeling.review_helpers import add_images

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TABS = {
    "images": "project-detail",
    "prelabel": "project-prelabel",
    "review": "review-next",
    "export-import": "project-export-import",
    "prompt-lab": "project-prompt-lab",
    "settings": "project-settings",
    "members": "project-members",
}
ANNOTATOR_TABS = ["images", "review"]


def tab_url(tab: str, project) -> str:
    return reverse(TABS[tab], args=[project.pk])


def tabs_shown(content: str) -> list[str]:
    nav = re.search(r'<nav class="tabs".*?</nav>', content, re.S).group(0)
    return re.findall(r'data-tab="([^"]+)"', nav)


def current_tab(content: str) -> list[str]:
    return re.findall(r'data-tab="([^"]+)" class="current" aria-current="page"', content)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# Who sees which tab ------------------------------------------------------------------------------


@pytest.mark.parametrize("tab", list(TABS))
def test_a_manager_opens_every_tab_and_the_bar_marks_it(client_for, manager, project, tab):
    response = client_for(manager).get(tab_url(tab, project))
    assert response.status_code == 200
    content = response.content.decode()
    assert tabs_shown(content) == list(TABS)
    assert current_tab(content) == [tab]
    assert "<h1>Kitchen</h1>" in content


@pytest.mark.parametrize("tab", list(TABS))
def test_an_annotator_sees_images_and_review_only(client_for, annotator, project, tab):
    response = client_for(annotator).get(tab_url(tab, project))
    if tab in ANNOTATOR_TABS:
        assert response.status_code == 200
        assert tabs_shown(response.content.decode()) == ANNOTATOR_TABS
        assert current_tab(response.content.decode()) == [tab]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("tab", list(TABS))
def test_an_outsider_gets_404_and_an_anonymous_visitor_the_login_page(
    client_for, client, outsider, project, tab
):
    anonymous = client.get(tab_url(tab, project))
    assert anonymous.status_code == 302 and urlsplit(anonymous["Location"]).path == reverse("login")
    assert client_for(outsider).get(tab_url(tab, project)).status_code == 404


def test_staff_see_every_tab(client_for, admin_user, project):
    content = client_for(admin_user).get(tab_url("images", project)).content.decode()
    assert tabs_shown(content) == list(TABS)


# The old URLs ----------------------------------------------------------------------------------


def test_the_old_edit_url_shows_the_settings_tab_and_saves(client_for, manager, project):
    client = client_for(manager)
    edit = reverse("project-edit", args=[project.pk])
    page = client.get(edit)
    assert page.status_code == 200 and current_tab(page.content.decode()) == ["settings"]
    rows = {
        "classes-TOTAL_FORMS": "2",
        "classes-INITIAL_FORMS": "2",
        "classes-MIN_NUM_FORMS": "0",
        "classes-MAX_NUM_FORMS": "1000",
    }
    for i, c in enumerate(project.classes.all()):
        rows.update({f"classes-{i}-id": c.pk, f"classes-{i}-name": c.name, f"classes-{i}-prompt": c.prompt})
        rows[f"classes-{i}-color"] = c.color
    fields = {
        "name": "Kitchen 2",
        "description": "",
        "box_threshold": "0.35",
        "text_threshold": "0.25",
        "keep_threshold": "0.1",
        "prompt_mode": "joint",
        "detector": project.detector,
        "segmenter": project.segmenter,
    }
    response = client.post(edit, {**fields, **rows})
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    project.refresh_from_db()
    assert project.name == "Kitchen 2"


def test_the_panels_urls_still_answer(client_for, manager, project):
    client = client_for(manager)
    for name in ("project-images", "project-jobs", "project-exports", "project-imports", "project-leases"):
        assert client.get(reverse(name, args=[project.pk]), **HTMX).status_code == 200, name


def test_the_panels_without_htmx_go_to_their_tab(client_for, manager, project):
    client = client_for(manager)
    for name, tab in (("project-exports", "export-import"), ("project-imports", "export-import")):
        response = client.get(reverse(name, args=[project.pk]))
        assert response.status_code == 302 and response["Location"] == tab_url(tab, project), name


# Empty states ---------------------------------------------------------------------------------


def test_a_project_without_images_says_to_upload_them_first(client_for, manager, project):
    client = client_for(manager)
    images = client.get(tab_url("images", project)).content.decode()
    assert "<h2>Upload images</h2>" in images and 'id="upload-form"' in images
    prelabel_tab = client.get(tab_url("prelabel", project)).content.decode()
    assert 'id="prelabel-no-images"' in prelabel_tab and "upload images first" in prelabel_tab
    assert 'id="prelabel-form"' not in prelabel_tab
    export = client.get(tab_url("export-import", project)).content.decode()
    assert 'id="export-no-images"' in export and 'id="export-form"' not in export
    assert 'id="import-form"' in export  # an import may bring its images along
    review = client.get(tab_url("review", project)).content.decode()
    assert 'id="review-no-images"' in review and 'id="start-reviewing"' not in review
    assert f'href="{tab_url("images", project)}">upload images first' in review


def test_an_annotator_is_told_a_manager_uploads_the_images(client_for, annotator, project):
    content = client_for(annotator).get(tab_url("images", project)).content.decode()
    assert 'id="no-images"' in content and 'id="upload-form"' not in content


def test_with_images_the_upload_is_compact_and_the_actions_are_offered(client_for, manager, project):
    plain_images(project, 2)
    client = client_for(manager)
    images = client.get(tab_url("images", project)).content.decode()
    assert "<h2>Upload images</h2>" not in images and 'class="dropzone compact"' in images
    assert 'id="prelabel-form"' in client.get(tab_url("prelabel", project)).content.decode()
    assert 'id="start-reviewing"' in client.get(tab_url("review", project)).content.decode()
    export = client.get(tab_url("export-import", project)).content.decode()
    assert reverse("project-exports", args=[project.pk]) in export and 'id="export-no-images"' not in export


def test_a_project_without_classes_says_to_add_one(client_for, manager):
    bare = Project.objects.create(name="Bare")
    Membership.objects.create(project=bare, user=manager, role=Membership.Role.MANAGER)
    plain_images(bare, 1)
    client = client_for(manager)
    settings_url = tab_url("settings", bare)
    images = client.get(tab_url("images", bare)).content.decode()
    assert 'id="no-classes"' in images and f'href="{settings_url}">Add a class</a>' in images
    prelabel_tab = client.get(tab_url("prelabel", bare)).content.decode()
    assert (
        'id="prelabel-no-classes"' in prelabel_tab
        and f'href="{settings_url}">Add a class</a>' in prelabel_tab
    )
    assert 'id="prelabel-form"' not in prelabel_tab


def test_a_project_whose_images_are_all_done_or_skipped_says_so(client_for, annotator, project):
    add_images(project, 2, status=Image.Status.DONE)
    add_images(project, 1, status=Image.Status.SKIPPED, start=10)
    content = client_for(annotator).get(tab_url("review", project)).content.decode()
    assert 'id="review-all-done"' in content and "All 3 images of" in content
    assert "done or skipped" in content
    assert 'id="start-reviewing"' not in content


def test_the_review_tab_shows_who_holds_what_to_managers_only(client_for, manager, annotator, project):
    add_images(project, 1)
    leases = reverse("project-leases", args=[project.pk])
    assert leases in client_for(manager).get(tab_url("review", project)).content.decode()
    assert leases not in client_for(annotator).get(tab_url("review", project)).content.decode()


# The jobs panel -------------------------------------------------------------------------------


def make_job(project, *, status=JobStatus.SUCCEEDED, minutes_ago: float = 0, **fields) -> PrelabelJob:
    job = PrelabelJob.objects.create(project=project, status=status, total=3, **fields)
    PrelabelJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return job


def history_ids(content: str) -> list[int]:
    table = re.search(r'<table class="jobs">.*?</table>', content, re.S)
    return [int(i) for i in re.findall(r'<tr data-job="(\d+)">', table.group(0))] if table else []


def test_a_failed_jobs_reason_is_shown_escaped_and_shortened(client_for, manager, project):
    long_reason = "<b>CUDA</b> out of memory: " + "x" * 300
    failed = make_job(project, status=JobStatus.FAILED, error=long_reason)
    short = make_job(project, status=JobStatus.FAILED, error="The detector cannot be loaded.", minutes_ago=1)
    content = client_for(manager).get(tab_url("prelabel", project)).content.decode()
    assert "&lt;b&gt;CUDA&lt;/b&gt; out of memory" in content and "<b>CUDA</b>" not in content
    assert "x" * 300 not in content  # shortened ...
    assert (
        f'<a href="{reverse("job-detail", args=[failed.pk])}">full text</a>' in content
    )  # ... the rest there
    assert "The detector cannot be loaded.</div>" in content  # short: whole, no link
    detail = client_for(manager).get(reverse("job-detail", args=[failed.pk])).content.decode()
    assert "x" * 300 in detail
    assert short.pk in history_ids(content)


def test_a_running_jobs_stage_is_shown_in_the_history(client_for, manager, project):
    plain_images(project, 1)
    job = prelabel.prelabel_job_start(project=project, user=None)
    PrelabelJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, stage=PrelabelJob.Stage.LOADING)
    content = client_for(manager).get(tab_url("prelabel", project)).content.decode()
    assert '<span class="small job-stage">Loading models</span>' in content


def test_cancel_asks_first_with_htmx_and_links_to_a_confirm_page_without(client_for, manager, project):
    plain_images(project, 2)
    job = prelabel.prelabel_job_start(project=project, user=None)
    cancel = reverse("job-cancel", args=[job.pk])
    content = client_for(manager).get(tab_url("prelabel", project)).content.decode()
    assert f'href="{cancel}" hx-post="{cancel}" hx-confirm="Cancel pre-label job #{job.pk}?' in content


def test_the_confirm_page_takes_nothing_and_its_form_cancels(client_for, manager, project):
    plain_images(project, 2)
    job = prelabel.prelabel_job_start(project=project, user=None)
    cancel = reverse("job-cancel", args=[job.pk])
    client = client_for(manager)

    confirm = client.get(cancel)
    assert confirm.status_code == 200
    assert f'<form method="post" action="{cancel}"' in confirm.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED  # the GET cancelled nothing

    response = client.post(cancel)
    assert response.status_code == 302 and response["Location"] == tab_url("prelabel", project)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    ended = client.get(cancel).content.decode()
    assert "has already ended" in ended and f'action="{cancel}"' not in ended


def test_the_confirm_page_is_for_managers(client_for, annotator, outsider, project):
    plain_images(project, 1)
    job = prelabel.prelabel_job_start(project=project, user=None)
    cancel = reverse("job-cancel", args=[job.pk])
    assert client_for(annotator).get(cancel).status_code == 403
    assert client_for(outsider).get(cancel).status_code == 404


def test_the_job_history_pages_newest_first_by_keyset(client_for, manager, project):
    jobs = [make_job(project, minutes_ago=100 - i) for i in range(2 * JOBS_PER_PAGE + 3)]
    newest_first = [j.pk for j in reversed(jobs)]
    client = client_for(manager)
    panel = reverse("project-jobs", args=[project.pk])

    first = client.get(tab_url("prelabel", project)).content.decode()
    assert history_ids(first) == newest_first[:JOBS_PER_PAGE]
    older = f"?after={newest_first[JOBS_PER_PAGE - 1]}"
    assert f'href="{tab_url("prelabel", project)}{older}" rel="next" hx-get="{panel}{older}"' in first
    assert 'rel="prev"' not in first

    second = client.get(panel + older, **HTMX).content.decode()
    assert history_ids(second) == newest_first[JOBS_PER_PAGE : 2 * JOBS_PER_PAGE]
    third = client.get(panel, {"after": newest_first[2 * JOBS_PER_PAGE - 1]}, **HTMX).content.decode()
    assert history_ids(third) == newest_first[2 * JOBS_PER_PAGE :]
    assert 'rel="next"' not in third
    back = client.get(panel, {"before": newest_first[2 * JOBS_PER_PAGE]}, **HTMX).content.decode()
    assert history_ids(back) == newest_first[JOBS_PER_PAGE : 2 * JOBS_PER_PAGE]
    # The tab itself shows the page its URL names (a bookmark, the back button).
    assert history_ids(client.get(tab_url("prelabel", project) + older).content.decode()) == history_ids(
        second
    )


def test_jobs_sharing_an_instant_page_like_any_others(client_for, manager, project):
    jobs = [make_job(project, minutes_ago=5) for _ in range(JOBS_PER_PAGE + 2)]
    PrelabelJob.objects.update(created_at=timezone.now())
    by_id = sorted((j.pk for j in jobs), reverse=True)
    client = client_for(manager)
    panel = reverse("project-jobs", args=[project.pk])
    first = history_ids(client.get(panel, **HTMX).content.decode())
    rest = history_ids(client.get(panel, {"after": first[-1]}, **HTMX).content.decode())
    assert first + rest == by_id


@pytest.mark.parametrize(
    "query", [{"after": "x"}, {"before": "-3"}, {"after": "1", "before": "2"}, {"after": "99999999"}]
)
def test_a_bad_history_cursor_shows_the_newest_jobs(client_for, manager, project, query):
    jobs = [make_job(project, minutes_ago=10 - i) for i in range(3)]
    content = client_for(manager).get(tab_url("prelabel", project), query).content.decode()
    assert history_ids(content) == [j.pk for j in reversed(jobs)]


def test_the_history_costs_the_same_queries_on_any_page(client_for, manager, project):
    jobs = [make_job(project, minutes_ago=100 - i) for i in range(3 * JOBS_PER_PAGE)]
    client = client_for(manager)
    panel = reverse("project-jobs", args=[project.pk])

    def queries(query: dict) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(panel, query, **HTMX).status_code == 200
        return len(captured)

    assert queries({}) == queries({"after": jobs[-5].pk}) - 1  # one more: the cursor's row
    assert (
        queries({"after": jobs[-5].pk}) == queries({"after": jobs[5].pk}) == queries({"before": jobs[3].pk})
    )


def test_the_images_tab_polls_a_running_jobs_progress_until_it_ends(client_for, annotator, project):
    plain_images(project, 2)
    job = prelabel.prelabel_job_start(project=project, user=None)
    client = client_for(annotator)
    page = client.get(tab_url("images", project)).content.decode()
    assert 'id="job-banner"' in page and 'hx-trigger="every 2s"' in page
    banner = reverse("project-jobs", args=[project.pk]) + "?banner=1"
    running = client.get(banner, **HTMX)
    assert running.status_code == 200 and "0 / 2 images" in running.content.decode()
    assert running["HX-Trigger"] == "images-changed"
    prelabel.prelabel_job_cancel(job=job)
    ended = client.get(banner, **HTMX)
    assert ended.status_code == 286  # htmx stops polling
    assert "Pre-labeling has ended." in ended.content.decode()


# Deleting a project --------------------------------------------------------------------------------


@pytest.fixture
def embeddings_dir(settings, tmp_path):
    settings.LABELGPT_EMBEDDINGS_DIR = str(tmp_path / "embeddings")
    return tmp_path / "embeddings"


def put_embedding(sha256: str, model: str) -> None:
    features = np.zeros((1, 2, 2, 2), dtype=np.float32)
    embedding_cache().put(
        sha256, model, ImageEmbedding(features=features, original_size=(4, 4), input_size=(4, 4))
    )


@pytest.fixture
def full_project(project, manager, embeddings_dir):
    """The project with images, an annotation, a job and its items, an export and an import with
    their files, a dashboard snapshot and embeddings under two segmenters."""
    images = plain_images(project, 3)
    cat = project.classes.get(name="cat")
    Annotation.objects.create(image=images[0], label_class=cat, x=1, y=1, w=2, h=2)
    job = PrelabelJob.objects.create(project=project, status=JobStatus.SUCCEEDED, total=3, done=3)
    PrelabelJobItem.objects.bulk_create([PrelabelJobItem(job=job, image=image) for image in images])
    export = Export.objects.create(project=project, format="coco", status=JobStatus.SUCCEEDED)
    export.file.save("export.json", ContentFile(b"{}"))
    imported = ImportJob.objects.create(project=project, format="coco", file_name="in.json")
    imported.file.save("in.json", ContentFile(b"{}"))
    DashboardSnapshot.objects.create(project=project)
    for image in images:
        put_embedding(image.sha256, "vit_b")
        put_embedding(image.sha256, "vit_h")
    return project


def stored_files(project) -> list[str]:
    names = [
        n for pair in Image.objects.filter(project=project).values_list("file", "thumbnail") for n in pair
    ]
    names += list(Export.objects.filter(project=project).values_list("file", flat=True))
    names += list(ImportJob.objects.filter(project=project).values_list("file", flat=True))
    return names


def test_deleting_a_project_removes_its_rows_files_and_embeddings(full_project, manager, outsider):
    project = full_project
    storage = Image._meta.get_field("file").storage
    files = stored_files(project)
    assert len(files) == 8 and all(storage.exists(name) for name in files)
    shas = list(project.images.values_list("sha256", flat=True))
    # Another project holds the same bytes as the first image: that embedding stays.
    other = project_create(user=outsider, name="Other", classes=[{"name": "dog"}])
    shared = plain_images(other, 1)[0]
    assert shared.sha256 == shas[0]
    cache = embedding_cache()

    deleted = project_delete(project=project, user=manager)

    assert (deleted.name, deleted.images, deleted.files) == ("Kitchen", 3, 8)
    assert deleted.embeddings == 4  # two images not shared, two segmenters each
    assert not any(storage.exists(name) for name in files)
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not ProjectCounts.objects.filter(project_id=project.pk).exists()
    for model in (Image, PrelabelJob, Export, ImportJob, LabelClass, Membership, DashboardSnapshot):
        assert not model.objects.filter(project_id=project.pk).exists(), model
    assert not Annotation.objects.filter(image__project_id=project.pk).exists()
    assert not PrelabelJobItem.objects.filter(job__project_id=project.pk).exists()
    assert all(cache.has(shas[0], model) for model in ("vit_b", "vit_h"))  # shared with "Other"
    assert not any(cache.has(sha, model) for sha in shas[1:] for model in ("vit_b", "vit_h"))
    assert storage.exists(shared.file.name) and other.images.count() == 1  # the other project is whole
    assert ProjectCounts.objects.get(project=other).images_new == 1


def test_only_managers_and_staff_may_delete_a_project(project, annotator, outsider):
    from django.core.exceptions import PermissionDenied

    for user in (annotator, outsider):
        with pytest.raises(PermissionDenied):
            project_delete(project=project, user=user)
    assert Project.objects.filter(pk=project.pk).exists()


def test_the_settings_tab_deletes_the_project_once_its_name_is_typed(client_for, manager, full_project):
    project = full_project
    client = client_for(manager)
    settings_page = client.get(tab_url("settings", project)).content.decode()
    assert (
        f'action="{reverse("project-delete", args=[project.pk])}" id="delete-project-form"' in settings_page
    )
    files = stored_files(project)

    response = client.post(reverse("project-delete", args=[project.pk]), {"confirm_name": " Kitchen "})

    assert response.status_code == 302 and response["Location"] == reverse("project-list")
    assert messages_of(response) == ['Project "Kitchen" was deleted, with its 3 images.']
    assert not Project.objects.filter(pk=project.pk).exists()
    storage = Image._meta.get_field("file").storage
    assert not any(storage.exists(name) for name in files)


@pytest.mark.parametrize("typed", ["", "kitchen", "Kitchen!", "Other"])
def test_a_wrong_name_is_refused_with_a_form_error_and_nothing_is_deleted(
    client_for, manager, full_project, typed
):
    project = full_project
    files = stored_files(project)
    response = client_for(manager).post(reverse("project-delete", args=[project.pk]), {"confirm_name": typed})
    assert response.status_code == 400
    content = response.content.decode()
    assert current_tab(content) == ["settings"]
    assert (
        "This field is required." if not typed else "The name does not match the project&#x27;s name"
    ) in content
    assert Project.objects.filter(pk=project.pk).exists() and project.images.count() == 3
    storage = Image._meta.get_field("file").storage
    assert all(storage.exists(name) for name in files)


@pytest.mark.parametrize(("who", "answer"), [("annotator", 403), ("outsider", 404), ("anonymous", "login")])
def test_a_delete_by_anyone_else_is_refused(client_for, client, request, project, who, answer):
    browser = client if who == "anonymous" else client_for(request.getfixturevalue(who))
    response = browser.post(reverse("project-delete", args=[project.pk]), {"confirm_name": "Kitchen"})
    if answer == "login":
        assert response.status_code == 302 and urlsplit(response["Location"]).path == reverse("login")
    else:
        assert response.status_code == answer
    assert Project.objects.filter(pk=project.pk).exists()


def test_deleting_needs_a_post(client_for, manager, project):
    assert client_for(manager).get(reverse("project-delete", args=[project.pk])).status_code == 405
    assert Project.objects.filter(pk=project.pk).exists()


def test_staff_may_delete_any_project(client_for, admin_user, project):
    response = client_for(admin_user).post(
        reverse("project-delete", args=[project.pk]), {"confirm_name": "Kitchen"}
    )
    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
