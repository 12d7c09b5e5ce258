"""Movement cycles: cut a trial into cycles and time-normalise each to a fixed number of frames.

Zhang et al. (IEEE TNSRE 2023, Section IV-A) train and test on gait cycles, each resampled to 100
frames. This module finds the cycles of one trial and resamples every channel onto them:

- **knee** — gait cycles from heel strike to heel strike when the recording carries heel-strike
  events (``Recording.events``, e.g. "Foot Strike" or "Right Foot Strike"), otherwise from one swing
  peak (the flexion maximum) to the next;
- **wrist, elbow** — flexion–extension cycles from one flexion maximum to the next.

Flexion maxima are found with hysteresis: θ must fall below the low threshold (``low`` of the way up
the trial's 5–95 % range) before the next excursion above the high threshold counts (or the trial
must start below the high threshold), and each excursion that ends inside the trial gives one peak,
its maximum. A loading-response bump at the knee or a tremor near a peak
therefore cannot split a cycle. A cycle is resampled by PCHIP (shape-preserving: no overshoot, so a
cycle's extrema are kept) onto ``frames`` instants from its start to its end inclusive; frame i is at
phase i / (frames − 1). Cycles whose duration is an outlier (farther than ``k_mad`` scaled median
absolute deviations from the median: a missed or a spurious boundary) are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from myoedge.ground.errors import InputError

FRAMES = 100
#: heel-strike event names, in the order they are looked for (the first with two events inside the trial)
HEEL_STRIKE_EVENTS = ("Foot Strike", "Right Foot Strike", "Left Foot Strike", "Heel Strike",
                      "Right Heel Strike", "Left Heel Strike")
MAD_SCALE = 1.4826  # MAD × this estimates the standard deviation of normal data


@dataclass(frozen=True)
class Cycles:
    """The kept cycles of one trial: ``channels[name]`` has shape (n_cycles, frames, ...)."""

    source: str
    method: str  # how boundaries were found: "event: <name>" | "flexion peak" | "swing peak"
    starts: np.ndarray  # (n_cycles,) s, on the trial's clock
    durations: np.ndarray  # (n_cycles,) s
    channels: dict[str, np.ndarray] = field(default_factory=dict)
    detected: int = 0  # cycles between consecutive boundaries, before rejection
    rejected: int = 0  # dropped for an outlier duration
    rejected_durations: tuple[float, ...] = ()

    @property
    def n(self) -> int:
        return len(self.starts)

    def counts(self) -> dict:
        return {"source": self.source, "method": self.method, "detected": self.detected,
                "rejected": self.rejected, "kept": self.n,
                "rejected_durations_s": [round(d, 3) for d in self.rejected_durations],
                "median_duration_s": round(float(np.median(self.durations)), 3) if self.n else None}


def flexion_peaks(theta, *, low: float = 0.35, high: float = 0.65) -> np.ndarray:
    """Indices of the flexion maxima of ``theta``, one per excursion above the high threshold.

    Thresholds are ``low`` and ``high`` of the way from the 5th to the 95th percentile of ``theta``;
    an excursion counts only after θ has been below the low threshold (hysteresis).
    """
    theta = np.asarray(theta, dtype=np.float64)
    if not 0.0 <= low < high <= 1.0:
        raise InputError(f"hysteresis thresholds need 0 <= low < high <= 1, got low={low}, high={high}")
    if theta.ndim != 1 or len(theta) < 3 or not np.all(np.isfinite(theta)):
        return np.zeros(0, dtype=int)
    p5, p95 = np.percentile(theta, [5.0, 95.0])
    if not p95 > p5:
        return np.zeros(0, dtype=int)
    lo, hi = p5 + low * (p95 - p5), p5 + high * (p95 - p5)
    # a trial that starts below the high threshold has seen the whole of its first excursion
    peaks, armed, start = [], bool(theta[0] <= hi), -1
    for i, v in enumerate(theta):
        if v < lo:
            if start >= 0:  # an excursion above `hi` has ended: its maximum is a peak
                peaks.append(start + int(np.argmax(theta[start:i])))
                start = -1
            armed = True
        elif v > hi and armed and start < 0:
            start, armed = i, False
    return np.asarray(peaks, dtype=int)


def event_times(events: Mapping[str, np.ndarray] | None, t0: float,
                t1: float) -> tuple[str, np.ndarray] | None:
    """The first heel-strike event type with at least two times inside [t0, t1], and those times."""
    for name in HEEL_STRIKE_EVENTS:
        times = np.asarray((events or {}).get(name, ()), dtype=np.float64).ravel()
        times = np.unique(times[(times >= t0) & (times <= t1)])  # sorted; an event listed twice is one
        if len(times) >= 2:
            return name, times
    return None


def outlier_durations(durations, *, k_mad: float = 3.0) -> np.ndarray:
    """True for each duration farther than ``k_mad`` scaled MADs from the median (none for < 3 cycles)."""
    d = np.asarray(durations, dtype=np.float64)
    if k_mad <= 0:
        raise InputError(f"k_mad must be > 0, got {k_mad}")
    if len(d) < 3:
        return np.zeros(len(d), dtype=bool)
    med = np.median(d)
    mad = MAD_SCALE * np.median(np.abs(d - med))
    mad = max(mad, 0.05 * med)  # natural variation of a few %: never call a cycle within 5 % × k an outlier
    return np.abs(d - med) > k_mad * mad


def time_normalise(t, values, start: float, stop: float, *, frames: int = FRAMES) -> np.ndarray:
    """``values`` (n, ...) sampled at ``t`` resampled by PCHIP onto ``frames`` instants in [start, stop]."""
    # imported here: the CLI reads FRAMES without loading scipy
    from scipy.interpolate import PchipInterpolator

    grid = np.linspace(start, stop, frames)
    return PchipInterpolator(np.asarray(t, dtype=np.float64), np.asarray(values), axis=0)(grid)


def segment(t, theta, channels: Mapping[str, np.ndarray | None], *, joint: str, source: str,
            events: Mapping[str, np.ndarray] | None = None, frames: int = FRAMES, k_mad: float = 3.0,
            low: float = 0.35, high: float = 0.65) -> Cycles:
    """Cut one trial into cycles and time-normalise θ and every channel (arrays of shape (n, ...)).

    ``channels`` may hold None values (absent channels are skipped). ``source`` names the trial's file
    in messages. Raises InputError naming it when no complete cycle is found.
    """
    t = np.asarray(t, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 3:
        raise InputError(f"frames must be an int >= 3, got {frames!r}")
    if t.ndim != 1 or theta.shape != t.shape or len(t) < 3 or np.any(np.diff(t) <= 0):
        raise InputError(f"{source}: need increasing times and one angle per time (got {t.shape} times, "
                         f"{theta.shape} angles)")
    found = event_times(events, t[0], t[-1]) if joint == "knee" else None
    if found is not None:
        method, bounds = f"event: {found[0]}", found[1]
    else:
        method = "swing peak" if joint == "knee" else "flexion peak"
        bounds = t[flexion_peaks(theta, low=low, high=high)]
    if len(bounds) < 2:
        raise InputError(f"{source}: no complete movement cycle found ({len(bounds)} cycle boundary by "
                         f"{method}; a cycle needs two) — is this a cyclic movement?")
    starts, stops = bounds[:-1], bounds[1:]
    durations = stops - starts
    bad = outlier_durations(durations, k_mad=k_mad)
    keep = ~bad
    data = {"theta": theta, **{k: np.asarray(v) for k, v in channels.items() if v is not None}}
    out = {k: np.stack([time_normalise(t, v, a, b, frames=frames) for a, b in zip(starts[keep], stops[keep],
                                                                                    strict=True)])
           for k, v in data.items()}
    return Cycles(source=source, method=method, starts=starts[keep], durations=durations[keep],
                  channels=out, detected=len(durations), rejected=int(bad.sum()),
                  rejected_durations=tuple(float(d) for d in durations[bad]))
