"""MVC session logic, free of I/O: what a repetition's MVC is, when a repetition is rejected, and when
a session is complete. The front-end (:mod:`myoedge.calibrate.mvc_session`) feeds it the device's
envelopes; tests feed it synthetic ones.

**The MVC of a repetition.** The classic definition is the peak of a moving average (default 500 ms)
of the envelope. That peak sits on top of the envelope's own fluctuation: surface EMG is a random
interference pattern, so even a perfectly steady maximal effort gives a 500 ms average that wanders by
±4 %, and its peak over a 3 s hold reads ~8 % above the true level (measured on the synthetic subjects;
see docs/calibration.md). We keep the moving average to *find* the maximal effort and then average
the envelope over all of it: the sustained plateau is the stretch around the peak where the moving
average stays at or above ``plateau_fraction`` (85 %) of the contraction's typical level (the median
moving average where it exceeds half its peak), less half a window at each end (the average's own
smear into the ramps). Measuring against the typical level, not the peak, keeps one lucky noise peak
from shrinking the plateau to itself. A long steady hold then gives its mean, unbiased; a brief effort
shorter than about two windows gives the classic peak of the moving average.

**The MVC of a muscle** is the best accepted repetition — pooled with the others that are equally
maximal: repetitions whose plateau is within ``pool_within`` (5 %) of the best are averaged. A clearly
weaker effort does not pull the MVC down, and equal efforts are not reduced to the luckiest noise
draw (taking the largest of three equal plateaus alone reads ~1 % high and scatters ±2 %).

**Rejections**, each with the reason shown to the user and stored in the profile's provenance:
frames lost in the repetition (above ``max_lost_fraction``), raw samples at the ADC limit (clipping:
the amplitude is unknown), a flat raw signal (electrode off or a broken lead), a contraction weaker
than ``min_ratio`` times the resting envelope, or (guided sessions) the strongest rise on a different
channel than the one asked for (electrodes swapped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from myoedge.ground.errors import InputError


@dataclass(frozen=True, kw_only=True)
class MvcConfig:
    """Settings of an MVC session (times in seconds)."""

    window_s: float = 0.5  # moving average that finds the maximal effort
    plateau_fraction: float = 0.85  # the plateau: moving average >= this fraction of the typical level
    pool_within: float = 0.05  # repetitions within this fraction of the best are averaged
    repetitions: int = 3  # accepted repetitions wanted per muscle
    max_attempts: int = 6  # repetitions tried per muscle before giving up
    rest_s: float = 3.0  # guided: rest before each contraction (the countdown is its end)
    hold_s: float = 5.0  # guided: contraction
    countdown_s: float = 3.0
    min_ratio: float = 5.0  # plateau / resting envelope
    onset_ratio: float = 3.0  # scripted sessions: a burst starts where the envelope passes this × rest
    min_burst_s: float = 1.0  # scripted sessions: shorter bursts are twitches, not repetitions
    clip_fraction: float = 0.001  # of raw samples at the ADC limit
    flat_volts: float = 0.5e-6  # raw RMS below this is a flat line
    max_lost_fraction: float = 0.02  # of the frames a repetition should have had
    envelope_rate_hz: float = 100.0
    settle_s: float = 0.5  # envelope filter start-up, ignored

    def __post_init__(self):
        for name in ("window_s", "rest_s", "hold_s", "min_ratio", "onset_ratio", "min_burst_s", "flat_volts",
                     "envelope_rate_hz"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"MVC setting {name} must be a positive number, got {v!r}")
        for name in ("plateau_fraction", "pool_within", "clip_fraction", "max_lost_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise InputError(f"MVC setting {name} must be within [0, 1], got {v!r}")
        for name in ("repetitions", "max_attempts"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise InputError(f"MVC setting {name} must be an integer >= 1, got {v!r}")
        if self.max_attempts < self.repetitions:
            raise InputError(f"max_attempts ({self.max_attempts}) must be at least repetitions "
                             f"({self.repetitions})")
        if not (isinstance(self.countdown_s, (int, float)) and 0 <= self.countdown_s <= self.rest_s):
            raise InputError(f"countdown_s must be within [0, rest_s = {self.rest_s}], got "
                             f"{self.countdown_s!r}")
        if self.hold_s < 2 * self.window_s:
            raise InputError(f"hold_s ({self.hold_s} s) must be at least two moving-average windows "
                             f"({2 * self.window_s} s)")


def plateau_mvc(envelope: np.ndarray, *, rate_hz: float, window_s: float,
                plateau_fraction: float) -> tuple[float, float, tuple[int, int]]:
    """(MVC, peak of the moving average, plateau sample range) of one contraction's envelope (see above)."""
    env = np.asarray(envelope, dtype=float)
    w = max(1, int(round(window_s * rate_hz)))
    if env.ndim != 1 or env.size < w:
        raise InputError(f"a contraction needs at least one {window_s:g} s window of envelope ({w} samples), "
                         f"got {env.size}")
    ma = np.convolve(env, np.ones(w) / w, mode="valid")  # ma[i] averages env[i : i + w]
    k = int(np.argmax(ma))
    peak = float(ma[k])
    lo, hi = _around(ma >= 0.5 * peak, k)
    level = float(np.median(ma[lo:hi + 1]))  # the sustained level of the contraction
    lo, hi = _around(ma >= plateau_fraction * level, k)
    start, stop = lo + w // 2, hi + w - w // 2  # env samples of the plateau, half a window trimmed each end
    if stop - start < w:
        return peak, peak, (k, k + w)
    return float(env[start:stop].mean()), peak, (start, stop)


