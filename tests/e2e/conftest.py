"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright against `live_server`.

Never run `playwright install`: the browser is the system's. Without /usr/bin/chromium the tests
are skipped, except under CI=true, where that is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from labeling.models import Image, LabelClass, Project
from tests.conftest import PASSWORD, make_user
from tests.e2e.browser import CHROMIUM, chromium, log_in, new_page

SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "e2e"
TIMEOUT_MS = 10_000
XSS_NAME = '"><img src=x onerror=alert(1)>'


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the tests of this folder (closed after them, with Playwright's loop)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
        pytest.skip(reason)
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) per test; `page.dialogs` lists every dialog opened."""
    page = new_page(browser, live_server.url, timeout_ms=TIMEOUT_MS)
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    page.context.close()


@pytest.fixture
def screenshot():
    """`screenshot(page, "name")` saves a full-page PNG under tests/output/e2e/ and returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def login():
    """`login(page, user)` logs in through the login form and lands on the project list."""

    def log_in_as(page, user):
        log_in(page, user.get_username(), PASSWORD)
        assert page.locator("h1").inner_text() == "Projects"
        return page

    return log_in_as


@pytest.fixture
def creator(transactional_db):
    """A user allowed to create projects (labeling.add_project), who manages what they create."""
    user = make_user("maria")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="labeling", codename="add_project")
    )
    return user


# The review workspace: a project pre-labeled by the tiny models ---------------------------------


@dataclass
class Seeded:
    project: Project
    manager: object
    annotator: object
    images: list[Image]
    classes: dict[str, LabelClass]


# The tiny models' answers per batch of images, kept for the session (they are deterministic):
# every test runs the real pre-label job and writes its rows, but the models run once per photo.
_MODEL_RUNS: dict[str, list] = {}


@pytest.fixture
def tiny_models_settings(settings, tmp_path_factory, monkeypatch):
    """The tiny random models on the CPU (built once per session under the session's tmp), with
    the SAM embeddings in one folder for the session (keyed by the image's sha256) and each
    batch's model output computed once per session."""
    from django.core.cache import cache

    from labeling.services import prelabel
    from tests.labeling.conftest import build_tiny_models_dir

    base = tmp_path_factory.getbasetemp()
    settings.LABELGPT_MODELS = "tiny"
    settings.LABELGPT_MODELS_DIR = build_tiny_models_dir(base / "labelgpt-models")
    settings.LABELGPT_DEVICE = "cpu"
    settings.LABELGPT_EMBEDDINGS_DIR = str(base / "labelgpt-embeddings")
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 4
    real_batch = prelabel.prelabel_batch

    def remembered(items, prompts, params, *, on_image=None, **models):
        key = repr(([item.sha256 for item in items], list(prompts), params, models.get("cache_name")))
        if key not in _MODEL_RUNS:
            _MODEL_RUNS[key] = real_batch(items, prompts, params, **models)
        for index, result in enumerate(_MODEL_RUNS[key]):
            if on_image is not None:
                on_image(index, result)
        return _MODEL_RUNS[key]

    monkeypatch.setattr(prelabel, "prelabel_batch", remembered)
    cache.clear()  # embeddings_prefetch remembers in Django's cache what it queued
    yield settings
    cache.clear()


@pytest.fixture
def inline_tasks(monkeypatch):
    """The pre-label and find-more tasks run at once in this process instead of going to a
    broker; the embedding prefetch the review page asks for is recorded only (the fixture
    computes them)."""
    from labeling import queues
    from labeling.services import find_more, prelabel

    queued: list[tuple] = []
    run = {
        queues.PRELABEL_JOB_DISPATCH: lambda job_id: prelabel.prelabel_job_dispatch(job_id=job_id),
        queues.PRELABEL_BATCH_RUN: lambda job, ids, token: prelabel.prelabel_batch_run(
            job_id=job, image_ids=ids, token=token
        ),
        queues.EMBEDDINGS_COMPUTE: lambda image_ids: queued.append(tuple(image_ids)),
        queues.FIND_MORE_RUN: lambda request_id: find_more.find_more_run(request_id=request_id),
    }

    def send(*, task, args=()):
        return run[task](*args)

    monkeypatch.setattr(queues, "task_send", send)
    return queued


@pytest.fixture
def seeded(transactional_db, creator, tiny_models_settings, inline_tasks) -> Seeded:
    """A project with three classes (one named like markup), an annotator, and two skimage
    photos pre-labeled by the tiny models through a real pre-label job (run inline), with their
    SAM embeddings cached so that click-to-segment answers at once."""
    from labeling.models import Membership
    from labeling.services import prelabel, segmentation
    from labeling.services.projects import membership_set, project_create
    from tests.labeling.conftest import ingest_photos

    project = project_create(
        user=creator,
        name="Review bench",
        classes=[{"name": "cat"}, {"name": "coffee cup", "prompt": "a cup of coffee"}, {"name": XSS_NAME}],
    )
    annotator = make_user("anna")
    membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    images = ingest_photos(project, [("chelsea", ""), ("coffee", "")])
    job = prelabel.prelabel_job_start(project=project, user=creator)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("succeeded", 2, 0), (job.status, job.error)
    segmentation.embeddings_compute(image_ids=[image.pk for image in images])
    for image in images:
        image.refresh_from_db()
        assert image.status == Image.Status.PRELABELED
        assert image.annotations.filter(score__gte=project.box_threshold).exists()
    return Seeded(
        project=project,
        manager=creator,
        annotator=annotator,
        images=images,
        classes={c.name: c for c in project.classes.all()},
    )
