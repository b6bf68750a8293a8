"""The JS unit tests' fixtures (tests/js/fixtures/coco.json) are what tests/js/make_fixtures.py
makes from pycocotools and numpy: written again to a temporary file, byte for byte the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "js" / "make_fixtures.py"
COMMITTED = ROOT / "tests" / "js" / "fixtures" / "coco.json"


def test_the_committed_js_fixtures_are_what_pycocotools_writes(tmp_path):
    out = tmp_path / "coco.json"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, cwd=ROOT, timeout=120)
    made = json.loads(out.read_text(encoding="utf-8"))
    assert made == json.loads(COMMITTED.read_text(encoding="utf-8")), (
        "tests/js/fixtures/coco.json is stale: run .venv/bin/python tests/js/make_fixtures.py"
    )
    assert {len(made[name]) > 0 for name in ("rle", "brush", "move", "views")} == {True}
