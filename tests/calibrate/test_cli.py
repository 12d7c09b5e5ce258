"""``myoedge calibrate moment-arms`` end to end: the profile it writes, its provenance and JSON summary, and
that a failed run (NaN in a file, a trial without torque) leaves the existing profile byte for byte."""

import json
from dataclasses import replace

import numpy as np
import pytest

from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import save_recording
from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.calibrate.moment_arms import relative_rms_error
from myoedge.cli import main
from myoedge.ground.errors import InputError


@pytest.fixture(scope="module")
def subject_and_recordings():
    subject = make_subject("knee", 2)
    return subject, simulate_session(subject, duration_s=4.0)


def write(tmp_path, subject, recordings, *, scales=(1.25, 0.8)):
    data = tmp_path / "data"
    for rec in recordings:
        save_recording(rec, data / f"{rec.meta.session}_{rec.meta.trial}")
    truth = true_profile(subject)
    muscles = tuple(replace(m, moment_arm=tuple(c * s for c in m.moment_arm))
                    for m, s in zip(truth.model.muscles, scales))
    profile = truth.replace(model=replace(truth.model, muscles=muscles), provenance={"note": "generic prior"})
    path = tmp_path / "profile.json"
    profile.save(path)
    return data, path


def test_moment_arms_verb_writes_a_fitted_profile_with_provenance(tmp_path, subject_and_recordings, capsys):
    subject, recordings = subject_and_recordings
    data, path = write(tmp_path, subject, recordings)
    prior_bytes = path.read_bytes()
    code = main(["calibrate", "moment-arms", "--data", str(data), "--profile", str(path), "--out", str(path),
                 "--fit-segment", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rmse_after_nm"] < 0.5 * summary["rmse_before_nm"]
    assert len(summary["trials"]) == 3 and summary["force_source"] == "recording"
    assert "torque RMSE" in out and "BFSH" in out
    fitted = SubjectProfile.load(path)
    err = relative_rms_error(fitted.model, subject.model, np.radians(summary["theta_range_deg"]))
    assert np.all(err < 0.05)
    prov = fitted.provenance
    assert prov["note"] == "generic prior" and prov["moment_arms"]["date"] and prov["moment_arms"]["segment"]
    assert [h["calibration"] for h in prov["history"]] == ["moment_arms"]
    assert (tmp_path / "profile.json.prev").read_bytes() == prior_bytes  # the previous profile is kept


def test_nan_in_a_recording_fails_cleanly_and_leaves_the_profile(tmp_path, subject_and_recordings, capsys):
    subject, recordings = subject_and_recordings
    data, path = write(tmp_path, subject, recordings)
    motion = sorted(data.glob("*/motion.csv"))[0]
    lines = motion.read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = "nan"
    lines[5] = ",".join(cells)
    motion.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    code = main(["calibrate", "moment-arms", "--data", str(data), "--profile", str(path), "--out", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "motion.csv" in err and len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before and not (tmp_path / "profile.json.prev").exists()


def test_a_trial_without_torque_fails_cleanly_when_torque_must_be_recorded(tmp_path, subject_and_recordings,
                                                                          capsys):
    subject, recordings = subject_and_recordings
    no_torque = [replace(r, torque=None) for r in recordings]
    data, path = write(tmp_path, subject, no_torque)
    before = path.read_bytes()
    code = main(["calibrate", "moment-arms", "--data", str(data), "--profile", str(path), "--out", str(path),
                 "--torque", "recording"])
    assert code == 2 and "has no joint torque" in capsys.readouterr().err
    assert path.read_bytes() == before
    code = main(["calibrate", "moment-arms", "--data", str(data), "--profile", str(path), "--out", str(path),
                 "--fit-segment"])
    assert code == 2 and "needs a measured joint torque" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_mvc_verb_needs_a_profile_or_a_joint(tmp_path, capsys):
    code = main(["calibrate", "mvc", "--port", "loop://", "--out", str(tmp_path / "new.json")])
    assert code == 2 and "give --profile" in capsys.readouterr().err
    assert not (tmp_path / "new.json").exists()


def test_scripted_demo_step_calibrates_a_synthetic_subject_from_the_generic_model(tmp_path):
    from myoedge.body.subjects import write_dataset
    from myoedge.calibrate.demo_step import run_calibration_step

    write_dataset(tmp_path / "data", joints=("knee",), n_subjects=1, duration_s=3.0, seed=0)
    lines = []
    summary = run_calibration_step(tmp_path / "data", tmp_path / "knee01.json", joint="knee", seed=0,
                                   say=lines.append)
    assert len(lines) == 2 and "MVC session" in lines[0]
    assert max(abs(e) for e in summary["mvc_error"].values()) < 0.03
    assert summary["max_moment_arm_error"] < 0.05
    assert SubjectProfile.load(tmp_path / "knee01.json").provenance["mvc"]["port"]


def test_profile_comparison_is_in_percent_of_the_true_value():
    from myoedge.calibrate.demo_step import compare_profiles, describe_comparison

    truth = true_profile(make_subject("knee", 1))
    angles = np.radians([10.0, 40.0])
    same = compare_profiles(truth, truth, angles_rad=angles)
    assert same["angles_deg"] == pytest.approx([10.0, 40.0])
    assert all(e == 0.0 for e in same["mvc_percent"].values())
    assert all(e == [0.0, 0.0] for e in same["moment_arm_percent"].values())
    louder = replace(truth, mvc_volts=tuple(1.1 * v for v in truth.mvc_volts))
    diff = compare_profiles(louder, truth, angles_rad=angles)
    assert list(diff["mvc_percent"].values()) == pytest.approx([10.0, 10.0])
    lines = describe_comparison(diff)
    assert "+10.0%" in lines[0] and "10°, 40°" in lines[1]
    with pytest.raises(InputError, match="different muscles"):
        compare_profiles(true_profile(make_subject("wrist", 1)), truth, angles_rad=angles)
