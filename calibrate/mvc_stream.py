"""From the amplifier's counts to MVC repetitions: the envelope stream and the two ways to cut it.

``EnvelopeStream`` runs the edge's fixed-point envelope (:class:`myoedge.edge.dsp.envelope.EnvelopeFilter`,
the very code the runtime normalises with, so the MVC is measured on the numbers it will divide) and
keeps, per envelope sample, what the rejection checks need from the raw counts: samples at the ADC
limit, the sums for the raw RMS, and frames the parser reported lost. Everything is indexed by envelope
sample, so a repetition is a slice.

Two ways to find repetitions in it:

- ``guided_repetition`` cuts the stream by the session's own schedule (rest, countdown, hold), as the
  prompts told the wearer;
- ``BurstFinder`` (scripted sessions, ``--auto``) finds contractions wherever they are: a burst is a
  stretch where some channel's envelope is above ``onset_ratio`` times its resting level, and belongs
  to the channel that rose the most *relative to its rest* (crosstalk makes a neighbour rise too, but
  by less). Resting levels are the 10th percentile of each channel's envelope so far: in an MVC
  session every channel rests most of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from myoedge.calibrate.mvc import MvcConfig, RepetitionData
from myoedge.edge.dsp.envelope import EnvelopeConfig, EnvelopeFilter
from myoedge.ground.errors import InputError

REST_PERCENTILE = 10.0
BURST_END_S = 0.5  # a burst is over after this long below onset


def stream_envelope_config(*, fs_hz: float, input_bits: int, rate_hz: float) -> EnvelopeConfig:
    """The standard envelope at about ``rate_hz`` (an integer decimation of ``fs_hz``)."""
    k = max(1, int(round(fs_hz / rate_hz)))
    return EnvelopeConfig(fs_hz=fs_hz, out_rate_hz=fs_hz / k, input_bits=input_bits,
                          band_hz=(20.0, min(450.0, 0.45 * fs_hz)))


class EnvelopeStream:
    """Counts (n, n_all_channels) in; envelopes (volts) and per-sample raw statistics of ``channels``."""

    def __init__(self, config: EnvelopeConfig, *, volts_per_count: np.ndarray, channels: list[int],
                 samples_per_frame: int = 1):
        self.config, self.channels = config, list(channels)
        self.samples_per_frame = max(1, int(samples_per_frame))
        self.k = config.decimation
        self.rate_hz = config.out_rate_hz
        self.volts_per_count = np.asarray(volts_per_count, dtype=float)[self.channels]
        self.filter = EnvelopeFilter(config, n_channels=len(self.channels),
                                     volts_per_count=self.volts_per_count, mvc_volts=1.0)
        self._limit = 2 ** (config.input_bits - 1)
        self._pending = np.zeros((0, len(self.channels)), dtype=np.int64)
        self._chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("env", "clip", "s1", "s2", "lost")}
        self._cache: dict[str, np.ndarray] = {}
        self._lost_pending = 0
        self.n = 0  # envelope samples so far

    def feed(self, counts: np.ndarray, *, lost_frames: int = 0) -> int:
        """Add raw counts of all device channels; returns how many envelope samples they completed."""
        counts = np.asarray(counts)
        x = np.ascontiguousarray(counts[:, self.channels], dtype=np.int32)
        self._lost_pending += int(lost_frames)
        env = self.filter.process(x).astype(np.float64)
        raw = np.vstack([self._pending, x.astype(np.int64)])
        m = raw.shape[0] // self.k
        if m != env.shape[0]:
            raise RuntimeError(f"envelope ({env.shape[0]}) and raw blocks ({m}) out of step")
        self._pending = raw[m * self.k:]
        if m:
            blocks = raw[: m * self.k].reshape(m, self.k, -1)
            at_limit = (blocks <= -self._limit) | (blocks >= self._limit - 1)
            lost = np.zeros(m)
            lost[0], self._lost_pending = self._lost_pending, 0
            for key, value in (("env", env), ("clip", at_limit.sum(axis=1)), ("s1", blocks.sum(axis=1)),
                               ("s2", (blocks.astype(np.float64) ** 2).sum(axis=1)), ("lost", lost)):
                self._chunks[key].append(value)
            self._cache.clear()
            self.n += m
        return m

    def _get(self, key: str) -> np.ndarray:
        if key not in self._cache:
            chunks = self._chunks[key]
            if not chunks:
                width = () if key == "lost" else (len(self.channels),)
                return np.zeros((0, *width))
            joined = np.concatenate(chunks)
            self._chunks[key] = [joined]
            self._cache[key] = joined
        return self._cache[key]

    @property
    def envelope(self) -> np.ndarray:
        """(n, n_channels) volts."""
        return self._get("env")

    def time_s(self, index: int) -> float:
        return index / self.rate_hz

    def repetition(self, *, channel: int, start: int, stop: int, rest_volts: float,
                   other: str = "") -> RepetitionData:
        """The data of a contraction on stream channel ``channel`` over envelope samples [start, stop)."""
        start, stop = max(0, start), min(self.n, stop)
        clip, s1, s2 = (self._get(k)[start:stop, channel] for k in ("clip", "s1", "s2"))
        n_raw = max((stop - start) * self.k, 1)
        mean = s1.sum() / n_raw
        var = max(s2.sum() / n_raw - mean**2, 0.0)
        frames_per_sample = self.k / self.samples_per_frame
        return RepetitionData(envelope=self.envelope[start:stop, channel].copy(),
                              rest_volts=float(rest_volts),
                              clipped=int(clip.sum()), raw_samples=n_raw,
                              raw_rms_volts=float(math.sqrt(var) * self.volts_per_count[channel]),
                              lost_frames=int(self._get("lost")[start:stop].sum()),
                              expected_frames=int(round((stop - start) * frames_per_sample)),
                              start_s=self.time_s(start), other_channel=other)

    def rest_levels(self, upto: int | None = None) -> np.ndarray:
        """Per channel resting envelope: a low percentile of everything after the filter settled."""
        env = self.envelope[: self.n if upto is None else upto]
        settle = int(round(0.5 * self.rate_hz))
        env = env[settle:] if env.shape[0] > 2 * settle else env
        if env.shape[0] == 0:
            return np.full(len(self.channels), np.nan)
        return np.percentile(env, REST_PERCENTILE, axis=0)


@dataclass(frozen=True)
class Burst:
    channel: int  # stream channel the burst belongs to
    start: int
    stop: int
    ratios: np.ndarray  # median envelope / rest per channel over the burst


class BurstFinder:
    """Finds completed contractions in an ``EnvelopeStream`` as it grows (scripted sessions)."""

    def __init__(self, stream: EnvelopeStream, *, config: MvcConfig):
        self.stream, self.config = stream, config
        self._scanned = int(round(config.settle_s * stream.rate_hz))

    def poll(self, *, final: bool = False) -> list[Burst]:
        """Bursts that ended since the last call (with ``final``, also one still running at the end).

        Active stretches closer than ``BURST_END_S`` merge into one burst (a wavering effort is one
        contraction); a burst has ended once that much quiet follows it.
        """
        s, cfg = self.stream, self.config
        rest = s.rest_levels()
        if s.n <= self._scanned or not np.all(np.isfinite(rest)):
            return []
        ratio = s.envelope[self._scanned:] / np.maximum(rest, 1e-12)
        active = np.flatnonzero(ratio.max(axis=1) > cfg.onset_ratio)
        quiet = int(round(BURST_END_S * s.rate_hz))
        if active.size == 0:
            self._scanned = max(self._scanned, s.n - quiet)
            return []
        breaks = np.flatnonzero(np.diff(active) > quiet)
        starts = np.concatenate([[active[0]], active[breaks + 1]])
        stops = np.concatenate([active[breaks], [active[-1]]]) + 1
        bursts, done = [], 0
        for start, stop in zip(starts, stops):
            if stop + quiet > ratio.shape[0] and not final:
                break  # may still be going on
            done = stop
            if stop - start >= cfg.min_burst_s * s.rate_hz:
                med = np.median(ratio[start:stop], axis=0)
                bursts.append(Burst(channel=int(np.argmax(med)), start=self._scanned + int(start),
                                    stop=self._scanned + int(stop), ratios=med))
        self._scanned += int(done) if done else 0
        return bursts

    def repetition(self, burst: Burst) -> RepetitionData:
        rest = float(self.stream.rest_levels()[burst.channel])
        return self.stream.repetition(channel=burst.channel, start=burst.start, stop=burst.stop,
                                      rest_volts=rest)


def guided_repetition(stream: EnvelopeStream, *, channel: int, rest: tuple[int, int], hold: tuple[int, int],
                      labels: list[str]) -> RepetitionData:
    """A guided repetition: rest level from the rest phase, contraction = the hold phase."""
    if hold[1] > stream.n:
        raise InputError("the hold phase has not been streamed yet")
    env = stream.envelope
    settle = int(round(0.5 * stream.rate_hz))
    rest_env = env[rest[0] + settle: rest[1]] if rest[1] - rest[0] > 2 * settle else env[rest[0]: rest[1]]
    rest_levels = np.maximum(np.median(rest_env, axis=0), 1e-12)
    rise = np.median(env[hold[0]: hold[1]], axis=0) / rest_levels
    strongest = int(np.argmax(rise))
    other = labels[strongest] if strongest != channel and rise[strongest] > 1.5 * rise[channel] else ""
    return stream.repetition(channel=channel, start=hold[0], stop=hold[1],
                             rest_volts=float(rest_levels[channel]), other=other)
