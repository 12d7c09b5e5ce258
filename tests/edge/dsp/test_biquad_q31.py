"""The Q31 biquad cascades against CMSIS-DSP itself (the ``cmsisdsp`` package) as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from myoedge.edge.dsp.biquad_q31 import (
    INT32_MAX,
    INT32_MIN,
    BiquadCascadeQ31,
    BiquadCascadeQ31x64,
    cascade_l1_gains,
    cmsis_q31_to_sos,
    headroom_bits,
    sos_to_cmsis_q31,
)
from myoedge.ground.errors import InputError

dsp = pytest.importorskip("cmsisdsp")

CLASSES = [BiquadCascadeQ31, BiquadCascadeQ31x64]


def cmsis(cls, coeffs: np.ndarray, post_shift: int, x: np.ndarray) -> np.ndarray:
    """One channel through CMSIS-DSP's own function, from a zero state."""
    n_stages = coeffs.size // 5
    if cls is BiquadCascadeQ31:
        inst = dsp.arm_biquad_casd_df1_inst_q31()
        dsp.arm_biquad_cascade_df1_init_q31(inst, n_stages, coeffs, np.zeros(4 * n_stages), post_shift)
        return dsp.arm_biquad_cascade_df1_q31(inst, np.ascontiguousarray(x, dtype=np.int32))
    inst = dsp.arm_biquad_cas_df1_32x64_ins_q31()
    dsp.arm_biquad_cas_df1_32x64_init_q31(inst, n_stages, coeffs, np.zeros(4 * n_stages), post_shift)
    return dsp.arm_biquad_cas_df1_32x64_q31(inst, np.ascontiguousarray(x, dtype=np.int32))


def cmsis_columns(cls, coeffs, post_shift, x) -> np.ndarray:
    return np.column_stack([cmsis(cls, coeffs, post_shift, x[:, ch]) for ch in range(x.shape[1])])


def random_stable_sos(rng: np.random.Generator, n_stages: int) -> np.ndarray:
    """Biquads with poles inside the unit circle (some very close to it) and random zeros and gains."""
    sos = np.zeros((n_stages, 6))
    for i in range(n_stages):
        r, theta = rng.uniform(0.3, 0.999), rng.uniform(0, np.pi)
        zr, ztheta = rng.uniform(0, 1.2), rng.uniform(0, np.pi)
        g = rng.uniform(0.05, 1.5)
        sos[i] = [g, -2 * g * zr * np.cos(ztheta), g * zr**2, 1.0, -2 * r * np.cos(theta), r**2]
    return sos


def random_chunks(rng: np.random.Generator, n: int) -> list[int]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, 7), replace=False))
    return list(np.diff(np.concatenate([[0], cuts, [n]])))


def process_in_chunks(filt, x: np.ndarray, chunks: list[int]) -> np.ndarray:
    out, start = [], 0
    for size in chunks:
        out.append(filt.process(np.ascontiguousarray(x[start : start + size])))
        start += size
    return np.concatenate(out)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("post_shift", [0, 1, 2, 3])
def test_designed_coefficients_bit_exact_in_any_chunking(cls, post_shift):
    rng = np.random.default_rng(100 + post_shift)
    for _ in range(6):
        sos = random_stable_sos(rng, int(rng.integers(1, 4)))
        flat = np.hstack([sos[:, :3], -sos[:, 4:]]).ravel() * 2.0 ** (31 - post_shift)
        coeffs = np.clip(np.rint(flat), INT32_MIN, INT32_MAX).astype(np.int32)
        n = int(rng.integers(50, 300))  # odd lengths exercise CMSIS's remainder loops too
        x = (rng.standard_normal((n, 3)) * 2.0**27).astype(np.int32)
        expected = cmsis_columns(cls, coeffs, post_shift, x)
        one_pass = cls(coeffs, post_shift, 3).process(x)
        chunked = process_in_chunks(cls(coeffs, post_shift, 3), x, random_chunks(rng, n))
        np.testing.assert_array_equal(one_pass, expected)
        np.testing.assert_array_equal(chunked, expected)


