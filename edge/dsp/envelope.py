"""The EMG envelope: one fixed-point definition shared by the edge runtime and offline training.

Chain, per channel (the Q formats and the reasons are in docs/envelope.md)::

    ADC counts (16/24-bit) --<< input_shift--> Q31 --band-pass + notch, df1_q31--> Q31
        --|.| (INT32_MIN -> INT32_MAX)--> >> lowpass_shift --6 Hz low-pass, df1_32x64_q31--> Q31
        --every k-th sample (phase kept across calls)--> x volts per LSB / MVC volts --> float32

Every integer step is bit-exact with CMSIS-DSP, so a Cortex-M front end, the Jetson runtime and the
training set all see the same numbers; :func:`envelope_from_volts` is the offline entry point.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math

import numpy as np
from numba import njit
from scipy import signal

from myoedge.edge.dsp.adc import volts_to_counts
from myoedge.edge.dsp.biquad_q31 import (
    BiquadCascadeQ31,
    BiquadCascadeQ31x64,
    _counts_to_q31,
    _rectify_shift,
    cmsis_q31_to_sos,
    headroom_bits,
    sos_to_cmsis_q31,
)
from myoedge.ground.errors import InputError

__all__ = [
    "BiquadCascadeQ31",
    "BiquadCascadeQ31x64",
    "EnvelopeConfig",
    "EnvelopeDesign",
    "EnvelopeFilter",
    "design_envelope",
    "envelope_from_volts",
    "float_reference_envelope",
    "hash_coefficients",
    "volts_to_counts",
]

COEFFICIENTS_FORMAT = "myoedge.envelope.q31/1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvelopeConfig:
    """What defines the envelope. ``bandpass_order`` and ``lowpass_order`` are scipy's ``butter`` N
    (a band-pass of order N has 2N poles, i.e. N biquads). ``out_rate_hz`` must divide ``fs_hz``."""

    fs_hz: float
    out_rate_hz: float
    input_bits: int
    band_hz: tuple[float, float] = (20.0, 450.0)
    bandpass_order: int = 4
    notch_hz: float | None = 50.0
    notch_q: float = 30.0
    lowpass_hz: float = 6.0
    lowpass_order: int = 2

    def __post_init__(self) -> None:
        fs, nyq = _positive(self.fs_hz, "fs_hz"), self.fs_hz / 2.0
        out = _positive(self.out_rate_hz, "out_rate_hz")
        if abs(fs / out - round(fs / out)) > 1e-9 or round(fs / out) < 1:
            raise InputError(f"out_rate_hz must divide fs_hz {fs:g} Hz, got {out:g} Hz (ratio {fs / out:g})")
        if self.input_bits not in (16, 24) or isinstance(self.input_bits, bool):
            raise InputError(f"input_bits must be 16 or 24 (ADC sample width), got {self.input_bits!r}")
        try:
            low, high = (float(v) for v in self.band_hz)
        except (TypeError, ValueError):
            raise InputError(f"band_hz must be (low, high) in Hz, got {self.band_hz!r}") from None
        if not 0.0 < low < high < nyq:
            raise InputError(
                f"band_hz must satisfy 0 < low < high < fs/2 = {nyq:g} Hz, got ({low:g}, {high:g}); "
                f"lower the high edge (e.g. {0.9 * nyq:g} Hz) or raise fs_hz"
            )
        for name, lo, hi in (("bandpass_order", 1, 8), ("lowpass_order", 1, 4)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InputError(f"{name} must be an int in {lo}..{hi}, got {value!r}")
        if self.notch_hz is not None:
            if self.notch_hz not in (50.0, 60.0):
                raise InputError(f"notch_hz must be 50, 60 (mains) or None, got {self.notch_hz!r}")
            if self.notch_hz >= nyq:
                raise InputError(f"notch_hz {self.notch_hz:g} Hz must be below fs/2 = {nyq:g} Hz")
            _positive(self.notch_q, "notch_q")
        lp = _positive(self.lowpass_hz, "lowpass_hz")
        if lp >= out / 2.0:
            raise InputError(
                f"lowpass_hz must be below out_rate_hz/2 = {out / 2:g} Hz (decimation aliases), got {lp:g}"
            )
        object.__setattr__(self, "band_hz", (low, high))
        object.__setattr__(self, "input_bits", int(self.input_bits))
        for name in ("fs_hz", "out_rate_hz", "lowpass_hz", "notch_q"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.notch_hz is not None:
            object.__setattr__(self, "notch_hz", float(self.notch_hz))

    @property
    def decimation(self) -> int:
        """Input samples per output sample."""
        return int(round(self.fs_hz / self.out_rate_hz))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["band_hz"] = list(self.band_hz)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EnvelopeConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown envelope config keys {unknown}; expected some of {sorted(names)}")
        kwargs = dict(d)
        if "band_hz" in kwargs and isinstance(kwargs["band_hz"], list):
            kwargs["band_hz"] = tuple(kwargs["band_hz"])
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required key is missing
            raise InputError(f"envelope config: {exc}") from None


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, eq=False)
class EnvelopeDesign:
    """The float design and its CMSIS Q31 realisation. ``*_sos`` are the designed (float) filters."""

    config: EnvelopeConfig
    band_sos: np.ndarray
    lowpass_sos: np.ndarray
    band_coeffs: np.ndarray
    band_post_shift: int
    lowpass_coeffs: np.ndarray
    lowpass_post_shift: int
    input_shift: int
    lowpass_shift: int

    @property
    def counts_per_lsb(self) -> float:
        """ADC counts represented by one LSB of the low-pass output (its Q31 integer)."""
        return 2.0 ** (self.lowpass_shift - self.input_shift)

    def coefficients(self) -> dict:
        """Everything that fixes the envelope's numbers, JSON-able (stored in model bundles)."""
        return {
            "format": COEFFICIENTS_FORMAT,
            "config": self.config.to_dict(),
            "input_shift": self.input_shift,
            "band": {"function": "arm_biquad_cascade_df1_q31", "post_shift": self.band_post_shift,
                     "coeffs": [int(c) for c in self.band_coeffs]},
            "rectifier": "abs, INT32_MIN -> INT32_MAX",
            "lowpass_input_shift": self.lowpass_shift,
            "lowpass": {"function": "arm_biquad_cas_df1_32x64_q31", "post_shift": self.lowpass_post_shift,
                        "coeffs": [int(c) for c in self.lowpass_coeffs]},
            "decimation": self.config.decimation,
        }

    def coefficients_hash(self) -> str:
        return hash_coefficients(self.coefficients())


