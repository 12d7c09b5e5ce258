"""MVC session logic without I/O: the plateau statistic, each rejection, pooling, the envelope stream and
the contraction finder on counts synthesised by the body model's EMG model."""

import numpy as np
import pytest

from myoedge.body.emg_synth import ElectrodeSetup, synthesize
from myoedge.calibrate.mvc import MvcConfig, MvcSession, RepetitionData, evaluate_repetition, plateau_mvc
from myoedge.calibrate.mvc_stream import (
    BurstFinder,
    EnvelopeStream,
    guided_repetition,
    stream_envelope_config,
)
from myoedge.edge.dsp.envelope import envelope_from_volts
from myoedge.edge.sim.ampsim_signals import mvc_excitation
from myoedge.ground.errors import InputError

RATE = 100.0
CFG = MvcConfig()
VPC = 22e-9  # volts per count, a 24-bit ADS1299-like front end


def contraction(level=1.0, *, hold_s=3.0, ramp_s=1.0, noise=0.04, seed=0):
    """An envelope with raised-cosine ramps and a plateau at ``level``, plus smooth noise."""
    rng = np.random.default_rng(seed)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(int(ramp_s * RATE)) / (ramp_s * RATE))
    shape = np.concatenate([ramp, np.ones(int(hold_s * RATE)), ramp[::-1]])
    white = rng.standard_normal(shape.size + 20)
    wiggle = np.convolve(white, np.ones(20) / np.sqrt(20), "valid")[: shape.size]
    return level * shape * (1 + noise * wiggle)


def data(envelope, **over):
    base = dict(envelope=np.asarray(envelope, float), rest_volts=0.02, clipped=0, raw_samples=10000,
                raw_rms_volts=1e-4, lost_frames=0, expected_frames=2500, start_s=0.0)
    return RepetitionData(**{**base, **over})


def test_plateau_is_the_steady_level_while_the_peak_of_the_moving_average_overshoots():
    errors, peaks = [], []
    for seed in range(20):
        env = contraction(seed=seed)
        mvc, peak, (start, stop) = plateau_mvc(env, rate_hz=RATE, window_s=0.5, plateau_fraction=0.85)
        errors.append(mvc - 1.0)
        peaks.append(peak - 1.0)
        assert 2.5 * RATE <= stop - start <= 4.0 * RATE  # the 3 s hold, not the ramps
    assert abs(np.mean(errors)) < 0.01 and np.max(np.abs(errors)) < 0.03
    assert np.mean(peaks) > 0.02  # what the classic statistic would have reported


def test_a_brief_effort_falls_back_to_the_peak_of_the_moving_average():
    env = np.full(300, 0.05)
    env[100:160] = 1.0  # 0.6 s at the top: shorter than two windows
    mvc, peak, _ = plateau_mvc(env, rate_hz=RATE, window_s=0.5, plateau_fraction=0.85)
    assert mvc == peak == pytest.approx(1.0)


@pytest.mark.parametrize("over, words", [
    (dict(lost_frames=100), "frames lost"),
    (dict(clipped=50), "clipped"),
    (dict(raw_rms_volts=1e-8), "flat signal"),
    (dict(rest_volts=0.5), "too weak"),
    (dict(other_channel="RF"), "strongest rise was on RF"),
])
def test_each_rejection_says_why(over, words):
    rep = evaluate_repetition("BFSH", attempt=1, data=data(contraction(), **over), rate_hz=RATE, config=CFG)
    assert not rep.accepted and words in rep.reason


def test_a_good_repetition_is_accepted():
    rep = evaluate_repetition("BFSH", attempt=1, data=data(contraction()), rate_hz=RATE, config=CFG)
    assert rep.accepted and rep.reason == "" and rep.mvc_volts == pytest.approx(1.0, rel=0.03)


def test_session_pools_equal_efforts_and_drops_a_weak_one():
    s = MvcSession(muscles=("A",), config=MvcConfig(repetitions=3))
    for level, seed in ((1.0, 1), (1.02, 2), (0.7, 3), (0.99, 4)):
        s.add("A", data(contraction(level, seed=seed)), rate_hz=RATE)
    assert s.complete
    pooled = s.pooled("A")
    assert len(pooled) == 3 and all(r.mvc_volts > 0.9 for r in pooled)
    assert s.mvc()["A"] == pytest.approx(np.mean([r.mvc_volts for r in pooled]))


def test_an_incomplete_session_names_the_muscle_and_the_reasons():
    s = MvcSession(muscles=("A", "B"), config=MvcConfig(repetitions=2, max_attempts=2))
    s.add("A", data(contraction(), clipped=999), rate_hz=RATE)
    s.add("A", data(contraction()), rate_hz=RATE)
    assert not s.wants("A")  # out of attempts
    with pytest.raises(InputError) as e:
        s.mvc()
    text = str(e.value)
    assert "A: 1 of 2" in text and "clipped" in text
    assert "B: 0 of 2 repetitions accepted (no contraction" in text


