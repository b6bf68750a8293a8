"""tests/ci_strict.py: under CI=true every skip, and every xfail but a strict one with a reason, fails
the run with the reason in the message; without CI they stay skips and xfails.

Runs pytest in a subprocess on a throwaway test file (outside tests/, so without the Django
fixtures), with the plugin loaded by `-p tests.ci_strict`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# No installed plugin (no Django, no hypothesis...): only this one, and no ini file.
OPTIONS = ["-p", "tests.ci_strict", "-p", "no:cacheprovider", "-c", os.devnull, "-rA", "-q"]

CASES = """
import pytest

def test_runs():
    assert True

def test_skipped():
    pytest.skip("needs the frobnicator")

@pytest.mark.skipif(True, reason="not on this platform")
def test_skipped_by_marker():
    pass

@pytest.fixture
def service():
    pytest.skip("the service is down")

def test_skipped_in_a_fixture(service):
    pass

@pytest.mark.xfail(reason="known bug 12")
def test_loose_xfail():
    assert False

@pytest.mark.xfail(strict=True, reason="known bug 13, fixed by the next release")
def test_strict_xfail_with_a_reason():
    assert False

@pytest.mark.xfail(strict=True)
def test_strict_xfail_without_a_reason():
    assert False

def test_imperative_xfail():
    pytest.xfail("later")
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_module_anywhere")

def test_never_collected():
    pass
"""


def run_pytest(tmp_path: Path, ci: str | None, source: str = CASES) -> tuple[int, str]:
    (tmp_path / "test_cases.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *OPTIONS, "--rootdir", str(tmp_path), "test_cases.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


def outcomes(output: str) -> dict[str, str]:
    """The -rA summary: test function → PASSED / FAILED / ERROR / SKIPPED / XFAIL."""
    found = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in {"PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL"} and "::" in rest:
            found[rest.split(" ")[0].split("::")[-1]] = word
    return found


def test_under_ci_every_skip_and_loose_xfail_fails_with_its_reason(tmp_path):
    code, output = run_pytest(tmp_path, "true")

    assert code == 1, output
    assert outcomes(output) == {
        "test_runs": "PASSED",
        "test_skipped": "FAILED",
        "test_skipped_by_marker": "ERROR",  # skipif is decided in the setup
        "test_skipped_in_a_fixture": "ERROR",  # in its setup
        "test_loose_xfail": "FAILED",
        "test_strict_xfail_with_a_reason": "XFAIL",
        "test_strict_xfail_without_a_reason": "FAILED",
        "test_imperative_xfail": "FAILED",
    }, output
    for reason in (
        "skipped under CI=true (CI must run every test): Skipped: needs the frobnicator",
        "skipped under CI=true (CI must run every test): Skipped: not on this platform",
        "skipped under CI=true (CI must run every test): Skipped: the service is down",
        "xfail under CI=true, and only a strict xfail with a reason is allowed: known bug 12",
        "only a strict xfail with a reason is allowed: later",
    ):
        assert reason in output, reason


def test_under_ci_a_module_skipped_as_a_whole_is_a_collection_error(tmp_path):
    code, output = run_pytest(tmp_path, "true", SKIPPED_MODULE)

    assert code == 2, output  # pytest's code for an interrupted (collection) run
    assert (
        "ERROR test_cases.py - skipped under CI=true (CI must run every test): Skipped: could not" in output
    )


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_skips_and_xfails_stay_what_they_are(tmp_path, ci):
    code, output = run_pytest(tmp_path, ci)
    assert code == 0, output
    assert "1 passed, 3 skipped, 4 xfailed" in output, output

    code, output = run_pytest(tmp_path, ci, SKIPPED_MODULE)
    assert code == 5 and "1 skipped" in output, output  # 5: no test ran
