"""Identification of the joint's segment terms (body.identify) on hard-family synthetic subjects."""

import math

import numpy as np
import pytest

from myoedge.body.dynamics import GRAVITY
from myoedge.body.identify import (
    PassiveMoment,
    derivatives,
    identify_joint,
    identify_passive,
    regressors,
    solve_bounded,
)
from myoedge.body.subjects import make_subject, simulate_session
from myoedge.ground.errors import InputError


@pytest.mark.parametrize("joint,index", [("wrist", 1), ("wrist", 2), ("knee", 1), ("elbow6", 1)])
def test_damping_inertia_and_gravity_are_recovered_within_10_percent(joint, index):
    subject = make_subject(joint, index, family="hard")
    recs = simulate_session(subject, duration_s=8.0)
    dt = float(recs[0].time[1] - recs[0].time[0])
    # the moment that drives the joint: the muscles' Σ r F (what training has), not the simulator's state
    terms = identify_joint([r.theta for r in recs], [(r.moment_arms * r.forces).sum(-1) for r in recs], dt=dt)
    truth = subject.model.segment
    assert terms.inertia == pytest.approx(truth.inertia, rel=0.10)
    assert terms.damping == pytest.approx(truth.damping, rel=0.10)
    assert terms.gravity_moment == pytest.approx(truth.mass * GRAVITY * truth.com, rel=0.10)
    assert terms.rmse < 0.05 * terms.torque_rms


def test_derivatives_of_a_sine_and_the_bounded_solve():
    dt = 0.01
    t = np.arange(300) * dt
    smooth, d1, d2 = derivatives(np.sin(2.0 * t), dt=dt)
    inner = slice(15, -15)  # the filter's start and end transients aside (identify_joint leaves them out)
    np.testing.assert_allclose(smooth[inner], np.sin(2.0 * t[inner]), atol=1e-3)
    np.testing.assert_allclose(d1[inner], 2.0 * np.cos(2.0 * t[inner]), atol=1e-2)
    np.testing.assert_allclose(d2[inner], -4.0 * np.sin(2.0 * t[inner]), atol=5e-2)
    a = regressors(t, np.ones_like(t), np.zeros_like(t), rest_angle=0.0)
    x = solve_bounded(a[:, :2], -a[:, 1], lower=[0.0, 0.0], upper=[np.inf, np.inf])
    assert x[1] == pytest.approx(0.0, abs=1e-12)  # a negative damping is refused by the bound
    x = solve_bounded(a[:, 1:2], 0.0 * t, lower=[-np.inf], upper=[np.inf], prior=np.array([2.0]),
                      weight=t.size)
    assert x[0] == pytest.approx(1.0)  # halfway to the prior at equal weight
    assert math.isfinite(x[0])


def test_bad_inputs_are_clear_errors():
    theta = np.linspace(0, 1, 50)
    with pytest.raises(InputError, match="one torque per angle trial"):
        identify_joint([theta, theta], [theta], dt=0.01)
    with pytest.raises(InputError, match="one length"):
        identify_joint([theta], [theta[:-1]], dt=0.01)
    with pytest.raises(InputError, match="at least 20 samples"):
        identify_joint([theta[:10]], [theta[:10]], dt=0.01)
    with pytest.raises(InputError, match="zero throughout"):
        identify_joint([theta], [0 * theta], dt=0.01)
    with pytest.raises(InputError, match="dt must be > 0"):
        derivatives(theta, dt=0.0)
    with pytest.raises(InputError, match="at least 20 samples"):
        derivatives(theta[:10], dt=0.01)


