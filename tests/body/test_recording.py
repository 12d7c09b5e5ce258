"""Recording folders: a lab folder mixing CSV EMG with OpenSim files, the CSV round trip, and every way a
folder can be malformed (each error must name the file, the line and the column)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from myoedge.body.recording import Recording, RecordingMeta, find_recordings, load_recording, save_recording
from myoedge.ground.errors import FormatError, InputError

# --- analytic signals, in our convention (positive = flexion) -----------------------------------------


def theta(t):
    return 0.6 + 0.4 * np.sin(2 * np.pi * 0.8 * t)


def torque(t):
    return 5.0 + 20.0 * np.sin(2 * np.pi * 0.5 * t)


def forces(t):
    return np.column_stack([500.0 + 100.0 * np.cos(3.0 * t), 300.0 + 50.0 * t])


def moment_arms(t):  # vastus: extensor (negative), biceps femoris: flexor (positive)
    return np.column_stack([-(0.04 + 0.005 * np.sin(2.0 * t)), 0.03 + 0.002 * t])


def emg_mv(t):
    return np.column_stack([np.sin(2 * np.pi * 50 * t), 0.5 * np.cos(2 * np.pi * 30 * t)])


NOTE = ("\nUnits are S.I. units (second, meters, Newtons, ...)\nIf the header above contains a line with "
        "'inDegrees', this indicates whether rotational values are in degrees (yes) or radians (no).\n\n")


def storage(name, labels, t, columns, *, in_degrees="no", note=""):
    """An OpenSim 3.x storage file as the documentation lays it out (fixed-width, tab-separated)."""
    flag = "" if in_degrees is None else f"inDegrees={in_degrees}\n"
    rows = "".join("\t".join(f"{v:16.8f}" for v in (ti, *row)) + "\n"
                   for ti, row in zip(t, columns, strict=True))
    return (f"{name}\nversion=1\nnRows={len(t)}\nnColumns={len(labels) + 1}\n{flag}{note}endheader\n"
            + "\t".join(["time", *labels]) + "\n" + rows)


def grid(start, stop, rate):
    return start + np.arange(int(round((stop - start) * rate)) + 1) / rate


def lab_folder(tmp_path, *, ik_degrees="yes", spec_changes=None):
    """A gait lab's trial: EMG CSV in mV at 1 kHz, IK .mot (knee flexion negative), ID, SO and MA .sto."""
    folder = tmp_path / "S01_walk1"
    folder.mkdir(parents=True)
    t = grid(0.0, 2.5, 1000)
    lines = ["# exported by the EMG system; units mV", '"time","EMG VL","EMG BF","footswitch"']
    lines += [f"{ti:.4f},{a:.9f},{b:.9f},0" for ti, (a, b) in zip(t, emg_mv(t), strict=True)]
    (folder / "emg.csv").write_text("\n".join(lines) + "\n")
    t = grid(0.0, 2.0, 100)
    knee = -theta(t) if ik_degrees == "no" else -np.degrees(theta(t))
    ik = storage("Coordinates", ["hip_flexion_r", "knee_angle_r"], t, np.column_stack([0.2 * t, knee]),
                 in_degrees=ik_degrees, note=NOTE)
    (folder / "ik.mot").write_text(ik)
    t = grid(0.05, 1.95, 120)
    (folder / "id.sto").write_text(storage("Inverse Dynamics Generalized Forces", ["knee_angle_r_moment"], t,
                                           -torque(t)[:, None]))
    t = grid(0.0, 1.9, 100)
    (folder / "so_force.sto").write_text(storage("Static Optimization", ["vas_int_r", "bifemlh_r", "reserve"],
                                                 t, np.column_stack([forces(t), np.zeros_like(t)])))
    t = grid(0.0, 2.0, 100)
    (folder / "ma_knee.sto").write_text(storage("MomentArm_knee_angle_r", ["bifemlh_r", "vas_int_r"], t,
                                                -moment_arms(t)[:, ::-1], note=NOTE))
    spec = {"format": "myoedge-recording", "version": 1, "joint": "knee",
            "muscles": ["vas_int_r", "bifemlh_r"], "subject": "S01", "session": "2024-05-01",
            "trial": "walk1", "flexion_sign": -1,
            "units": {"emg": "mV"}, "source": "gait lab",
            "files": {"emg": "emg.csv", "kinematics": "ik.mot", "torque": "id.sto", "forces": "so_force.sto",
                      "moment_arms": "ma_knee.sto"},
            "columns": {"angle": "knee_angle_r", "emg": {"vas_int_r": "EMG VL", "bifemlh_r": "EMG BF"}}}
    (spec_changes or (lambda s: None))(spec)
    (folder / "recording.json").write_text(json.dumps(spec, indent=2))
    return folder


