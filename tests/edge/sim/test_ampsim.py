"""The amplifier simulator: counts and scales, pacing, device-info frames, sequence wrap, looping, the
pty that comes back after a disconnect, the sources (recording, MVC protocol) and the CLI verb."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal as sps
from sim_helpers import Collector, noise_signal, streaming, wait_until

from myoedge.body.recording import Recording, RecordingMeta, save_recording
from myoedge.edge.dsp.adc import DEFAULT_ADC, Adc, default_adc, quantise
from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import AmpSignal, device_mvc_volts, mvc_protocol_signal, recording_signal
from myoedge.edge.sim.faults import FaultPlan
from myoedge.edge.wire.protocol import SEQ_MODULUS
from myoedge.ground.errors import InputError


def test_volts_become_counts_at_the_stated_scale_and_clipping_is_counted() -> None:
    volts = np.array([[0.0, 1e-3, -5e-3, 0.2, -0.2]])
    vpc24 = DEFAULT_ADC[24].volts_per_count
    assert vpc24 == 4.5 / 24 / 2**23  # exact in float32, as the device-info frame carries it
    c24, clipped24 = quantise(volts, volts_per_count=vpc24, bits=24)
    assert c24.dtype == np.int32 and clipped24 == 2 and c24[0, 3] == 2**23 - 1 and c24[0, 4] == -(2**23)
    assert abs(c24[0, 1] * vpc24 - 1e-3) <= vpc24 / 2
    c16, clipped16 = quantise(volts, volts_per_count=default_adc(16).volts_per_count, bits=16)
    assert clipped16 == 2 and c16[0, 1] == 2000 and c16[0, 2] == -10000
    with pytest.raises(InputError, match="16, 24"):
        quantise(volts, volts_per_count=1e-7, bits=12)
    with pytest.raises(InputError, match="volts_per_count"):
        Adc(bits=24, volts_per_count=0.0)


def test_the_simulator_announces_the_scale_it_quantises_with() -> None:
    adc = Adc(bits=24, volts_per_count=1e-7)
    sim = AmplifierSimulator(noise_signal(), adc=adc)
    assert np.all(sim.device_info.scale_v == np.float32(1e-7)) and sim.device_info.sample_bits == 24
    np.testing.assert_array_equal(sim.counts, adc.counts(sim.signal.volts))
    with pytest.raises(InputError, match="16 bits"):
        AmplifierSimulator(noise_signal(), bits=16, adc=adc)


def test_real_time_pacing_is_roughly_real_time_and_fast_is_faster() -> None:
    got = Collector()
    sim = AmplifierSimulator(noise_signal(), tcp_port=0, stop_after_s=0.5, on_sent=got.on_sent)
    with streaming(sim, collector=got) as (sim, reader):
        assert sim.wait(10.0) and wait_until(lambda: len(got.got) == 500, 15.0)
        elapsed = sim.stats().elapsed_s
    span = (got.read_ns[-1] - got.read_ns[0]) / 1e9
    assert 0.4 <= elapsed < 2.0 and 0.35 <= span < 2.0  # loose: the machine is shared
    fast = AmplifierSimulator(noise_signal(), tcp_port=0, fast=True, stop_after_s=3.0)
    with streaming(fast) as (fast, reader):
        assert fast.wait(10.0)
        assert fast.stats().elapsed_s < 1.5 and fast.stats().frames_sent == 3000


def test_device_info_first_and_then_every_interval_and_sequence_wraps() -> None:
    got = Collector()
    sim = AmplifierSimulator(noise_signal(n_channels=3), bits=16, samples_per_frame=4, tcp_port=0, fast=True,
                             info_interval_s=0.1, first_seq=SEQ_MODULUS - 3, stop_after_s=0.5,
                             on_sent=got.on_sent)
    with streaming(sim, collector=got) as (sim, reader):
        assert sim.wait(10.0) and wait_until(lambda: len(got.got) == 250, 15.0)
        parser = reader.parser
    seqs = [f.seq for f in got.got]
    # info frames take seqs 2^32 - 3 and then one every 50 data frames: the first data frame is 2^32 - 2
    assert seqs[:3] == [SEQ_MODULUS - 2, SEQ_MODULUS - 1, 0] and sim.stats().info_sent == 5
    assert parser.stats.device_info == 5 and parser.stats.lost == 0 and got.got == got.sent
    assert parser.device_info.samples_per_frame == 4 and parser.device_info.sample_bits == 16
    assert got.got[1].timestamp_us - got.got[0].timestamp_us == 2000  # 4 samples at 2 kHz


def test_once_streams_the_data_once_and_loop_repeats_it() -> None:
    signal_ = noise_signal(seconds=0.1)  # 200 samples: 100 frames
    once = AmplifierSimulator(signal_, tcp_port=0, fast=True, loop=False)
    looped, got = AmplifierSimulator(signal_, tcp_port=0, fast=True, stop_after_s=0.25), Collector()
    with streaming(once) as (once, reader):
        assert once.wait(10.0) and once.stats().frames_sent == 100
    with streaming(looped, collector=got) as (looped, reader):
        assert looped.wait(10.0) and wait_until(lambda: len(got.got) == 250, 15.0)
    assert all(np.array_equal(got.got[k].samples, got.got[k + 100].samples) for k in range(150))
    assert np.array_equal(got.got[0].samples, once.frame_samples(0))


def test_a_reader_follows_the_pty_link_across_a_disconnect(tmp_path) -> None:
    got, link = Collector(), tmp_path / "amp0"
    addresses = []
    sim = AmplifierSimulator(noise_signal(), link_path=str(link), stop_after_s=1.0, on_sent=got.on_sent,
                             faults=FaultPlan.parse("disconnect:0.2@0.3s"), on_address=addresses.append)
    with streaming(sim, str(link), collector=got) as (sim, reader):
        first = os.readlink(link)
        assert sim.wait(10.0) and wait_until(lambda: len(got.got) == len(got.sent), 15.0)
        stats, sim_stats = reader.stats(), sim.stats()
    assert len(addresses) == 1 and first.startswith("/dev/pts/")
    assert stats.transport.reconnects == 1 and got.got == got.sent
    assert stats.parser.lost == sim_stats.expected_lost > 0 and not link.exists()


def envelope(volts: np.ndarray, fs: float) -> np.ndarray:
    band = sps.butter(4, [20, 450], btype="bandpass", fs=fs, output="sos")
    low = sps.butter(2, 6, fs=fs, output="sos")
    return sps.sosfiltfilt(low, np.abs(sps.sosfilt(band, volts, axis=0)), axis=0)


def test_mvc_protocol_yields_the_known_mvc_of_every_channel() -> None:
    sig = mvc_protocol_signal(joint="wrist", subject=2, fs=2000.0, rest_s=0.5, contraction_s=2.0,
                              repetitions=1, ramp_s=0.25)
    n = len(sig.labels)
    assert sig.labels == ("FCR", "FCU", "ECRL", "ECRB", "ECU") and len(sig.contractions) == n
    assert sig.duration_s == pytest.approx(n * 2.5 + 0.5)
    vpc = default_adc(16).volts_per_count
    counts, clipped = quantise(sig.volts, volts_per_count=vpc, bits=16)  # what the frames carry
    env = envelope(counts * vpc, sig.fs)
    for c in sig.contractions:
        lo, hi = (round(t * sig.fs) for t in c.plateau_s)
        plateau = env[lo + 200:hi - 200, c.channel].mean()  # skip the filter's settling
        assert plateau == pytest.approx(sig.true_mvc_volts[c.channel], rel=0.12), c.muscle
        others = np.delete(env[lo + 200:hi - 200], c.channel, axis=1).mean(axis=0)
        assert np.all(others < 0.25 * sig.true_mvc_volts[np.arange(n) != c.channel])
    assert clipped == 0


def test_a_recording_folder_streams_its_emg_with_muscle_labels(tmp_path) -> None:
    fs, n = 1000.0, 500
    emg = np.random.default_rng(4).normal(0, 2e-4, (n, 2))
    rec = Recording(meta=RecordingMeta(joint="knee", muscles=("BFSH", "RF"), subject="s01", trial="walk"),
                    emg_fs=fs, emg=emg, emg_t0=0.0, time=np.arange(50) / 100.0, rate=100.0,
                    theta=np.zeros(50))
    sig = recording_signal(save_recording(rec, tmp_path / "rec"))
    assert sig.labels == ("BFSH", "RF") and sig.fs == fs and sig.true_mvc_volts is None
    assert sig.volts.shape[0] >= 490 and np.allclose(sig.volts, emg[:sig.volts.shape[0]], atol=1e-9)
    with pytest.raises(InputError, match="unique"):
        AmpSignal(volts=emg, fs=fs, labels=("GASTROC_MED", "GASTROC_LAT"), description="")


def test_the_cli_streams_until_sigterm_and_prints_a_json_summary() -> None:
    from myoedge.edge.wire.reader import Reader
    from myoedge.edge.wire.transport import SerialTransport

    cmd = [sys.executable, "-m", "myoedge", "amp-sim", "--protocol", "mvc", "--joint", "knee", "--tcp", "0",
           "--mvc-rest", "0.2", "--mvc-contraction", "0.6", "--mvc-ramp", "0.1", "--mvc-repetitions", "1",
           "--bits", "16", "--fault", "drop:0.05", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = None
    try:
        first = proc.stdout.readline()
        assert first.startswith("amp-sim: listening on socket://127.0.0.1:"), first + proc.stderr.read()
        reader = Reader(SerialTransport(first.split()[-1])).start()
        assert wait_until(lambda: reader.stats().frames >= 300, 10.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert wait_until(lambda: reader.stats().frames == summary["frames_sent"], 15.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if reader is not None:
            stats = reader.stop()
    assert summary["labels"] == ["BFSH", "RF"] and len(summary["true_mvc_volts"]) == 2
    assert len(summary["contractions"]) == 2 and summary["faults"]["drops"] > 0
    assert stats.parser.lost == summary["expected_lost"] and stats.frames == summary["frames_sent"]
    assert "amp-sim: stopped after" in err


def test_true_mvc_is_the_level_the_device_band_passes():
    """The closed form (gain · √(2/π) · √(power through the device's band-pass and notch)) against a
    long full-effort synthetic EMG run through those filters and rectified."""
    from myoedge.body.emg_synth import ElectrodeSetup, mvc_envelope, synthesize
    from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope

    fs, gains = 2000.0, np.array([100e-6, 250e-6])
    setup = ElectrodeSetup(gain_volts=gains, crosstalk=np.zeros((2, 2)), baseline_noise_volts=0.0,
                           mains_volts=0.0, artefact_volts_per_rad_s2=0.0)
    emg = synthesize(np.ones((400_000, 2)), fs=fs, setup=setup, rng=np.random.default_rng(5))
    band = design_envelope(EnvelopeConfig(fs_hz=fs, out_rate_hz=fs, input_bits=24)).band_sos
    level = np.abs(sps.sosfilt(np.array(band), emg, axis=0)[4000:]).mean(axis=0)
    expected = device_mvc_volts(gains, fs)
    np.testing.assert_allclose(level, expected, rtol=0.004)
    ideal = mvc_envelope(gains, fs)
    assert np.all(expected < 0.995 * ideal) and np.all(expected > 0.98 * ideal)  # edges and notch: −0.9 %
