"""C3D recordings: a C3D written by ezc3d with known analog EMG loads like the same EMG in CSV (same
envelopes), with units and rate from the file's parameters, events on the recording's clock, and every
mapping mistake named with the file and the label."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from myoedge.body.recording import load_recording, save_recording
from myoedge.calibrate.forces import normalised_envelope
from myoedge.ground.errors import FormatError, InputError

ezc3d = pytest.importorskip("ezc3d")

POINT_RATE, ANALOG_RATE, SECONDS = 100.0, 1000.0, 3.0


def emg_volts(n):
    """Two channels of EMG-like noise with a slow amplitude modulation, in volts."""
    rng = np.random.default_rng(7)
    t = np.arange(n) / ANALOG_RATE
    gain = np.column_stack([1 + 0.8 * np.sin(2 * np.pi * 0.7 * t), 1 + 0.5 * np.cos(2 * np.pi * 0.4 * t)])
    return rng.normal(0.0, 2e-4, (n, 2)) * gain


def write_c3d(path, emg, *, labels=("EMG1", "EMG2", "FSW"), units=("mV", "mV", "V"), scale=1e3,
              analog_rate=ANALOG_RATE, point_rate=POINT_RATE, first_frame=0, events=()):
    """A C3D as a lab system writes it: one marker, analog channels (EMG in ``units``, a footswitch)."""
    n_frames = int(round(emg.shape[0] * point_rate / analog_rate))
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = np.array([point_rate])
    c["parameters"]["POINT"]["LABELS"]["value"] = ["KNEE"]
    c["data"]["points"] = np.ones((4, 1, n_frames))
    c["parameters"]["ANALOG"]["RATE"]["value"] = np.array([analog_rate])
    c["parameters"]["ANALOG"]["LABELS"]["value"] = list(labels)
    c["parameters"]["ANALOG"]["UNITS"]["value"] = list(units)
    analogs = np.zeros((1, len(labels), emg.shape[0]))
    analogs[0, :2] = (emg * scale).T
    c["data"]["analogs"] = analogs
    c["header"]["points"]["first_frame"] = first_frame
    for context, label, seconds in events:
        c.add_event([0, seconds], context=context, label=label)
    c.write(str(path))
    return ezc3d.c3d(str(path))["data"]["analogs"][0, :2].T  # the EMG as the file holds it (float32)


def trial(tmp_path, name, *, emg_file, t0=0.0, changes=None, units=None):
    """A recording folder: the EMG file given, and a CSV knee angle at 100 Hz covering [t0, t0 + 2.8] s."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    t = t0 + np.arange(281) / POINT_RATE
    rows = "".join(f"{ti:.6f},{0.6 + 0.4 * np.sin(2 * np.pi * 0.8 * ti):.9f}\n" for ti in t)
    (folder / "motion.csv").write_text("time,knee\n" + rows)
    spec = {"format": "myoedge-recording", "version": 1, "joint": "knee", "muscles": ["VL", "BF"],
            "subject": "S01", "session": "1", "trial": name, "units": {"angle": "rad", **(units or {})},
            "files": {"emg": emg_file, "kinematics": "motion.csv"},
            "columns": {"angle": "knee", "emg": {"VL": "EMG1", "BF": "EMG2"}}}
    (changes or (lambda s: None))(spec)
    (folder / "recording.json").write_text(json.dumps(spec, indent=2))
    return folder


def c3d_trial(tmp_path, name="c3d", *, emg=None, changes=None, **write):
    emg = emg_volts(int(SECONDS * ANALOG_RATE)) if emg is None else emg
    folder = trial(tmp_path, name, emg_file="trial.c3d", changes=changes,
                   t0=write.get("first_frame", 0) / write.get("point_rate", POINT_RATE))
    stored = write_c3d(folder / "trial.c3d", emg, **write)
    return folder, stored


def test_c3d_gives_the_same_envelopes_as_the_same_emg_in_csv(tmp_path):
    folder, raw_mv = c3d_trial(tmp_path)  # stored in mV, so the loader must convert
    csv = trial(tmp_path, "csv", emg_file="emg.csv", units={"emg": "mV"},
                changes=lambda s: s["columns"].update(emg={"VL": "EMG VL", "BF": "EMG BF"}))
    t = np.arange(raw_mv.shape[0]) / ANALOG_RATE
    (csv / "emg.csv").write_text("time,EMG VL,EMG BF\n" + "".join(
        f"{ti:.6f},{a!r},{b!r}\n" for ti, (a, b) in zip(t, raw_mv.tolist())))
    a, b = load_recording(folder), load_recording(csv)
    assert a.emg_fs == b.emg_fs == ANALOG_RATE and a.rate == b.rate == POINT_RATE
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.emg, b.emg)
    np.testing.assert_allclose(a.emg, 1e-3 * raw_mv[:a.emg.shape[0]], rtol=1e-12)  # volts, not millivolts
    assert np.abs(a.emg).max() < 5e-3
    mvc = np.array([3e-4, 2e-4])
    env_a, env_b = normalised_envelope(a, mvc, (0, 1)), normalised_envelope(b, mvc, (0, 1))
    assert env_a.shape == (a.time.size, 2) and env_a.max() > 0.1
    np.testing.assert_array_equal(env_a, env_b)


