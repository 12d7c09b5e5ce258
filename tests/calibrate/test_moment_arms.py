"""Moment-arm (and segment) re-fits on synthetic subjects whose true model is known: recovery from a prior
30 % off, with forces recorded or estimated from EMG, the bounds, the warnings and every bad input."""

from dataclasses import replace

import numpy as np
import pytest

from myoedge.body.catalog import generic_model
from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.calibrate.moment_arms import FitConfig, fit_moment_arms, relative_rms_error
from myoedge.calibrate.refit import calibrate_moment_arms
from myoedge.calibrate.segment_fit import fit_segment
from myoedge.calibrate.trials import movement_cycles, prepare_trials
from myoedge.ground.errors import InputError


def perturbed(model, scales, tilts=None):
    """Each r_n(θ)·(scale_n + tilt_n·u), u ∈ [-1, 1] over the range of motion; at most ±30 % anywhere."""
    seg = model.segment
    mid, half = (seg.range_lo + seg.range_hi) / 2, (seg.range_hi - seg.range_lo) / 2
    tilts = tilts or [0.0] * len(scales)
    muscles = []
    for m, a, b in zip(model.muscles, scales, tilts):
        c = np.polynomial.Polynomial(m.moment_arm) * np.polynomial.Polynomial([a - b * mid / half, b / half])
        muscles.append(replace(m, moment_arm=tuple(c.coef)))
    out = replace(model, muscles=tuple(muscles))
    grid = np.linspace(seg.range_lo, seg.range_hi, 100)
    assert np.all(np.abs(out.moment_arms(grid) / model.moment_arms(grid) - 1) <= 0.3 + 1e-9)
    return out


@pytest.fixture(scope="module")
def knee():
    subject = make_subject("knee", 1)
    return subject, simulate_session(subject, duration_s=6.0)


@pytest.fixture(scope="module")
def wrist():
    subject = make_subject("wrist", 1)
    return subject, simulate_session(subject, duration_s=5.0)


def test_recovers_moment_arms_30_percent_off_from_recorded_forces(knee, wrist):
    for (subject, recs), scales, tilts in ((knee, [1.2, 0.8], [0.1, -0.05]),
                                           (wrist, [1.3, 0.7, 1.25, 0.8, 0.75], None)):
        prior = perturbed(subject.model, scales, tilts)
        profile = true_profile(subject).replace(model=prior)
        cal = calibrate_moment_arms(recs, profile)
        err = relative_rms_error(cal.profile.model, subject.model, cal.fit.theta_range)
        assert np.all(relative_rms_error(prior, subject.model, cal.fit.theta_range) > 0.15)
        assert np.all(err < 0.05), err
        assert cal.fit.rmse_after <= 0.5 * cal.rmse_before
        assert cal.force_source == "recording" and cal.iterations == 1


def test_without_derivatives_or_torque_the_dynamics_and_savitzky_golay_fill_in(knee):
    subject, recs = knee
    bare = [replace(r, theta_dot=None, theta_ddot=None, torque=None) for r in recs]
    profile = true_profile(subject).replace(model=perturbed(subject.model, [1.3, 0.75]))
    cal = calibrate_moment_arms(bare, profile)  # torque = M θ̈ + C + G + P from the profile's segment
    assert {t.torque_source for t in cal.trials} == {"dynamics"}
    assert {t.derivatives for t in cal.trials} == {"savitzky-golay"}
    assert np.all(relative_rms_error(cal.profile.model, subject.model, cal.fit.theta_range) < 0.05)


def test_forces_estimated_from_emg_recover_the_knee_within_15_percent(knee):
    subject, recs = knee
    truth = true_profile(subject)
    profile = truth.replace(model=perturbed(subject.model, [1.3, 0.75]))
    no_forces = [replace(r, forces=None) for r in recs]
    cal = calibrate_moment_arms(no_forces, profile)
    assert cal.force_source == "emg"
    err = relative_rms_error(cal.profile.model, subject.model, cal.fit.theta_range)
    assert np.all(err < 0.15), err
    assert cal.fit.rmse_after <= 0.5 * cal.rmse_before


