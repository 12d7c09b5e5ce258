"""The envelope pipeline: exactness against a CMSIS-DSP composition, streaming, design rules, accuracy."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from scipy import signal

from myoedge.edge.dsp.biquad_q31 import INT32_MAX, cascade_l1_gains, cmsis_q31_to_sos
from myoedge.edge.dsp.envelope import (
    EnvelopeConfig,
    EnvelopeFilter,
    _rectify_shift,
    design_envelope,
    envelope_from_volts,
    float_reference_envelope,
    hash_coefficients,
    volts_to_counts,
)
from myoedge.edge.dsp.envelope_report import emg_like, snr_db
from myoedge.ground.errors import InputError

CFG_2K = EnvelopeConfig(fs_hz=2000, out_rate_hz=100, input_bits=24)
CFG_1K = EnvelopeConfig(fs_hz=1000, out_rate_hz=200, input_bits=16)


def emg_counts(cfg: EnvelopeConfig, *, seconds: float, n_channels: int, vpc: float, seed: int = 0):
    volts = emg_like(fs_hz=cfg.fs_hz, seconds=seconds, n_channels=n_channels, seed=seed)
    return volts, volts_to_counts(volts, volts_per_count=vpc, input_bits=cfg.input_bits)


def test_raw_envelope_equals_a_composition_of_cmsis_dsp_calls():
    dsp = pytest.importorskip("cmsisdsp")
    d = design_envelope(CFG_2K)
    _, counts = emg_counts(CFG_2K, seconds=0.5, n_channels=2, vpc=1e-7)
    counts[100:110, 0] = 2**23 - 1  # a saturated burst
    counts[200:210, 1] = -(2**23)
    raw = EnvelopeFilter(CFG_2K, n_channels=2, volts_per_count=1e-7, mvc_volts=1e-4).process_raw(counts)
    for ch in range(2):
        band = dsp.arm_biquad_casd_df1_inst_q31()
        dsp.arm_biquad_cascade_df1_init_q31(band, d.band_coeffs.size // 5, d.band_coeffs,
                                            np.zeros(d.band_coeffs.size), d.band_post_shift)
        low = dsp.arm_biquad_cas_df1_32x64_ins_q31()
        dsp.arm_biquad_cas_df1_32x64_init_q31(low, d.lowpass_coeffs.size // 5, d.lowpass_coeffs,
                                              np.zeros(d.lowpass_coeffs.size), d.lowpass_post_shift)
        y = dsp.arm_biquad_cascade_df1_q31(band, (counts[:, ch] << d.input_shift).astype(np.int32))
        rect = np.minimum(np.abs(y.astype(np.int64)), INT32_MAX) >> d.lowpass_shift
        expected = dsp.arm_biquad_cas_df1_32x64_q31(low, rect.astype(np.int32))
        np.testing.assert_array_equal(raw[:, ch], expected)


def test_chunked_processing_equals_one_pass_and_keeps_the_decimation_phase():
    _, counts = emg_counts(CFG_2K, seconds=0.6, n_channels=3, vpc=1e-7, seed=1)
    vpc, mvc = np.array([1e-7, 2e-7, 1e-7]), np.array([1e-4, 2e-4, 3e-4])
    whole = EnvelopeFilter(CFG_2K, n_channels=3, volts_per_count=vpc, mvc_volts=mvc).process(counts)
    assert whole.dtype == np.float32 and whole.shape == (len(counts) // 20, 3)
    rng = np.random.default_rng(5)
    filt = EnvelopeFilter(CFG_2K, n_channels=3, volts_per_count=vpc, mvc_volts=mvc)
    pieces, start = [], 0
    while start < len(counts):
        size = int(rng.choice([0, 1, 3, 7, 19, 20, 21, 64, 150]))
        block = np.ascontiguousarray(counts[start : start + size])
        out = filt.process(block)
        pieces.append(out)
        start += len(block)
        assert sum(len(p) for p in pieces) == start // 20  # one output per 20 inputs, never early or late
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_process_into_out_equals_process_and_returns_a_view_of_out():
    _, counts = emg_counts(CFG_2K, seconds=0.6, n_channels=3, vpc=1e-7, seed=6)
    vpc, mvc = np.array([1e-7, 2e-7, 1e-7]), np.array([1e-4, 2e-4, 3e-4])
    plain = EnvelopeFilter(CFG_2K, n_channels=3, volts_per_count=vpc, mvc_volts=mvc)
    into = EnvelopeFilter(CFG_2K, n_channels=3, volts_per_count=vpc, mvc_volts=mvc)
    out = np.full((200 // 20 + 1, 3), np.nan, dtype=np.float32)
    rng = np.random.default_rng(7)
    start = shared = 0
    while start < len(counts):
        size = int(rng.choice([0, 1, 2, 19, 20, 21, 64, 100, 200]))  # 100 grows the scratch, 200 again
        block = np.ascontiguousarray(counts[start : start + size])
        block.setflags(write=False)  # as the parser delivers frames
        expected, got = plain.process(block), into.process(block, out=out)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))  # bit for bit
        assert got.base is out and (len(got) == 0 or np.shares_memory(got, out))
        shared += len(got) > 0
        start += len(block)
    assert shared > 10
    np.testing.assert_array_equal(into.process_raw(counts[:50]), plain.process_raw(counts[:50]))
    for bad in (np.empty((1, 3), np.float32), np.empty((11, 3), np.float64), np.empty((11, 2), np.float32)):
        with pytest.raises(InputError, match="out must be"):
            into.process(np.zeros((40, 3), np.int32), out=bad)


def test_decimation_picks_every_kth_sample_of_the_raw_envelope_and_scales_to_mvc():
    _, counts = emg_counts(CFG_1K, seconds=0.3, n_channels=2, vpc=3e-7, seed=2)
    a = EnvelopeFilter(CFG_1K, n_channels=2, volts_per_count=3e-7, mvc_volts=[1e-4, 5e-5])
    raw = a.process_raw(counts)
    k = CFG_1K.decimation
    expected = (raw[k - 1 :: k] * (a.volts_per_lsb / a.mvc_volts)).astype(np.float32)
    b = EnvelopeFilter(CFG_1K, n_channels=2, volts_per_count=3e-7, mvc_volts=[1e-4, 5e-5])
    np.testing.assert_array_equal(b.process(counts), expected)
    b.reset()
    np.testing.assert_array_equal(b.process(counts), expected)


def test_state_snapshot_resumes_exactly():
    _, counts = emg_counts(CFG_2K, seconds=0.3, n_channels=2, vpc=1e-7, seed=3)
    filt = EnvelopeFilter(CFG_2K, n_channels=2, volts_per_count=1e-7, mvc_volts=1e-4)
    filt.process(counts[:333])
    snap = filt.get_state()
    tail = filt.process(counts[333:])
    other = EnvelopeFilter(CFG_2K, n_channels=2, volts_per_count=1e-7, mvc_volts=1e-4)
    other.set_state(snap)
    np.testing.assert_array_equal(other.process(counts[333:]), tail)


@pytest.mark.parametrize("cfg, vpc", [(CFG_2K, 1e-7), (CFG_1K, 3e-7),
                                      (EnvelopeConfig(fs_hz=1000, out_rate_hz=100, input_bits=24), 1e-7)])
def test_fixed_point_tracks_the_float_reference(cfg, vpc):
    volts, counts = emg_counts(cfg, seconds=3.0, n_channels=2, vpc=vpc, seed=4)
    fixed = envelope_from_volts(volts, fs_hz=cfg.fs_hz, config=cfg, volts_per_count=vpc)
    reference = float_reference_envelope(counts * vpc, config=cfg)
    assert fixed.shape == reference.shape
    assert snr_db(reference, fixed) > 60.0  # measured ~80 dB and more; 40 dB is the floor we promise
    assert snr_db(float_reference_envelope(volts, config=cfg), fixed) > 40.0


@pytest.mark.parametrize("cfg, vpc", [(CFG_2K, 1e-7), (CFG_1K, 3e-7)])
def test_sinusoid_gives_its_mean_rectified_value_over_mvc(cfg, vpc):
    amplitude, mvc = 400e-6, 200e-6
    t = np.arange(int(2.0 * cfg.fs_hz)) / cfg.fs_hz
    volts = (amplitude * np.sin(2 * np.pi * 120.0 * t))[:, None] * np.ones(2)
    env = envelope_from_volts(volts, fs_hz=cfg.fs_hz, config=cfg, volts_per_count=vpc, mvc_volts=mvc)
    settled = env[len(env) // 2 :]
    expected = 2 * amplitude / np.pi / mvc  # mean |A sin| = 2A/pi, normalised by MVC
    np.testing.assert_allclose(settled.mean(axis=0), expected, rtol=0.02)
    assert np.ptp(settled) < 0.05 * expected  # ripple of the 6 Hz low-pass at 240 Hz is small


def test_gaussian_noise_gives_sigma_times_sqrt_two_over_pi():
    rng = np.random.default_rng(9)
    sigma = 150e-6
    band = signal.butter(6, (60, 300), btype="bandpass", fs=2000, output="sos")  # well inside 20-450 Hz
    volts = signal.sosfilt(band, rng.standard_normal((20000, 2)), axis=0)
    volts *= sigma / volts.std(axis=0)
    env = envelope_from_volts(volts, fs_hz=2000, config=CFG_2K, volts_per_count=1e-7)
    np.testing.assert_allclose(env[20:].mean(axis=0), sigma * np.sqrt(2 / np.pi), rtol=0.04)


def test_design_rules():
    for cfg in (CFG_2K, CFG_1K):
        d = design_envelope(cfg)
        cascades = ((d.band_coeffs, d.band_post_shift), (d.lowpass_coeffs, d.lowpass_post_shift))
        for coeffs, post_shift in cascades:
            assert coeffs.dtype == np.int32
            realised = cmsis_q31_to_sos(coeffs, post_shift)
            assert np.abs(realised[:, [0, 1, 2, 4, 5]]).max() >= 2.0 ** (post_shift - 1)  # smallest shift
        band_gain = cascade_l1_gains(cmsis_q31_to_sos(d.band_coeffs, d.band_post_shift)).max()
        full_scale = 2 ** (cfg.input_bits - 1) * 2**d.input_shift
        assert band_gain * full_scale < 2**31 <= 2 * band_gain * full_scale  # no wrap, no wasted bit
        lp_gain = cascade_l1_gains(cmsis_q31_to_sos(d.lowpass_coeffs, d.lowpass_post_shift)).max()
        assert lp_gain * 2**31 / 2**d.lowpass_shift < 2**31
        assert d.band_coeffs.size == 5 * (cfg.bandpass_order + 1)  # band-pass biquads + one notch
    no_notch = design_envelope(EnvelopeConfig(fs_hz=2000, out_rate_hz=100, input_bits=24, notch_hz=None))
    assert no_notch.band_coeffs.size == 5 * 4


def test_rectifier_saturates_int32_min():
    buf = np.array([[-(2**31), -5, 7, INT32_MAX]], dtype=np.int32)
    _rectify_shift(buf, 1)
    np.testing.assert_array_equal(buf, [[INT32_MAX >> 1, 2, 3, INT32_MAX >> 1]])


def test_coefficients_are_json_and_the_hash_sees_every_coefficient():
    d = EnvelopeFilter(CFG_2K, n_channels=1, volts_per_count=1e-7, mvc_volts=1e-4).coefficients()
    h = hash_coefficients(d)
    assert hash_coefficients(json.loads(json.dumps(d))) == h == design_envelope(CFG_2K).coefficients_hash()
    assert EnvelopeConfig.from_dict(d["config"]) == CFG_2K
    for cascade in ("band", "lowpass"):
        for i in range(len(d[cascade]["coeffs"])):
            changed = copy.deepcopy(d)
            changed[cascade]["coeffs"][i] += 1
            assert hash_coefficients(changed) != h
        changed = copy.deepcopy(d)
        changed[cascade]["post_shift"] += 1
        assert hash_coefficients(changed) != h
    for key in ("input_shift", "lowpass_input_shift", "decimation"):
        changed = copy.deepcopy(d)
        changed[key] += 1
        assert hash_coefficients(changed) != h
    assert design_envelope(EnvelopeConfig(fs_hz=2000, out_rate_hz=100, input_bits=24, notch_hz=60)) \
        .coefficients_hash() != h


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fs_hz=800, out_rate_hz=100, input_bits=24), r"fs/2 = 400"),
        (dict(fs_hz=2000, out_rate_hz=300, input_bits=24), "must divide"),
        (dict(fs_hz=2000, out_rate_hz=100, input_bits=12), "16 or 24"),
        (dict(fs_hz=2000, out_rate_hz=100, input_bits=24, notch_hz=55.0), "50, 60"),
        (dict(fs_hz=2000, out_rate_hz=10, input_bits=24), "aliases"),
        (dict(fs_hz=2000, out_rate_hz=100, input_bits=24, band_hz=(450, 20)), "0 < low < high"),
        (dict(fs_hz=2000, out_rate_hz=100, input_bits=24, bandpass_order=4.0), "bandpass_order"),
        (dict(fs_hz=-1, out_rate_hz=100, input_bits=24), "fs_hz must be a positive"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(InputError, match=match):
        EnvelopeConfig(**kwargs)


def test_filter_and_offline_validation():
    with pytest.raises(InputError, match="unknown envelope config keys"):
        EnvelopeConfig.from_dict({**CFG_2K.to_dict(), "gain": 2})
    with pytest.raises(InputError, match="mvc_volts"):
        EnvelopeFilter(CFG_2K, n_channels=2, volts_per_count=1e-7, mvc_volts=[1e-4, 0.0])
    with pytest.raises(InputError, match="volts_per_count"):
        EnvelopeFilter(CFG_2K, n_channels=2, volts_per_count=[1e-7] * 3, mvc_volts=1e-4)
    filt = EnvelopeFilter(CFG_1K, n_channels=2, volts_per_count=3e-7, mvc_volts=1e-4)
    with pytest.raises(InputError, match="int32 of shape"):
        filt.process(np.zeros((5, 2), np.int64))
    counts = np.zeros((5, 2), np.int32)
    counts[3, 1] = 2**15
    with pytest.raises(InputError, match=r"16 bits .* got 32768 at sample 3, channel 1"):
        filt.process(counts)
    assert not filt.get_state()["band"].any() and filt.get_state()["phase"] == 0  # nothing consumed
    with pytest.raises(InputError, match="recording rate 1000"):
        envelope_from_volts(np.zeros((10, 1)), fs_hz=1000, config=CFG_2K, volts_per_count=1e-7)


def test_volts_to_counts_rounds_and_clips_like_an_adc():
    volts = np.array([[0.26e-6, -0.26e-6, 1.0, -1.0]])
    counts = volts_to_counts(volts, volts_per_count=0.1e-6, input_bits=16)
    np.testing.assert_array_equal(counts, [[3, -3, 2**15 - 1, -(2**15)]])
    assert counts.dtype == np.int32
