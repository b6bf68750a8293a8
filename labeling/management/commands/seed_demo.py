"""Create the demo: an admin, an annotator, and a project of skimage's sample photos."""

from __future__ import annotations

import io
import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from labeling import model_choices
from labeling.models import Membership, Project
from labeling.services.images import images_ingest
from labeling.services.projects import membership_set, project_create

DEMO_PROJECT = "Demo: everyday objects"
DEMO_CLASSES = [
    {"name": "cat", "prompt": "cat"},
    {"name": "person", "prompt": "person"},
    {"name": "coffee cup", "prompt": "coffee cup"},
    {"name": "rocket", "prompt": "rocket"},
]
# Photos bundled inside scikit-image's wheel (no download).
SAMPLE_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "camera"]


def credentials_path():
    return settings.VAR_DIR / "demo-credentials.json"


def read_credentials() -> dict[str, str]:
    path = credentials_path()
    return json.loads(path.read_text()) if path.exists() else {}


def sample_photo_files() -> list[tuple[str, io.BytesIO]]:
    from PIL import Image as PILImage
    from skimage import data

    files = []
    for name in SAMPLE_PHOTOS:
        buffer = io.BytesIO()
        PILImage.fromarray(getattr(data, name)()).save(buffer, "JPEG", quality=92)
        buffer.seek(0)
        files.append((f"{name}.jpg", buffer))
    return files


class Command(BaseCommand):
    help = "Create demo users (admin, annotator) and a demo project with sample photos. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--reset-passwords", action="store_true", help="Give both users new passwords.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any project exists.")
        parser.add_argument("--quiet", action="store_true", help="Do not print the logins.")

    def handle(self, *args, reset_passwords=False, if_empty=False, quiet=False, **options):
        if if_empty and Project.objects.exists():
            return
        credentials = read_credentials()
        with transaction.atomic():
            admin = self._user("admin", staff=True, credentials=credentials, reset=reset_passwords)
            annotator = self._user("annotator", staff=False, credentials=credentials, reset=reset_passwords)
            project = Project.objects.filter(name=DEMO_PROJECT).first()
            if project is None:
                project = project_create(
                    user=admin,
                    name=DEMO_PROJECT,
                    description="Sample photos from scikit-image: an astronaut, a cat, coffee, a rocket.",
                    classes=DEMO_CLASSES,
                )
                # "Find more like this" works in the demo when the server lists a SAM 3 model.
                sam3 = [name for name, _ in model_choices.exemplar_detector_choices() if name]
                if sam3:
                    project.exemplar_detector = sam3[0]
                    project.save(update_fields=["exemplar_detector"])
            membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
        report = images_ingest(project=project, files=sample_photo_files(), user=admin)
        path = credentials_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2))
        path.chmod(0o600)
        self.stdout.write(
            f'Demo project "{project.name}" (id {project.pk}): {len(report.created)} image(s) added, '
            f"{len(report.duplicates)} already there."
        )
        if not quiet:
            self._print_logins(credentials)

    def _user(self, username: str, *, staff: bool, credentials: dict, reset: bool):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created or reset or username not in credentials:
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.save()
            credentials[username] = password
        return user

    def _print_logins(self, credentials: dict) -> None:
        if not credentials:
            self.stdout.write("Demo logins: none recorded (run seed_demo --reset-passwords).")
            return
        for username, password in credentials.items():
            self.stdout.write(f"  login: {username:<10} password: {password}")
