"""Q31 biquad cascades, bit-exact with CMSIS-DSP, vectorised over channels.

Two filters mirror the two CMSIS-DSP direct-form-I Q31 functions:

* :class:`BiquadCascadeQ31` = ``arm_biquad_cascade_df1_q31``: Q31 coefficients, Q31 state, a 64-bit
  accumulator; per sample ``acc = b0*x[n] + b1*x[n-1] + b2*x[n-2] + a1*y[n-1] + a2*y[n-2]`` and
  ``y[n] = (int32)(acc >> (31 - postShift))`` (an arithmetic shift, then the low 32 bits are kept).
* :class:`BiquadCascadeQ31x64` = ``arm_biquad_cas_df1_32x64_q31``: the same, but ``y`` is kept as a
  Q63 state ``Y = acc << (postShift + 1)`` and fed back through ``mult32x64(Y, a) =
  ((Y & 0xFFFFFFFF) * a >> 32) + (Y >> 32) * a``; the output is the high word of ``Y``. The extra
  32 bits of state keep poles close to z = 1 (a few Hz at kHz rates) from drowning in rounding noise.

Coefficients are laid out as CMSIS-DSP does: per stage ``b0, b1, b2, a1, a2`` in Q31 with the CMSIS
feedback sign (``a1``, ``a2`` are the *negated* scipy denominator terms), all stages scaled by
``2**-postShift``. Every sum wraps modulo 2**64 and every store to 32 bits keeps the low word, exactly
as the C code does on any two's-complement target; numba's int64 arithmetic wraps the same way.

The numeric kernels are tiny numba functions working in place on an (n_samples, n_channels) int32
buffer; the classes are the shell that validates shapes, dtypes and ranges and keeps one state per
channel between calls, so filtering in chunks equals filtering in one pass.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy import signal

from myoedge.ground.errors import InputError

__all__ = [
    "BiquadCascadeQ31",
    "BiquadCascadeQ31x64",
    "cascade_l1_gains",
    "cmsis_q31_to_sos",
    "headroom_bits",
    "sos_to_cmsis_q31",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_MASK32 = 0xFFFFFFFF
#: CMSIS-DSP computes ``acc_h << (postShift + 1)`` on 32-bit words; at postShift 31 that is a shift by 32,
#: undefined in C (ARM gives 0, x86 leaves the word unshifted), so 30 is the largest defined shift.
MAX_POST_SHIFT = 30


@njit(cache=True)
def df1_q31_inplace(buf, coeffs, state, post_shift):
    """``arm_biquad_cascade_df1_q31`` on every column of ``buf`` (int32, modified in place).

    ``coeffs`` int64 (n_stages, 5); ``state`` int32 (n_channels, n_stages, 4) as CMSIS's
    ``{x[n-1], x[n-2], y[n-1], y[n-2]}`` per stage.
    """
    n_samples, n_channels = buf.shape
    shift = 31 - post_shift
    for ch in range(n_channels):
        for st in range(coeffs.shape[0]):
            b0, b1, b2, a1, a2 = coeffs[st, 0], coeffs[st, 1], coeffs[st, 2], coeffs[st, 3], coeffs[st, 4]
            x1 = np.int64(state[ch, st, 0])
            x2 = np.int64(state[ch, st, 1])
            y1 = np.int64(state[ch, st, 2])
            y2 = np.int64(state[ch, st, 3])
            for n in range(n_samples):
                x0 = np.int64(buf[n, ch])
                acc = b0 * x0 + b1 * x1 + b2 * x2 + a1 * y1 + a2 * y2
                y0 = np.int64(np.int32(acc >> shift))
                buf[n, ch] = y0
                x2 = x1
                x1 = x0
                y2 = y1
                y1 = y0
            state[ch, st, 0] = x1
            state[ch, st, 1] = x2
            state[ch, st, 2] = y1
            state[ch, st, 3] = y2


@njit(cache=True, inline="always")
def _mult32x64(y, a):
    return (((y & _MASK32) * a) >> 32) + (y >> 32) * a


@njit(cache=True)
def df1_32x64_q31_inplace(buf, coeffs, state, post_shift):
    """``arm_biquad_cas_df1_32x64_q31`` on every column of ``buf`` (int32, modified in place).

    ``state`` int64 (n_channels, n_stages, 4): ``x[n-1], x[n-2]`` (Q31 values widened, as CMSIS
    stores them) and ``y[n-1], y[n-2]`` in Q63.
    """
    n_samples, n_channels = buf.shape
    shift = post_shift + 1
    for ch in range(n_channels):
        for st in range(coeffs.shape[0]):
            b0, b1, b2, a1, a2 = coeffs[st, 0], coeffs[st, 1], coeffs[st, 2], coeffs[st, 3], coeffs[st, 4]
            x1 = np.int64(np.int32(state[ch, st, 0]))
            x2 = np.int64(np.int32(state[ch, st, 1]))
            y1 = state[ch, st, 2]
            y2 = state[ch, st, 3]
            for n in range(n_samples):
                x0 = np.int64(buf[n, ch])
                acc = b0 * x0 + b1 * x1 + b2 * x2 + _mult32x64(y1, a1) + _mult32x64(y2, a2)
                x2 = x1
                x1 = x0
                y2 = y1
                y1 = acc << shift
                buf[n, ch] = np.int32(y1 >> 32)
            state[ch, st, 0] = x1
            state[ch, st, 1] = x2
            state[ch, st, 2] = y1
            state[ch, st, 3] = y2


# Envelope helpers (myoedge.edge.dsp.envelope): ADC counts -> Q31, and the saturating rectifier.
@njit(cache=True)
def _counts_to_q31(counts, lo, hi, shift, out):
    """out = counts << shift; returns the flat index of the first count outside lo..hi, or -1."""
    n, nch = counts.shape
    for i in range(n):
        for c in range(nch):
            v = counts[i, c]
            if v < lo or v > hi:
                return i * nch + c
    for i in range(n):
        for c in range(nch):
            out[i, c] = np.int64(counts[i, c]) << shift
    return -1


@njit(cache=True)
def _rectify_shift(buf, shift):
    """buf = |buf| >> shift in place; |INT32_MIN| saturates to INT32_MAX instead of wrapping."""
    n, nch = buf.shape
    for i in range(n):
        for c in range(nch):
            v = np.int64(buf[i, c])
            v = min(-v if v < 0 else v, INT32_MAX)
            buf[i, c] = v >> shift


class _BiquadCascade:
    """Shared shell: validation, per-channel state, chunked processing."""

    _state_dtype: type = np.int32

    def __init__(self, coeffs, post_shift: int, n_channels: int):
        self._coeffs = _validated_coeffs(coeffs)
        if isinstance(post_shift, bool) or not isinstance(post_shift, (int, np.integer)):
            raise InputError(f"post_shift must be an int in 0..{MAX_POST_SHIFT}, got {post_shift!r}")
        if not 0 <= int(post_shift) <= MAX_POST_SHIFT:
            raise InputError(
                f"post_shift must be in 0..{MAX_POST_SHIFT}, got {post_shift} (31 makes CMSIS-DSP shift a "
                "32-bit word by 32, which C leaves undefined: its output then depends on the platform)"
            )
        if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
            raise InputError(f"n_channels must be a positive int, got {n_channels!r}")
        self.post_shift = int(post_shift)
        self.n_channels = int(n_channels)
        self._state = np.zeros((self.n_channels, self.n_stages, 4), dtype=self._state_dtype)

    @property
    def n_stages(self) -> int:
        return self._coeffs.shape[0]

    @property
    def coeffs(self) -> np.ndarray:
        """The CMSIS coefficient array (int32, ``5 * n_stages``), a copy."""
        return self._coeffs.astype(np.int32).ravel()

    def reset(self) -> None:
        """Zero every channel's state (what CMSIS's init function does)."""
        self._state[...] = 0

    def get_state(self) -> np.ndarray:
        """A copy of the state, shape (n_channels, n_stages, 4); row ``[ch]`` is CMSIS's ``pState``."""
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state taken with :meth:`get_state` (same shape and dtype)."""
        state = np.asarray(state)
        if state.shape != self._state.shape or state.dtype != self._state.dtype:
            raise InputError(
                f"state must be {np.dtype(self._state_dtype).name} of shape {self._state.shape}, "
                f"got {state.dtype.name} of shape {state.shape}"
            )
        self._state[...] = state

    def process(self, x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """Filter int32 samples of shape (n_samples, n_channels); state carries over to the next call.

        ``out`` (same shape, int32, C-contiguous; may be ``x`` itself) avoids an allocation.
        """
        _check_block(x, self.n_channels, "x")
        if out is None:
            out = x.copy()
        else:
            _check_block(out, self.n_channels, "out")
            if out.shape != x.shape:
                raise InputError(f"out must have the shape of x {x.shape}, got {out.shape}")
            if out is not x:
                out[...] = x
        if out.shape[0]:
            self._kernel(out, self._coeffs, self._state, self.post_shift)
        return out

    @staticmethod
    def _kernel(buf, coeffs, state, post_shift):  # pragma: no cover - replaced in subclasses
        raise NotImplementedError


class BiquadCascadeQ31(_BiquadCascade):
    """``arm_biquad_cascade_df1_q31`` for ``n_channels`` channels (Q31 state, one per channel)."""

    _state_dtype = np.int32
    _kernel = staticmethod(df1_q31_inplace)


class BiquadCascadeQ31x64(_BiquadCascade):
    """``arm_biquad_cas_df1_32x64_q31`` for ``n_channels`` channels (Q63 output state per channel)."""

    _state_dtype = np.int64
    _kernel = staticmethod(df1_32x64_q31_inplace)


def _validated_coeffs(coeffs) -> np.ndarray:
    """CMSIS coefficients (flat ``5*n_stages`` or (n_stages, 5) integers) as int64 (n_stages, 5)."""
    arr = np.asarray(coeffs)
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"coefficients must be Q31 integers (CMSIS layout b0,b1,b2,a1,a2 per stage), got dtype "
            f"{arr.dtype.name}; convert floats with sos_to_cmsis_q31"
        )
    if arr.ndim == 1 and arr.size % 5 == 0 and arr.size > 0:
        arr = arr.reshape(-1, 5)
    if arr.ndim != 2 or arr.shape[1] != 5 or arr.shape[0] == 0:
        raise InputError(f"coefficients must hold 5 values per stage (>= 1 stage), got shape {arr.shape}")
    wide = arr.astype(np.int64) if arr.dtype != np.uint64 else arr
    if wide.min() < INT32_MIN or wide.max() > INT32_MAX:
        raise InputError(
            f"coefficients must fit Q31 ({INT32_MIN}..{INT32_MAX}), got range {wide.min()}..{wide.max()}"
        )
    return np.ascontiguousarray(wide, dtype=np.int64)


def _check_block(x, n_channels: int, name: str) -> None:
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be a numpy int32 array (n, {n_channels}), got {type(x).__name__}")
    if x.dtype != np.int32:
        raise InputError(f"{name} must have dtype int32, got {x.dtype.name}")
    if x.ndim != 2 or x.shape[1] != n_channels:
        raise InputError(f"{name} must have shape (n_samples, {n_channels}), got {x.shape}")
    if not x.flags.c_contiguous:
        raise InputError(f"{name} must be C-contiguous (use np.ascontiguousarray), got a strided view")
    if not x.flags.writeable and name == "out":
        raise InputError("out must be writeable")


def sos_to_cmsis_q31(sos) -> tuple[np.ndarray, int]:
    """scipy second-order sections -> (CMSIS Q31 coefficients int32 ``5*n_stages``, postShift).

    The rule: denominators are normalised to ``a0 = 1`` and ``a1, a2`` negated (CMSIS sign); then
    ``postShift`` is the *smallest* shift for which every coefficient, rounded to the nearest
    ``2**-(31 - postShift)``, fits int32. The smallest shift keeps the most fractional bits, so the
    realised poles sit as close as Q31 allows to the designed ones.
    """
    sos = np.asarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] == 0 or not np.all(np.isfinite(sos)):
        raise InputError(f"sos must be a finite (n_sections, 6) array, got shape {sos.shape}")
    if np.any(sos[:, 3] == 0):
        raise InputError("sos has a section with a0 == 0")
    a0 = sos[:, 3:4]
    flat = np.hstack([sos[:, 0:3] / a0, -sos[:, 4:6] / a0]).ravel()
    for post_shift in range(MAX_POST_SHIFT + 1):
        q = np.rint(flat * 2.0 ** (31 - post_shift))
        if q.min() >= INT32_MIN and q.max() <= INT32_MAX:
            return q.astype(np.int32), post_shift
    biggest = np.abs(flat).max()
    raise InputError(f"coefficients too large for postShift <= {MAX_POST_SHIFT} (max |c| {biggest:g})")


def cmsis_q31_to_sos(coeffs, post_shift: int) -> np.ndarray:
    """The sos (float64, scipy signs) that CMSIS Q31 coefficients and ``post_shift`` realise."""
    c = _validated_coeffs(coeffs).astype(np.float64) * 2.0 ** (int(post_shift) - 31)
    ones = np.ones((c.shape[0], 1))
    return np.hstack([c[:, 0:3], ones, -c[:, 3:5]])


def cascade_l1_gains(sos) -> np.ndarray:
    """``sum |h[n]|`` from the cascade input to each section's output: each node's worst-case gain.

    No input bounded by 1 can drive a node past its L1 gain, so headroom sized from it rules out
    wrap-around for *any* signal, not only for the ones tried. The impulse response is followed until
    the slowest pole has decayed by 1e-12.
    """
    sos = np.asarray(sos, dtype=np.float64)
    radius = max(float(np.abs(np.roots([1.0, s[4] / s[3], s[5] / s[3]])).max(initial=0.0)) for s in sos)
    if radius >= 1.0:
        raise InputError(f"the cascade is not stable (pole radius {radius:.9f}); its gain is unbounded")
    length = int(min(2**22, max(64, np.log(1e-12) / np.log(max(radius, 1e-300)))))
    y = np.zeros(length)
    y[0] = 1.0
    gains = []
    for section in sos:
        y = signal.sosfilt(section[None, :].copy(), y)
        gains.append(np.abs(y).sum())
    return np.array(gains)


def headroom_bits(sos) -> int:
    """Smallest ``h >= 0`` with every node's L1 gain below ``2**h`` (a 1e-6 margin covers rounding)."""
    worst = float(cascade_l1_gains(sos).max()) * (1.0 + 1e-6)
    return max(0, math.ceil(math.log2(worst)))