def test_a_moment_with_content_above_the_filter_band_leaves_the_terms_right():
    """A moment that changes every 5 ms (a sampled excitation, a twitch) moves a light joint: θ̈ is
    low-passed, so the moment must be too, or the fit's inertia comes out far too large (unfiltered:
    +60 %; Savitzky–Golay θ̈ against a Savitzky–Golay-smoothed moment: +37 %)."""
    inertia, damping, mgl, stiffness = 0.003, 0.2, 0.3, 0.3
    rng = np.random.default_rng(4)
    fine, every, n = 1e-4, 50, 6000  # 0.1 ms integration, the moment held for 5 ms, 30 s sampled at 200 Hz
    steps = np.repeat(0.3 * rng.standard_normal(n), every)
    t_fine = np.arange(n * every) * fine
    tau_fine = 0.6 * np.sin(2 * np.pi * 0.4 * t_fine) + steps
    theta = np.empty(n)
    th = om = 0.0
    for i in range(n * every):
        acc = (tau_fine[i] - damping * om - mgl * math.sin(th) - stiffness * th) / inertia
        om += acc * fine
        th += om * fine
        if i % every == every - 1:
            theta[i // every] = th
    held = steps[::every]  # the moment at each sampled instant: between two holds, their mean
    t = (np.arange(n) + 1) * every * fine
    tau = 0.6 * np.sin(2 * np.pi * 0.4 * t) + 0.5 * (held + np.append(held[1:], held[-1]))
    terms = identify_joint([theta], [tau], dt=every * fine)
    assert terms.inertia == pytest.approx(inertia, rel=0.10)
    assert terms.damping == pytest.approx(damping, rel=0.10)
    assert terms.gravity_moment == pytest.approx(mgl, rel=0.10)


def test_a_load_in_the_hand_is_identified_from_trials_at_several_loads():
    """Trials at 0, 2 and 4 kg: one equation without the load leaves much of the moment unexplained; with
    the load's columns it recovers the point mass's d² (inertia per kg) and g d (gravity per kg)."""
    subject = make_subject("elbow6", 1, family="hard")
    recs = simulate_session(subject, duration_s=8.0, trial_paces=("mix1",), loads=(0.0, 2.0, 4.0))
    dt = float(recs[0].time[1] - recs[0].time[0])
    thetas = [r.theta for r in recs]
    torques = [(r.moment_arms * r.forces).sum(-1) for r in recs]
    loads = [r.meta.extra["load_kg"] for r in recs]
    distance = recs[0].meta.extra["load_distance_m"]
    terms = identify_joint(thetas, torques, dt=dt, loads=loads)
    assert terms.load_inertia == pytest.approx(distance**2, rel=0.10)
    assert math.hypot(terms.load_gravity_sin, terms.load_gravity_cos) == pytest.approx(GRAVITY * distance,
                                                                                        rel=0.10)
    assert terms.rmse < 0.05 * terms.torque_rms
    blind = identify_joint(thetas, torques, dt=dt)  # the loads unknown: one equation for all trials
    assert blind.load_inertia == 0.0 and blind.rmse > 2 * terms.rmse
    one = identify_joint(thetas[:1], torques[:1], dt=dt, loads=[2.0])  # one load: not identifiable
    assert (one.load_inertia, one.load_gravity_sin, one.load_gravity_cos) == (0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="one mass >= 0 kg per trial"):
        identify_joint(thetas, torques, dt=dt, loads=[0.0, -1.0, 2.0])


def _passive_trials(rng, n_trials=2, n=1500, dt=0.01):
    """Trials of a smooth random angle (rad) and the moment of a known passive joint law."""
    thetas = []
    for _ in range(n_trials):
        t = np.arange(n) * dt
        thetas.append(sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in
                          zip(rng.uniform(0.1, 0.4, 4), rng.uniform(0.1, 1.5, 4), rng.uniform(0, 6, 4))))
    return thetas, dt


def test_the_passive_moment_of_a_joint_is_recovered():
    """P = c + k θ + k₃ θ³ + b θ̇ (a joint spring stiffening at the ends and a damper) from angle and
    excess moment alone; a noisy excess moment still gives the terms within 5 %."""
    rng = np.random.default_rng(3)
    thetas, dt = _passive_trials(rng)
    c, k, k3, b = 0.3, 0.8, 1.5, 0.25
    truth = PassiveMoment(elastic=(c, k, 0.0, k3), damping=b, rmse=0.0, moment_rms=1.0)
    excess = [truth.moment(th, np.gradient(th, dt)) + rng.normal(0, 0.02, th.size) for th in thetas]
    got = identify_passive(thetas, excess, dts=[dt] * len(thetas))
    np.testing.assert_allclose(got.elastic, [c, k, 0.0, k3], atol=0.05 * k3)
    assert abs(got.damping - b) < 0.05 * b
    assert got.rmse < 0.1 * got.moment_rms
    assert PassiveMoment.from_dict(got.to_dict()) == got


def test_the_passive_damping_stays_non_negative_and_bad_inputs_are_clear_errors():
    rng = np.random.default_rng(4)
    thetas, dt = _passive_trials(rng, n_trials=1)
    pulling = [-0.5 * np.gradient(thetas[0], dt)]  # a "damper" that pushes along the motion
    assert identify_passive(thetas, pulling, dts=[dt]).damping == 0.0
    with pytest.raises(InputError, match="one excess moment and one dt"):
        identify_passive(thetas, pulling, dts=[dt, dt])
    with pytest.raises(InputError, match="one length"):
        identify_passive(thetas, [pulling[0][:-1]], dts=[dt])
    with pytest.raises(InputError, match="finite"):
        identify_passive(thetas, [np.where(np.arange(thetas[0].size) == 5, np.nan, pulling[0])], dts=[dt])
    with pytest.raises(InputError, match="at least"):
        identify_passive([thetas[0][:5]], [pulling[0][:5]], dts=[dt])
