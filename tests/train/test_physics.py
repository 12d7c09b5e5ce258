"""The physics term: zero (to finite-difference accuracy) on simulated ground truth, clearly positive on wrong
forces, identical on numpy and torch, and the right gradient."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from myoedge.body.identify import PassiveMoment
from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.ground.errors import InputError
from myoedge.train.data import load_sequences
from myoedge.train.physics import (
    attach_passive,
    central_differences,
    physics_residual,
    sequence_residual,
    zero_phase_hann,
)


@pytest.fixture(scope="module")
def knee():
    subject = make_subject("knee", 1)
    recordings = simulate_session(subject, duration_s=4.0)
    return load_sequences(recordings, profiles={subject.name: true_profile(subject)}), recordings


def _relative(seq, residual):
    """RMS residual over the std of the net muscle moment Σ r F of the ground truth."""
    applied = seq.model.muscle_torque(seq.theta, seq.forces)
    return float(np.sqrt(np.mean(residual**2)) / applied.std())


def test_ground_truth_obeys_the_equation_of_motion_at_the_model_rate(knee):
    """Tolerance: the central second difference errs by (dt²/12)·θ⁗; at 100 Hz, for gait whose angle has
    harmonics up to ~6 Hz, M·(dt²/12)·θ⁗ is about 1 % of the std of Σ r F, so 3 % leaves room and still
    catches any wrong term (a 10 % force error gives 10–25 %). The exact derivatives shrink it further."""
    seqs, recordings = knee
    for seq, rec in zip(seqs, recordings):
        fd = _relative(seq, physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model))
        assert fd < 0.03, (seq.name, fd)
        exact = seq.model.residual(seq.theta, np.interp(seq.t, rec.time, rec.theta_dot),
                                   np.interp(seq.t, rec.time, rec.theta_ddot), seq.forces)
        assert _relative(seq, exact) < 0.5 * fd  # what remains is the finite-difference truncation error


def test_wrong_forces_give_a_clearly_positive_residual(knee):
    seqs, _ = knee
    for seq in seqs:
        truth = _relative(seq, physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model))
        for muscle in range(2):
            wrong = seq.forces.copy()
            wrong[:, muscle] *= 1.2
            perturbed = _relative(seq, physics_residual(seq.theta, wrong, dt=0.01, model=seq.model))
            assert perturbed > max(0.05, 5 * truth), (seq.name, muscle, perturbed, truth)


def test_inverse_dynamics_mode_and_recorded_moment_arms(knee):
    seqs, _ = knee
    seq = seqs[0]
    id_res = physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model, torque=seq.torque, mode="id")
    assert id_res.shape == (seq.n - 2,) and _relative(seq, id_res) < 1e-3  # τ_ID here is Σ r F itself
    by_model = physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model)
    by_record = physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model, moment_arms=seq.moment_arms)
    np.testing.assert_allclose(by_record, by_model, atol=1e-3 * np.abs(by_model).max())
    assert sequence_residual(seq, seq.theta, seq.forces).shape == (seq.n - 2,)


def test_torch_matches_numpy_and_the_force_gradient_is_minus_r(knee):
    seqs, _ = knee
    seq = seqs[1]
    theta = torch.tensor(seq.theta, dtype=torch.float64)
    forces = torch.tensor(seq.forces, dtype=torch.float64, requires_grad=True)
    res = physics_residual(theta, forces, dt=0.01, model=seq.model)
    np.testing.assert_allclose(res.detach().numpy(), physics_residual(seq.theta, seq.forces, dt=0.01,
                                                                      model=seq.model), rtol=0, atol=1e-9)
    res.sum().backward()
    r = seq.model.moment_arms(seq.theta)
    np.testing.assert_allclose(forces.grad.numpy()[1:-1], -r[1:-1], atol=1e-12)
    np.testing.assert_array_equal(forces.grad.numpy()[[0, -1]], 0.0)


def test_batched_chunks_and_central_differences():
    t = np.linspace(0, 1, 11)
    theta = np.stack([t**2, np.sin(t)])
    th, d1, d2 = central_differences(theta, dt=0.1)
    np.testing.assert_allclose(d1[0], 2 * t[1:-1], atol=1e-12)  # exact for a quadratic
    np.testing.assert_allclose(d2[0], 2.0, atol=1e-9)
    assert th.shape == d1.shape == d2.shape == (2, 9)


def test_errors_say_what_is_missing(knee):
    seq = knee[0][0]
    with pytest.raises(InputError, match="mode must be one of"):
        physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model, mode="lagrange")
    with pytest.raises(InputError, match="needs the recorded inverse-dynamics torque"):
        physics_residual(seq.theta, seq.forces, dt=0.01, model=seq.model, mode="id")
    with pytest.raises(InputError, match="at least 3 steps"):
        physics_residual(seq.theta[:2], seq.forces[:2], dt=0.01, model=seq.model)
    with pytest.raises(InputError, match="needs moment arms"):
        physics_residual(seq.theta, seq.forces, dt=0.01)


def test_a_recorded_net_moment_is_balanced_with_the_joints_passive_moment(knee):
    """τ_ID is the muscles' moment less the joint's passive one: with a joint spring and damper in the
    recording, Σ r F − τ_ID is far from 0 on the true forces, and once the passive moment is identified
    on the training part (and only there) the residual of the truth is ~0 on the test part too."""
    seqs, _ = knee
    law = PassiveMoment(elastic=(0.5, 4.0, 0.0, 2.0), damping=0.6, rmse=0.0, moment_rms=1.0)
    recorded = []
    for s in seqs:
        muscles = (s.moment_arms * s.forces).sum(-1)
        torque = muscles - law.moment(s.theta, np.gradient(s.theta, 1.0 / s.rate_hz))
        recorded.append(dataclasses.replace(s, physics="id", torque=torque))
    assert not recorded[0].model_moment_arms  # against τ_ID the recorded moment arms come first
    train = [s.part(0, s.n * 3 // 4, tag="train") for s in recorded]
    test = [s.part(s.n * 3 // 4, s.n, tag="test") for s in recorded]
    raw = np.concatenate([sequence_residual(s, s.theta, s.forces) for s in test])
    train, test = attach_passive(train, test)
    assert all(s.passive is not None for s in train + test)
    assert test[0].passive == train[0].passive  # the law of the training part
    balanced = np.concatenate([sequence_residual(s, s.theta, s.forces) for s in test])
    moment = np.concatenate([s.torque for s in test])
    assert np.sqrt(np.mean(raw**2)) > 0.2 * moment.std()
    assert np.sqrt(np.mean(balanced**2)) < 0.02 * moment.std()
    th = torch.tensor(test[0].theta, dtype=torch.float64, requires_grad=True)
    res = sequence_residual(test[0], th, torch.tensor(test[0].forces, dtype=torch.float64))
    res.pow(2).sum().backward()  # the passive moment is differentiable in the predicted angle
    assert th.grad is not None and torch.isfinite(th.grad).all()


def test_zero_phase_hann_keeps_lines_and_slow_waves_and_removes_alternation():
    n = 60
    k = np.arange(n, dtype=float)
    line = 0.3 + 0.02 * k
    np.testing.assert_allclose(zero_phase_hann(line, 15)[7:-7], line[7:-7], atol=1e-12)  # no phase shift
    assert np.all(np.diff(zero_phase_hann(line, 15)) > 0)  # the mirrored ends bend it, never fold it
    slow = np.sin(2 * np.pi * k / 50)
    smoothed = zero_phase_hann(slow, 15)
    assert np.argmax(smoothed[:40]) == np.argmax(slow[:40])  # the peak stays where it was
    assert np.abs(smoothed - slow)[10:-10].max() < 0.15 * np.abs(slow).max()
    alternating = (-1.0) ** k
    assert np.abs(zero_phase_hann(alternating, 15))[8:-8].max() < 0.02
    batch = np.stack([line, slow])[..., None] * np.array([1.0, -2.0])  # (2, n, 2), time on axis 1
    np.testing.assert_allclose(zero_phase_hann(batch, 9, axis=1)[1, :, 1], -2 * zero_phase_hann(slow, 9))
    t = torch.tensor(batch, requires_grad=True)
    out = zero_phase_hann(t, 9, axis=1)
    np.testing.assert_allclose(out.detach().numpy(), zero_phase_hann(batch, 9, axis=1), atol=1e-12)
    out.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    assert zero_phase_hann(slow, 1) is slow
    for bad in (0, 4, -3, 2.0, True):
        with pytest.raises(InputError, match="odd number of steps"):
            zero_phase_hann(slow, bad)
    with pytest.raises(InputError, match="more than 7 steps"):
        zero_phase_hann(slow[:7], 15)


def test_a_smoothed_residual_ignores_step_jitter_and_still_sees_wrong_forces(knee):
    """Averaging keeps the truth's residual small; alternating jitter of θ that the raw second difference
    turns into a large residual leaves the averaged one near the truth's; a force error still shows."""
    seq = knee[0][0]
    kw = {"dt": 0.01, "model": seq.model}
    truth = _relative(seq, physics_residual(seq.theta, seq.forces, smooth=15, **kw))
    assert truth <= _relative(seq, physics_residual(seq.theta, seq.forces, **kw)) < 0.03
    jitter = seq.theta + np.deg2rad(0.2) * (-1.0) ** np.arange(seq.n)
    raw = _relative(seq, physics_residual(jitter, seq.forces, **kw))
    smoothed = _relative(seq, physics_residual(jitter, seq.forces, smooth=15, **kw))
    assert raw > 0.5 and smoothed < truth + 0.02, (raw, smoothed, truth)
    wrong = seq.forces * np.array([1.2, 1.0])
    assert _relative(seq, physics_residual(seq.theta, wrong, smooth=15, **kw)) > max(0.05, 5 * truth)
    id_res = physics_residual(seq.theta, seq.forces, torque=seq.torque, mode="id",
                              moment_arms=seq.moment_arms, smooth=15, **kw)
    assert id_res.shape == (seq.n - 2,) and _relative(seq, id_res) < 1e-3
    np.testing.assert_allclose(sequence_residual(seq, seq.theta, seq.forces, smooth=15),
                               physics_residual(seq.theta, seq.forces, smooth=15, **kw))
