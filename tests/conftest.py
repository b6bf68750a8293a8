"""Shared fixtures: users with roles, a project, image bytes made with Pillow and plain images
ingested from them; and, under
CI=true, every skip (and every xfail but a strict one with a reason) is a failure (tests/ci_strict.py)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from PIL import Image as PILImage

from labeling.models import Image, Membership
from labeling.services.images import images_ingest
from labeling.services.projects import membership_set, project_create

# The hooks apply to every test under tests/ once they are names of this conftest.
from tests.ci_strict import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """PBKDF2 costs ~0.4 s per user; tests do not need strong hashes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Every test writes its files under its own temporary media folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


_DB_FIXTURES = {
    "db",
    "transactional_db",
    "live_server",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
}


@pytest.fixture(autouse=True)
def _fresh_cache(request):
    """Every test that uses the database starts with an empty cache: without CACHE_URL the cache is
    a table of the database (settings.CACHES) that a transactional test's flush leaves as it is, so
    API throttle counts would outlive their test. (django-axes' failed logins are model rows: the
    rollback or flush after each test empties them.)"""
    if request.node.get_closest_marker("django_db") or _DB_FIXTURES & set(request.fixturenames):
        request.getfixturevalue("db")
        cache.clear()


def make_user(username: str, **fields):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


@pytest.fixture
def admin_user(db):
    return make_user("boss", is_staff=True, is_superuser=True)


@pytest.fixture
def manager(db):
    return make_user("manny")


@pytest.fixture
def annotator(db):
    return make_user("anna")


@pytest.fixture
def outsider(db):
    return make_user("olga")


@pytest.fixture
def project(manager, annotator):
    project = project_create(
        user=manager,
        name="Kitchen",
        classes=[{"name": "cat"}, {"name": "coffee cup", "prompt": "a cup of coffee"}],
    )
    membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    return project


def image_bytes(fmt: str = "PNG", size=(64, 48), color=(200, 30, 30), **save_options) -> bytes:
    """A small real image in the given Pillow format."""
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, fmt, **save_options)
    return buffer.getvalue()


def plain_images(project, n: int) -> list[Image]:
    """n small one-color images with different bytes (for tests that never run the models)."""
    files = [(f"plain-{i}.png", io.BytesIO(image_bytes(color=(i, 100, 200)))) for i in range(n)]
    report = images_ingest(project=project, files=files)
    return list(Image.objects.filter(pk__in=[pk for _, pk in report.created]).order_by("pk"))


@pytest.fixture
def client_for(client):
    """Log a user in on the test client: `client_for(user)`."""

    def login(user):
        client.force_login(user)
        return client

    return login
