"""The bundle ``myoedge bench`` times by default is the shipped ``edge`` model as the export makes it now."""

from __future__ import annotations

from myoedge.edge.sim.bench_model import PACKAGED
from myoedge.train.bench_bundle import graph_signature, make_bench_bundle


def test_the_packaged_bench_bundle_has_the_graph_the_export_makes_now(tmp_path):
    # a change to the observer's step or to the export makes a different graph: remake the bundle
    # (python -m myoedge.train.bench_bundle edge/sim/bundles/edge) so the bench times what ships
    make_bench_bundle(tmp_path / "edge")
    fresh = graph_signature(tmp_path / "edge" / "model.onnx")
    assert fresh == graph_signature(PACKAGED["edge"] / "model.onnx")