@pytest.mark.parametrize("cls", CLASSES)
def test_any_coefficients_and_extreme_inputs_wrap_like_c(cls):
    """Unstable, full-range coefficients and saturated inputs: every 64-bit wrap must match C."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        post_shift = int(rng.integers(0, 31)) if trial % 4 == 0 else int(rng.integers(0, 4))
        coeffs = rng.integers(INT32_MIN, INT32_MAX, size=5 * int(rng.integers(1, 4)), endpoint=True)
        coeffs = coeffs.astype(np.int32)
        coeffs[rng.random(coeffs.size) < 0.2] = INT32_MIN
        x = rng.integers(INT32_MIN, INT32_MAX, size=(int(rng.integers(1, 60)), 2), endpoint=True)
        x = x.astype(np.int32)
        mask = rng.random(x.shape)
        x[mask < 0.3] = INT32_MIN
        x[mask > 0.7] = INT32_MAX
        expected = cmsis_columns(cls, coeffs, post_shift, x)
        np.testing.assert_array_equal(cls(coeffs, post_shift, 2).process(x), expected)


@pytest.mark.parametrize("cls", CLASSES)
def test_state_snapshot_restores_exactly_and_channels_are_independent(cls):
    rng = np.random.default_rng(3)
    coeffs, post_shift = sos_to_cmsis_q31(random_stable_sos(rng, 2))
    x = (rng.standard_normal((120, 4)) * 2.0**26).astype(np.int32)
    filt = cls(coeffs, post_shift, 4)
    filt.process(x[:70])
    snapshot = filt.get_state()
    tail = filt.process(x[70:])
    other = cls(coeffs, post_shift, 4)
    other.set_state(snapshot)
    np.testing.assert_array_equal(other.process(x[70:]), tail)
    np.testing.assert_array_equal(tail, cmsis_columns(cls, coeffs, post_shift, x)[70:])
    # Channel 2 alone gives the same as channel 2 among four.
    single = cls(coeffs, post_shift, 1).process(np.ascontiguousarray(x[:, 2:3]))
    np.testing.assert_array_equal(single[:, 0], cmsis(cls, coeffs, post_shift, x[:, 2]))
    filt.reset()
    assert not filt.get_state().any()


@pytest.mark.parametrize("cls", CLASSES)
def test_out_argument_and_in_place(cls):
    coeffs, post_shift = sos_to_cmsis_q31(signal.butter(2, 0.1, output="sos"))
    x = (np.random.default_rng(0).standard_normal((40, 2)) * 1e8).astype(np.int32)
    expected = cls(coeffs, post_shift, 2).process(x)
    buf = x.copy()
    assert cls(coeffs, post_shift, 2).process(buf, out=buf) is buf
    np.testing.assert_array_equal(buf, expected)
    assert cls(coeffs, post_shift, 2).process(np.zeros((0, 2), np.int32)).shape == (0, 2)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros(10, np.float64), 1, 2), "Q31 integers"),
        ((np.zeros(7, np.int32), 1, 2), "5 values per stage"),
        ((np.array([2**31, 0, 0, 0, 0]), 1, 2), "fit Q31"),
        ((np.zeros(5, np.int32), 31, 2), "undefined"),
        ((np.zeros(5, np.int32), -1, 2), "0..30"),
        ((np.zeros(5, np.int32), 1.0, 2), "must be an int"),
        ((np.zeros(5, np.int32), 1, 0), "n_channels"),
    ],
)
def test_constructor_says_what_it_expected(args, match):
    with pytest.raises(InputError, match=match):
        BiquadCascadeQ31(*args)


def test_process_and_state_validation():
    filt = BiquadCascadeQ31x64(np.zeros(10, np.int32), 0, 3)
    for bad, match in [
        (np.zeros((4, 3), np.int16), "dtype int32"),
        (np.zeros((4, 2), np.int32), r"shape \(n_samples, 3\)"),
        (np.zeros(12, np.int32), r"shape \(n_samples, 3\)"),
        (np.zeros((3, 4), np.int32).T, "C-contiguous"),
        ([[1, 2, 3]], "numpy int32 array"),
    ]:
        with pytest.raises(InputError, match=match):
            filt.process(bad)
    with pytest.raises(InputError, match=r"int64 of shape \(3, 2, 4\)"):
        filt.set_state(np.zeros((3, 2, 4), np.int32))


def test_sos_conversion_picks_the_smallest_post_shift_that_fits():
    sos = signal.butter(4, (20, 450), btype="bandpass", fs=1000, output="sos")  # has b1 == 2.0 exactly
    coeffs, post_shift = sos_to_cmsis_q31(sos)
    flat = np.hstack([sos[:, :3], -sos[:, 4:]]).ravel()
    assert post_shift == 2  # |c| = 2.0 needs 2**31 at postShift 1, one past INT32_MAX
    assert np.abs(np.rint(flat * 2.0 ** (31 - (post_shift - 1)))).max() > INT32_MAX
    realised = cmsis_q31_to_sos(coeffs, post_shift)
    np.testing.assert_allclose(realised, sos, atol=2.0 ** (post_shift - 32))
    assert sos_to_cmsis_q31(np.array([[0.5, 0, 0, 1, -0.25, 0.1]]))[1] == 0
    assert sos_to_cmsis_q31(np.array([[-1.0, 0, 0, 1, 0, 0]]))[0][0] == INT32_MIN  # -1.0 fits exactly


def test_headroom_bound_holds_for_the_worst_case_input():
    """Drive a cascade with the input that maximises its last node: the L1 bound is reached, not passed."""
    sos = signal.butter(3, (30, 300), btype="bandpass", fs=1000, output="sos")
    coeffs, post_shift = sos_to_cmsis_q31(sos)
    gains = cascade_l1_gains(cmsis_q31_to_sos(coeffs, post_shift))
    h = headroom_bits(cmsis_q31_to_sos(coeffs, post_shift))
    assert 2 ** (h - 1) <= gains.max() < 2**h
    impulse = np.zeros(4000)
    impulse[0] = 1
    h_last = signal.sosfilt(sos, impulse)
    amplitude = 2.0 ** (31 - h) - 1
    x = np.zeros((8000, 1), np.int32)
    x[:4000, 0] = (np.sign(h_last[::-1]) * amplitude).astype(np.int32)
    y = BiquadCascadeQ31(coeffs, post_shift, 1).process(x)
    peak = np.abs(y[:, 0].astype(np.int64)).max()
    assert 0.97 * gains[-1] * amplitude < peak < 2**31  # close to the bound, and no wrap-around
    with pytest.raises(InputError, match="not stable"):
        cascade_l1_gains(np.array([[1, 0, 0, 1, -2.0, 1.0]]))
