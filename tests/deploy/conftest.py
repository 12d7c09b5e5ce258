"""Shared fixtures: a small model bundle made by the test ONNX helper (tests/helpers/onnx_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_models import make_bundle

from myoedge.edge.model.bundle import load_bundle


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    """A valid bundle folder (window 8, muscles FCR/ECRL/ECU); tests must not modify it."""
    path, _ = make_bundle(tmp_path_factory.mktemp("bundles") / "net")
    return path


@pytest.fixture
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


@pytest.fixture
def fresh_bundle(tmp_path):
    """A bundle of its own that a test may change (e.g. write an engine into)."""
    path, _ = make_bundle(tmp_path / "net")
    return load_bundle(path)
