"""inference.registry with the admin's lists (ModelConfig.detectors / .segmenters): a name not
listed loads nothing, a listed name loads what it maps to, and a local model that does not load
raises ModelUnavailable naming the model only (the path and the reason go to the log)."""

from __future__ import annotations

import logging
import re

import pytest

from inference import registry
from inference.errors import ModelLoadError, ModelUnavailable
from inference.models import grounding_dino


@pytest.fixture
def loads(monkeypatch):
    """Every Grounding DINO load is recorded and refused (as a hub without network would)."""
    calls = []

    def refuse(source, *, local_files_only):
        calls.append((source, local_files_only))
        raise OSError(f"cannot reach the hub for {source}")

    monkeypatch.setattr(grounding_dino, "_from_pretrained", refuse)
    registry.clear()
    yield calls
    registry.clear()


def config(tmp_path, **fields) -> registry.ModelConfig:
    return registry.ModelConfig(
        mode="real", models_dir=tmp_path, device="cpu", click_backend="torch", **fields
    )


def test_a_detector_not_listed_loads_nothing(tmp_path, loads):
    listed = config(tmp_path, detectors={"tiny": "IDEA-Research/grounding-dino-tiny"})

    for name in ["some-org/any-repo", "/etc", "IDEA-Research/grounding-dino-base"]:
        with pytest.raises(
            ModelUnavailable, match=re.escape(f'The detector "{name}" is not available on this server.')
        ):
            registry.get_detector(listed, name)

    assert loads == []


def test_a_listed_name_loads_what_it_maps_to(tmp_path, loads):
    listed = config(tmp_path, detectors={"tiny": "IDEA-Research/grounding-dino-tiny"})

    with pytest.raises(ModelLoadError, match="grounding-dino-tiny"):  # a hub id: the hub's reason is said
        registry.get_detector(listed, "tiny")

    assert [source for source, _ in loads] == ["IDEA-Research/grounding-dino-tiny"] * 2  # cache, then hub


def test_a_listed_local_folder_that_does_not_load_is_named_not_described(tmp_path, loads, caplog):
    folder, file = tmp_path / "missing", tmp_path / "a-file"
    file.write_text("x")
    listed = config(tmp_path, detectors={"gone": str(folder), "file": str(file)})

    with caplog.at_level(logging.ERROR, logger="inference.registry"):
        for name in ("gone", "file"):
            with pytest.raises(ModelUnavailable) as raised:
                registry.get_detector(listed, name)
            assert str(raised.value) == f'The detector "{name}" is not available on this server.'

    assert str(folder) in caplog.text and str(file) in caplog.text  # what the admin needs, in the log
    assert loads == []


def test_a_segmenter_not_listed_loads_nothing(tmp_path, monkeypatch):
    listed = config(tmp_path, segmenters=frozenset({"vit_b"}))
    monkeypatch.setattr("inference.download.fetch_checkpoint", pytest.fail)

    for get in (registry.get_segmenter, registry.get_click_segmenter, registry.segmenter_cache_name):
        with pytest.raises(
            ModelUnavailable, match=r'The segmenter "vit_h" is not available on this server\.'
        ):
            get(listed, "vit_h")


def test_a_listed_segmenter_checkpoint_that_is_missing_is_named_not_described(tmp_path, caplog):
    missing = tmp_path / "sam_vit_b.pth"
    listed = config(tmp_path, segmenters=frozenset({"vit_b"}), sam_checkpoints={"vit_b": str(missing)})
    registry.clear()

    with caplog.at_level(logging.ERROR, logger="inference.registry"):
        for get in (registry.get_segmenter, registry.get_click_segmenter):
            with pytest.raises(ModelUnavailable) as raised:
                get(listed, "vit_b")
            assert str(raised.value) == 'The segmenter "vit_b" is not available on this server.'

    assert str(missing) in caplog.text
