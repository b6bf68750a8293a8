"""Fixtures shared by the inference tests: tiny random models built once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_sam_dir(tmp_path_factory):
    """A folder holding the tiny random SAM (inference.models.tiny_sam), built once per session."""
    from inference.models.tiny_sam import build_tiny_sam

    return build_tiny_sam(tmp_path_factory.mktemp("tiny-sam"), seed=0)


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory):
    """The tiny random Grounding DINO (inference.models.tiny_gdino) in a folder, built once per session."""
    from inference.models.tiny_gdino import build_tiny_grounding_dino

    return build_tiny_grounding_dino(tmp_path_factory.mktemp("tiny-grounding-dino"), seed=0)


@pytest.fixture(scope="session")
def tiny_detector(tiny_detector_dir):
    """The tiny Grounding DINO loaded on the CPU (shared: tests must not change it)."""
    from inference.models.grounding_dino import GroundingDinoDetector

    return GroundingDinoDetector.load(tiny_detector_dir, device="cpu")


@pytest.fixture
def clean_registry():
    """The registry's per-process model cache empty before and after the test."""
    from inference import registry

    registry.clear()
    yield registry
    registry.clear()


@pytest.fixture(scope="session")
def tiny_sam3_dir(tmp_path_factory):
    """The tiny random SAM 3 (inference.models.tiny_sam3) in a folder, built once per session."""
    from inference.models.tiny_sam3 import build_tiny_sam3

    return build_tiny_sam3(tmp_path_factory.mktemp("tiny-sam3"), seed=0)
