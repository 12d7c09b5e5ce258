"""``myoedge calibrate from-osim``: a small OpenSim model built at test time (one pin joint, a Millard and a
Thelen muscle on path points) sampled into a profile whose moment arms match OpenSim's computeMomentArm
and −dL/dθ, whose segment is the forearm's, and which trains and runs end to end."""

from __future__ import annotations

import hashlib
import json
import math
import sys

import numpy as np
import pytest

from myoedge.body.emg_synth import mvc_envelope
from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import save_recording
from myoedge.body.subjects import EMG_FS, SyntheticSubject, simulate_session
from myoedge.calibrate.from_osim import sample_model
from myoedge.cli import main

osim = pytest.importorskip("opensim")
osim.Logger.removeFileSink()  # building the model logs; no opensim.log in the working folder

FOREARM_MASS, FOREARM_COM, FOREARM_IZZ = 1.5, 0.14, 0.01
RANGE = (0.0, 2.2)
MUSCLES = "bic,tri"


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    """Upper arm welded to ground, forearm on a pin (elbow_flex, +z, flexion positive), two muscles."""
    m = osim.Model()
    m.setName("arm01")
    upper = osim.Body("humerus", 2.0, osim.Vec3(0, -0.15, 0), osim.Inertia(0.02, 0.002, 0.02))
    fore = osim.Body("forearm", FOREARM_MASS, osim.Vec3(0, -FOREARM_COM, 0),
                     osim.Inertia(FOREARM_IZZ, 0.001, FOREARM_IZZ))
    m.addBody(upper)
    m.addBody(fore)
    zero = osim.Vec3(0, 0, 0)
    m.addJoint(osim.WeldJoint("shoulder", m.getGround(), zero, zero, upper, zero, zero))
    elbow = osim.PinJoint("elbow", upper, osim.Vec3(0, -0.3, 0), zero, fore, zero, zero)
    coord = elbow.updCoordinate()
    coord.setName("elbow_flex")
    coord.setRangeMin(RANGE[0])
    coord.setRangeMax(RANGE[1])
    m.addJoint(elbow)
    bic = osim.Millard2012EquilibriumMuscle("bic", 600.0, 0.12, 0.14, 0.1)
    bic.addNewPathPoint("origin", upper, osim.Vec3(0.03, -0.05, 0))
    bic.addNewPathPoint("insertion", fore, osim.Vec3(0.02, -0.05, 0))
    tri = osim.Thelen2003Muscle("tri", 800.0, 0.10, 0.19, 0.15)
    tri.addNewPathPoint("origin", upper, osim.Vec3(-0.03, -0.05, 0))
    tri.addNewPathPoint("insertion", fore, osim.Vec3(-0.025, 0.03, 0))
    m.addForce(bic)
    m.addForce(tri)
    m.finalizeConnections()
    path = tmp_path_factory.mktemp("osim") / "arm01.osim"
    m.printToXML(str(path))
    return path


def opensim_truth(path, thetas, *, step=1e-6):
    """computeMomentArm and −dL/dq (central difference) at each θ, straight from OpenSim."""
    model = osim.Model(str(path))
    state = model.initSystem()
    coord = model.getCoordinateSet().get("elbow_flex")
    muscles = [model.getMuscles().get(n) for n in MUSCLES.split(",")]

    def lengths(q):
        coord.setValue(state, q)
        model.realizePosition(state)
        return np.array([mu.getLength(state) for mu in muscles])

    r, fd = [], []
    for q in thetas:
        lo, hi = max(q - step, RANGE[0]), min(q + step, RANGE[1])
        fd.append(-(lengths(hi) - lengths(lo)) / (hi - lo))
        lengths(q)
        r.append([mu.computeMomentArm(state, coord) for mu in muscles])
    return np.array(r), np.array(fd)


