"""The recurrent edge model and its sequence training: stepping == one pass == chunks with carried state,
truncated back-propagation with burn-in, deterministic fits, ONNX `step` parity on a multi-step sequence
including the state, reset, and the bundle's state block."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_data import short_wrist

from myoedge.edge.model import OnnxCpuPredictor, replay_test_vectors
from myoedge.edge.model.bundle import load_bundle
from myoedge.ground.errors import InputError
from myoedge.train import export
from myoedge.train.fit import fit
from myoedge.train.models import ModelConfig, build_model
from myoedge.train.presets import PRESETS, preset
from myoedge.train.run import TrainConfig, TrainedModel

SMALL = {"hidden": 12}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def wrist():
    return short_wrist()


@pytest.fixture(scope="module")
def trained(wrist):
    cfg = TrainConfig.for_preset("edge-rnn", iterations=30, chunk=60, burn_in=20, batch=4, model=SMALL)
    return fit(wrist[0], cfg, seed=0)


STATEFUL = ("edge-rnn", "edge-ssm", "edge-observer", "edge-observer+stage", "edge-observer-stage",
            "edge-observer+stage*2", "edge-rnn*2")


def _variant(name: str) -> tuple[str, dict]:
    """A preset name and model overrides: ``+stage`` with the force stage on, ``-stage`` off; ``*K`` an
    ensemble of K members (a training setting, returned as ``members``)."""
    name, star, k = name.partition("*")
    members = {"members": int(k)} if star else {}
    base, sign, _ = name.partition("stage")
    if not sign:
        return name, members
    return base[:-1], {"force_stage": base.endswith("+"), **members}


def _net(name, seed=0):
    torch.manual_seed(seed)
    base, overrides = _variant(name)
    net = build_model(ModelConfig.for_preset(base, n_channels=3, n_muscles=3, hidden=8, **overrides))
    with torch.no_grad():
        for part in [net, *getattr(net, "members", ())]:  # an ensemble: each member's buffers too
            part.env_mean.copy_(torch.tensor([0.1, 0.2, 0.3]))
            part.theta_std.fill_(0.5)
            part.force_std.fill_(10.0)
            if hasattr(part, "joint"):  # the observer: a joint whose muscles move it
                part.joint.copy_(torch.tensor([0.01, 0.1, 0.3, 0.1, 0.5, 0.0]))
                part.arm_coeffs.copy_(torch.tensor([[0.02, 0.01, 0.0, 0.0], [-0.02, 0.0, 0.003, 0.0],
                                                    [0.01, -0.005, 0.0, 0.001]]))
    return net.eval()


@pytest.mark.parametrize("name", STATEFUL)
def test_stepping_equals_one_pass_and_chunks_with_carried_state(name):
    net = _net(name)
    x = torch.rand(1, 50, 3)
    with torch.no_grad():
        whole, last = net(x)
        state, parts = net.initial_state(), []
        for a, b in ((0, 7), (7, 31), (31, 50)):  # chunks with the state carried
            out, state = net(x[:, a:b], state)
            parts.append(out)
        torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=0, atol=1e-6)
        torch.testing.assert_close(state, last, rtol=0, atol=1e-6)
        state, theta = net.initial_state(), []
        for t in range(50):
            th, f, state = net.step(x[:, t:t + 1], state)
            theta.append(th)
        expect, _ = net.to_physical(whole[0])
        torch.testing.assert_close(torch.cat(theta)[:, 0], expect, rtol=0, atol=1e-5)
        assert f.shape == (1, 3) and state.shape == (1, net.state_size)


@pytest.mark.parametrize("name", STATEFUL)
def test_state_matters_and_reset_restores_it(name):
    net = _net(name)
    x = torch.rand(1, 1, 3)
    with torch.no_grad():
        a = net.step(x, net.initial_state())
        b = net.step(x, torch.full((1, net.state_size), 0.7))
        c = net.step(x, net.initial_state())
    assert not torch.allclose(a[0], b[0])
    torch.testing.assert_close(a[0], c[0], rtol=0, atol=0)


def test_presets_are_typed_records():
    assert preset("edge-rnn").stateful and preset("edge-rnn").exports and not preset("edge-rnn").uses_time
    assert not preset("edge-window").stateful and preset("edge-window").kind == "window"
    assert preset("pi-cnn").uses_time and not preset("pi-cnn").exports
    assert preset("edge").stateful == (preset("edge").kind != "window") and "edge-window" in PRESETS
    assert preset("edge-ssm").stateful and preset("edge-ssm").kind == "state-space"
    with pytest.raises(InputError, match="preset must be one of"):
        preset("gru")
    # a run folder from before the records (no "kind", preset "edge") is the TCN
    old = ModelConfig.from_dict({"preset": "edge", "n_channels": 2, "n_muscles": 2, "dilations": [1, 2]})
    assert old.kind == "window" and old.window == 7


def test_fit_is_deterministic_learns_and_predicts_every_step(wrist, trained):
    again = fit(wrist[0], trained.config, seed=0)
    for (k, v), w in zip(trained.model.state_dict().items(), again.model.state_dict().values()):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)
    hist = [h["L_F"] + h["L_theta"] for h in trained.history]
    assert np.mean(hist[-5:]) < 0.7 * np.mean(hist[:5])
    test = wrist[1][0]
    theta, forces = trained.predict(test)
    assert theta.shape == (test.n,) and forces.shape == (test.n, 5) and np.all(np.isfinite(forces))
    assert trained.stateful and trained.window == 1 and trained.samples.shape == (64, 1, 5)


def test_carry_state_and_burn_in_change_training(wrist, trained):
    carried = fit(wrist[0], TrainConfig(**{**trained.config.to_dict(), "carry_state": True}), seed=0)
    cold = fit(wrist[0], TrainConfig(**{**trained.config.to_dict(), "burn_in": 0}), seed=0)
    for other in (carried, cold):
        assert other.history[-1]["total"] != trained.history[-1]["total"]
        assert np.isfinite(other.history[-1]["total"])
    with pytest.raises(InputError, match="burn_in"):
        TrainConfig.for_preset("edge-rnn", burn_in=-1)


def test_run_folder_round_trip(trained, wrist, tmp_path):
    trained.save(tmp_path / "run")
    back = TrainedModel.load(tmp_path / "run")
    for a, b in zip(trained.predict(wrist[1][1]), back.predict(wrist[1][1])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", STATEFUL)
def test_onnx_step_matches_torch_on_a_sequence_with_state(name, trained, wrist, tmp_path):
    base, overrides = _variant(name)
    if name != trained.config.preset:
        members = overrides.pop("members", 1)
        cfg = TrainConfig(**{**trained.config.to_dict(), "preset": base, "iterations": 10, "members": members,
                             "model": {**SMALL, **overrides}})
        trained = fit(wrist[0], cfg, seed=0)
    inputs = trained.samples
    ref = export.reference_outputs(trained, inputs)
    assert ref["theta"].shape == (64, 1) and ref["state_next"].shape == (64, trained.model.state_size)
    report = export.export_bundle(trained, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    with OnnxCpuPredictor(bundle) as onnx:
        got = replay_test_vectors(bundle, onnx).check().outputs
        again = replay_test_vectors(bundle, onnx).outputs
    assert report["max_scaled_error"] <= 1e-4 and "state_next" in report["max_abs_error"]
    assert export.check_parity(ref, got, export.output_scales(trained))["max_scaled_error"] <= 1e-4
    # the state evolves; replaying from the initial state again gives the same sequence (reset)
    assert np.abs(ref["state_next"][-1] - ref["state_next"][0]).max() > 1e-3
    np.testing.assert_array_equal(again["theta"], got["theta"])
    # a whole-sequence forward gives the replayed outputs
    with torch.no_grad():
        out, _ = trained.model(torch.from_numpy(inputs[:, -1])[None])
        theta, _ = trained.model.to_physical(out[0])
    np.testing.assert_allclose(ref["theta"][:, 0], theta.numpy(), rtol=0, atol=1e-5)


def test_export_meta_has_the_state_block(trained, tmp_path, monkeypatch):
    seen = {}

    def capture(path, *, onnx_bytes, meta, test_inputs, test_outputs, overwrite, check):
        seen.update(meta=meta, inputs=test_inputs, outputs=test_outputs)
        return path

    monkeypatch.setattr(export, "write_bundle", capture)
    report = export.export_bundle(trained, tmp_path / "b")
    state = seen["meta"].to_dict()["state"]
    assert seen["meta"].version == 3 and report["vectors"] == 64
    assert state == {"input": "state", "output": "state_next", "size": 12, "initial": [0.0] * 12,
                     "warmup_steps": 20}
    assert seen["outputs"]["state_next"].shape == (64, 12) and seen["inputs"].shape == (64, 1, 5)