@pytest.mark.parametrize("unit, scale", [("V", 1.0), ("mV", 1e3), ("uV", 1e6), ("µV", 1e6)])
def test_units_come_from_the_file(tmp_path, unit, scale):
    emg = emg_volts(2000)
    folder, _ = c3d_trial(tmp_path, emg=emg, units=("V", unit, "V"), scale=scale)
    rec = load_recording(folder)
    np.testing.assert_allclose(rec.emg[:, 1], emg[:rec.emg.shape[0], 1], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rec.emg[:, 0], emg[:rec.emg.shape[0], 0] * scale, rtol=1e-6, atol=1e-12)


def test_events_and_first_frame_put_on_the_recording_clock_and_kept_on_save(tmp_path):
    events = [("Right", "Foot Strike", 1.31), ("Right", "Foot Strike", 0.42), ("Left", "Foot Off", 0.9),
              ("", "Start", 0.3)]
    folder, _ = c3d_trial(tmp_path, first_frame=20, events=events)
    rec = load_recording(folder)
    assert rec.emg_t0 == pytest.approx(0.2) and rec.time[0] == pytest.approx(0.2)
    assert sorted(rec.events) == ["Left Foot Off", "Right Foot Strike", "Start"]
    np.testing.assert_allclose(rec.events["Right Foot Strike"], [0.42, 1.31], atol=1e-6)
    np.testing.assert_allclose(rec.events["Start"], [0.3], atol=1e-6)
    back = load_recording(save_recording(rec, tmp_path / "saved"))
    assert sorted(back.events) == sorted(rec.events)
    np.testing.assert_array_equal(back.events["Right Foot Strike"], rec.events["Right Foot Strike"])


def test_recording_without_events_has_none(tmp_path):
    folder, _ = c3d_trial(tmp_path)
    assert load_recording(folder).events == {}


def test_events_in_recording_json_merge_with_the_c3d_and_bad_ones_name_the_key(tmp_path):
    events = {"Right Foot Strike": [2.0, 0.5], "Trigger": [0.1]}
    folder, _ = c3d_trial(tmp_path, events=[("Right", "Foot Strike", 1.0)],
                          changes=lambda s: s.update(events=events))
    rec = load_recording(folder)
    np.testing.assert_allclose(rec.events["Right Foot Strike"], [0.5, 1.0, 2.0], atol=1e-6)
    assert rec.events["Trigger"].tolist() == [0.1]
    folder, _ = c3d_trial(tmp_path, "bad", changes=lambda s: s.update(events={"Trigger": [0.1, "x"]}))
    with pytest.raises(FormatError, match=r"recording.json, line \d+, column 'events'.*'Trigger'"):
        load_recording(folder)


def test_missing_label_names_the_label_and_the_file(tmp_path):
    folder, _ = c3d_trial(tmp_path, changes=lambda s: s["columns"]["emg"].update(BF="EMG7"))
    with pytest.raises(FormatError, match=r"trial\.c3d.*'EMG7'.*EMG1, EMG2, FSW"):
        load_recording(folder)


def test_rate_is_checked_against_recording_json_and_the_kinematics(tmp_path):
    folder, _ = c3d_trial(tmp_path, changes=lambda s: s.update(rates={"emg": 2000}))
    with pytest.raises(FormatError, match=r"trial\.c3d.*ANALOG:RATE gives 1000 Hz but recording.json "
                                          r"rates.emg says 2000 Hz"):
        load_recording(folder)
    slow, _ = c3d_trial(tmp_path, "slow", emg=emg_volts(150), analog_rate=50.0, point_rate=50.0)
    with pytest.raises(FormatError, match=r"trial\.c3d.*EMG at 50 Hz is slower than the kinematics"):
        load_recording(slow)


def test_unit_problems_name_the_label(tmp_path):
    folder, _ = c3d_trial(tmp_path, units=("mV", "N", "V"))
    with pytest.raises(FormatError, match=r"trial\.c3d.*'EMG2' is in 'N'.*not a voltage"):
        load_recording(folder)
    folder, _ = c3d_trial(tmp_path, "nounit", units=("mV", "", "V"))
    with pytest.raises(FormatError, match=r"no unit for 'EMG2'.*units.emg"):
        load_recording(folder)
    folder, raw_mv = c3d_trial(tmp_path, "fallback", units=("mV", "", "V"),
                               changes=lambda s: s["units"].update(emg="mV"))
    rec = load_recording(folder)
    np.testing.assert_allclose(rec.emg[:, 1], 1e-3 * raw_mv[:rec.emg.shape[0], 1], rtol=1e-12)
    folder, _ = c3d_trial(tmp_path, "clash", changes=lambda s: s["units"].update(emg="V"))
    with pytest.raises(FormatError, match=r"ANALOG:UNITS says 'EMG1' is in mV but recording.json units.emg"):
        load_recording(folder)


def test_other_roles_refuse_c3d_and_damaged_files_are_named(tmp_path):
    folder, _ = c3d_trial(tmp_path, changes=lambda s: s["files"].update(kinematics="trial.c3d"))
    with pytest.raises(FormatError, match=r"files.kinematics must be a .csv, .sto or .mot"):
        load_recording(folder)
    folder, _ = c3d_trial(tmp_path, "damaged")
    (folder / "trial.c3d").write_bytes(b"not a c3d at all" * 4)
    with pytest.raises(FormatError, match=r"trial\.c3d: not a readable C3D file"):
        load_recording(folder)


def test_missing_ezc3d_is_a_clear_input_error(tmp_path, monkeypatch):
    folder, _ = c3d_trial(tmp_path)
    monkeypatch.setitem(sys.modules, "ezc3d", None)
    with pytest.raises(InputError, match=r"needs the ezc3d package: pip install 'myoedge\[lab\]'"):
        load_recording(folder)