def _stream(n_channels=2, bits=24):
    cfg = stream_envelope_config(fs_hz=2000.0, input_bits=bits, rate_hz=RATE)
    return EnvelopeStream(cfg, volts_per_count=np.full(n_channels, VPC), channels=list(range(n_channels)),
                          samples_per_frame=2)


@pytest.fixture(scope="module")
def protocol():
    """Counts of a 2-muscle MVC protocol (3 s rest, 5 s contraction, 2 repetitions each) and the truth."""
    fs = 2000.0
    exc, schedule = mvc_excitation(n_channels=2, fs=fs, repetitions=2, labels=("A", "B"))
    gains = np.array([0.5e-3, 1.0e-3])
    setup = ElectrodeSetup(gain_volts=gains, crosstalk=np.array([[0.0, 0.08], [0.05, 0.0]]))
    volts = synthesize(exc, fs=fs, setup=setup, rng=np.random.default_rng(7))
    counts = np.clip(np.rint(volts / VPC), -2**23, 2**23 - 1).astype(np.int32)
    cfg = stream_envelope_config(fs_hz=fs, input_bits=24, rate_hz=RATE)
    env = envelope_from_volts(volts, fs_hz=fs, config=cfg, volts_per_count=VPC)
    plateau = {c.muscle: [] for c in schedule}  # the envelope averaged over each known plateau
    for c in schedule:
        plateau[c.muscle].append(env[int(c.plateau_s[0] * RATE):int(c.plateau_s[1] * RATE), c.channel].mean())
    return counts, schedule, {m: float(np.mean(v)) for m, v in plateau.items()}


def test_stream_in_chunks_equals_one_pass(protocol):
    counts = protocol[0][:40000]
    whole, chunked = _stream(), _stream()
    whole.feed(counts)
    for i in range(0, counts.shape[0], 37):  # odd chunks: the decimation phase and raw blocks must carry over
        chunked.feed(counts[i:i + 37], lost_frames=1 if i == 370 else 0)
    np.testing.assert_array_equal(whole.envelope, chunked.envelope)
    rep_w = whole.repetition(channel=0, start=100, stop=400, rest_volts=1e-5)
    rep_c = chunked.repetition(channel=0, start=100, stop=400, rest_volts=1e-5)
    assert rep_w.raw_rms_volts == pytest.approx(rep_c.raw_rms_volts) and rep_w.clipped == rep_c.clipped == 0
    assert chunked.repetition(channel=0, start=0, stop=chunked.n, rest_volts=1e-5).lost_frames == 1


def test_burst_finder_finds_every_contraction_and_the_mvc(protocol):
    counts, schedule, plateau = protocol
    stream = _stream()
    finder = BurstFinder(stream, config=CFG)
    session = MvcSession(muscles=("A", "B"), config=MvcConfig(repetitions=2))
    found = []
    for i in range(0, counts.shape[0], 400):
        stream.feed(counts[i:i + 400])
        for burst in finder.poll():
            found.append(burst)
            session.add("AB"[burst.channel], finder.repetition(burst), rate_hz=stream.rate_hz)
    assert [("AB"[b.channel]) for b in found] == [c.muscle for c in schedule]
    for b, c in zip(found, schedule):
        assert abs(b.start / RATE - c.start_s) < 1.0 and abs(b.stop / RATE - c.end_s) < 1.0
    for muscle, value in session.mvc().items():
        assert value == pytest.approx(plateau[muscle], rel=0.015)


def test_guided_cut_flags_the_wrong_channel(protocol):
    counts, schedule, _ = protocol
    stream = _stream()
    stream.feed(counts)
    first = schedule[0]  # muscle A contracts; pretend B was asked for
    hold = (int(first.start_s * RATE), int(first.end_s * RATE))
    rest = (0, hold[0])
    assert guided_repetition(stream, channel=0, rest=rest, hold=hold, labels=["A", "B"]).other_channel == ""
    assert guided_repetition(stream, channel=1, rest=rest, hold=hold, labels=["A", "B"]).other_channel == "A"


def test_clipped_counts_are_counted():
    stream = _stream(n_channels=1, bits=16)
    x = np.zeros((4000, 1), np.int32)
    x[1000:1100] = 32767
    stream.feed(x)
    assert stream.repetition(channel=0, start=0, stop=stream.n, rest_volts=1e-5).clipped == 100


def test_config_refuses_nonsense():
    with pytest.raises(InputError, match="hold_s"):
        MvcConfig(hold_s=0.5, window_s=0.5)
    with pytest.raises(InputError, match="max_attempts"):
        MvcConfig(repetitions=4, max_attempts=3)
