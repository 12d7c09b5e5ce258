"""Test-only helpers (a small ONNX network and bundle, simulator fixtures) live in tests/helpers/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))
