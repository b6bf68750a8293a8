"""collectstatic with the production storage: the ES modules import each other by hashed names."""

from __future__ import annotations

import json
import re

from django.core.management import call_command
from django.test import override_settings

STORAGE = {"BACKEND": "webapp.storage.ManifestStaticStorage"}


def test_hashed_modules_import_hashed_modules(tmp_path, settings):
    storages = {**settings.STORAGES, "staticfiles": STORAGE}
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
    paths = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed_entry = tmp_path / paths["js/review.js"]
    imports = re.findall(r'from\s+"\./([^"]+)"', hashed_entry.read_text())
    assert imports, "the hashed review.js imports no module"
    hashed_names = {
        paths[f"js/{name}"].removeprefix("js/") for name in ("canvas.js", "editor.js", "keymap.js")
    }
    assert hashed_names <= set(imports), f"review.js imports {imports}, not the hashed {hashed_names}"
    assert not {"canvas.js", "editor.js", "keymap.js"} & set(imports)
