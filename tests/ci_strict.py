"""Under CI=true no test may pass by not running: a skip is a failure, and so is an xfail unless it
is strict (`@pytest.mark.xfail(strict=True, reason=...)`: it fails the run when the test starts
passing) and says why.

A pytest plugin with no Django import; tests/conftest.py takes its hooks (so they apply to every
test under tests/), and tests/test_ci_strict.py runs it with `-p tests.ci_strict` on throwaway
test files.
"""

from __future__ import annotations

import os

import pytest


def ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _skip_reason(longrepr) -> str:
    """The reason pytest keeps in a skip report: (path, line, "Skipped: reason") or text."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        return f"{reason} ({path}:{line})"
    return str(longrepr)


def _allowed_xfail(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("xfail")
    if marker is None:  # pytest.xfail() called in the test: never strict
        return False
    strict = marker.kwargs.get("strict", item.config.getini("xfail_strict"))
    return bool(strict) and bool(marker.kwargs.get("reason") or marker.args)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if not ci() or not report.skipped:
        return report
    if hasattr(report, "wasxfail"):
        if _allowed_xfail(item):
            return report
        message = (
            f"xfail under CI=true, and only a strict xfail with a reason is allowed: "
            f"{report.wasxfail or '(no reason)'}"
        )
        del report.wasxfail
    else:
        message = f"skipped under CI=true (CI must run every test): {_skip_reason(report.longrepr)}"
    report.outcome = "failed"
    report.longrepr = message
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module skipped as a whole (pytest.importorskip, pytest.skip(allow_module_level=True))."""
    report = yield
    if ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (CI must run every test): {_skip_reason(report.longrepr)}"
    return report