def hash_coefficients(coefficients: dict) -> str:
    """sha256 (hex) of the canonical JSON form (sorted keys, no spaces) of a coefficients dict."""
    canonical = json.dumps(coefficients, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=32)
def design_envelope(config: EnvelopeConfig) -> EnvelopeDesign:
    """Design the filters with scipy and quantise them to CMSIS Q31 (post-shift rule in sos_to_cmsis_q31).

    Scaling: counts are shifted left by ``input_shift = 32 - input_bits - h_band`` so a full-scale
    ADC word sits ``h_band`` bits below Q31 full scale, where ``h_band`` covers the worst-case (L1)
    gain to any node of the band-pass + notch cascade. The rectified band output is shifted right by
    ``lowpass_shift`` = the same bound for the low-pass (its step response overshoots).
    """
    fs = config.fs_hz
    band = signal.butter(config.bandpass_order, config.band_hz, btype="bandpass", fs=fs, output="sos")
    if config.notch_hz is not None:
        b, a = signal.iirnotch(config.notch_hz, config.notch_q, fs=fs)
        band = np.vstack([band, signal.tf2sos(b, a)])
    lowpass = signal.butter(config.lowpass_order, config.lowpass_hz, btype="lowpass", fs=fs, output="sos")
    band_q, band_ps = sos_to_cmsis_q31(band)
    lp_q, lp_ps = sos_to_cmsis_q31(lowpass)
    input_shift = 32 - config.input_bits - headroom_bits(cmsis_q31_to_sos(band_q, band_ps))
    if input_shift < 0:
        raise InputError(f"the band cascade needs more headroom than a {config.input_bits}-bit input leaves")
    lowpass_shift = headroom_bits(cmsis_q31_to_sos(lp_q, lp_ps))
    for arr in (band, lowpass, band_q, lp_q):
        arr.setflags(write=False)
    return EnvelopeDesign(config, band, lowpass, band_q, band_ps, lp_q, lp_ps, input_shift, lowpass_shift)


