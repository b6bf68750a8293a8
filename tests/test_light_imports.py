"""A web process loads no model library until it needs one: importing the whole app (every URL's
view, the API, the Celery tasks) must not import torch, transformers or segment-anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns  # imports every view module and the API
import labeling.tasks, webapp.celery
heavy = sorted(m for m in ("torch", "transformers", "segment_anything", "onnxruntime") if m in sys.modules)
print(",".join(heavy))
"""


def test_importing_the_app_loads_no_model_library():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded at import time: {done.stdout.strip()}"
