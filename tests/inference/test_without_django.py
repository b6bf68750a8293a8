"""inference/ is plain Python: every module of it imports with Django, the labeling app, the
webapp project and Celery absent (each blocked in sys.modules, in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("django", "labeling", "webapp", "celery", "rest_framework")

# Run in a subprocess: this test process has Django loaded already. A module set to None in
# sys.modules makes any `import` of it (or of a submodule) raise ImportError.
SCRIPT = """
import importlib, json, os, pkgutil, sys
os.environ.pop("DJANGO_SETTINGS_MODULE", None)
for name in {blocked!r}:
    sys.modules[name] = None
import inference
imported, failed = [], {{}}
for module in pkgutil.walk_packages(inference.__path__, "inference."):
    try:
        importlib.import_module(module.name)
        imported.append(module.name)
    except Exception as exc:
        failed[module.name] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"imported": imported, "failed": failed}}))
"""


def import_inference(blocked: tuple[str, ...]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=blocked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_inference_module_imports_without_django_or_labeling():
    result = import_inference(BLOCKED)

    assert result["failed"] == {}
    assert sorted(result["imported"]) == modules_of("inference")


def modules_of(package: str) -> list[str]:
    """The dotted names of every module and subpackage under a package's folder."""
    names = []
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if len(parts) > 1:
            names.append(".".join(parts))
    return sorted(names)


def test_the_check_catches_a_module_that_needs_a_blocked_package():
    """The same walk, blocking a package inference really uses, reports the modules that need it."""
    result = import_inference(("numpy",))

    assert "inference.masks" in result["failed"]
    assert "numpy" in result["failed"]["inference.masks"]
