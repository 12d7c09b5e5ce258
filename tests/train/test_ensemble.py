"""The ensemble of stateful edge networks: the mean of its members, one load in the hand for all, members
fitted with their own seeds (the first the single fit), side by side or inline with the same result, a
run folder round trip, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_data import short_wrist

import myoedge.ground.host as host
from myoedge.ground.errors import InputError
from myoedge.train import fit as fit_module
from myoedge.train.ensemble import assemble
from myoedge.train.fit import fit
from myoedge.train.models import ModelConfig, build_model, start_states
from myoedge.train.run import TrainConfig, TrainedModel

TINY = {"iterations": 8, "chunk": 40, "burn_in": 10, "batch": 2, "model": {"hidden": 8}}


@pytest.fixture(scope="module")
def wrist():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster, and far faster beside other work
    yield short_wrist(2)
    torch.set_num_threads(before)


def _observers(members: int) -> torch.nn.Module:
    torch.manual_seed(4)
    net = build_model(ModelConfig.for_preset("edge-observer", n_channels=3, n_muscles=3, hidden=6,
                                             members=members))
    with torch.no_grad():
        for part in [net, *net.members]:
            part.theta_std.fill_(0.4)
            part.force_std.fill_(20.0)
        for part in net.members:  # a joint that a load in the hand moves
            part.joint.copy_(torch.tensor([0.01, 0.1, 0.3, 0.1, 0.5, 0.0]))
            part.load_terms.copy_(torch.tensor([0.02, 1.5, 0.2]))
            part.arm_coeffs.copy_(torch.tensor([[0.02, 0.01, 0.0, 0.0], [-0.02, 0.0, 0.003, 0.0],
                                                [0.01, -0.005, 0.0, 0.001]]))
    return net.eval()


def test_the_ensemble_is_the_mean_of_its_members_with_one_load_for_all():
    net = _observers(2)
    x = torch.rand(1, 40, 3)
    with torch.no_grad():
        start = start_states(net, [2.0])
        assert net.state_size == sum(m.state_size for m in net.members) and start[0, net.LOAD_INDEX] == 2.0
        out, state = net(x, start)
        alone = [m(x, start_states(m, [2.0])) for m in net.members]
        torch.testing.assert_close(out, (alone[0][0] + alone[1][0]) / 2, rtol=0, atol=1e-6)
        torch.testing.assert_close(state, torch.cat([s for _, s in alone], dim=-1), rtol=0, atol=1e-6)
        # the runtime sets the load once, at LOAD_INDEX: the second member's copy follows it
        one_slot = net.initial_state()
        one_slot[0, net.LOAD_INDEX] = 2.0
        theta, forces, _ = net.step(x[:, :1], one_slot)
        steps = [m.step(x[:, :1], start_states(m, [2.0])) for m in net.members]
        torch.testing.assert_close(theta, (steps[0][0] + steps[1][0]) / 2, rtol=0, atol=1e-6)
        torch.testing.assert_close(forces, (steps[0][1] + steps[1][1]) / 2, rtol=0, atol=1e-5)
        unloaded, _, _ = net.step(x[:, :1], net.initial_state())
    assert not torch.allclose(unloaded, theta)  # the load matters, so the test above could fail


def test_members_are_single_fits_with_their_own_seeds_side_by_side_or_inline(wrist, monkeypatch, tmp_path):
    train, test = wrist
    single = {s: fit(train, TrainConfig.for_preset("edge-rnn", **TINY), seed=s) for s in (3, 4)}
    monkeypatch.setattr(host, "usable_cores", lambda: 2)
    beside = fit(train, TrainConfig.for_preset("edge-rnn", members=2, **TINY), seed=3)
    monkeypatch.setattr(host, "usable_cores", lambda: 1)
    inline = fit(train, TrainConfig.for_preset("edge-rnn", members=2, **TINY), seed=3)
    assert [m["seed"] for m in beside.info["members"]] == [3, 4]
    assert beside.model_config.members == 2 and beside.stateful
    for ensemble in (beside, inline):
        for member, seed in zip(ensemble.model.members, (3, 4), strict=True):
            alone = single[seed].model.state_dict().values()
            for a, b in zip(member.state_dict().values(), alone, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
    theta, forces = beside.predict(test[0])
    alone = [single[s].predict(test[0]) for s in (3, 4)]
    np.testing.assert_allclose(theta, (alone[0][0] + alone[1][0]) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(forces, (alone[0][1] + alone[1][1]) / 2, rtol=1e-5, atol=1e-4)
    assert np.abs(alone[0][0] - alone[1][0]).max() > 1e-3  # two seeds differ: the mean is not either one
    assert len(beside.history) == 8 and beside.history[-1]["L_F"] == pytest.approx(
        (single[3].history[-1]["L_F"] + single[4].history[-1]["L_F"]) / 2)
    back = TrainedModel.load(beside.save(tmp_path / "run"))
    assert back.model_config.members == 2 and back.config.members == 2
    for a, b in zip(beside.predict(test[1]), back.predict(test[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_member_that_cannot_be_fitted_is_a_clear_error(wrist, monkeypatch):
    def broken(*args):
        raise MemoryError("no room for a second member")

    monkeypatch.setattr(host, "usable_cores", lambda: 1)  # inline, where the patch holds
    monkeypatch.setattr(fit_module, "_fit_member", broken)
    with pytest.raises(InputError, match="seed 1 could not be fitted .*no room for a second member"):
        fit(wrist[0], TrainConfig.for_preset("edge-rnn", members=2, **TINY), seed=0)


def test_refusals(wrist):
    with pytest.raises(InputError, match="members must be a positive int"):
        TrainConfig.for_preset("edge-rnn", members=0)
    with pytest.raises(InputError, match="not a model override"):
        TrainConfig.for_preset("edge-rnn", model={"members": 2})
    with pytest.raises(InputError, match="averages stateful networks"):
        ModelConfig.for_preset("edge-window", n_channels=2, n_muscles=2, members=2)
    with pytest.raises(InputError, match="averages stateful networks"):  # before any fit starts
        fit(wrist[0], TrainConfig.for_preset("edge-window", members=2, iterations=1), seed=0)
    a = fit(wrist[0], TrainConfig.for_preset("edge-rnn", **{**TINY, "iterations": 1}), seed=0)
    b = fit(wrist[0][:1], TrainConfig.for_preset("edge-rnn", **{**TINY, "iterations": 1}), seed=1)
    with pytest.raises(InputError, match="fitted on the same data"):
        assemble([a, b], a.config)


def test_an_ensemble_bundle_replays_on_every_cpu_backend_with_its_state(wrist, tmp_path):
    from myoedge.edge.model import CompiledCpuPredictor, OnnxCpuPredictor, replay_test_vectors
    from myoedge.edge.model.bundle import load_bundle
    from myoedge.train.export import export_bundle

    cfg = TrainConfig.for_preset("edge-observer", correction_validation=0.0, members=2, **TINY)
    trained = fit(wrist[0], cfg, seed=0)
    export_bundle(trained, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    single = 3 + TINY["model"]["hidden"]
    assert bundle.meta.state.size == 2 * single and bundle.meta.state.load_index == 2
    for backend in (OnnxCpuPredictor, CompiledCpuPredictor):
        with backend(bundle) as predictor:
            assert replay_test_vectors(bundle, predictor).check().passed
