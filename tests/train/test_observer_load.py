"""A load in the hand in the observer's equation of motion: identified from trials at several loads,
carried in the state unchanged, set by the sequence's recording (training) or the runtime (bundles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.edge.model import OnnxCpuPredictor
from myoedge.edge.model.bundle import load_bundle
from myoedge.train import export
from myoedge.train.data import load_sequences, split_time
from myoedge.train.fit import fit
from myoedge.train.models import ModelConfig, build_model, start_states
from myoedge.train.run import TrainConfig


def _observer() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(ModelConfig.for_preset("edge-observer", n_channels=3, n_muscles=3, hidden=8))
    with torch.no_grad():
        net.theta_std.fill_(0.5)
        net.force_std.fill_(10.0)
        net.joint.copy_(torch.tensor([0.01, 0.1, 0.3, 0.1, 0.5, 0.0]))
        net.load_terms.copy_(torch.tensor([0.1, 3.0, 0.5]))  # d² and g·d of a hand 0.3 m from the axis
        net.arm_coeffs.copy_(torch.tensor([[0.02, 0.01, 0.0, 0.0], [-0.02, 0.0, 0.003, 0.0],
                                           [0.01, -0.005, 0.0, 0.001]]))
    return net.eval()


def test_the_load_moves_the_joint_is_carried_unchanged_and_chunks_equal_one_pass():
    net = _observer()
    x = torch.rand(1, 40, 3).expand(2, -1, -1)
    start = start_states(net, [0.0, 3.0])
    assert start[:, net.LOAD_INDEX].tolist() == [0.0, 3.0]
    with torch.no_grad():
        whole, last = net(x, start)
        assert last[:, net.LOAD_INDEX].tolist() == [0.0, 3.0]  # the step passes the load on
        assert (whole[0, :, 0] - whole[1, :, 0]).abs().max() > 0.05  # a held mass pulls the arm down
        state, parts = start, []
        for a, b in ((0, 9), (9, 40)):
            out, state = net(x[:, a:b], state)
            parts.append(out)
        torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=0, atol=1e-6)
        state, theta = start[1:], []
        for t in range(40):
            th, _, state = net.step(x[1:, t:t + 1], state)
            theta.append(th[0, 0])
        expect, _ = net.to_physical(whole[1])
        torch.testing.assert_close(torch.stack(theta), expect, rtol=0, atol=1e-5)
    net.load_terms.zero_()  # no identified load terms: the load changes nothing
    with torch.no_grad():
        same, _ = net(x, start)
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=1e-6)


def test_a_fit_on_trials_at_three_loads_identifies_the_load_and_the_bundle_takes_it(tmp_path):
    subject = make_subject("elbow6", 1, family="hard")
    recs = simulate_session(subject, duration_s=6.0, trial_paces=("mix1",), loads=(0.0, 2.0, 4.0))
    seqs = load_sequences(recs, profiles={subject.name: true_profile(subject)})
    assert sorted(s.load_kg for s in seqs) == [0.0, 2.0, 4.0]
    train, test = split_time(seqs)[subject.name]
    cfg = TrainConfig.for_preset("edge-observer", iterations=8, chunk=50, burn_in=10, batch=4,
                                 model={"hidden": 8})
    trained = fit(train, cfg, seed=0)
    distance = recs[0].meta.extra["load_distance_m"]
    assert trained.model.load_terms[0].item() == pytest.approx(distance**2, rel=0.25)
    heavy = next(s for s in test if s.load_kg == 4.0)
    theta_heavy, _ = trained.predict(heavy)
    theta_light, _ = trained.predict(heavy.__class__(**{**heavy.__dict__, "load_kg": 0.0}))
    assert np.abs(theta_heavy - theta_light).max() > 1e-3  # the trial's load is in its prediction
    export.export_bundle(trained, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.meta.state.load_index == trained.model.LOAD_INDEX
    with OnnxCpuPredictor(bundle) as p:
        p.set_load(4.0)
        got = np.array([p.predict(heavy.envelopes[t:t + 1].astype(np.float32))["theta"][0, 0]
                        for t in range(60)])
    with torch.no_grad():
        out, _ = trained.model(torch.as_tensor(heavy.envelopes[:60], dtype=torch.float32)[None],
                               start_states(trained.model, [4.0]))
        expect, _ = trained.model.to_physical(out[0])
    np.testing.assert_allclose(got, expect.numpy(), rtol=0, atol=1e-4)
