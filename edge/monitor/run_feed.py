"""What the run view shows, kept in bounded buffers and decimated for the page.

Estimates arrive at the model rate (e.g. 100 Hz); the page redraws at 30 fps. Each estimate falls into
a bucket of ``bucket_s`` of receive time (20 ms: at most 50 points a second reach the page); a bucket
keeps the newest values and the OR of every estimate's flags, so a flagged estimate is never decimated
away. The history (what a tab that opens later gets) is the last ``history_s`` seconds of buckets;
nothing grows without bound.

State, as the page shows it: ``waiting`` (no datagram yet), ``live``, or ``stale``: the newest estimate is
flagged STALE (the runtime's watchdog: no frame from the amplifier), or no datagram came for
``stale_after_s`` (the runtime stopped, or the link is down).
"""

from __future__ import annotations

import collections
import math
import threading
import time

from myoedge.edge.loop.estimate import INVALID, Estimate, Flags
from myoedge.edge.loop.status import Status

# what each flag means, for the page's hover text (docs/runtime.md has the full table)
FLAG_REASONS = {
    Flags.STALE: "no frame from the amplifier for longer than the watchdog: the values are the last ones",
    Flags.SATURATED: "a channel hit the ADC's full scale within the window",
    Flags.ELECTRODE_OFF: "a channel has been flat (electrode off or lead broken)",
    Flags.LOST_FRAMES: "frames were lost within the window the model saw",
    Flags.OUT_OF_RANGE: "the angle or a force is outside the bundle's physiological range",
    Flags.WARMING_UP: "since start or a reset the window is not yet full: the model has not seen enough data",
    Flags.TORQUE_CLAMPED: "the torque was limited to the configured range (information: still valid)",
    Flags.OUT_OF_DISTRIBUTION: "an envelope is far outside what the model was trained on (wrong MVC? gain?)",
    Flags.FLAT_OUTPUT: "the outputs stopped moving while the envelopes moved",
    Flags.RECONSTRUCTED: "an electrode is off and its envelope was filled in from the other channels "
                         "(information: still valid)",
}


def flag_table() -> list[dict]:
    """Every flag with its bit, whether it invalidates, and its reason (sent to the page once)."""
    return [{"name": f.name, "bit": int(f), "invalid": bool(f & INVALID),
             "reason": FLAG_REASONS.get(f, f.name.lower())}  # a flag without a text: never a failed page
            for f in Flags]  # aliases (WARMUP) are not iterated


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 6)


class RunFeed:
    """Takes estimates and status (any thread); gives the page its hello and its ticks."""

    mode = "run"

    def __init__(self, *, source: str, bucket_s: float = 0.02, history_s: float = 15.0,
                 stale_after_s: float = 0.5, muscles: tuple[str, ...] = (), clock=time.monotonic) -> None:
        self.source, self.bucket_s, self.stale_after_s = source, float(bucket_s), float(stale_after_s)
        self.muscles = tuple(muscles)
        self._clock = clock
        self._t0 = clock()
        n = max(1, round(history_s / bucket_s))
        self._history: collections.deque[tuple] = collections.deque(maxlen=n)
        self._pending: collections.deque[tuple] = collections.deque(maxlen=n)  # buckets not yet sent
        self._bucket: list | None = None  # [t, theta, torque, flags, forces] of the bucket being filled
        self._slot = -1  # its number: t // bucket_s
        self._lock = threading.Lock()
        self.estimates = self.statuses = self.rejected = self.datagrams_lost = 0
        self.last_rejection = ""
        self._last_index: int | None = None
        self._last_flags = 0
        self._last_datagram: float | None = None
        self.status: Status | None = None
        self.n_forces = len(muscles)

    def _now(self) -> float:
        return self._clock() - self._t0

    def add_estimate(self, e: Estimate) -> None:
        t = self._now()
        with self._lock:
            self.estimates += 1
            if self._last_index is not None and e.index > self._last_index + 1:
                self.datagrams_lost += e.index - self._last_index - 1
            self._last_index = e.index
            self._last_flags = int(e.flags)
            self._last_datagram = t
            self.n_forces = len(e.forces_n)
            b, slot = self._bucket, int(t // self.bucket_s)
            if b is not None and slot == self._slot:
                b[1], b[2], b[3], b[4] = e.theta_rad, e.torque_nm, b[3] | int(e.flags), e.forces_n
                return
            if b is not None:
                self._close_bucket()
            self._slot = slot
            self._bucket = [t, e.theta_rad, e.torque_nm, int(e.flags), e.forces_n]

    def _close_bucket(self) -> None:
        t, theta, torque, flags, forces = self._bucket
        point = (round(t, 4), _num(theta), _num(torque), flags, [_num(f) for f in forces])
        self._history.append(point)
        self._pending.append(point)
        self._bucket = None

    def add_status(self, status: Status) -> None:
        with self._lock:
            self.statuses += 1
            self.status = status
            self._last_datagram = self._now()

    def reject(self, why: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = why

    def state(self) -> tuple[str, str]:
        """(``waiting`` | ``live`` | ``stale``, the reason in words)."""
        if self._last_datagram is None:
            return "waiting", f"waiting for the runtime: no datagram on {self.source} yet"
        silent = self._now() - self._last_datagram
        if silent > self.stale_after_s:
            return "stale", f"stale: no datagram for {silent:.1f} s (the runtime stopped or the link is down)"
        if self._last_flags & Flags.STALE:
            limit = f"{self.status.watchdog_ms} ms" if self.status is not None else "the watchdog time"
            return "stale", f"stale: the runtime has had no frame from the amplifier for longer than {limit}"
        return "live", "live"

    def _take(self, *, pending: bool) -> dict:
        if self._bucket is not None and int(self._now() // self.bucket_s) != self._slot:
            self._close_bucket()
        source = self._pending if pending else self._history
        points = list(source)
        if pending:
            self._pending.clear()
        state, reason = self.state()
        status = self.status.to_dict() if self.status is not None else None
        return {"state": state, "reason": reason, "points": points, "status": status,
                "counts": {"estimates": self.estimates, "statuses": self.statuses, "rejected": self.rejected,
                           "datagrams_lost": self.datagrams_lost, "last_rejection": self.last_rejection}}

    def hello(self) -> dict:
        with self._lock:
            out = self._take(pending=False)
        out.update(type="hello", mode=self.mode, source=self.source, flags=flag_table(),
                   invalid_mask=int(INVALID), muscles=list(self.muscles), n_forces=self.n_forces,
                   history_s=self._history.maxlen * self.bucket_s)
        return out

    def tick(self) -> dict:
        with self._lock:
            out = self._take(pending=True)
        out.update(type="tick", n_forces=self.n_forces)
        return out

    def summary(self) -> dict:
        return {"estimates": self.estimates, "statuses": self.statuses, "rejected": self.rejected,
                "datagrams_lost": self.datagrams_lost}
