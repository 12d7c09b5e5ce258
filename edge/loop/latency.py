"""Per-stage latency of the loop, recorded into arrays allocated once, and its summary.

Stages of one frame, all from ``time.perf_counter_ns`` in the thread that processes it:

- ``parse``: the read that completed the frame returned -> the parser handed its frames over;
- ``filter``: safety scan and envelope of the frame's samples (and the window update);
- ``infer``: predictor, torque and flags (0 on frames that complete no model-rate sample);
- ``publish``: every publisher (0 without an estimate);
- ``processing``: the read returned -> the frame's estimate published (or the frame done, without one).
  This is the loop's own latency; the issue's target is its p99.

``end_to_end`` is added when the sender says when each frame was due (the benchmark's simulator does):
the frame's last sample existed -> its estimate was published, so it includes the sender's pacing, the
pty or socket, and the wait for the reader thread.

The model runs at its rate (e.g. 100 Hz) while frames arrive at 1 kHz, so the summary gives every
stage over all frames, over frames with an inference and over frames without: mixing them hides the
slow tail of the first kind. A frame misses its deadline when ``processing`` exceeds the frame period.
"""

from __future__ import annotations

import numpy as np

from myoedge.ground.errors import InputError

__all__ = ["PERCENTILES", "STAGES", "LatencyRecorder", "percentiles_us"]

STAGES = ("parse", "filter", "infer", "publish", "processing")
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))
_PROCESSING = STAGES.index("processing")


def percentiles_us(values_ns: np.ndarray) -> dict:
    """p50/p99/p99.9/max (and the count) of nanosecond values, in microseconds."""
    values = np.asarray(values_ns, dtype=np.float64)
    if values.size == 0:
        return {"n": 0, **{name: None for name, _ in PERCENTILES}, "max": None}
    pcts = np.percentile(values, [q for _, q in PERCENTILES]) / 1e3
    out = {"n": int(values.size)}
    out.update({name: round(float(v), 2) for (name, _), v in zip(PERCENTILES, pcts, strict=True)})
    out["max"] = round(float(values.max()) / 1e3, 2)
    return out


class LatencyRecorder:
    """Keeps the last ``capacity`` frames' stage times; counts deadline misses and the max over all.

    :meth:`record` stores a handful of integers into preallocated arrays: no allocation per frame.
    """

    def __init__(self, *, capacity: int, deadline_ns: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InputError(f"capacity must be a positive int, got {capacity!r}")
        if not isinstance(deadline_ns, int) or deadline_ns <= 0:
            raise InputError(f"deadline_ns must be a positive int, got {deadline_ns!r}")
        self.capacity = capacity
        self.deadline_ns = deadline_ns
        self._times = np.zeros((len(STAGES), capacity), dtype=np.int64)
        self._inferred = np.zeros(capacity, dtype=bool)
        self._seq = np.zeros(capacity, dtype=np.int64)
        self._done = np.zeros(capacity, dtype=np.int64)  # perf_counter_ns when the frame was finished
        self.count = 0  # frames recorded since start (may exceed capacity)
        self.deadline_misses = 0
        self.max_processing_ns = 0

    def record(self, *, seq: int, parse_ns: int, filter_ns: int, infer_ns: int, publish_ns: int,
               processing_ns: int, done_ns: int, inferred: bool) -> None:
        """One frame's stage times (ns), its sequence number, when it was done, whether it inferred."""
        i = self.count % self.capacity
        t = self._times
        t[0, i] = parse_ns
        t[1, i] = filter_ns
        t[2, i] = infer_ns
        t[3, i] = publish_ns
        t[4, i] = processing_ns
        self._inferred[i] = inferred
        self._seq[i] = seq
        self._done[i] = done_ns
        self.count += 1
        if processing_ns > self.deadline_ns:
            self.deadline_misses += 1
        if processing_ns > self.max_processing_ns:
            self.max_processing_ns = processing_ns

    def reset(self) -> None:
        """Forget everything (e.g. after a warm-up period)."""
        self.count = self.deadline_misses = self.max_processing_ns = 0

    def recent_processing_ns(self, n: int) -> np.ndarray:
        """A copy of the ``processing`` times (ns) of the last ``n`` frames recorded (fewer at start)."""
        count, cap = self.count, self.capacity
        n = max(0, min(int(n), count, cap))
        end = count % cap
        row = self._times[_PROCESSING]
        if n <= end:
            return row[end - n:end].copy()
        return np.concatenate((row[cap - (n - end):], row[:end]))

    def _kept(self) -> slice:
        return slice(0, min(self.count, self.capacity))

    def frames(self) -> dict[str, np.ndarray]:
        """Copies of the kept records: each stage (ns), ``inferred``, ``seq`` and ``done_ns``."""
        k = self._kept()
        out = {name: self._times[j, k].copy() for j, name in enumerate(STAGES)}
        out.update(inferred=self._inferred[k].copy(), seq=self._seq[k].copy(), done_ns=self._done[k].copy())
        return out

    def end_to_end_ns(self, sent_by_seq: np.ndarray) -> np.ndarray:
        """Published - sent (ns) for every kept frame, in the order recorded; -1 where the send time is
        unknown (``sent_by_seq[seq]`` is 0, or ``seq`` is beyond the array)."""
        frames = self.frames()
        seq, done = frames["seq"], frames["done_ns"]
        sent = np.zeros_like(done)
        known = seq < len(sent_by_seq)
        sent[known] = np.asarray(sent_by_seq)[seq[known]]
        return np.where(sent > 0, done - sent, -1)

    def summary(self, *, end_to_end_ns: np.ndarray | None = None) -> dict:
        """Percentiles per stage over all frames, frames with inference and frames without (in us)."""
        frames = self.frames()
        inferred = frames["inferred"]
        stages = dict(zip(STAGES, (frames[s] for s in STAGES), strict=True))
        if end_to_end_ns is not None:
            stages["end_to_end"] = np.asarray(end_to_end_ns, dtype=np.int64)
        groups = {"all": np.ones_like(inferred), "with_inference": inferred, "without_inference": ~inferred}
        out: dict = {}
        for group, mask in groups.items():
            out[group] = {}
            for name, values in stages.items():
                chosen = values[mask] if len(values) == len(mask) else values
                if name == "end_to_end":
                    chosen = chosen[chosen >= 0]
                elif group == "without_inference" and name in ("infer", "publish"):
                    continue  # always 0 there
                out[group][name] = percentiles_us(chosen)
        out["frames"] = self.count
        out["frames_kept"] = int(len(inferred))
        out["frames_with_inference"] = int(inferred.sum())
        out["deadline_us"] = round(self.deadline_ns / 1e3, 3)
        out["deadline_misses"] = self.deadline_misses
        out["max_processing_us"] = round(self.max_processing_ns / 1e3, 2)
        return out