def _around(mask: np.ndarray, k: int) -> tuple[int, int]:
    """First and last index of the run of True in ``mask`` that contains index ``k``."""
    lo, hi = k, k
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < mask.size - 1 and mask[hi + 1]:
        hi += 1
    return lo, hi


@dataclass(frozen=True, kw_only=True)
class RepetitionData:
    """What the stream saw during one contraction (and the rest before it) on one channel."""

    envelope: np.ndarray  # volts, the contraction
    rest_volts: float  # resting envelope level of this channel
    clipped: int  # raw samples at the ADC limit
    raw_samples: int
    raw_rms_volts: float
    lost_frames: int
    expected_frames: int
    start_s: float  # stream time of the contraction's start
    other_channel: str = ""  # guided: a channel that rose more than the one asked for


@dataclass(frozen=True, kw_only=True)
class Repetition:
    """One attempt of one muscle, accepted or rejected with the reason."""

    muscle: str
    attempt: int
    accepted: bool
    reason: str
    mvc_volts: float
    peak_volts: float
    rest_volts: float
    lost_frames: int
    clipped: int
    start_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_repetition(muscle: str, data: RepetitionData, *, attempt: int, rate_hz: float,
                        config: MvcConfig) -> Repetition:
    """Accept or reject one repetition; the checks run from the most to the least fundamental."""
    mvc, peak = math.nan, math.nan
    if data.envelope.size >= max(1, int(round(config.window_s * rate_hz))):
        mvc, peak, _ = plateau_mvc(data.envelope, rate_hz=rate_hz, window_s=config.window_s,
                                   plateau_fraction=config.plateau_fraction)
    lost_share = data.lost_frames / max(data.expected_frames, 1)
    ratio = mvc / data.rest_volts if data.rest_volts > 0 else math.inf
    if lost_share > config.max_lost_fraction:
        reason = (f"{data.lost_frames} frames lost ({100 * lost_share:.1f}% of the repetition); check the "
                  "cable and the port")
    elif data.clipped > config.clip_fraction * max(data.raw_samples, 1):
        reason = (f"the channel clipped ({data.clipped} samples at the ADC limit): its amplitude is unknown; "
                  "lower the amplifier gain or check the electrode contact")
    elif data.raw_rms_volts < config.flat_volts:
        reason = (f"flat signal (raw RMS {1e6 * data.raw_rms_volts:.2f} µV): electrode off or a broken lead")
    elif data.other_channel:
        reason = (f"the strongest rise was on {data.other_channel}, not {muscle}: check which electrode is "
                  "on which channel, and contract only the muscle asked for")
    elif not math.isfinite(mvc):
        reason = "too short to measure (shorter than one moving-average window)"
    elif ratio < config.min_ratio:
        reason = (f"too weak: {ratio:.1f}× the resting level, need {config.min_ratio:g}×; contract as hard "
                  "as you can")
    else:
        reason = ""
    return Repetition(muscle=muscle, attempt=attempt, accepted=not reason, reason=reason, mvc_volts=mvc,
                      peak_volts=peak, rest_volts=data.rest_volts, lost_frames=data.lost_frames,
                      clipped=data.clipped, start_s=data.start_s)


