"""Fixtures for the labeling tests. Pre-labeling: tiny models built once per session, skimage photos
in the project, and the Celery tasks the services send recorded instead of sent (the tests run the
services). Review: one image row. Imports: two ingested images. REST API: a project with one of
everything, a foreign one, clients per role, throttle counters cleared (tests/labeling/api_helpers.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.cache import cache
from PIL import Image as PILImage

from inference import registry
from labeling import queues
from labeling.models import Image, PrelabelJob
from labeling.services import prelabel
from labeling.services.images import images_ingest
from labeling.services.projects import project_create
from tests.conftest import make_user
from tests.labeling import import_helpers, review_helpers
from tests.labeling.api_helpers import World, build_world, token_client

# skimage.data photos (shipped with scikit-image: no download).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def build_tiny_models_dir(folder: Path) -> Path:
    """A LABELGPT_MODELS_DIR holding the tiny models under tiny/ (as inference.registry expects),
    built once: a marker file says the build finished. Shared with tests/integration."""
    marker = folder / "tiny" / ".built"
    if not marker.exists():
        registry.build_tiny_models(folder / "tiny")
        marker.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    return build_tiny_models_dir(tmp_path_factory.getbasetemp() / "labelgpt-models")


@pytest.fixture(scope="session")
def _model_cache():
    """Models stay loaded between tests (the cache key is the tiny folder: no test can get
    another test's model), and are dropped at the start and end of the session."""
    registry.clear()
    yield
    registry.clear()


@pytest.fixture
def tiny_models(settings, tiny_models_dir, _model_cache) -> Path:
    """Settings for the tiny random models on the CPU; embeddings under this test's MEDIA_ROOT."""
    settings.LABELGPT_MODELS = "tiny"
    settings.LABELGPT_MODELS_DIR = tiny_models_dir
    settings.LABELGPT_DEVICE = "cpu"
    settings.LABELGPT_EMBEDDINGS_DIR = ""
    settings.LABELGPT_PRELABEL_BATCH_SIZE = 4
    settings.LABELGPT_PREFETCH_AHEAD = 3
    cache.clear()  # embeddings_prefetch remembers what it queued in Django's cache
    yield tiny_models_dir
    cache.clear()


class TaskCalls:
    """The tasks the services sent (labeling.queues.task_send), in order: (task, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[queues.TaskRoute, tuple]] = []

    def of(self, task: queues.TaskRoute) -> list[tuple]:
        return [args for sent, args in self.calls if sent == task]

    def send(self, *, task: queues.TaskRoute, args=()) -> None:
        self.calls.append((task, tuple(args)))


@pytest.fixture
def task_calls(monkeypatch) -> TaskCalls:
    """Nothing is sent to a broker: every task the services send is recorded instead."""
    calls = TaskCalls()
    monkeypatch.setattr(queues, "task_send", calls.send)
    return calls


def photo_png(name: str, *, variant: str = "", max_side: int | None = None) -> bytes:
    """A skimage photo as PNG bytes; `variant` ("mirror", "flip", "rot90") gives other bytes."""
    import skimage.data

    image = PILImage.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")
    if variant == "mirror":
        image = image.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
    elif variant == "flip":
        image = image.transpose(PILImage.Transpose.FLIP_TOP_BOTTOM)
    elif variant == "rot90":
        image = image.transpose(PILImage.Transpose.ROTATE_90)
    elif variant:
        raise ValueError(variant)
    if max_side:
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def ingest_photos(project, specs) -> list[Image]:
    """Ingest (name, variant) photos through images_ingest; the Image rows in order."""
    files = [
        (f"{name}{'-' + variant if variant else ''}.png", io.BytesIO(photo_png(name, variant=variant)))
        for name, variant in specs
    ]
    report = images_ingest(project=project, files=files)
    assert not report.errors and not report.duplicates, report
    return list(Image.objects.filter(pk__in=[pk for _, pk in report.created]).order_by("pk"))


@pytest.fixture
def photos(project) -> list[Image]:
    """The four skimage photos in the project (status new)."""
    return ingest_photos(project, [(name, "") for name in PHOTOS])


def run_job(job: PrelabelJob, task_calls: TaskCalls) -> PrelabelJob:
    """What the workers would do: the dispatch task, then every batch sent (each batch sends the
    next ones as it ends), in order. A batch run already is a no-op the second time."""
    done = 0
    prelabel.prelabel_job_dispatch(job_id=job.pk)
    while done < len(sent := task_calls.of(queues.PRELABEL_BATCH_RUN)):
        job_id, image_ids, token = sent[done]
        prelabel.prelabel_batch_run(job_id=job_id, image_ids=image_ids, token=token)
        done += 1
    job.refresh_from_db()
    return job


# Review ------------------------------------------------------------------------------------------


@pytest.fixture
def image(project) -> Image:
    """One image row (64 × 48, pre-labeled, no annotation; its files are never read)."""
    (image,) = review_helpers.add_images(project, 1)
    return image


# Imports -----------------------------------------------------------------------------------------


@pytest.fixture
def images(project) -> list[Image]:
    """a.png (64 × 48) and b.png (80 × 60), ingested, in that order."""
    return import_helpers.add_images(project, [("a.png", (64, 48)), ("b.png", (80, 60))])


# REST API ----------------------------------------------------------------------------------------


@pytest.fixture
def clear_throttles():
    """Throttle counters live in the cache: the test starts with none (the API tests use it)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(project, manager) -> World:
    return build_world(project, user=manager)


@pytest.fixture
def foreign(db, admin_user) -> World:
    """A project none of the test's members belong to."""
    owner = make_user("frank")
    project = project_create(user=owner, name="Elsewhere", classes=[{"name": "dog"}])
    return build_world(project, user=owner, annotator=make_user("fiona"))


@pytest.fixture
def users(admin_user, manager, annotator, outsider) -> dict:
    return {"admin": admin_user, "manager": manager, "annotator": annotator, "outsider": outsider}


@pytest.fixture
def api_for(users):
    """`api_for("manager")`: an APIClient authenticated by token as that role (anonymous: none)."""
    return lambda role: token_client(users.get(role))