def test_bounds_hold_when_the_data_pull_beyond_them(knee):
    subject, recs = knee
    trials = prepare_trials(recs, subject.model)
    theta = np.concatenate([t.theta for t in trials])
    tau = np.concatenate([t.torque for t in trials])
    forces = np.concatenate([t.recording.forces for t in trials]) * 0.3  # asks for moment arms 3.3× larger
    fit = fit_moment_arms(subject.model, theta, tau, forces, config=FitConfig(max_factor=2.0))
    seg = subject.model.segment
    grid = np.linspace(seg.range_lo, seg.range_hi, 200)
    ratio = fit.model.moment_arms(grid) / subject.model.moment_arms(grid)
    assert np.all(ratio <= 2.0 + 1e-5) and np.all(ratio > 0) and fit.active_constraints > 0
    assert np.all(np.abs(fit.model.moment_arms(grid)) <= 0.08 + 1e-9)


def test_muscles_that_always_work_in_proportion_are_flagged():
    model = generic_model("wrist")
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 500.0
    theta = 0.6 * np.sin(2 * np.pi * 0.5 * t)
    drive = np.clip(np.sin(2 * np.pi * 0.5 * t + 0.3), 0, None) * 100
    anti = np.clip(-np.sin(2 * np.pi * 0.5 * t + 0.3), 0, None) * 100
    forces = np.column_stack([drive, 0.5 * drive, anti + 5, 0.8 * anti + rng.uniform(0, 5, t.size),
                              anti * 0.3 + 10])
    tau = model.muscle_torque(theta, forces)
    fit = fit_moment_arms(model, theta, tau, forces)
    text = " ".join(fit.warnings)
    assert "FCR: its torque is nearly a linear mix" in text and "most like FCU" in text
    assert fit.muscles[0]["vif"] > 100


def test_segment_terms_are_recovered_from_a_measured_torque(knee):
    subject, recs = knee
    prior = generic_model("knee").segment  # an average adult; the subject is scaled from it
    truth = subject.model.segment
    fit = fit_segment(prior, *(np.concatenate([getattr(r, k) for r in recs])
                               for k in ("theta", "theta_dot", "theta_ddot", "torque")),
                      trial_lengths=[r.theta.size for r in recs])
    got, want = fit.segment, truth
    assert got.inertia == pytest.approx(want.inertia, rel=0.05)
    assert got.mass * got.com == pytest.approx(want.mass * want.com, rel=0.05)
    assert got.gravity_offset == pytest.approx(want.gravity_offset, abs=0.03)
    assert fit.rmse_after < 0.2 * fit.rmse_before


def test_segment_fit_refuses_a_torque_computed_from_the_segment(knee):
    subject, recs = knee
    bare = [replace(r, torque=None) for r in recs]
    with pytest.raises(InputError, match="needs a measured joint torque"):
        calibrate_moment_arms(bare, true_profile(subject), fit_segment_terms=True)


def test_bad_inputs_are_clear_errors(knee):
    subject, recs = knee
    profile = true_profile(subject)
    no_torque = [replace(r, torque=None) for r in recs]
    with pytest.raises(InputError, match="has no joint torque; record one"):
        calibrate_moment_arms(no_torque, profile, torque="recording")
    with pytest.raises(InputError, match="no joint torque and no segment parameters"):
        prepare_trials(no_torque, profile.model, segment=None)
    with pytest.raises(InputError, match="has no muscle forces"):
        calibrate_moment_arms([replace(r, forces=None) for r in recs], profile, forces="recording")
    with pytest.raises(InputError, match="profile is for the wrist"):
        prepare_trials(recs, generic_model("wrist"))
    with pytest.raises(InputError, match="barely moves"):
        still = replace(recs[0], theta=np.full(recs[0].theta.size, 0.3))
        prepare_trials([still], profile.model)
    theta = np.concatenate([r.theta for r in recs])
    tau = np.concatenate([r.torque for r in recs])
    forces = np.concatenate([r.forces for r in recs])
    with pytest.raises(InputError, match="outside the profile's range of motion"):
        fit_moment_arms(profile.model, np.degrees(theta), tau, forces)  # degrees, not radians
    bad = tau.copy()
    bad[10] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_moment_arms(profile.model, theta, bad, forces)
    with pytest.raises(InputError, match="every muscle force is zero"):
        fit_moment_arms(profile.model, theta, tau, 0 * forces)


def test_movement_cycles_counts_flexion_extension_cycles():
    t = np.arange(5000) / 500.0
    theta = np.sin(2 * np.pi * 0.5 * t) + 0.01 * np.sin(2 * np.pi * 40 * t)  # 5 cycles and some jitter
    assert movement_cycles(theta) == pytest.approx(5, abs=0.5)
