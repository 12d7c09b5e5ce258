"""The layering of design.md §2, checked: body and edge never need torch, and imports point down."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# layer -> layers it may import (besides itself and the root package)
ALLOWED = {
    "body": set(),
    "edge": {"body"},
    "calibrate": {"body", "edge"},
    "train": {"body", "edge"},
    "deploy": {"edge", "body"},
}


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "myoedge" and len(parts) > 1 and parts[1] in ALLOWED:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down_only(layer):
    bad = {}
    for path in sorted((ROOT / layer).rglob("*.py")):
        extra = imported_layers(path) - ALLOWED[layer] - {layer}
        if extra:
            bad[str(path.relative_to(ROOT))] = sorted(extra)
    assert not bad, f"{layer} imports layers above it: {bad}"


# edge room -> rooms it may import; the rooms follow the data (wire -> dsp -> model -> loop), sim drives them
EDGE_ROOMS = {
    "wire": set(),
    "dsp": set(),
    "model": {"dsp"},
    "loop": {"wire", "dsp", "model"},
    "sim": {"wire", "dsp", "model", "loop"},
    "monitor": {"loop"},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] == "myoedge"}


@pytest.mark.parametrize("room", sorted(EDGE_ROOMS))
def test_edge_rooms_import_downward_only(room):
    bad = {}
    for path in sorted((ROOT / "edge" / room).rglob("*.py")):
        rooms = {m.split(".")[2] for m in imported_modules(path) if m.startswith("myoedge.edge.")}
        extra = rooms - EDGE_ROOMS[room] - {room}
        if extra:
            bad[str(path.relative_to(ROOT))] = sorted(extra)
    assert not bad, f"edge/{room} imports rooms after it: {bad}"


def test_edge_top_level_is_only_the_rooms_and_the_stable_names():
    top = sorted(p.name for p in (ROOT / "edge").glob("*.py"))
    assert top == ["__init__.py", "envelope.py", "protocol.py"]
    assert sorted(p.name for p in (ROOT / "edge").iterdir() if p.is_dir() and p.name != "__pycache__") == \
        sorted(EDGE_ROOMS)


def test_the_root_package_ground_imports_no_layer_and_no_layer_imports_the_hub():
    bad = {}
    for path in sorted((ROOT / "myoedge" / "ground").rglob("*.py")):
        up = {m for m in imported_modules(path) if not m.startswith("myoedge.ground")}
        if up:
            bad[str(path.relative_to(ROOT))] = sorted(up)
    for layer in ALLOWED:
        for path in sorted((ROOT / layer).rglob("*.py")):
            hub = {m for m in imported_modules(path) if m in ("myoedge.cli", "myoedge.demo")}
            if hub:
                bad[str(path.relative_to(ROOT))] = sorted(hub)
    assert not bad, f"imports of the CLI hub or from ground upward: {bad}"


def test_the_device_side_never_loads_torch():
    code = (
        "import sys\n"
        "from myoedge.cli import build_parser\n"
        "build_parser()\n"
        "import myoedge.body.subjects, myoedge.edge.loop.runtime, myoedge.edge.sim.bench\n"
        "import myoedge.calibrate.cli\n"
        "import myoedge.deploy.cli\n"
        "heavy = [m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)


def test_the_verb_table_loads_no_heavy_library():
    """``myoedge --help`` and argument errors answer at once: building the parser imports no SciPy,
    ONNX Runtime, numba or torch (each verb loads what it needs in its handler)."""
    code = (
        "import sys\n"
        "from myoedge.cli import build_parser\n"
        "build_parser()\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(loaded & {'scipy', 'onnxruntime', 'numba', 'torch'})\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