@dataclass
class MvcSession:
    """Collects repetitions per muscle and says when the session is complete and what the MVC is."""

    muscles: tuple[str, ...]
    config: MvcConfig
    repetitions: dict[str, list[Repetition]] = field(default_factory=dict)

    def __post_init__(self):
        if not self.muscles or len(set(self.muscles)) != len(self.muscles):
            raise InputError(f"an MVC session needs distinct muscles, got {list(self.muscles)}")
        for m in self.muscles:
            self.repetitions.setdefault(m, [])

    def accepted(self, muscle: str) -> list[Repetition]:
        return [r for r in self.repetitions[muscle] if r.accepted]

    def wants(self, muscle: str) -> bool:
        """Whether ``muscle`` still needs repetitions and has attempts left."""
        reps = self.repetitions[muscle]
        return len(self.accepted(muscle)) < self.config.repetitions and len(reps) < self.config.max_attempts

    def add(self, muscle: str, data: RepetitionData, *, rate_hz: float) -> Repetition:
        rep = evaluate_repetition(muscle, data, attempt=len(self.repetitions[muscle]) + 1, rate_hz=rate_hz,
                                  config=self.config)
        self.repetitions[muscle].append(rep)
        return rep

    @property
    def complete(self) -> bool:
        return not any(self.wants(m) for m in self.muscles)

    def mvc(self) -> dict[str, float]:
        """MVC (V) per muscle (best repetitions pooled); refuses an incomplete session, saying why."""
        problems = []
        for m in self.muscles:
            got = self.accepted(m)
            if len(got) < self.config.repetitions:
                reasons = sorted({r.reason for r in self.repetitions[m] if not r.accepted})
                why = "; ".join(reasons) if reasons else "no contraction detected"
                problems.append(f"{m}: {len(got)} of {self.config.repetitions} repetitions accepted ({why})")
        if problems:
            raise InputError("MVC session incomplete — " + " | ".join(problems))
        return {m: float(np.mean([r.mvc_volts for r in self.pooled(m)])) for m in self.muscles}

    def pooled(self, muscle: str) -> list[Repetition]:
        """The accepted repetitions as maximal as the best one (within ``pool_within``)."""
        got = self.accepted(muscle)
        if not got:
            return []
        best = max(r.mvc_volts for r in got)
        return [r for r in got if r.mvc_volts >= (1.0 - self.config.pool_within) * best]

    def summary(self) -> dict:
        out = {}
        for m in self.muscles:
            pooled = self.pooled(m)
            out[m] = {"mvc_volts": float(np.mean([r.mvc_volts for r in pooled])) if pooled else None,
                      "pooled_attempts": [r.attempt for r in pooled],
                      "repetitions": [r.to_dict() for r in self.repetitions[m]]}
        return out


def best_channel(ratios: Sequence[float]) -> int:
    """Index of the largest finite ratio (activity relative to rest)."""
    r = np.nan_to_num(np.asarray(ratios, dtype=float), nan=-np.inf)
    return int(np.argmax(r))
