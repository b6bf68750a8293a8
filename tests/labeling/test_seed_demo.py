"""manage.py seed_demo: demo users with printed passwords, a project of skimage's photos."""

from __future__ import annotations

import io
import json
import re
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from PIL import Image as PILImage

from labeling.management.commands.seed_demo import DEMO_PROJECT, SAMPLE_PHOTOS
from labeling.models import Image, LabelClass, Membership, Project

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def printed_logins(output: str) -> dict[str, str]:
    return dict(re.findall(r"login: (\S+)\s+password: (\S+)", output))


def test_it_creates_an_admin_and_an_annotator_with_printed_passwords():
    logins = printed_logins(seed())
    assert set(logins) == {"admin", "annotator"}
    admin, annotator = User.objects.get(username="admin"), User.objects.get(username="annotator")
    assert admin.is_staff and admin.is_superuser
    assert not annotator.is_staff and not annotator.is_superuser
    assert admin.check_password(logins["admin"])
    assert annotator.check_password(logins["annotator"])
    assert logins["admin"] != logins["annotator"]


def test_it_creates_the_demo_project_with_its_classes_and_photos():
    output = seed()
    project = Project.objects.get(name=DEMO_PROJECT)
    assert list(project.classes.values_list("name", flat=True)) == ["cat", "person", "coffee cup", "rocket"]
    assert sorted(project.images.values_list("original_name", flat=True)) == sorted(
        f"{name}.jpg" for name in SAMPLE_PHOTOS
    )
    assert f"{len(SAMPLE_PHOTOS)} image(s) added, 0 already there" in output
    chelsea = project.images.get(original_name="chelsea.jpg")
    assert (chelsea.width, chelsea.height) == (451, 300)
    with PILImage.open(chelsea.file.path) as photo:
        assert photo.format == "JPEG"
        assert photo.size == (451, 300)
    assert all(image.thumbnail for image in project.images.all())


def test_it_makes_the_admin_manager_and_the_annotator_a_member():
    seed()
    project = Project.objects.get(name=DEMO_PROJECT)
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles == {"admin": Membership.Role.MANAGER, "annotator": Membership.Role.ANNOTATOR}


def test_running_it_twice_adds_nothing_twice():
    first = printed_logins(seed())
    counts = (
        User.objects.count(),
        Project.objects.count(),
        LabelClass.objects.count(),
        Image.objects.count(),
    )
    second_output = seed()
    assert (
        User.objects.count(),
        Project.objects.count(),
        LabelClass.objects.count(),
        Image.objects.count(),
    ) == counts
    assert Membership.objects.count() == 2
    assert f"0 image(s) added, {len(SAMPLE_PHOTOS)} already there" in second_output
    # The passwords stay the same: the first ones still log in.
    assert printed_logins(second_output) == first
    assert User.objects.get(username="admin").check_password(first["admin"])


def test_it_keeps_the_credentials_in_a_private_file_under_var_dir(_var_dir):
    logins = printed_logins(seed())
    path = _var_dir / "demo-credentials.json"
    assert json.loads(path.read_text()) == logins
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_it_gives_new_passwords_on_request():
    first = printed_logins(seed())
    second = printed_logins(seed("--reset-passwords"))
    assert second["admin"] != first["admin"]
    admin = User.objects.get(username="admin")
    assert admin.check_password(second["admin"])
    assert not admin.check_password(first["admin"])


def test_it_prints_no_password_when_quiet():
    output = seed("--quiet")
    assert "password" not in output
    assert User.objects.filter(username="admin").exists()


def test_it_does_nothing_when_asked_to_seed_only_an_empty_database(manager):
    Project.objects.create(name="Existing")
    assert seed("--if-empty") == ""
    assert not User.objects.filter(username="admin").exists()
    assert not Project.objects.filter(name=DEMO_PROJECT).exists()


def test_the_demo_project_finds_more_with_the_first_listed_sam3_model(settings):
    settings.LABELGPT_DETECTORS = {
        "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
        "sam3-local": "/models/sam3",
        "facebook/sam3": "facebook/sam3",
    }
    seed()
    project = Project.objects.get(name=DEMO_PROJECT)
    assert project.detector == "IDEA-Research/grounding-dino-tiny"
    assert project.exemplar_detector == "sam3-local"


def test_without_a_listed_sam3_model_the_demo_has_no_find_more(settings):
    settings.LABELGPT_DETECTORS = {"IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny"}
    seed()
    assert Project.objects.get(name=DEMO_PROJECT).exemplar_detector == ""
