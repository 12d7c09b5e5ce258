"""Done-when of the one ADC scale: the envelopes training computes offline from a recording's raw EMG are
bit for bit the envelopes the runtime computes from the amplifier simulator's frames of that EMG."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import Collector, streaming, wait_until

from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.edge.dsp.adc import Adc
from myoedge.edge.dsp.envelope import EnvelopeFilter
from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import AmpSignal
from myoedge.train.data import load_sequences

SPF = 4  # samples per frame


@pytest.fixture(scope="module")
def subject():
    return make_subject("wrist", 2)


@pytest.fixture(scope="module")
def recording(subject):
    return simulate_session(subject, duration_s=2.0, trial_paces=("slow",))[0]


def _streamed(rec, seq, mvc, adc=None):
    """The recording's EMG through the simulator (its ADC, frames, TCP), the reader's parser and the
    loop's envelope filter built from the parsed device-info frame, as ``myoedge run`` builds it."""
    signal = AmpSignal(volts=rec.emg, fs=rec.emg_fs, labels=rec.meta.muscles, description="recording")
    got = Collector()
    sim = AmplifierSimulator(signal, adc=adc, samples_per_frame=SPF, tcp_port=0, fast=True, loop=False)
    n_frames = rec.emg.shape[0] // SPF
    with streaming(sim, collector=got) as (sim, reader):
        assert sim.wait(30.0) and wait_until(lambda: len(got.got) == n_frames, 30.0)
        info = reader.device_info
    assert info.scale_v.dtype == np.float32 and info.sample_bits == seq.adc.bits
    filt = EnvelopeFilter(seq.envelope_config, n_channels=info.n_channels, volts_per_count=info.scale_v,
                          mvc_volts=mvc)
    return np.concatenate([filt.process(frame.samples) for frame in got.got])


def _aligned(streamed, rec, seq):
    k = seq.envelope_config.decimation
    first = int(round((seq.t[0] - rec.emg_t0 - (k - 1) / rec.emg_fs) * seq.rate_hz))
    return streamed[first:first + seq.n]


def test_offline_envelopes_equal_the_streamed_ones_bit_for_bit(subject, recording):
    profile = true_profile(subject)
    (seq,) = load_sequences([recording], profiles={subject.name: profile})
    mvc = np.array([profile.mvc[profile.model.index(m)] for m in recording.meta.muscles])
    streamed = _aligned(_streamed(recording, seq, mvc), recording, seq)
    assert seq.n > 100 and streamed.shape == seq.envelopes.shape and seq.envelopes.max() > 0.05
    np.testing.assert_array_equal(streamed, seq.envelopes)


def test_a_chosen_adc_is_used_on_both_sides_and_the_default_would_differ(subject, recording):
    profile = true_profile(subject)
    adc = Adc(bits=24, volts_per_count=1e-7)
    (seq,) = load_sequences([recording], profiles={subject.name: profile}, adc=adc)
    assert seq.adc == adc
    mvc = np.array([profile.mvc[profile.model.index(m)] for m in recording.meta.muscles])
    streamed = _aligned(_streamed(recording, seq, mvc, adc=adc), recording, seq)
    np.testing.assert_array_equal(streamed, seq.envelopes)
    (default,) = load_sequences([recording], profiles={subject.name: profile})
    assert not np.array_equal(default.envelopes, seq.envelopes)  # the scale matters to the last bit