def test_sampled_moment_arms_are_opensims_and_minus_dl_dtheta(arm):
    sample = sample_model(arm, coordinate="elbow_flex", muscles=["bic", "tri"], n_samples=41)
    np.testing.assert_allclose(sample.theta, np.linspace(*RANGE, 41))
    r, fd = opensim_truth(arm, sample.theta)
    assert np.all(r[:, 0] > 0.01) and np.all(r[:, 1] < -0.01)  # a flexor and an extensor
    np.testing.assert_allclose(sample.moment_arms, r, rtol=1e-9)
    np.testing.assert_allclose(sample.moment_arms, fd, rtol=0.01)
    assert [p["class"] for p in sample.muscles] == ["Millard2012EquilibriumMuscle", "Thelen2003Muscle"]
    assert sample.muscles[1]["max_force"] == 800.0 and sample.muscles[1]["pennation"] == pytest.approx(0.15)
    # the forearm, the one body distal to the elbow: I = Izz + m d², COM 0.14 m, hanging straight at θ = 0
    seg = sample.segment
    assert sample.bodies == ("forearm",) and seg["mass"] == pytest.approx(FOREARM_MASS)
    assert seg["com"] == pytest.approx(FOREARM_COM, rel=1e-6)
    assert seg["inertia"] == pytest.approx(FOREARM_IZZ + FOREARM_MASS * FOREARM_COM ** 2, rel=1e-6)
    assert abs(seg["gravity_offset"]) < 1e-5
    assert sample.gravity_fit["lever_m"] == pytest.approx(0.14, rel=1e-6)
    flipped = sample_model(arm, coordinate="elbow_flex", muscles=["bic", "tri"], flexion_sign=-1,
                           n_samples=41)
    assert flipped.segment["range_lo"] == -RANGE[1] and flipped.segment["range_hi"] == -RANGE[0]
    np.testing.assert_allclose(flipped.moment_arms, -sample.moment_arms[::-1], rtol=1e-12)


def test_profile_reproduces_opensim_within_one_percent_with_provenance(arm, tmp_path, capsys):
    out = tmp_path / "p.json"
    code = main(["calibrate", "from-osim", str(arm), "--coordinate", "elbow_flex", "--muscles", MUSCLES,
                 "--mvc", "bic=3e-4,tri=2e-4", "--out", str(out), "--json"])
    stdout = capsys.readouterr().out
    assert code == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    profile = SubjectProfile.load(out)
    assert profile.joint == "elbow" and profile.muscles == ("bic", "tri") and profile.subject == "arm01"
    assert [m.action for m in profile.model.muscles] == ["flexor", "extensor"]
    theta = np.linspace(*RANGE, 97)  # off the fitted samples
    r, _ = opensim_truth(arm, theta)
    fitted = profile.model.moment_arms(theta)
    assert np.max(np.abs(fitted - r) / np.abs(r)) < 0.01
    prov = profile.provenance["opensim_model"]
    assert prov["sha256"] == hashlib.sha256(arm.read_bytes()).hexdigest()
    assert prov["opensim_version"] == osim.GetVersion() and prov["coordinate"] == "elbow_flex"
    assert set(prov["moment_arm_fit"]) == {"bic", "tri"}
    assert summary["moment_arm_fit"]["bic"]["max_rel_error"] == prov["moment_arm_fit"]["bic"]["max_rel_error"]
    assert max(f["max_rel_error"] for f in prov["moment_arm_fit"].values()) < 0.01
    assert profile.mvc_volts == (3e-4, 2e-4) and "history" in profile.provenance
    bic = profile.model.muscles[0]
    assert (bic.max_force, bic.optimal_fiber_length, bic.tendon_slack_length) == (600.0, 0.12, 0.14)
    # the optimal angle is where OpenSim's muscle-tendon length is l_opt cos α + l_ts
    assert RANGE[0] < bic.optimal_angle < RANGE[1]
    model = osim.Model(str(arm))
    state = model.initSystem()
    model.getCoordinateSet().get("elbow_flex").setValue(state, bic.optimal_angle)
    model.realizePosition(state)
    length = model.getMuscles().get("bic").getLength(state)
    assert length == pytest.approx(0.12 * math.cos(0.1) + 0.14, abs=2e-5)


