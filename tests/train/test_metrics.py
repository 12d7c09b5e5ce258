"""Metrics on hand-computed examples, and the physics residual of predictions."""

import math

import numpy as np
import pytest

from myoedge.body.catalog import generic_model
from myoedge.ground.errors import InputError
from myoedge.train import metrics
from myoedge.train.data import Sequence
from myoedge.train.physics import central_differences


def eom_sequence(*, n: int = 200, rate: float = 100.0, phase: float = 0.0) -> Sequence:
    """A knee sequence whose forces obey the equation of motion exactly under central differences."""
    model = generic_model("knee")
    t = np.arange(n) / rate
    theta = 0.6 + 0.4 * np.sin(2 * np.pi * 0.8 * t + phase)
    mid, dot, ddot = central_differences(theta, dt=1.0 / rate)
    tau = np.pad(model.required_torque(mid, dot, ddot), 1, mode="edge")
    r = model.moment_arms(theta)  # (n, 2): BFSH flexor (> 0), RF extensor (< 0)
    extensor = 60.0 + 40.0 * np.cos(2 * np.pi * 0.3 * t) + np.maximum(-tau, 0.0) / np.abs(r[:, 1])
    flexor = (tau - extensor * r[:, 1]) / r[:, 0]
    forces = np.column_stack([flexor, extensor])
    env = (forces / forces.max(0)).astype(np.float32)
    return Sequence(name=f"k/s1_p{phase:g}", subject="k", session="s1", trial=f"p{phase:g}", joint="knee",
                    muscles=model.muscle_names, rate_hz=rate, t=t, envelopes=env, theta=theta, forces=forces,
                    moment_arms=None, torque=None, model=model, physics="eom")


def test_hand_computed_example():
    y, p = [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 5.0]
    assert metrics.rmse(y, p) == pytest.approx(1.0)  # √(4 / 4)
    assert metrics.nrmse(y, p) == pytest.approx(1.0 / 3.0)  # ÷ range 3
    # deviations (−1.5, −0.5, 0.5, 1.5) and (−2, −1, 0, 3): 8 / √(5 · 14)
    assert metrics.pearson_cc(y, p) == pytest.approx(8.0 / math.sqrt(70.0))
    assert metrics.pearson_cc(y, [3.0, 2.0, 1.0, 0.0]) == pytest.approx(-1.0)


def test_constant_signals_and_bad_input():
    assert math.isnan(metrics.nrmse([1.0, 1.0], [1.0, 2.0]))
    assert math.isnan(metrics.pearson_cc([1.0, 2.0], [3.0, 3.0]))
    with pytest.raises(InputError, match="same length"):
        metrics.rmse([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="finite"):
        metrics.rmse([1.0, np.nan], [1.0, 2.0])


def test_score_outputs_pools_sequences_and_scores_theta_in_degrees():
    seqs = [eom_sequence(n=50), eom_sequence(n=80, phase=1.0)]
    preds = [(s.theta + 0.01, s.forces * np.array([1.0, 0.0]) + np.array([0.0, 10.0])) for s in seqs]
    scores = metrics.score_outputs(seqs, preds)
    assert list(scores) == ["theta", "F_BFSH", "F_RF"]
    assert scores["theta"]["rmse"] == pytest.approx(math.degrees(0.01))
    assert scores["theta"]["cc"] == pytest.approx(1.0)
    assert scores["F_BFSH"]["rmse"] == pytest.approx(0.0, abs=1e-9)
    pooled = np.concatenate([s.forces[:, 1] for s in seqs])
    expected = np.sqrt(np.mean((pooled - 10.0) ** 2))
    assert scores["F_RF"]["rmse"] == pytest.approx(expected)
    assert scores["F_RF"]["nrmse"] == pytest.approx(expected / np.ptp(pooled))
    with pytest.raises(InputError, match="prediction shapes"):
        metrics.score_outputs(seqs, [preds[0], preds[0]])


def test_residual_is_zero_on_truth_and_positive_on_perturbed_forces():
    seqs = [eom_sequence(), eom_sequence(phase=2.0)]
    truth = metrics.residual_rms(seqs, [(s.theta, s.forces) for s in seqs])
    assert truth["mode"] == "eom"
    assert truth["pred"] == pytest.approx(0.0, abs=1e-9) and truth["truth"] == pytest.approx(0.0, abs=1e-9)
    assert truth["moment"] > 1.0
    bumped = metrics.residual_rms(seqs, [(s.theta, s.forces + np.array([20.0, 0.0])) for s in seqs])
    # 20 N more on the flexor adds 20 N × r_BFSH to Σ r F at every step
    r = np.concatenate([s.model.moment_arms(s.theta)[1:-1, 0] for s in seqs])
    assert bumped["pred"] == pytest.approx(float(np.sqrt(np.mean((20.0 * r) ** 2))), rel=1e-9)
    assert bumped["truth"] == pytest.approx(0.0, abs=1e-9)
    # the parts say where it comes from: the forces (true θ) carry it all, the angle (true F) none
    assert bumped["true_theta"] == pytest.approx(bumped["pred"], rel=1e-12)
    assert bumped["true_forces"] == pytest.approx(0.0, abs=1e-9)
    jitter = [s.theta + 1e-4 * (-1.0) ** np.arange(s.n) for s in seqs]  # 0.1 mrad step-to-step
    shaky = metrics.residual_rms(seqs, [(th, s.forces) for th, s in zip(jitter, seqs, strict=True)])
    assert shaky["true_forces"] == pytest.approx(shaky["pred"], rel=1e-12) and shaky["true_theta"] < 1e-9


def test_residual_without_physics_is_none():
    s = eom_sequence()
    bare = Sequence(**{**s.__dict__, "model": None, "physics": "none"})
    assert metrics.residual_rms([bare], [(bare.theta, bare.forces)]) == {
        "mode": "none", "pred": None, "truth": None, "true_theta": None, "true_forces": None, "moment": None}
