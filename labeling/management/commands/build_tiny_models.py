from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from inference.registry import build_tiny_models


class Command(BaseCommand):
    help = "Write tiny random Grounding DINO, SAM 3 and SAM models (LABELGPT_MODELS=tiny uses them)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", type=Path, default=None, help="Folder (default: LABELGPT_MODELS_DIR/tiny)."
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, out: Path | None, seed: int, **options):
        folder = build_tiny_models(out or settings.LABELGPT_MODELS_DIR / "tiny", seed=seed)
        self.stdout.write(f"Tiny models written to {folder}")
