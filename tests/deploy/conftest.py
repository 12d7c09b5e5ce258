"""Shared fixtures: a small model bundle made by the edge tests' ONNX helper (tests/edge/onnx_models.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "edge"))  # one definition of the test network

from onnx_models import make_bundle  # noqa: E402

from myoedge.edge.bundle import load_bundle  # noqa: E402


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
