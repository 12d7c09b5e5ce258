"""Stateful bundles (the state contract, docs/bundle.md "Model state"): a leaky integrator as the model.

The graph: state_next = a * state + mean over the window of the envelopes (per channel), theta = sum of
state_next, forces = 2 * state_next. Its numpy reference is written here, so the test checks ONNX Runtime,
the bundle's sequence test vectors, reset_state and the refusals against an independent computation.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_models import OPSET, bundle_meta, make_bundle

from myoedge.edge.model.bundle import load_bundle, write_bundle
from myoedge.edge.model.onnx_cpu import OnnxCpuPredictor
from myoedge.edge.model.replay import replay_test_vectors
from myoedge.ground.errors import FormatError, InputError

W, MUSCLES, A = 4, ("FCR", "ECRL", "ECU"), 0.9
M = len(MUSCLES)


def _graph() -> bytes:
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("ReduceMean", ["envelopes"], ["mean"], axes=[1], keepdims=0),  # (1, M)
        helper.make_node("Mul", ["state", "a"], ["decayed"]),
        helper.make_node("Add", ["decayed", "mean"], ["state_next"]),
        helper.make_node("ReduceSum", ["state_next", "axes1"], ["theta"], keepdims=1),
        helper.make_node("Mul", ["state_next", "two"], ["forces"]),
    ]
    inits = [helper.make_tensor("axes1", TensorProto.INT64, [1], [1]),
             helper.make_tensor("a", f, [1], [A]), helper.make_tensor("two", f, [1], [2.0])]
    graph = helper.make_graph(
        nodes, "leaky", [helper.make_tensor_value_info("envelopes", f, [1, W, M]),
                         helper.make_tensor_value_info("state", f, [1, M])],
        [helper.make_tensor_value_info("theta", f, [1, 1]),
         helper.make_tensor_value_info("forces", f, [1, M]),
         helper.make_tensor_value_info("state_next", f, [1, M])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]).SerializeToString()


def _reference(inputs: np.ndarray, initial: np.ndarray) -> dict[str, np.ndarray]:
    state, rows = initial.astype(np.float64), {"theta": [], "forces": [], "state_next": []}
    for x in inputs:
        state = A * state + x.mean(axis=0)
        rows["theta"].append([state.sum()])
        rows["forces"].append(2 * state)
        rows["state_next"].append(state.copy())
    return {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}


def _write(path, *, initial=(0.5, -0.5, 0.0), warmup=7, reference=None, version=2, load_index=None):
    rng = np.random.default_rng(3)
    inputs = rng.uniform(0, 1, (12, W, M)).astype(np.float32)
    meta = bundle_meta(window=W, muscles=MUSCLES)
    meta["version"] = version
    if version < 3:
        del meta["adc"]  # the ADC block came with version 3
    meta["state"] = {"input": "state", "output": "state_next", "size": M, "initial": list(initial),
                     "warmup_steps": warmup}
    if load_index is not None:
        meta["state"]["load_index"] = load_index
    ref = reference if reference is not None else _reference(inputs, np.asarray(initial))
    write_bundle(path, onnx_bytes=_graph(), meta=meta, test_inputs=inputs, test_outputs=ref)
    return inputs


def test_a_stateful_bundle_replays_its_sequence_and_resets(tmp_path):
    inputs = _write(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.stateful and bundle.warmup_steps == 7 and bundle.meta.version == 2 and bundle.adc is None
    with OnnxCpuPredictor(bundle) as p:
        assert p.stateful and p.state_size == M
        assert replay_test_vectors(bundle, p).check().deviation < 1e-5
        np.testing.assert_allclose(p.state, [[0.5, -0.5, 0.0]])  # replay leaves the state reset
        first = p.predict(inputs[0])["theta"].copy()
        again = p.predict(inputs[0])["theta"].copy()
        assert not np.allclose(first, again)  # the state carried over between calls
        p.reset_state()
        np.testing.assert_allclose(p.predict(inputs[0])["theta"], first)
        with pytest.raises(ValueError):
            p.state[0, 0] = 1.0  # the view is read-only


def test_a_wrong_state_trajectory_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    inputs = rng.uniform(0, 1, (12, W, M)).astype(np.float32)
    ref = _reference(inputs, np.zeros(M))  # references from another initial state
    _write(tmp_path / "b", reference=ref)
    bundle = load_bundle(tmp_path / "b")
    with OnnxCpuPredictor(bundle) as p, pytest.raises(InputError, match="does not reproduce"):
        replay_test_vectors(bundle, p).check()


def test_state_block_checks(tmp_path):
    with pytest.raises(FormatError, match="needs bundle version 2"):
        _write(tmp_path / "v1", version=1)
    good = _reference(np.zeros((12, W, M), np.float32), np.zeros(M))
    with pytest.raises(FormatError, match="state.initial"):
        _write(tmp_path / "short", initial=(0.0, 1.0), reference=good)
    with pytest.raises(FormatError, match="state.warmup_steps"):
        _write(tmp_path / "neg", warmup=-1)
    rng = np.random.default_rng(3)
    inputs = rng.uniform(0, 1, (12, W, M)).astype(np.float32)
    ref = _reference(inputs, np.asarray((0.5, -0.5, 0.0)))
    del ref["state_next"]
    with pytest.raises(FormatError, match="state_next"):
        _write(tmp_path / "nostate", reference=ref)


def test_a_graph_without_the_state_input_is_refused(tmp_path):
    _write(tmp_path / "b")
    meta_path = tmp_path / "b" / "meta.json"
    meta = json.loads(meta_path.read_text())
    model = onnx.load_from_string(_graph())
    model.graph.input[1].name = "hidden"
    for node in model.graph.node:
        node.input[:] = ["hidden" if i == "state" else i for i in node.input]
    data = model.SerializeToString()
    (tmp_path / "b" / "model.onnx").write_bytes(data)
    meta["onnx"]["sha256"] = hashlib.sha256(data).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="inputs disagree"):
        OnnxCpuPredictor(load_bundle(tmp_path / "b"))


def test_window_models_have_no_state(tmp_path):
    path, _ = make_bundle(tmp_path / "window")
    with OnnxCpuPredictor(load_bundle(path)) as p:
        assert not p.stateful and p.state.shape == (1, 0)
        p.reset_state()  # a no-op


def test_the_load_in_the_hand_is_set_in_the_initial_state_and_kept_by_resets(tmp_path):
    inputs = _write(tmp_path / "b", load_index=2)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.meta.state.load_index == 2 and bundle.meta.to_dict()["state"]["load_index"] == 2
    with OnnxCpuPredictor(bundle) as p:
        first = p.predict(inputs[0])["theta"].copy()
        p.set_load(4.0)
        np.testing.assert_allclose(p.state, [[0.5, -0.5, 4.0]])
        loaded = p.predict(inputs[0])["theta"].copy()
        np.testing.assert_allclose(loaded[0], _reference(inputs[:1], np.array([0.5, -0.5, 4.0]))["theta"][0],
                                   rtol=1e-6)
        assert not np.allclose(first, loaded)
        p.predict(inputs[1])
        p.reset_state()  # after lost frames: the load stays
        np.testing.assert_allclose(p.state, [[0.5, -0.5, 4.0]])
        for bad in (-1.0, float("nan"), 80.0, True):
            with pytest.raises(InputError, match="from 0 to 50 kg"):
                p.set_load(bad)
    _write(tmp_path / "plain")  # no load_index: a model without a load
    with OnnxCpuPredictor(load_bundle(tmp_path / "plain")) as p:
        with pytest.raises(InputError, match="load_index"):
            p.set_load(1.0)
    with pytest.raises(FormatError, match="state.load_index"):
        _write(tmp_path / "bad", load_index=3)
