"""scripts/check_imports.py: import cycles, imports inside functions and private names used across
modules, found from the source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import check_imports  # noqa: E402


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": "from . import b\n",
            "app/b.py": "from app.a import thing\n",
            "app/c.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from app import d\n"
                "def run():\n    from app.d import helper\n    return helper\n"
            ),
            "app/d.py": "import app.c\nimport json\n\nclass Job:\n    def go(self):\n        import os\n",
            "app/sub/__init__.py": "",
            "app/sub/e.py": "from ..c import run\n",
        },
    )


def test_it_reports_module_level_cycles_function_imports_and_the_cycles_they_hide(tree):
    problems = check_imports.check(["app"], tree)

    assert problems == [
        "app/c.py:5: import of app.d inside run()",
        "import cycle: app.a ↔ app.b",
        "import cycle hidden by imports inside functions: app.c ↔ app.d",
    ]


def test_relative_imports_and_parent_packages_are_edges(tree):
    known = set(check_imports.modules_of(["app"], tree))
    imports = check_imports.imports_of("app.sub.e", tree / "app/sub/e.py", known)

    assert [(i.target, i.function) for i in imports] == [("app.c", None)]
    assert check_imports.parents("app.sub.e") == ["app", "app.sub"]


def test_a_method_import_of_the_standard_library_is_not_reported(tree):
    write(tree, {"app/d.py": "class Job:\n    def go(self):\n        import os\n"})

    assert not [p for p in check_imports.check(["app"], tree) if "app/d.py" in p]


def test_private_names_of_another_module_are_reported(tmp_path):
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": "def _helper():\n    pass\n\ndef public():\n    return _helper()\n",
            "app/b.py": "from app.a import _helper, public\n",
            "app/c.py": "from app import a\n\ndef run():\n    return a._helper(), a.public(), a.__name__\n",
            "app/d.py": "import app.a as alias\n\nVALUE = alias._helper\n",
        },
    )

    assert check_imports.check(["app"], tmp_path) == [
        "app/b.py:1: imports _helper from app.a (private to that module)",
        "app/c.py:4: uses app.a._helper (private to that module)",
        "app/d.py:3: uses app.a._helper (private to that module)",
    ]


def test_the_command_exits_1_and_prints_each_problem(tree):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_imports.py"), "--root", str(tree), "app"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "import cycle: app.a ↔ app.b" in done.stdout


def test_the_application_has_no_import_cycle_no_hidden_import_and_no_private_name_crossing():
    assert check_imports.check(list(check_imports.PACKAGES)) == []
