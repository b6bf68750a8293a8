"""The JavaScript unit tests (tests/js/*.test.mjs, the review page's modules under static/js/) run
by Node's built-in test runner: `node --test tests/js/`, no npm package needed.

Without node the test is skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = ROOT / "tests" / "js"


def test_the_js_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        reason = "node is missing: install Node.js 20 or later (Debian: apt-get install nodejs)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the JS unit tests must run)", pytrace=False)
        pytest.skip(reason)
    assert sorted(JS_TESTS.glob("*.test.mjs")), f"no JS test files under {JS_TESTS}"
    result = subprocess.run(
        [node, "--test", f"{JS_TESTS.relative_to(ROOT)}/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"node --test tests/js/ exited {result.returncode}:\n{output}", pytrace=False)
