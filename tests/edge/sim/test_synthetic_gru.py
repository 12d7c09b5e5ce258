"""The synthetic GRU step (the bench's ``edge`` model) against its independent numpy reference."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.model.onnx_cpu import OnnxCpuPredictor
from myoedge.edge.model.replay import replay_test_vectors
from myoedge.edge.sim.bench_model import synthetic_bundle
from myoedge.edge.sim.synthetic_net import (
    STATE_OUTPUT,
    build_gru_onnx,
    gru_reference_outputs,
    random_gru_params,
)


def test_gru_step_matches_the_numpy_reference_over_a_sequence():
    params = random_gru_params(channels=5, muscles=5, hidden=16, seed=3)
    session = ort.InferenceSession(build_gru_onnx(params, window=4), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0.0, 1.0, (12, 4, 5)).astype(np.float32)
    state0 = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 16)).astype(np.float32)
    ref = gru_reference_outputs(params, x, state0)
    state = state0
    for k in range(len(x)):
        theta, forces, state = session.run(None, {"envelopes": x[k:k + 1], "state": state})
        np.testing.assert_allclose(theta, ref["theta"][k:k + 1], atol=1e-4)
        np.testing.assert_allclose(forces, ref["forces"][k:k + 1], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(state, ref[STATE_OUTPUT][k:k + 1], atol=1e-5)
    assert np.abs(ref[STATE_OUTPUT][-1] - ref[STATE_OUTPUT][0]).max() > 1e-3  # the state really moves


def test_edge_size_is_the_shipped_presets():
    # GRU(8 -> 64) and a head 72 -> 64 -> 9, as myoedge.train's edge preset counts it for 8 channels
    gru, head = 3 * 64 * (8 + 64) + 6 * 64, 72 * 64 + 64 + 64 * 9 + 9
    assert random_gru_params(channels=8, muscles=8).n_params == gru + head == 19_465


def test_bench_edge_bundle_is_stateful_and_replays(tmp_path):
    path, n_params = synthetic_bundle(tmp_path / "b", kind="edge-rnn", muscles=("a", "b", "c"), fs_hz=2000.0,
                                      input_bits=24)
    bundle = load_bundle(path)
    assert bundle.stateful and bundle.window == 1 and bundle.state.size == 64
    with OnnxCpuPredictor(bundle) as predictor:
        assert replay_test_vectors(bundle, predictor).check().deviation <= 1e-4
        assert predictor.stateful and predictor.state_size == 64
    assert n_params == random_gru_params(channels=3, muscles=3).n_params


def test_state_swaps_buffers_and_warm_changes_nothing(tmp_path):
    muscles = ("a", "b", "c")
    path, _ = synthetic_bundle(tmp_path / "b", kind="edge-rnn", muscles=muscles, fs_hz=2000.0, input_bits=24)
    x = np.random.default_rng(5).uniform(0.0, 1.0, (9, 1, 3)).astype(np.float32)
    ref = gru_reference_outputs(random_gru_params(channels=3, muscles=3), x)
    with OnnxCpuPredictor(load_bundle(path)) as predictor:
        for round_ in range(2):
            predictor.reset_state()
            for k in range(len(x)):
                predictor.warm()  # scratch buffers: neither the state nor the outputs move
                out = predictor.predict(x[k])
                np.testing.assert_allclose(out["theta"], ref["theta"][k:k + 1], atol=1e-4)
                np.testing.assert_allclose(out[STATE_OUTPUT], ref[STATE_OUTPUT][k:k + 1], atol=1e-5)
                np.testing.assert_array_equal(predictor.state, out[STATE_OUTPUT])  # no copy: the same buffer
                predictor.warm()
                np.testing.assert_allclose(predictor.state, ref[STATE_OUTPUT][k:k + 1], atol=1e-5)
            assert round_ == 0 or np.abs(predictor.state).max() > 0