def test_lab_folder_is_aligned_resampled_and_converted(tmp_path):
    rec = load_recording(lab_folder(tmp_path))
    # Every file covers [0.05, 1.9] s (ID starts late, SO ends early); the grid is the IK's 100 Hz.
    assert rec.rate == 100.0 and rec.time.size == 186
    np.testing.assert_allclose(rec.time, 0.05 + np.arange(186) / 100.0, atol=1e-12)
    np.testing.assert_allclose(rec.theta, theta(rec.time), atol=1e-9)  # degrees -> rad, sign flipped
    np.testing.assert_allclose(rec.torque, torque(rec.time), atol=1e-3)  # 120 Hz -> 100 Hz by PCHIP
    np.testing.assert_allclose(rec.forces, forces(rec.time), atol=1e-6)
    np.testing.assert_allclose(rec.moment_arms, moment_arms(rec.time), atol=1e-8)  # columns reordered
    assert rec.emg_fs == 1000.0 and rec.emg_t0 == pytest.approx(0.05, abs=1e-12)
    assert rec.emg.shape == (1860, 2)  # 0.050 ... 1.909 s: the last motion sample's period included
    np.testing.assert_allclose(rec.emg, emg_mv(rec.emg_time) * 1e-3, atol=1e-12)  # mV -> V
    assert rec.theta_dot is None and rec.activations is None
    assert rec.meta.muscles == ("vas_int_r", "bifemlh_r") and rec.meta.extra == {"source": "gait lab"}


def test_rate_override_interpolates_within_the_common_interval(tmp_path):
    rec = load_recording(lab_folder(tmp_path), rate=250.0)
    assert rec.rate == 250.0
    assert rec.time[0] == pytest.approx(0.052) and rec.time[-1] == pytest.approx(1.9)
    np.testing.assert_allclose(rec.theta, theta(rec.time), atol=1e-4)
    np.testing.assert_allclose(rec.forces, forces(rec.time), atol=0.02)
    assert rec.emg_t0 == pytest.approx(0.052) and rec.emg_time[-1] == pytest.approx(1.903)


def test_radians_and_flexion_sign(tmp_path):
    rad = load_recording(lab_folder(tmp_path / "a", ik_degrees="no"))
    np.testing.assert_allclose(rad.theta, theta(rad.time), atol=1e-7)
    flipped = load_recording(lab_folder(tmp_path / "b", spec_changes=lambda s: s.pop("flexion_sign")))
    np.testing.assert_allclose(flipped.theta, -theta(flipped.time), atol=1e-9)
    np.testing.assert_allclose(flipped.torque, -rad.torque, atol=1e-12)
    np.testing.assert_allclose(flipped.moment_arms, -rad.moment_arms, atol=1e-12)
    np.testing.assert_allclose(flipped.forces, rad.forces, atol=1e-12)  # forces carry no sign convention


def test_variable_step_kinematics_use_their_mean_rate(tmp_path):
    folder = lab_folder(tmp_path)
    t = grid(0.0, 2.0, 100)
    t[1:-1] += np.random.default_rng(0).uniform(-0.003, 0.003, t.size - 2)  # a variable-step .sto
    (folder / "ik.mot").write_text(storage("Coordinates", ["knee_angle_r"], t, -np.degrees(theta(t))[:, None],
                                           in_degrees="yes"))
    rec = load_recording(folder)
    assert rec.rate == pytest.approx(100.0, rel=1e-9) and rec.time[0] == pytest.approx(0.05)
    np.testing.assert_allclose(rec.theta, theta(rec.time), atol=2e-4)


