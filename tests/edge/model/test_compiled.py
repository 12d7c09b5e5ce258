"""The compiled CPU backend: every operator the compiler handles against ONNX Runtime on the same graph,
constant folding, refusals, the predictor contract with state, and the selection that falls back."""

from __future__ import annotations

import logging
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import bundle_meta

from myoedge.edge.model import (
    BackendUnavailable,
    CompiledCpuPredictor,
    OnnxCpuPredictor,
    UnsupportedGraph,
    graph_compile,
    replay_test_vectors,
    select_predictor,
)
from myoedge.edge.model import select as select_module
from myoedge.edge.model.bundle import load_bundle, write_bundle
from myoedge.edge.model.graph_compile import compile_graph
from myoedge.edge.sim.bench_model import PACKAGED, synthetic_bundle
from myoedge.ground.errors import InputError

RNG = np.random.default_rng(3)


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _model(path, nodes, inputs, outputs, inits=(), opset=17):
    """Write a graph: ``inputs`` {name: shape} float32, ``outputs`` names (shapes left to inference)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _agree(path, inputs, *, steps=3, atol=2e-5):
    """Compile ``path`` and run it beside ONNX Runtime on ``steps`` random inputs; returns the graph."""
    compiled = compile_graph(path, inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [n for n, _ in compiled.outputs]
    for _ in range(steps):
        feed = {n: RNG.uniform(-2.0, 2.0, s).astype(np.float32) for n, s in inputs.items()}
        want = session.run(names, feed)
        got = [np.zeros(s, np.float32) for _, s in compiled.outputs]
        compiled.run(*(feed[n] for n, _ in compiled.inputs), *got)
        for name, g, w in zip(names, got, want, strict=True):
            assert g.shape == w.shape, name
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol, err_msg=name)
    return compiled


ELEMENTWISE = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Tanh", "Exp", "Sin", "Cos", "Reciprocal", "Sigmoid",
               "Softplus", "Relu", "Neg", "Abs"]


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_elementwise_operator_matches_onnxruntime(op, tmp_path):
    binary = op in ("Add", "Sub", "Mul", "Div", "Max", "Min")
    inits = [_init("w", RNG.uniform(0.5, 1.5, (3,)).astype(np.float32))]  # broadcast along the last axis
    node = helper.make_node(op, ["x", "w"] if binary else ["x"], ["y"])
    _agree(_model(tmp_path / "m.onnx", [node], {"x": (2, 3)}, ["y"], inits), {"x": (2, 3)})


def test_layout_operators_match_onnxruntime(tmp_path):
    """Slice (negative bounds, a step), Split, Gather (scalar and vector), Squeeze, Unsqueeze, Transpose,
    Reshape, Flatten, Concat, Expand, Clip and ReduceSum in one graph."""
    i64 = np.int64
    inits = [_init("s0", np.array([1, -1], i64)), _init("s1", np.array([4, 0], i64)),
             _init("sa", np.array([2, 0], i64)), _init("ss", np.array([-1, 1], i64)),
             _init("split", np.array([1, 2], i64)), _init("g0", np.array(1, i64)),
             _init("g1", np.array([2, 0], i64)), _init("ax0", np.array([0], i64)),
             _init("ax1", np.array([1], i64)),
             _init("shape", np.array([0, -1], i64)), _init("eshape", np.array([2, 1, 4], i64)),
             _init("lo", np.float32(-0.5)), _init("hi", np.float32(0.7))]
    nodes = [
        helper.make_node("Slice", ["x", "s0", "s1", "sa", "ss"], ["sl"]),
        helper.make_node("Split", ["x", "split"], ["p0", "p1"], axis=0),
        helper.make_node("Gather", ["x", "g0"], ["ga"], axis=2),
        helper.make_node("Gather", ["x", "g1"], ["gb"], axis=2),
        helper.make_node("Squeeze", ["p0", "ax0"], ["sq"]),
        helper.make_node("Unsqueeze", ["sq", "ax1"], ["un"]),
        helper.make_node("Transpose", ["x"], ["tr"], perm=[2, 0, 1]),
        helper.make_node("Reshape", ["tr", "shape"], ["re"]),
        helper.make_node("Flatten", ["x"], ["fl"], axis=2),
        helper.make_node("Concat", ["p1", "x"], ["co"], axis=0),
        helper.make_node("Expand", ["ga", "eshape"], ["ex"]),
        helper.make_node("Clip", ["x", "lo", "hi"], ["cl"]),
        helper.make_node("ReduceSum", ["x", "ax1"], ["rk"], keepdims=1),
        helper.make_node("ReduceSum", ["x", "ax1"], ["rn"], keepdims=0),
    ]
    outs = ["sl", "p1", "gb", "un", "re", "fl", "co", "ex", "cl", "rk", "rn"]
    compiled = _agree(_model(tmp_path / "m.onnx", nodes, {"x": (3, 4, 5)}, outs, inits), {"x": (3, 4, 5)})
    assert "np.float32(" in compiled.source  # the clip bounds, written as float32 literals


def test_matmul_gemm_and_gru_match_onnxruntime(tmp_path):
    hidden, features = 6, 4
    inits = [_init("w", RNG.standard_normal((features, 5)).astype(np.float32)),
             _init("gb", RNG.standard_normal((3, features)).astype(np.float32)),
             _init("gc", RNG.standard_normal((3,)).astype(np.float32)),
             _init("W", RNG.standard_normal((1, 3 * hidden, features)).astype(np.float32) * 0.5),
             _init("R", RNG.standard_normal((1, 3 * hidden, hidden)).astype(np.float32) * 0.5),
             _init("B", RNG.standard_normal((1, 6 * hidden)).astype(np.float32) * 0.5)]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]),
             helper.make_node("Gemm", ["x2", "gb", "gc"], ["ge"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("GRU", ["x", "W", "R", "B", "", "h0"], ["y", "yh"], hidden_size=hidden,
                              linear_before_reset=1)]
    shapes = {"x": (2, 1, features), "x2": (2, features), "h0": (1, 1, hidden)}
    _agree(_model(tmp_path / "m.onnx", nodes, shapes, ["mm", "ge", "y", "yh"], inits), shapes)


def test_constant_branches_are_folded(tmp_path):
    inits = [_init("a", np.float32([1.0, 2.0])), _init("b", np.float32([3.0, -4.0]))]
    nodes = [helper.make_node("Mul", ["a", "b"], ["ab"]), helper.make_node("Softplus", ["ab"], ["sp"]),
             helper.make_node("Add", ["x", "sp"], ["y"])]
    compiled = _agree(_model(tmp_path / "m.onnx", nodes, {"x": (2,)}, ["y"], inits), {"x": (2,)})
    assert compiled.folded == 2
    assert "np.exp" not in compiled.source and compiled.source.count(" = (x0[") == 2


def test_unsupported_and_unreadable_graphs_are_refused(tmp_path):
    inits = [_init("k", RNG.standard_normal((2, 3, 3)).astype(np.float32))]
    conv = _model(tmp_path / "c.onnx", [helper.make_node("Conv", ["x", "k"], ["y"])], {"x": (1, 3, 8)}, ["y"],
                  inits)
    with pytest.raises(UnsupportedGraph, match="operator Conv"):
        compile_graph(conv, {"x": (1, 3, 8)})
    lbr0 = _model(tmp_path / "g.onnx", [helper.make_node("GRU", ["x", "W", "R"], ["y"], hidden_size=2)],
                  {"x": (1, 1, 2)}, ["y"], [_init("W", np.zeros((1, 6, 2), np.float32)),
                                            _init("R", np.zeros((1, 6, 2), np.float32))])
    with pytest.raises(UnsupportedGraph, match="linear_before_reset=1"):
        compile_graph(lbr0, {"x": (1, 1, 2)})
    with pytest.raises(UnsupportedGraph, match="opset 11"):
        relu = [helper.make_node("Relu", ["x"], ["y"])]
        compile_graph(_model(tmp_path / "o.onnx", relu, {"x": (2,)}, ["y"], opset=11), {"x": (2,)})
    add = [helper.make_node("Add", ["x", "nope"], ["y"])]
    dangling = _model(tmp_path / "d.onnx", add, {"x": (2,)}, ["y"])
    with pytest.raises(UnsupportedGraph, match="Add node .* cannot be compiled: KeyError"):
        compile_graph(dangling, {"x": (2,)})
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        compile_graph(bad, {"x": (2,)})
    with pytest.raises(InputError, match="cannot read"):
        compile_graph(tmp_path / "missing.onnx", {"x": (2,)})


def test_a_graph_too_wide_to_compile_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_compile, "MAX_LINES", 50)
    wide = _model(tmp_path / "w.onnx", [helper.make_node("Tanh", ["x"], ["y"])], {"x": (60,)}, ["y"])
    with pytest.raises(UnsupportedGraph, match="more than 50 scalar statements"):
        compile_graph(wide, {"x": (60,)})
    assert compile_graph(wide, {"x": (40,)}).source.count("np.tanh") == 40


def test_a_window_model_compiles_and_replays(tmp_path):
    """A stateless bundle (a window in, a dense layer out) through the compiled backend and auto."""
    window, muscles = 4, ("FCR", "ECRL", "ECU")
    inits = [_init("flat", np.array([1, -1], np.int64)),
             _init("w", RNG.standard_normal((window * 3, 4)).astype(np.float32)),
             _init("b", RNG.standard_normal((4,)).astype(np.float32)),
             _init("s0", np.array([0], np.int64)), _init("s1", np.array([1], np.int64)),
             _init("s4", np.array([4], np.int64)), _init("ax", np.array([1], np.int64))]
    nodes = [helper.make_node("Reshape", ["envelopes", "flat"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["g"]),
             helper.make_node("Slice", ["g", "s0", "s1", "ax"], ["theta"]),
             helper.make_node("Slice", ["g", "s1", "s4", "ax"], ["gf"]),
             helper.make_node("Softplus", ["gf"], ["forces"])]
    model = _model(tmp_path / "m.onnx", nodes, {"envelopes": (1, window, 3)}, ["theta", "forces"], inits)
    inputs = RNG.uniform(0.0, 1.0, (5, window, 3)).astype(np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    refs = [session.run(["theta", "forces"], {"envelopes": x[None]}) for x in inputs]
    path = write_bundle(tmp_path / "bundle", onnx_bytes=model.read_bytes(),
                        meta=bundle_meta(window=window, muscles=muscles), test_inputs=inputs,
                        test_outputs={"theta": np.stack([r[0][0] for r in refs]),
                                      "forces": np.stack([r[1][0] for r in refs])})
    bundle = load_bundle(path)
    with CompiledCpuPredictor(bundle) as p:
        assert not p.stateful and replay_test_vectors(bundle, p).check().deviation < 1e-5
        np.testing.assert_allclose(p.predict(inputs[2])["forces"], refs[2][1], rtol=1e-5)
    assert isinstance(select_predictor(bundle), CompiledCpuPredictor)


@pytest.fixture(scope="module")
def observer():
    return load_bundle(PACKAGED["edge"])


def test_shipped_observer_replays_and_tracks_onnxruntime_with_state(observer):
    """The packaged observer: the test vectors within the bundle's tolerance, and 300 steps with the state
    carried by each backend agree with ONNX Runtime; chunks with warm-ups between equal one pass."""
    with CompiledCpuPredictor(observer) as fast, OnnxCpuPredictor(observer) as ref:
        assert replay_test_vectors(observer, fast).check().deviation < observer.tolerance / 10
        windows = RNG.uniform(0.0, 1.0, (300, *fast.input_spec.shape[1:])).astype(np.float32)
        got, want = [], []
        for k, w in enumerate(windows):
            got.append(fast.predict(w)["theta"].copy())
            want.append(ref.predict(w)["theta"].copy())
            if k % 50 == 0:
                fast.warm()  # scratch buffers: changes nothing
        np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-3)
        np.testing.assert_allclose(fast.state, ref.state, atol=1e-3)
        fast.reset_state()
        np.testing.assert_array_equal(fast.state[0], np.asarray(observer.state.initial, np.float32))
        again = [fast.predict(w)["theta"].copy() for w in windows]
        np.testing.assert_array_equal(np.array(again), np.array(got))


def test_auto_picks_the_compiled_graph_and_falls_back(tmp_path, caplog, monkeypatch, observer):
    with caplog.at_level(logging.INFO, logger="myoedge.edge"):
        p = select_predictor(observer)
    assert isinstance(p, CompiledCpuPredictor) and "the compiled graph" in caplog.records[-1].getMessage()
    p.close()
    paper, _ = synthetic_bundle(tmp_path / "paper", kind="paper", muscles=("BFSH", "RF"), fs_hz=2000.0,
                                input_bits=24)
    with caplog.at_level(logging.INFO, logger="myoedge.edge"):
        p = select_predictor(load_bundle(paper))
    assert isinstance(p, OnnxCpuPredictor) and "operator Conv" in caplog.records[-1].getMessage()
    with pytest.raises(UnsupportedGraph, match="operator Conv"):
        select_predictor(load_bundle(paper), backend="numba")

    class Missed:
        passed, deviation, tolerance = False, 1.0, 1e-3

    monkeypatch.setattr(select_module, "replay_test_vectors", lambda bundle, predictor: Missed())
    with caplog.at_level(logging.INFO, logger="myoedge.edge"):
        p = select_predictor(observer)
    assert isinstance(p, OnnxCpuPredictor)
    assert any(r.levelno == logging.WARNING and "misses the test vectors" in r.getMessage()
               for r in caplog.records)


def test_without_the_onnx_package_auto_keeps_onnxruntime(observer, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(BackendUnavailable, match="pip install onnx"):
        CompiledCpuPredictor(observer)
    assert isinstance(select_predictor(observer), OnnxCpuPredictor)
