"""Recordings from OpenSim forward dynamics: a lab's layout that myoedge reads like any lab's."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("opensim", reason="the opensim extra (installed by make test)")

from myoedge.body.recording import load_recording  # noqa: E402
from myoedge.train.osim_trials import JOINTS, main, simulate_trial  # noqa: E402


@pytest.fixture(scope="module")
def elbow(tmp_path_factory):
    out = tmp_path_factory.mktemp("osim") / "data"
    assert main(["--joint", "elbow", "--trials", "1", "--duration", "3", "--out", str(out)]) == 0
    return out / "elbow01" / "trial1"


def test_a_trial_is_a_lab_recording_myoedge_loads(elbow):
    doc = json.loads((elbow / "recording.json").read_text())
    assert doc["files"]["kinematics"] == "ik.mot" and doc["units"] == {"emg": "V", "angle": "deg"}
    assert not (elbow.parent / "profile.json").exists()  # a lab has no myoedge profile
    rec = load_recording(elbow)
    assert rec.meta.muscles == ("BIC", "BRA", "TRIlong", "TRIlat")
    assert rec.rate == 200.0 and rec.emg_fs == 2000.0
    assert rec.theta.shape == (600,) and np.ptp(np.degrees(rec.theta)) > 10  # the virtual subject moves
    # flexors have positive moment arms, extensors negative (OpenSim's computeMomentArm, flexion positive)
    assert np.all(rec.moment_arms[:, :2] > 0.005) and np.all(rec.moment_arms[:, 2:] < -0.005)
    assert np.all(rec.forces >= 0) and rec.forces.max() > 20
    # the net moment is the muscles' plus the joint's passive moment: close to sum r F where muscles dominate
    muscle = np.sum(rec.moment_arms * rec.forces, axis=1)
    assert np.corrcoef(muscle, rec.torque)[0, 1] > 0.5
    assert np.all(np.std(rec.emg, axis=0) > 1e-5)


def test_the_net_moment_moves_the_joint():
    """θ̈ from the trajectory against the identified rigid body: the net moment is what moves it."""
    spec = JOINTS["elbow"]
    sim = simulate_trial(spec, load_kg=0.0, duration_s=2.0, seed=3)
    dt = sim["time"][1] - sim["time"][0]
    acc = np.gradient(sim["theta_dot"], dt)
    com = spec.com
    inertia = spec.mass * (spec.gyration ** 2 + com ** 2)
    gravity = spec.mass * 9.81 * com * np.sin(sim["theta"])
    predicted = inertia * acc + gravity
    assert np.corrcoef(predicted[5:-5], sim["torque"][5:-5])[0, 1] > 0.95


def test_the_four_and_six_muscle_elbows_are_written_as_their_own_joints():
    """Both elbows turn the same coordinate; a recording names the joint whose muscles it carries."""
    from myoedge.body.catalog import JOINTS as CATALOG
    from myoedge.train.osim_trials import JOINT_NAMES

    for name in ("elbow", "elbow6"):
        spec = JOINTS[name]
        assert JOINT_NAMES[(spec.coordinate, tuple(m.name for m in spec.muscles))] == name
    assert {m.name for m in JOINTS["elbow6"].muscles} == set(CATALOG["elbow6"]().muscle_names)


def test_an_open_loop_drive_never_sees_the_joint_and_feedback_does():
    """Same seed, muscles with shorter fibres (other forces, the same moment arms the drive is scaled
    by): the open drive's excitations are the same (nothing reads the state), the feedback drive's
    differ (it answers the joint), and the joint moves differently either way."""
    from dataclasses import replace

    from myoedge.ground.errors import InputError

    spec = JOINTS["wrist"]
    short = replace(spec, muscles=tuple(replace(m, l_opt=0.7 * m.l_opt) for m in spec.muscles))
    runs = {(drive, k): simulate_trial(s, load_kg=0.0, duration_s=1.5, seed=5, drive=drive)
            for drive in ("open", "feedback") for k, s in enumerate((spec, short))}
    a, b = runs[("open", 0)], runs[("open", 1)]
    np.testing.assert_array_equal(a["excitations"], b["excitations"])
    assert not np.allclose(a["theta"], b["theta"], atol=1e-3)
    c, d = runs[("feedback", 0)], runs[("feedback", 1)]
    assert not np.allclose(c["excitations"], d["excitations"], atol=1e-3)
    with pytest.raises(InputError, match="drive"):
        simulate_trial(spec, load_kg=0.0, duration_s=1.5, seed=5, drive="closed")
