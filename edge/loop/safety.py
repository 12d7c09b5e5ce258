"""What makes an estimate unsafe to act on, and the torque limit (design.md section 5).

Every estimate carries validity flags (``myoedge.edge.loop.estimate.Flags``). Their causes:

- **saturated**: a sample at (or within ``saturation_margin_counts`` of) the ADC's full scale. The
  amplifier clipped, so the envelope under-reads that muscle.
- **electrode off**: a channel whose counts stayed within ``flat_span_counts`` of one value for
  ``flat_ms``. Real EMG, even at rest, has amplifier noise of many counts; a flat line is a lifted
  electrode, a broken lead or a dead channel.
- **lost frames**: the parser counted a sequence gap; the window the model saw is missing samples.
- **out of range**: theta or a force outside the bundle's ``physiological_range`` (or not finite).
- **stale**: the watchdog saw no frame for ``watchdog_ms`` (set by the runtime, not here).

A frame-level cause (saturation, flat channel, loss) stays flagged for ``hold`` estimates: as long as
the affected samples are inside the model's window, the estimates computed from it are suspect.

Torque is clamped to ``torque_limits_nm``; :meth:`SafetyMonitor.clamp` returns what will be sent, so
the estimate says both what was asked for and what went out (the LeRobot rule: the function that
sends a command returns what was actually sent after clamping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from myoedge.edge.loop.estimate import Flags
from myoedge.ground.errors import InputError

__all__ = ["PhysiologicalRange", "SafetyConfig", "SafetyMonitor"]

_MASK64 = (1 << 64) - 1
_SATURATED, _ELECTRODE_OFF = int(Flags.SATURATED), int(Flags.ELECTRODE_OFF)
_LOST_FRAMES, _OUT_OF_RANGE = int(Flags.LOST_FRAMES), int(Flags.OUT_OF_RANGE)
FLAG_VALUES = tuple(Flags(v) for v in range(2 * max(Flags)))  # bits -> Flags without enum arithmetic


@njit(cache=True)
def _in_range(theta, forces, theta_lo, theta_hi, force_lo, force_hi):
    if not theta_lo <= theta <= theta_hi:
        return False
    for n in range(forces.shape[0]):
        if not force_lo[n] <= forces[n] <= force_hi[n]:
            return False
    return True


@dataclass(frozen=True, kw_only=True)
class SafetyConfig:
    """Limits of the checks. ``torque_limits_nm`` is (lo, hi) or None for no clamping."""

    watchdog_ms: float = 50.0
    torque_limits_nm: tuple[float, float] | None = None
    flat_ms: float = 100.0
    flat_span_counts: int = 2
    saturation_margin_counts: int = 0
    ood_factor: float = 2.0  # OUT_OF_DISTRIBUTION above ood_factor x the training max (plausibility.py)
    ood_ms: float = 50.0  # ... sustained this long
    flat_output_ms: float = 500.0  # FLAT_OUTPUT after outputs this still while the envelopes move
    flat_output_tolerance: float = 1e-6  # relative: |x - x0| <= tol * (1 + |x0|) counts as still
    fill_off_channels: bool = False  # fill flat channels from the others: RECONSTRUCTED, not ELECTRODE_OFF

    def __post_init__(self) -> None:
        for name, low in (("ood_factor", 1.0), ("flat_output_tolerance", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < math.inf:
                raise InputError(f"{name} must be a finite number > {low:g}, got {value!r}")
        for name in ("watchdog_ms", "flat_ms", "ood_ms", "flat_output_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise InputError(f"{name} must be a positive number of milliseconds, got {value!r}")
        for name in ("flat_span_counts", "saturation_margin_counts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name} must be an int >= 0, got {value!r}")
        if not isinstance(self.fill_off_channels, bool):
            raise InputError(f"fill_off_channels must be True or False, got {self.fill_off_channels!r}")
        if self.torque_limits_nm is not None:
            try:
                lo, hi = (float(v) for v in self.torque_limits_nm)
            except (TypeError, ValueError):
                raise InputError(f"torque_limits_nm must be (lo, hi) in N*m, got {self.torque_limits_nm!r}") \
                    from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InputError(f"torque_limits_nm must be finite with lo < hi, got ({lo}, {hi})")
            object.__setattr__(self, "torque_limits_nm", (lo, hi))

    @classmethod
    def symmetric(cls, limit_nm: float | None, **kwargs) -> SafetyConfig:
        """``torque_limits_nm = (-limit_nm, +limit_nm)`` (the ``--torque-limit`` option)."""
        if limit_nm is None:
            return cls(**kwargs)
        if not isinstance(limit_nm, (int, float)) or not 0 < limit_nm < math.inf:
            raise InputError(f"the torque limit must be a positive number of N*m, got {limit_nm!r}")
        return cls(torque_limits_nm=(-float(limit_nm), float(limit_nm)), **kwargs)


@dataclass(frozen=True)
class PhysiologicalRange:
    """The bundle's ``physiological_range``: theta (rad) and one (lo, hi) per force (N)."""

    theta_rad: tuple[float, float]
    forces_n: tuple[tuple[float, float], ...]

    @classmethod
    def from_meta(cls, meta) -> PhysiologicalRange:
        """From a bundle's typed meta (``BundleMeta``)."""
        phys = meta.physiological_range
        return cls(phys.theta_rad, phys.forces_n)

    def contains(self, theta: float, forces: tuple[float, ...]) -> bool:
        """True when every value is inside its range; NaN is never inside."""
        lo, hi = self.theta_rad
        if not lo <= theta <= hi:
            return False
        for value, (lo, hi) in zip(forces, self.forces_n):  # noqa: B905 - lengths checked at set-up
            if not lo <= value <= hi:
                return False
        return True