def test_mvc_kept_from_an_existing_profile_and_refusals_are_one_line(arm, tmp_path, capsys):
    base = ["calibrate", "from-osim", str(arm), "--coordinate", "elbow_flex", "--muscles", MUSCLES]
    out = tmp_path / "p.json"
    assert main([*base, "--out", str(out)]) == 2
    assert "holds no MVC" in capsys.readouterr().err
    assert main([*base, "--mvc", "bic=3e-4,tri=2e-4", "--out", str(out)]) == 0
    assert main([*base, "--out", str(out), "--degree", "5"]) == 0  # updated in place, its MVC kept
    updated = SubjectProfile.load(out)
    assert updated.mvc_volts == (3e-4, 2e-4) and len(updated.model.muscles[0].moment_arm) == 6
    assert out.with_name("p.json.prev").is_file()
    capsys.readouterr()
    for extra, words in ((["--muscles", "bic,delt"], ["no muscle 'delt'", "bic, tri"]),
                         (["--coordinate", "knee"], ["no coordinate 'knee'", "elbow_flex"]),
                         (["--mvc", "bic=3e-4"], ["--mvc", "missing ['tri']"])):
        argv = [*base, "--mvc-from", str(out), "--out", str(tmp_path / "q.json"), *extra]
        if extra[0] == "--mvc":
            argv = [*base, "--out", str(tmp_path / "q.json"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err and all(w in err for w in words), err
    assert not (tmp_path / "q.json").exists()


def test_profile_from_osim_trains_and_runs_end_to_end(arm, tmp_path, capsys):
    gains = np.array([6e-4, 8e-4])
    mvc = mvc_envelope(gains, EMG_FS)
    data = tmp_path / "data"
    profile_path = data / "arm01" / "profile.json"
    assert main(["calibrate", "from-osim", str(arm), "--coordinate", "elbow_flex", "--muscles", MUSCLES,
                 "--mvc", f"bic={mvc[0]:.9g},tri={mvc[1]:.9g}", "--out", str(profile_path)]) == 0
    profile = SubjectProfile.load(profile_path)
    subject = SyntheticSubject(name="arm01", seed=3, body_mass=70.0, height=1.75, model=profile.model,
                               gain_volts=gains, crosstalk=np.zeros((2, 2)))
    for rec in simulate_session(subject, duration_s=2.0, trial_paces=("slow",)):
        save_recording(rec, data / "arm01" / rec.meta.trial)
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    assert main(["train", str(data), "--out", str(run), "--iterations", "3", "--quiet",
                 "--test-fraction", "0"]) == 0
    assert json.loads((run / "run.json").read_text())["joint"] == "elbow"
    assert main(["export", str(run), "--out", str(bundle)]) == 0
    capsys.readouterr()
    port = f"sim://?labels={MUSCLES}&fs={EMG_FS:g}"
    assert main(["run", "--port", port, "--bundle", str(bundle), "--profile", str(profile_path), "--duration",
                 "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["estimates"] > 20


def test_a_damaged_model_or_a_missing_opensim_is_one_line(arm, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.osim"
    bad.write_text("<OpenSimDocument><Model><BodySet>\n")
    argv = ["calibrate", "from-osim", str(bad), "--coordinate", "elbow_flex", "--muscles", MUSCLES, "--mvc",
            "bic=3e-4,tri=2e-4", "--out", str(tmp_path / "p.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.osim: OpenSim cannot load the model" in err and "Xml" in err
    monkeypatch.setitem(sys.modules, "opensim", None)
    argv[2] = str(arm)
    assert main(argv) == 2
    assert "needs the opensim package: pip install 'myoedge[opensim]'" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