@njit(cache=True)
def _decimate_scale(raw, start, k, scale, out):
    """out[j] = float32(raw[start + j*k] * scale) for every picked row (as numpy's multiply, then astype)."""
    for j in range((raw.shape[0] - start + k - 1) // k):
        for c in range(raw.shape[1]):
            out[j, c] = np.float32(raw[start + j * k, c] * scale[c])


class EnvelopeFilter:
    """Streaming envelope for ``n_channels`` channels; state (and decimation phase) kept across calls.

    ``volts_per_count`` and ``mvc_volts`` are per channel (a scalar applies to all). MVC is the
    envelope value in volts during a maximum voluntary contraction, so an output of 1.0 == MVC.
    """

    def __init__(self, config: EnvelopeConfig, *, n_channels: int, volts_per_count, mvc_volts):
        if not isinstance(config, EnvelopeConfig):
            raise InputError(f"config must be an EnvelopeConfig, got {type(config).__name__}")
        if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
            raise InputError(f"n_channels must be a positive int, got {n_channels!r}")
        self.config = config
        self.design = design_envelope(config)
        self.n_channels = int(n_channels)
        self.volts_per_count = _per_channel(volts_per_count, self.n_channels, "volts_per_count")
        self.mvc_volts = _per_channel(mvc_volts, self.n_channels, "mvc_volts")
        self.volts_per_lsb = self.volts_per_count * self.design.counts_per_lsb
        self._scale = self.volts_per_lsb / self.mvc_volts
        d = self.design
        self._band = BiquadCascadeQ31(d.band_coeffs, d.band_post_shift, self.n_channels)
        self._lowpass = BiquadCascadeQ31x64(d.lowpass_coeffs, d.lowpass_post_shift, self.n_channels)
        self._limit = 2 ** (config.input_bits - 1)
        self._phase = 0  # input samples consumed since the last output sample
        self._scratch = np.empty((64, self.n_channels), dtype=np.int32)  # process(out=); grows to a chunk

    def reset(self) -> None:
        self._band.reset()
        self._lowpass.reset()
        self._phase = 0

    def get_state(self) -> dict:
        """A snapshot (filter states and decimation phase) for :meth:`set_state`."""
        return {"band": self._band.get_state(), "lowpass": self._lowpass.get_state(), "phase": self._phase}

    def set_state(self, state: dict) -> None:
        phase = state["phase"]
        if not 0 <= phase < self.config.decimation:
            raise InputError(f"phase must be in 0..{self.config.decimation - 1}, got {phase}")
        self._band.set_state(state["band"])
        self._lowpass.set_state(state["lowpass"])
        self._phase = int(phase)

    def coefficients(self) -> dict:
        return self.design.coefficients()

    def coefficients_hash(self) -> str:
        return self.design.coefficients_hash()

    def process_raw(self, counts: np.ndarray) -> np.ndarray:
        """The low-passed envelope at the input rate, Q31 int32 (times ``volts_per_lsb`` = volts).

        Consumes the input like :meth:`process` (the decimation phase advances too).
        """
        self._check_counts(counts)
        return self._raw(counts, np.empty(counts.shape, dtype=np.int32))

    def process(self, counts: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """ADC counts int32 (n, ch) -> normalised envelopes float32 (m, ch) at ``out_rate_hz``.

        The output samples are the input samples whose running index i satisfies i % k == k - 1.
        ``out``: a writeable float32 (rows, ch) array with rows >= m (``n // k + 1`` always suffices);
        the result is then the view ``out[:m]`` and the int32 intermediate goes to a scratch buffer kept
        by the filter (grown to the largest chunk seen), so steady streaming allocates nothing else.
        """
        self._check_counts(counts)
        k, phase, n = self.config.decimation, self._phase, counts.shape[0]
        m = (phase + n) // k
        if out is None:
            out, buf = np.empty((m, self.n_channels), dtype=np.float32), np.empty(counts.shape, np.int32)
        else:
            if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 2 \
                    or out.shape[1] != self.n_channels or out.shape[0] < m or not out.flags.writeable:
                got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out)
                raise InputError(f"out must be writeable float32 of shape (>= {m}, {self.n_channels}), "
                                 f"got {got}")
            if n > self._scratch.shape[0]:
                self._scratch = np.empty((n, self.n_channels), dtype=np.int32)
            buf = self._scratch[:n]
        raw = self._raw(counts, buf)
        _decimate_scale(raw, (k - 1 - phase) % k, k, self._scale, out)
        return out[:m]

    def _check_counts(self, counts) -> None:
        if not isinstance(counts, np.ndarray) or counts.dtype != np.int32 or counts.ndim != 2 \
                or counts.shape[1] != self.n_channels:
            got = f"{counts.dtype} {counts.shape}" if isinstance(counts, np.ndarray) else type(counts)
            raise InputError(f"counts must be int32 of shape (n_samples, {self.n_channels}), got {got}")

    def _raw(self, counts: np.ndarray, buf: np.ndarray) -> np.ndarray:
        """The process_raw chain on checked ``counts``, in ``buf`` (int32, counts' shape, C-contiguous)."""
        bad = _counts_to_q31(counts, -self._limit, self._limit - 1, self.design.input_shift, buf)
        if bad >= 0:
            row, col = divmod(int(bad), self.n_channels)
            raise InputError(
                f"counts must fit {self.config.input_bits} bits ({-self._limit}..{self._limit - 1}), "
                f"got {counts[row, col]} at sample {row}, channel {col}"
            )
        self._band.process(buf, out=buf)
        _rectify_shift(buf, self.design.lowpass_shift)
        self._lowpass.process(buf, out=buf)
        self._phase = (self._phase + counts.shape[0]) % self.config.decimation
        return buf


def _per_channel(value, n_channels: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_channels, float(arr))
    if arr.shape != (n_channels,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name} must be positive finite, a scalar or {n_channels} values, got {value!r}")
    return arr


def envelope_from_volts(emg_volts: np.ndarray, *, fs_hz: float, config: EnvelopeConfig, volts_per_count,
                        mvc_volts=None) -> np.ndarray:
    """Offline envelope of a recording in volts (n, ch): quantise as the ADC would, then run the edge filter.

    ``fs_hz`` is the recording's rate and must equal ``config.fs_hz`` (a mismatch would silently
    shift every corner frequency). ``volts_per_count`` is the ADC's scale (``Adc.volts_per_count``, see
    :mod:`myoedge.edge.dsp.adc`), ``config.input_bits`` its width. Without ``mvc_volts`` the result is
    in volts.
    """
    if float(fs_hz) != config.fs_hz:
        raise InputError(f"recording rate {fs_hz:g} Hz differs from the envelope's fs_hz {config.fs_hz:g} Hz")
    counts = volts_to_counts(emg_volts, volts_per_count=volts_per_count, input_bits=config.input_bits)
    filt = EnvelopeFilter(config, n_channels=counts.shape[1], volts_per_count=volts_per_count,
                          mvc_volts=1.0 if mvc_volts is None else mvc_volts)
    return filt.process(counts)


def float_reference_envelope(x: np.ndarray, *, config: EnvelopeConfig) -> np.ndarray:
    """The same chain in float64 with the designed (unquantised) filters, for tests and the report.

    Output is in the units of ``x`` at ``out_rate_hz``, sampled at the same phase as :meth:`process`.
    """
    design = design_envelope(config)
    band = signal.sosfilt(design.band_sos.copy(), np.asarray(x, dtype=np.float64), axis=0)
    env = signal.sosfilt(design.lowpass_sos.copy(), np.abs(band), axis=0)
    k = config.decimation
    return env[k - 1 :: k]