def test_missing_in_degrees_needs_units_angle_and_conflicts_are_refused(tmp_path):
    folder = lab_folder(tmp_path / "a", ik_degrees=None)  # an old file in degrees without the flag
    with pytest.raises(FormatError) as info:
        load_recording(folder)
    err = info.value
    assert err.path.endswith("ik.mot") and err.line == 9 and err.column == "knee_angle_r"  # endheader line
    assert "inDegrees" in err.reason
    folder = lab_folder(tmp_path / "b", ik_degrees=None,
                        spec_changes=lambda s: s["units"].update(angle="deg"))
    rec = load_recording(folder)
    np.testing.assert_allclose(rec.theta, theta(rec.time), atol=1e-9)
    folder = lab_folder(tmp_path / "c", spec_changes=lambda s: s["units"].update(angle="rad"))
    with pytest.raises(FormatError, match="inDegrees=yes") as info:
        load_recording(folder)
    assert info.value.column == "units.angle" and info.value.path.endswith("recording.json")


def test_csv_quirks_of_lab_exports(tmp_path):
    """A byte-order mark, CRLF newlines, quoted labels, comments, blank lines, times in ms, degrees, and an
    amplifier whose rate is not a whole number of hertz (1111.111 Hz)."""
    folder = tmp_path / "rec"
    folder.mkdir()
    fs = 10000.0 / 9.0
    t = np.arange(int(1.2 * fs)) / fs
    rows = [f"{1000 * ti:.6f},{1e6 * v:.6f}" for ti, v in zip(t, 1e-4 * np.sin(40 * t), strict=True)]
    text = "\r\n".join(["# subject S02", '"time","biceps"', *rows, "", ""])
    (folder / "emg.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    tk = np.arange(0, 1.2, 0.01)
    (folder / "kin.csv").write_text("time,elbow_flexion\n" + "".join(
        f"{1000 * ti:.3f},{np.degrees(theta(ti)):.9f}\n" for ti in tk))
    (folder / "recording.json").write_text(json.dumps({
        "format": "myoedge-recording", "version": 1, "joint": "elbow", "muscles": ["biceps"],
        "subject": "S02", "session": "1", "trial": "1", "units": {"emg": "uV", "time": "ms", "angle": "deg"},
        "files": {"emg": "emg.csv", "kinematics": "kin.csv"}, "columns": {"angle": "elbow_flexion"}}))
    rec = load_recording(folder)
    assert rec.emg_fs == pytest.approx(fs, rel=1e-9) and rec.emg_fs != round(rec.emg_fs)
    assert rec.rate == 100.0 and rec.time[-1] == pytest.approx(1.19)
    np.testing.assert_allclose(rec.theta, theta(rec.time), atol=1e-9)
    np.testing.assert_allclose(rec.emg[:, 0], 1e-4 * np.sin(40 * rec.emg_time), atol=1e-12)
    # A clock that speeds up by 4 % halfway: each step looks fine, the drift does not.
    t_bad = np.concatenate([t[:600], t[599] + np.arange(1, len(t) - 599) * 1.04 / fs])
    rows = [f"{1000 * ti:.6f},0" for ti in t_bad]
    (folder / "emg.csv").write_text("time,biceps\n" + "\n".join(rows) + "\n")
    with pytest.raises(FormatError, match="drifts") as info:
        load_recording(folder)
    assert info.value.column == "time" and info.value.line in (2, len(rows) + 1)


def synthetic(*, n=50, rate=100.0, emg_fs=1000.0, truth=True):
    t = 0.25 + np.arange(n) / rate
    n_emg = int(round(n * emg_fs / rate))  # EMG through the last motion sample's period, as simulated
    rng = np.random.default_rng(3)
    meta = RecordingMeta(joint="elbow", muscles=("biceps", "triceps"), subject="sim01", session="s1",
                         trial="slow", extra={"source": "synthetic", "seed": 3})
    opt = {}
    if truth:
        opt = dict(theta_dot=np.cos(t), theta_ddot=-np.sin(t), activations=rng.uniform(0, 1, (n, 2)),
                   excitations=rng.uniform(0, 1, (n, 2)))
    return Recording(meta=meta, emg_fs=emg_fs, emg=rng.normal(0, 1e-4, (n_emg, 2)), emg_t0=t[0], time=t,
                     rate=rate, theta=np.sin(t), torque=3 * np.cos(t), forces=rng.uniform(0, 900, (n, 2)),
                     moment_arms=np.tile([0.04, -0.02], (n, 1)), **opt)


ARRAYS = ("emg", "time", "theta", "theta_dot", "theta_ddot", "torque", "forces", "moment_arms", "activations",
          "excitations")


@pytest.mark.parametrize("truth", [True, False])
def test_csv_round_trip(tmp_path, truth):
    rec = synthetic(truth=truth)
    folder = save_recording(rec, tmp_path / "sim01" / "s1_slow")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["emg.csv", "motion.csv", "recording.json"] + (["truth.csv"] if truth else []))
    back = load_recording(folder)
    assert back.meta == rec.meta and back.rate == rec.rate and back.emg_fs == rec.emg_fs
    assert back.emg_t0 == pytest.approx(rec.emg_t0, abs=1e-12)
    for name in ARRAYS:
        a, b = getattr(rec, name), getattr(back, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-15, err_msg=name)


