import json

import numpy as np
import pytest
from scipy import signal

from myoedge.body.emg_synth import mvc_envelope
from myoedge.body.recording import load_recording, save_recording
from myoedge.body.subjects import make_subject, session_gains, simulate_session, true_profile
from myoedge.cli import main


@pytest.fixture(scope="module")
def knee_trials():
    return simulate_session(make_subject("knee", 1), duration_s=4.0)


def relative_residual(model, rec):
    res = model.residual(rec.theta, rec.theta_dot, rec.theta_ddot, rec.forces)
    return np.sqrt(np.mean(res**2)) / np.sqrt(np.mean(rec.torque**2))


@pytest.mark.parametrize("joint", ["knee", "wrist", "elbow"])
def test_simulated_trials_satisfy_the_equation_of_motion(joint):
    subject = make_subject(joint, 2)
    for rec in simulate_session(subject, duration_s=2.0, trial_paces=None):
        assert relative_residual(subject.model, rec) < 1e-6
        # the recorded acceleration is the second difference of the recorded angle (semi-implicit Euler)
        fd = np.gradient(np.gradient(rec.theta, rec.time), rec.time)
        assert np.corrcoef(fd[5:-5], rec.theta_ddot[5:-5])[0, 1] > 0.99


def test_equation_of_motion_survives_the_round_trip_to_disk(tmp_path, knee_trials):
    model = make_subject("knee", 1).model
    path = save_recording(knee_trials[0], tmp_path / "rec")
    assert relative_residual(model, load_recording(path)) < 1e-6


def test_trials_track_a_walking_like_knee_profile(knee_trials):
    for rec in knee_trials:
        deg = np.degrees(rec.theta)
        assert 0 < deg.min() < 15 and 40 < deg.max() < 75
        assert np.all(rec.forces >= 0) and np.all((rec.activations > 0) & (rec.activations <= 1))
    peaks = [np.degrees(r.theta).max() for r in knee_trials]
    assert peaks == sorted(peaks)  # slow < normal < fast swing


def test_deterministic_per_seed_and_subjects_differ():
    a = simulate_session(make_subject("wrist", 1, seed=3), duration_s=1.0, trial_paces=("fast",))[0]
    b = simulate_session(make_subject("wrist", 1, seed=3), duration_s=1.0, trial_paces=("fast",))[0]
    c = simulate_session(make_subject("wrist", 2, seed=3), duration_s=1.0, trial_paces=("fast",))[0]
    np.testing.assert_array_equal(a.emg, b.emg)
    np.testing.assert_array_equal(a.forces, b.forces)
    assert not np.allclose(a.emg, c.emg)
    s1, s2 = make_subject("wrist", 1, seed=3), make_subject("wrist", 2, seed=3)
    assert s1.body_mass != s2.body_mass
    assert not np.allclose(s1.model.coeffs, s2.model.coeffs)


def test_sessions_drift_electrode_gain():
    s = make_subject("knee", 1)
    g1, g2 = session_gains(s, 1), session_gains(s, 2)
    assert not np.allclose(g1, g2) and np.all(np.abs(g2 / g1 - 1) <= 0.3)
    rec = simulate_session(s, session=2, duration_s=1.0, trial_paces=("slow",))[0]
    np.testing.assert_allclose(rec.meta.extra["truth"]["mvc_volts"], mvc_envelope(g2, 2000.0))
    assert true_profile(s, session=2).mvc_volts == pytest.approx(mvc_envelope(g2, 2000.0))


def test_emg_looks_like_surface_emg(knee_trials):
    rec = knee_trials[2]
    f, p = signal.welch(rec.emg[:, 0], fs=rec.emg_fs, nperseg=1024)
    assert 40 < f[np.argmax(np.where(f > 20, p, 0))] < 160  # dominant band of sEMG
    # amplitude follows the neural excitation
    env = signal.sosfiltfilt(signal.butter(2, 5, fs=rec.emg_fs, output="sos"), np.abs(rec.emg[:, 0]))
    exc = np.interp(rec.emg_time, rec.time, rec.excitations[:, 0])
    assert np.corrcoef(env, exc)[0, 1] > 0.8
    assert 20e-6 < np.sqrt(np.mean(rec.emg**2)) < 2e-3  # tens of µV to mV


def test_simulate_cli_writes_profiles_and_recordings(tmp_path, capsys):
    assert main(["simulate", "--joint", "wrist", "--subjects", "1", "--duration", "1", "--out",
                 str(tmp_path / "d"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(summary["subjects"][0]["recordings"]) == 3
    assert (tmp_path / "d" / "wrist01" / "profile.json").is_file()
    # a second run refuses to overwrite, with exit status 2 and a one-line reason
    assert main(["simulate", "--joint", "wrist", "--subjects", "1", "--duration", "1", "--out",
                 str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "overwrite" in err and len(err.splitlines()) == 1
    assert main(["simulate", "--duration", "0", "--out", str(tmp_path / "e")]) == 2


@pytest.mark.parametrize("seconds", [0.5, 1.0])
def test_short_trials_stay_finite(seconds):
    # slow random signals over a short trial must not be blown up by their own tiny spread
    for rec in simulate_session(make_subject("knee", 1), duration_s=seconds):
        assert np.isfinite(rec.emg).all() and np.isfinite(rec.forces).all()
        assert np.abs(rec.theta).max() < 2.5
