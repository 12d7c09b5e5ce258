"""Training data: envelopes identical to the device's, causal alignment of targets, MVC and physics choices,
profile discovery, and the splits."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from myoedge.body.recording import save_recording
from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope import EnvelopeFilter, volts_to_counts
from myoedge.ground.errors import InputError
from myoedge.train.data import (
    load_sequences,
    split_intra_session,
    split_leave_one_trial_out,
    subsample_train,
)


@pytest.fixture(scope="module")
def subject():
    return make_subject("knee", 1)


@pytest.fixture(scope="module")
def recordings(subject):
    return simulate_session(subject, duration_s=3.0)


@pytest.fixture(scope="module")
def seqs(subject, recordings):
    return load_sequences(recordings, profiles={subject.name: true_profile(subject)})


def test_shapes_rate_and_physics_from_profile(seqs, recordings):
    assert [s.trial for s in seqs] == [r.meta.trial for r in recordings]
    for s in seqs:
        assert s.muscles == ("BFSH", "RF") and s.rate_hz == 100.0 and s.physics == "eom"
        assert s.envelopes.dtype == np.float32 and s.envelopes.shape == (s.n, 2)
        assert s.forces.shape == (s.n, 2) and s.theta.shape == (s.n,) and s.torque.shape == (s.n,)
        np.testing.assert_allclose(np.diff(s.t), 0.01, atol=1e-9)
        assert s.t[0] >= 0.3 - 1e-9 and s.mvc_source == "profile" and s.model_moment_arms
        assert s.envelope_config.fs_hz == 2000.0 and s.envelope_config.out_rate_hz == 100.0


def test_envelopes_are_the_devices_streaming_output(subject, recordings, seqs):
    """The device filter fed the same ADC counts in any chunks gives the training envelopes bit for bit."""
    rec, seq = recordings[0], seqs[0]
    mvc = true_profile(subject).mvc
    assert seq.adc == default_adc(24)
    counts = volts_to_counts(rec.emg, volts_per_count=seq.adc.volts_per_count, input_bits=24)
    device = EnvelopeFilter(seq.envelope_config, n_channels=2, volts_per_count=seq.adc.volts_per_count,
                            mvc_volts=mvc)
    cuts = [0, 7, 1000, 1013, 4444, len(counts)]
    streamed = np.concatenate([device.process(counts[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    first = int(round((seq.t[0] - rec.emg_t0 - 19 / 2000.0) * 100.0))  # envelope j is EMG sample 19 + 20 j
    np.testing.assert_array_equal(streamed[first:first + seq.n], seq.envelopes)


def test_targets_are_interpolated_onto_the_envelope_instants(recordings, seqs):
    rec, seq = recordings[1], seqs[1]
    np.testing.assert_allclose(seq.theta, np.interp(seq.t, rec.time, rec.theta), atol=2e-4)
    np.testing.assert_allclose(seq.forces[:, 0], np.interp(seq.t, rec.time, rec.forces[:, 0]), atol=2.0)


def test_envelope_is_causal(subject, recordings):
    """Changing the EMG after time T leaves every envelope sample at or before T unchanged."""
    rec = recordings[0]
    emg = rec.emg.copy()
    cut = 3000  # EMG sample at 1.5 s
    emg[cut:] *= 3.0
    changed = replace(rec, emg=emg)
    prof = {subject.name: true_profile(subject)}
    a, b = load_sequences([rec], profiles=prof)[0], load_sequences([changed], profiles=prof)[0]
    before = a.t <= rec.emg_t0 + (cut - 1) / 2000.0
    np.testing.assert_array_equal(a.envelopes[before], b.envelopes[before])
    assert not np.array_equal(a.envelopes[~before], b.envelopes[~before])


def test_without_profile_mvc_is_the_subject_max_and_physics_uses_torque(recordings, caplog):
    with caplog.at_level(logging.WARNING):
        seqs = load_sequences(recordings, profiles={}, settle_s=0.0)
    assert "has no profile" in caplog.text
    assert all(s.physics == "id" and s.mvc_source == "max envelope" for s in seqs)
    peak = np.max([s.envelopes.max(0) for s in seqs], axis=0)
    np.testing.assert_allclose(peak, 1.0, atol=1e-3)
    assert seqs[0].mvc_volts == seqs[-1].mvc_volts  # one scale per subject


def test_without_profile_or_torque_the_generic_model_is_used(recordings, caplog):
    bare = [replace(r, torque=None) for r in recordings[:1]]
    with caplog.at_level(logging.WARNING):
        (seq,) = load_sequences(bare, profiles={})
    assert seq.physics == "eom" and seq.model.joint == "knee" and "generic" in caplog.text
    unknown = replace(bare[0], meta=replace(bare[0].meta, muscles=("A", "B")), moment_arms=None)
    (seq,) = load_sequences([unknown], profiles={})
    assert seq.physics == "none" and seq.model is None


def test_profiles_beside_recordings_are_found(tmp_path, subject, recordings):
    true_profile(subject).save(tmp_path / subject.name / "profile.json")
    save_recording(recordings[0], tmp_path / subject.name / "s1_slow")
    (seq,) = load_sequences(tmp_path)
    assert seq.mvc_source == "profile" and seq.physics == "eom" and seq.name == "knee01/s1_slow"


def test_emg_rate_not_a_multiple_of_the_model_rate_is_resampled(subject, recordings):
    rec = recordings[0]
    n = int(rec.emg.shape[0] * 1024 / 2000)
    from scipy.signal import resample

    odd = replace(rec, emg=resample(rec.emg, n, axis=0), emg_fs=1024.0)
    (seq,) = load_sequences([odd], profiles={subject.name: true_profile(subject)})
    assert seq.envelope_config.fs_hz == 1100.0 and seq.envelope_config.band_hz[1] == 450.0
    (ref,) = load_sequences([rec], profiles={subject.name: true_profile(subject)})
    m = min(seq.n, ref.n)
    assert np.corrcoef(seq.envelopes[:m, 0], ref.envelopes[:m, 0])[0, 1] > 0.9


def test_refuses_recordings_without_forces_and_bad_profiles(subject, recordings):
    with pytest.raises(InputError, match="no muscle forces"):
        load_sequences([replace(recordings[0], forces=None)], profiles={})
    wrist = true_profile(make_subject("wrist", 1))
    with pytest.raises(InputError, match="profile of knee01 is for wrist"):
        load_sequences(recordings[:1], profiles={subject.name: replace(wrist, subject=subject.name)})


def test_intra_session_split_is_contiguous_disjoint_and_seeded(seqs):
    split = split_intra_session(seqs, train_fraction=0.8, seed=3)
    train, test = split["knee01"]
    assert len(test) == 3
    for s in seqs:
        held = [p for p in test if p.name.startswith(s.name)]
        kept = [p for p in train if p.name.startswith(s.name)]
        assert len(held) == 1 and held[0].n == round(0.2 * s.n)
        assert sum(p.n for p in kept) + held[0].n == s.n
        assert not set(np.round(held[0].t, 6)) & set(np.round(np.concatenate([p.t for p in kept]), 6))
        np.testing.assert_allclose(np.diff(held[0].t), 0.01, atol=1e-9)
    again = split_intra_session(seqs, train_fraction=0.8, seed=3)["knee01"][1]
    assert [p.t[0] for p in again] == [p.t[0] for p in test]


def test_leave_one_trial_out_and_subsampling(seqs):
    folds = split_leave_one_trial_out(seqs)
    assert [name for name, _, _ in folds] == [s.name for s in seqs]
    for name, train, test in folds:
        assert [s.name for s in test] == [name] and name not in [s.name for s in train] and len(train) == 2
    sub = subsample_train(seqs, 0.1, seed=0)
    assert [s.n for s in sub] == [round(0.1 * s.n) for s in seqs]
    assert subsample_train(seqs, 0.1, seed=0)[0].t[0] == sub[0].t[0]
    with pytest.raises(InputError):
        subsample_train(seqs, 0.0, seed=0)


def test_parts_keep_the_input_history_before_their_start(seqs):
    s = seqs[0]
    tail = s.part(100, s.n, tag="b")
    np.testing.assert_array_equal(tail.lead, s.envelopes[:100])
    np.testing.assert_array_equal(tail.history(40), s.envelopes[60:100])
    np.testing.assert_array_equal(tail.history(130)[:30], np.repeat(s.envelopes[:1], 30, axis=0))
    inner = tail.part(10, 20, tag="c")
    np.testing.assert_array_equal(inner.lead, s.envelopes[:110])
    assert s.lead is None and s.part(0, 10, tag="a").lead is None
    np.testing.assert_array_equal(s.history(3), np.repeat(s.envelopes[:1], 3, axis=0))


def test_the_load_in_the_hand_comes_from_recording_json(subject, recordings):
    profiles = {subject.name: true_profile(subject)}
    held = [replace(r, meta=replace(r.meta, extra={**r.meta.extra, "load_kg": 2.5})) for r in recordings]
    assert [s.load_kg for s in load_sequences(held, profiles=profiles)] == [2.5] * len(held)
    assert {s.load_kg for s in load_sequences(recordings, profiles=profiles)} == {0.0}  # none given
    for bad in ("2 kg", -1.0, float("nan"), 2000.0):
        wrong = [replace(r, meta=replace(r.meta, extra={**r.meta.extra, "load_kg": bad})) for r in recordings]
        with pytest.raises(InputError, match=f"recording {subject.name} .*load_kg must be a mass"):
            load_sequences(wrong, profiles=profiles)
