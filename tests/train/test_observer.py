"""The physics observer (edge-observer): its identified joint integrates the muscle moment into the angle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from myoedge.body.subjects import make_subject, simulate_session
from myoedge.ground.errors import InputError
from myoedge.train.data import load_sequences, split_time
from myoedge.train.models import ModelConfig, build_model
from myoedge.train.observer import integrate, rollout_moment


@pytest.fixture(scope="module")
def hard_wrist():
    subject = make_subject("wrist", 2, family="hard")
    # no profile: MVC from the envelopes and the recorded moment arms, as for a lab's recordings
    seqs = load_sequences(simulate_session(subject, duration_s=6.0), profiles={})
    return subject, split_time(seqs)[subject.name][0]


def _observer(seqs):
    net = build_model(ModelConfig.for_preset("edge-observer", n_channels=5, n_muscles=5, hidden=8))
    info = net.identify(seqs)
    return net.eval(), info


def test_identify_recovers_the_joint_from_the_training_part(hard_wrist):
    subject, train = hard_wrist
    net, info = _observer(train)
    seg = subject.model.segment
    assert info["damping"] == pytest.approx(seg.damping, rel=0.15)
    assert info["inertia"] == pytest.approx(seg.inertia, rel=0.15)
    lo, hi = info["limits"]
    assert lo < min(s.theta.min() for s in train) and hi > max(s.theta.max() for s in train)
    assert float(net.dt[0]) == pytest.approx(1.0 / train[0].rate_hz)


def test_integrating_the_true_forces_follows_the_true_angle(hard_wrist):
    """With the correction off, the integrated equation of motion driven by the recorded forces tracks the
    recorded angle for seconds: the physics inside the forward pass is right at the model rate."""
    _, train = hard_wrist
    net, _ = _observer(train)
    s = max(train, key=lambda q: q.n)
    forces = torch.as_tensor(s.forces, dtype=torch.float32)[None]
    moment = forces @ net.arm_coeffs
    n = s.n
    theta, omega = torch.tensor([float(s.theta[0])]), torch.tensor([float(np.gradient(s.theta, 0.01)[0])])
    zero = torch.zeros(1)
    consts, off = net._constants(zero), torch.zeros(1, n)
    with torch.no_grad():
        got, _, _ = rollout_moment(theta, omega, moment, off, off, off, consts)
    err = got[0, :-1].numpy() - s.theta[1:]
    assert np.sqrt(np.mean(err**2)) < 0.1 * np.std(s.theta)
    # with the gains at 1 the angle is the direct estimate (here 0)
    one = torch.ones(1)
    th, _ = integrate(torch.tensor([0.3]), zero, moment[:, 0, 0], zero, one, zero, consts)
    lo, hi = (float(v) for v in net.limits)
    assert float(th[0]) == pytest.approx(min(max(0.0, lo), hi), abs=1e-6)


def test_forces_are_never_negative_and_the_state_holds_the_angle(hard_wrist):
    _, train = hard_wrist
    net, _ = _observer(train)
    with torch.no_grad():
        net.head[-1].bias[:5].fill_(-20.0)  # strongly negative raw outputs
        out, state = net(torch.rand(2, 30, 5))
        _, forces = net.to_physical(out)
        theta, _ = net.to_physical(out[:, -1])
    assert torch.all(forces >= 0)
    torch.testing.assert_close(state[:, 0], theta, rtol=0, atol=1e-5)
    assert state.shape == (2, net.state_size) and net.state_size == 11


def test_missing_moment_arms_are_a_clear_error(hard_wrist):
    from dataclasses import replace

    _, train = hard_wrist
    bare = [replace(s, moment_arms=None, model=None, physics="none") for s in train]
    with pytest.raises(InputError, match="no moment arms .*the observer needs them"):
        _observer(bare)


def test_a_short_fit_trains_the_direct_angle_and_records_the_identified_joint(hard_wrist):
    from myoedge.train.fit import fit
    from myoedge.train.run import TrainConfig

    _, train = hard_wrist
    cfg = TrainConfig.for_preset("edge-observer", iterations=12, chunk=40, burn_in=10, batch=4,
                                 model={"hidden": 8})
    trained = fit(train, cfg, seed=0)
    assert all("L_direct" in h and np.isfinite(h["L_direct"]) for h in trained.history)
    assert trained.history[-1]["L_direct"] < trained.history[0]["L_direct"]
    joint = trained.info["identified_joint"]
    assert joint["damping"] > 0 and joint["inertia"] > 0 and trained.stateful


def test_the_preset_record():
    from myoedge.train.presets import preset

    record = preset("edge-observer")
    assert record.kind == "observer" and record.stateful and record.exports and not record.uses_time


def test_the_correction_time_is_chosen_on_the_last_part_of_the_training_data(hard_wrist):
    from myoedge.train.correction import CANDIDATES_S
    from myoedge.train.fit import fit
    from myoedge.train.run import TrainConfig

    _, train = hard_wrist
    cfg = TrainConfig.for_preset("edge-observer", iterations=12, chunk=40, burn_in=10, batch=4,
                                 model={"hidden": 8})
    assert cfg.correction_validation == 0.2  # the preset's default
    trained = fit(train, cfg, seed=0)
    joint = trained.info["identified_joint"]
    choice = joint["correction"]
    rmse = {float(t): e for t, e in choice["validation_rmse_deg"].items()}
    assert len(rmse) >= len(CANDIDATES_S) and all(np.isfinite(e) for e in rmse.values())
    within = [t for t, e in rmse.items() if e <= 1.1 * min(rmse.values())]
    assert choice["chosen_s"] == pytest.approx(max(within), rel=1e-3)  # the slowest within 10 % of the best
    assert float(trained.model.correction_s[0]) == pytest.approx(choice["chosen_s"])
    assert joint["correction_s"] == choice["chosen_s"] and choice["validation_steps"] > 0
    plain = fit(train, TrainConfig.for_preset("edge-observer", iterations=12, chunk=40, burn_in=10, batch=4,
                                              model={"hidden": 8}, correction_validation=0.0), seed=0)
    assert "correction" not in plain.info["identified_joint"]
    assert float(plain.model.correction_s[0]) == pytest.approx(choice["identified_s"], rel=0.5)


def test_pieces_too_short_to_hold_out_keep_the_identified_time(hard_wrist):
    from myoedge.train.correction import choose_correction
    from myoedge.train.run import TrainConfig

    _, train = hard_wrist
    short = [s.part(0, 12, tag="short") for s in train]
    cfg = TrainConfig.for_preset("edge-observer", iterations=2, chunk=8, burn_in=2, batch=2,
                                 model={"hidden": 8})
    choice = choose_correction(short, cfg, seed=0, threads=1)
    assert choice["chosen_s"] is None and "too few" in choice["why"]


def test_edge_trains_the_rival_gru_only_where_it_predicts_the_held_out_angle_clearly_better(hard_wrist):
    from myoedge.train.correction import TOLERANCE
    from myoedge.train.fit import fit
    from myoedge.train.run import TrainConfig

    _, train = hard_wrist
    cfg = TrainConfig.for_preset("edge", iterations=12, chunk=40, burn_in=10, batch=4, model={"hidden": 8})
    assert cfg.rival == "edge-rnn" and cfg.correction_validation == 0.2
    trained = fit(train, cfg, seed=0)
    choice = trained.info["selection"]
    observer = choice["validation_rmse_deg"][f"{choice['chosen_s']:.3g}"]
    rival = choice["rival"]["validation_rmse_deg"]
    expected = "edge-rnn" if rival * (1 + TOLERANCE) < observer else "edge"
    assert choice["winner"] == expected
    assert trained.model_config.kind == ("recurrent" if expected == "edge-rnn" else "observer")
    assert trained.stateful and trained.info["train_seconds"] > choice["fit_seconds"] > 0


def test_the_rival_fitted_on_a_second_core_scores_as_it_does_in_this_process(hard_wrist, monkeypatch):
    import myoedge.ground.host as host
    import myoedge.train.correction as correction
    from myoedge.train.run import TrainConfig

    _, train = hard_wrist
    cfg = TrainConfig.for_preset("edge", iterations=6, chunk=30, burn_in=5, batch=2, model={"hidden": 8})
    monkeypatch.setattr(host, "usable_cores", lambda: 2)
    beside = correction.choose_correction(train, cfg, seed=0, threads=1)
    monkeypatch.setattr(host, "usable_cores", lambda: 1)
    inline = correction.choose_correction(train, cfg, seed=0, threads=1)
    assert beside["parallel"] and not inline["parallel"]
    assert beside["rival"]["validation_rmse_deg"] == inline["rival"]["validation_rmse_deg"]
    assert beside["validation_rmse_deg"] == inline["validation_rmse_deg"]
    assert beside["winner"] == inline["winner"] and beside["chosen_s"] == inline["chosen_s"]
    monkeypatch.setattr(host, "usable_cores", lambda: 2)
    assert host.side_by_side(2) == 2 and host.side_by_side(5) == 2 and host.side_by_side(1) == 1
    monkeypatch.setattr(host.multiprocessing, "parent_process", lambda: object())
    assert host.side_by_side(2) == 1  # inside an evaluation's worker the pool has the cores


def test_a_rival_that_cannot_be_fitted_leaves_the_observer_and_says_why(hard_wrist, monkeypatch, caplog):
    import myoedge.ground.host as host
    import myoedge.train.correction as correction
    from myoedge.train.run import TrainConfig

    def broken(*args):
        raise MemoryError("no room for the rival")

    _, train = hard_wrist
    cfg = TrainConfig.for_preset("edge", iterations=4, chunk=30, burn_in=5, batch=2, model={"hidden": 8})
    monkeypatch.setattr(host, "usable_cores", lambda: 1)  # in this process, where the patch holds
    monkeypatch.setattr(correction, "_fit_and_score", broken)
    with caplog.at_level("WARNING", logger="myoedge.train.correction"):
        choice = correction.choose_correction(train, cfg, seed=0, threads=1)
    assert choice["winner"] == "edge" and "no room for the rival" in choice["rival"]["error"]
    assert "could not be fitted" in caplog.text
    from myoedge.train.cli import selection_line

    line = selection_line("edge-observer", choice)  # what `myoedge train` prints: no KeyError
    assert "edge-rnn not fitted (MemoryError: no room for the rival)" in line and "observer" in line


def test_the_correction_time_is_how_long_the_physics_holds_with_the_recorded_moment(hard_wrist):
    """The hard wrist's equation, driven by its recorded muscle moment, stays within 10 % of σ_θ at
    T = 1 s, so the physics is trusted for a second; with forces recorded up to 40 % too large (a moment
    the equation no longer balances) the integration runs off and the correction must be faster."""
    _, train = hard_wrist
    net, info = _observer(train)
    drift = {float(k): v for k, v in info["drift_with_recorded_moment"].items()}
    assert info["correction_s"] == 1.0 and drift[1.0] <= 0.1
    assert list(drift) == sorted(drift, reverse=True) and min(drift) == pytest.approx(0.03)
    wrong = [s.__class__(**{**s.__dict__, "forces": s.forces * np.linspace(1.0, 1.4, s.forces.shape[1])})
             for s in train]
    net_wrong = build_model(ModelConfig.for_preset("edge-observer", n_channels=5, n_muscles=5, hidden=8))
    net_wrong.identify(train)  # the equation of the true forces …
    drift_wrong = net_wrong._drift(wrong)  # … driven by forces it does not balance
    assert drift_wrong[1.0] > 0.1 and drift_wrong[1.0] > 3 * drift[1.0]
    assert drift_wrong[0.03] < drift_wrong[1.0]  # a fast correction holds the angle


def test_the_drift_test_integrates_the_recorded_moment_as_a_fixed_series(hard_wrist):
    """The test drives the equation with the moment recorded at the recorded angle, a fixed series: the
    moment arms are not re-evaluated at the angle the integration reaches (recorded forces re-weighted
    there would be muscles without their own stiffness). Integrating that series by hand, one step at a
    time, gives the same drift."""
    from myoedge.train.observer import _recorded_moments

    _, train = hard_wrist
    net, info = _observer(train)
    coeffs = net.arm_coeffs.double().numpy()
    moments = _recorded_moments(train, coeffs)
    drift = net._drift(train)
    assert drift == net._drift(train, moments)
    dt, spread, t = float(net.dt[0]), np.concatenate([s.theta for s in train]).std(), 0.5
    squares = count = 0.0
    for s, moment in zip(train, moments, strict=True):
        consts = net._constants(torch.tensor([float(s.load_kg)])).unbind(0)
        theta, omega, gain = torch.tensor([float(s.theta[0])]), torch.zeros(1), torch.tensor([dt / t])
        for k in range(s.n - 1):
            theta, omega = integrate(theta, omega, torch.tensor([float(moment[k])]),
                                     torch.tensor([float(s.theta[k])]), gain, gain / t, consts)
            squares, count = squares + (float(theta[0]) - s.theta[k + 1]) ** 2, count + 1
    assert drift[0.5] == pytest.approx(np.sqrt(squares / count) / spread, rel=1e-3)


def test_no_correction_time_slower_than_the_identified_one_is_chosen(hard_wrist):
    """Forces whose scale drifts through each trial (an electrode's gain) leave one equation unable to
    integrate them for a second; the held-out choice then only weighs times up to the identified one."""
    from myoedge.train.fit import fit
    from myoedge.train.run import TrainConfig

    _, train = hard_wrist
    drifting = [s.__class__(**{**s.__dict__, "forces": s.forces * np.linspace(0.7, 1.5, s.n)[:, None]})
                for s in train]
    cfg = TrainConfig.for_preset("edge-observer", iterations=6, chunk=40, burn_in=10, batch=4,
                                 model={"hidden": 8})
    trained = fit(drifting, cfg, seed=0)
    joint = trained.info["identified_joint"]
    choice = joint["correction"]
    assert choice["identified_s"] < 1.0
    assert max(float(t) for t in choice["validation_rmse_deg"]) == pytest.approx(choice["identified_s"])
    assert joint["correction_s"] <= min(choice["chosen_s"], choice["identified_s"]) + 1e-9