@njit(cache=True)
def _scan(samples, sat_lo, sat_hi, span, ref, run, flat_after, out):
    """One frame: out[0] = mask of channels at full scale; out[1] = mask of channels flat for
    ``flat_after`` samples or more (each channel's ``run`` counts samples within ``span`` of ``ref``)."""
    n, n_ch = samples.shape
    saturated = np.int64(0)
    for i in range(n):
        for c in range(n_ch):
            v = np.int64(samples[i, c])
            if v <= sat_lo or v >= sat_hi:
                saturated |= np.int64(1) << c
            d = v - ref[c]
            if d > span or d < -span:
                ref[c] = v
                run[c] = 0
            else:
                run[c] += 1
    flat = np.int64(0)
    for c in range(n_ch):
        if run[c] >= flat_after:
            flat |= np.int64(1) << c
    out[0] = saturated
    out[1] = flat


class SafetyMonitor:
    """Per-stream state of the checks: call :meth:`scan` on every frame, :meth:`note_lost` when the
    parser counts a gap, and :meth:`flags` once per estimate (which also ages the holds)."""

    def __init__(self, config: SafetyConfig, *, n_channels: int, sample_bits: int, fs_hz: float, hold: int,
                 physiological_range: PhysiologicalRange) -> None:
        if not 1 <= n_channels <= 64:
            raise InputError(f"n_channels must be in 1..64, got {n_channels}")
        if sample_bits not in (16, 24):
            raise InputError(f"sample_bits must be 16 or 24, got {sample_bits!r}")
        if len(physiological_range.forces_n) < 1 or not hold >= 1:
            raise InputError("need a force range per muscle and hold >= 1 estimate")
        self.config = config
        self.n_channels = n_channels
        self.hold = int(hold)
        self.range = physiological_range
        full = (1 << (sample_bits - 1)) - 1
        self._sat_lo = -full - 1 + config.saturation_margin_counts
        self._sat_hi = full - config.saturation_margin_counts
        self._span = config.flat_span_counts
        self.flat_after = max(1, round(config.flat_ms * 1e-3 * fs_hz))  # samples
        self._ref = np.zeros(n_channels, dtype=np.int64)
        self._run = np.zeros(n_channels, dtype=np.int64)
        self._masks = np.zeros(2, dtype=np.int64)
        self._limits = config.torque_limits_nm
        self._theta_lo, self._theta_hi = (float(v) for v in physiological_range.theta_rad)
        self._force_lo = np.array([lo for lo, _ in physiological_range.forces_n], dtype=np.float64)
        self._force_hi = np.array([hi for _, hi in physiological_range.forces_n], dtype=np.float64)
        self.reset_holds()

    def reset_holds(self) -> None:
        self._sat_left = self._flat_left = self._lost_left = 0
        self._sat_channels = self._flat_channels = 0

    def scan(self, samples: np.ndarray) -> None:
        """Check one frame's counts (int32, (n, n_channels))."""
        _scan(samples, self._sat_lo, self._sat_hi, self._span, self._ref, self._run, self.flat_after,
              self._masks)
        saturated, flat = int(self._masks[0]) & _MASK64, int(self._masks[1]) & _MASK64
        if saturated:
            self._sat_left, self._sat_channels = self.hold, self._sat_channels | saturated
        if flat:
            self._flat_left, self._flat_channels = self.hold, self._flat_channels | flat

    def flat_now(self) -> int:
        """Mask of the channels flat at the end of the latest frame scanned (electrode off now)."""
        return int(self._masks[1]) & _MASK64

    def flat_held(self) -> int:
        """Mask of the channels behind a held ELECTRODE_OFF (flat within the last ``hold`` estimates)."""
        return self._flat_channels if self._flat_left else 0

    def note_lost(self, frames: int) -> None:
        """The parser counted ``frames`` more lost frames."""
        if frames > 0:
            self._lost_left = self.hold

    def flags(self, theta: float, forces: tuple[float, ...]) -> tuple[Flags, int]:
        """Flags and the bad-channel mask for an estimate of ``theta`` and ``forces``; ages the holds."""
        bits, bad = self.hold_bits()
        if not self.range.contains(theta, forces):
            bits |= _OUT_OF_RANGE
        return FLAG_VALUES[bits], bad

    def hold_bits(self) -> tuple[int, int]:
        """The held flags (saturated, electrode off, lost frames) as plain bits, and the bad-channel mask;
        ages the holds. The loop's path: ints, no ``Flags`` arithmetic."""
        bits = bad = 0
        if self._sat_left:
            bits, bad = _SATURATED, self._sat_channels
            self._sat_left -= 1
            if not self._sat_left:
                self._sat_channels = 0
        if self._flat_left:
            bits |= _ELECTRODE_OFF
            bad |= self._flat_channels
            self._flat_left -= 1
            if not self._flat_left:
                self._flat_channels = 0
        if self._lost_left:
            bits |= _LOST_FRAMES
            self._lost_left -= 1
        return bits, bad

    def out_of_range(self, theta: float, forces: np.ndarray) -> bool:
        """``range.contains`` on the predictor's force array (compiled; NaN is never inside)."""
        return not _in_range(theta, forces, self._theta_lo, self._theta_hi, self._force_lo, self._force_hi)

    def clamp(self, torque_nm: float) -> tuple[float, bool]:
        """(the torque that will be sent, whether it differs from ``torque_nm``).

        A non-finite torque is sent as 0 N*m (and reported clamped): no limit makes NaN safe.
        """
        if not math.isfinite(torque_nm):
            return 0.0, True
        limits = self._limits
        if limits is None:
            return torque_nm, False
        lo, hi = limits
        if torque_nm < lo:
            return lo, True
        if torque_nm > hi:
            return hi, True
        return torque_nm, False