def test_save_is_atomic_and_find_lists_folders(tmp_path):
    rec = synthetic(truth=False)
    save_recording(rec, tmp_path / "b" / "t1")
    save_recording(rec, tmp_path / "a")
    with pytest.raises(InputError, match="already exists"):
        save_recording(rec, tmp_path / "a")
    save_recording(rec, tmp_path / "a", overwrite=True)
    (tmp_path / ".a.x.tmp").mkdir()
    (tmp_path / ".a.x.tmp" / "recording.json").write_text("{}")
    assert find_recordings(tmp_path) == [tmp_path / "a", tmp_path / "b" / "t1"]
    with pytest.raises(InputError):
        save_recording(Recording(**{**rec.__dict__, "meta": RecordingMeta(
            joint="elbow", muscles=("biceps", "triceps"), extra={"bad": object()})}), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_recording_validates_shapes_and_coverage():
    rec = synthetic()
    fields = dict(rec.__dict__)
    with pytest.raises(InputError, match=r"forces must have shape \(50, 2\)"):
        Recording(**{**fields, "forces": np.zeros((50, 3))})
    with pytest.raises(InputError, match="non-finite"):
        Recording(**{**fields, "theta": np.full(50, np.nan)})
    with pytest.raises(InputError, match="uniform"):
        Recording(**{**fields, "time": fields["time"] ** 1.01})
    with pytest.raises(InputError, match="must cover"):
        Recording(**{**fields, "emg_t0": 0.5})
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        Recording(**{**fields, "activations": np.full((50, 2), 1.5)})
    with pytest.raises(InputError, match="unique"):
        RecordingMeta(joint="elbow", muscles=("a", "a"))
    with pytest.raises(InputError, match="schema keys"):
        RecordingMeta(joint="elbow", muscles=("a",), extra={"files": {}})
    assert not rec.theta.flags.writeable
    assert math.isclose(rec.emg_time[-1], rec.time[-1] + 1 / rec.rate - 1 / rec.emg_fs)


# --- malformed folders: each case breaks a saved CSV-layout folder one way -------------------------------


def _lines(path, fn):
    lines = path.read_text().splitlines()
    fn(lines)
    path.write_text("\n".join(lines) + "\n")


def _cell(name, line, column, value):
    def mutate(folder):
        def fn(lines):
            row = lines[line - 1].split(",")
            row[lines[0].split(",").index(column)] = value
            lines[line - 1] = ",".join(row)
        _lines(folder / name, fn)
    return mutate


def _json(fn):
    def mutate(folder):
        spec = json.loads((folder / "recording.json").read_text())
        fn(spec)
        (folder / "recording.json").write_text(json.dumps(spec, indent=2))
    return mutate


def _swap(lines):
    lines[10], lines[11] = lines[11], lines[10]


def _text(name, text):
    return lambda folder: (folder / name).write_text(text)


# name: (mutation, file, line (int, None, or text on the expected line), column, words in the reason)
BROKEN = {
    "muscle not in EMG CSV": (lambda f: _lines(f / "emg.csv", lambda ls: ls.__setitem__(0, "time,biceps,x")),
                              "emg.csv", 1, "triceps", "no column 'triceps'"),
    "EMG time unsorted": (lambda f: _lines(f / "emg.csv", _swap), "emg.csv", 12, "time", "goes back"),
    "EMG time repeated": (_cell("emg.csv", 12, "time", "0.259"), "emg.csv", 12, "time", "repeats"),
    "EMG sample dropped": (lambda f: _lines(f / "emg.csv", lambda ls: ls.pop(99)), "emg.csv", 100, "time",
                           "not uniformly sampled"),
    "EMG file empty": (_text("emg.csv", ""), "emg.csv", 1, None, "empty"),
    "EMG header only": (_text("emg.csv", "time,biceps,triceps\n"), "emg.csv", 1, None, "at least 2"),
    "ragged CSV row": (lambda f: _lines(f / "emg.csv", lambda ls: ls.__setitem__(6, ls[6].rsplit(",", 1)[0])),
                       "emg.csv", 7, "triceps", "2 cells"),
    "NaN in motion": (_cell("motion.csv", 5, "angle", "nan"), "motion.csv", 5, "angle", "finite"),
    "inf in truth": (_cell("truth.csv", 9, "theta_dot", "-inf"), "truth.csv", 9, "theta_dot", "finite"),
    "non-numeric torque": (_cell("motion.csv", 4, "torque", "1.2.3"), "motion.csv", 4, "torque", "'1.2.3'"),
    "activation above 1": (_cell("truth.csv", 3, "activation_triceps", "1.5"), "truth.csv", 3,
                           "activation_triceps", "[0, 1]"),
    "unknown EMG unit": (_json(lambda s: s["units"].update(emg="counts")), "recording.json",
                         '"emg": "counts"', "units.emg", "'counts'"),
    "unknown unit key": (_json(lambda s: s["units"].update(speed="m/s")), "recording.json", '"speed"',
                         "units.speed", "units.speed"),
    "joint missing": (_json(lambda s: s.pop("joint")), "recording.json", None, "joint", "missing required"),
    "kinematics file missing": (_json(lambda s: s["files"].pop("kinematics")), "recording.json", '"files"',
                                "files.kinematics", "missing required key 'files.kinematics'"),
    "angle column missing": (_json(lambda s: s["columns"].pop("angle")), "recording.json", '"columns"',
                             "columns.angle", "missing required"),
    "unknown version": (_json(lambda s: s.update(version=2)), "recording.json", '"version"', "version",
                        "version 2"),
    "wrong format": (_json(lambda s: s.update(format="other")), "recording.json", '"format"', "format",
                     "'other'"),
    "muscles not names": (_json(lambda s: s.update(muscles=["a", "a"])), "recording.json", '"muscles"',
                          "muscles", "unique"),
    "invalid JSON": (lambda f: _lines(f / "recording.json", lambda ls: ls.__setitem__(3, ls[3] + "}")),
                     "recording.json", 4, None, "not valid JSON"),
    "declared EMG rate wrong": (_json(lambda s: s["rates"].update(emg=2000)), "emg.csv", 1, "time",
                                "2000 Hz"),
    "unknown file role": (_json(lambda s: s["files"].update(kinematic="x.csv")), "recording.json",
                          '"kinematic"', "files.kinematic", "unknown file role"),
    "file outside folder": (_json(lambda s: s["files"].update(emg="../emg.csv")), "recording.json",
                            '"../emg.csv"', "files.emg", "inside the recording folder"),
    "flexion_sign invalid": (_json(lambda s: s.update(flexion_sign=2)), "recording.json", '"flexion_sign"',
                             "flexion_sign", "1 or -1"),
    "forces column for unknown muscle": (_json(lambda s: s["columns"]["forces"].update(deltoid="d")),
                                         "recording.json", '"deltoid"', "columns.forces.deltoid",
                                         "not in muscles"),
    "data file missing": (lambda f: (f / "truth.csv").unlink(), "truth.csv", None, None, "not found"),
    "files do not overlap": (lambda f: _lines(f / "truth.csv", lambda ls: ls.__setitem__(
        slice(1, None), [f"{float(r.split(',')[0]) + 100}," + r.split(",", 1)[1] for r in ls[1:]])),
        "recording.json", None, None, "share under two samples"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_folder_names_file_line_and_column(tmp_path, case):
    mutate, name, line, column, words = BROKEN[case]
    folder = save_recording(synthetic(), tmp_path / "rec")
    mutate(folder)
    with pytest.raises(FormatError) as info:
        load_recording(folder)
    err = info.value
    assert err.path == str(folder / name), str(err)
    if isinstance(line, str):
        line = next(i for i, s in enumerate((folder / name).read_text().splitlines(), 1) if line in s)
    assert (err.line, err.column) == (line, column), str(err)
    assert words in err.reason, str(err)
    assert str(folder / name) in str(err)
    if line is not None:
        assert f"line {line}" in str(err)
    if column is not None:
        assert f"column '{column}'" in str(err)
