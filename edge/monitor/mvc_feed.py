"""What the MVC view shows: the session's events (``run_mvc_session(on_event=...)``) as one snapshot.

The session thread calls :meth:`MvcFeed.event` with small dicts; the server sends the snapshot (which
muscle to contract now, the countdown, every channel's envelope against its running maximum, each
repetition's verdict and reason) and the envelope points since the last tick. Buffers are bounded: the
envelope trace keeps ``history_s`` seconds at the session's event rate, the repetition list one entry per
attempt (a session has at most muscles × max_attempts).

Events (``type`` and fields):

- ``session``: ``muscles``, ``mode`` (guided | auto), ``repetitions`` wanted, ``device``;
- ``prompt``: ``muscle``, ``attempt``, ``text`` (guided: relax, then the contraction to make; auto: the
  muscle whose contraction the stream is expected to bring);
- ``countdown``: ``muscle``, ``seconds`` left before the hold;
- ``go``: ``muscle``, ``hold_s``;
- ``envelope``: ``t`` (stream seconds), ``volts`` (per muscle, the newest envelope);
- ``repetition``: ``muscle``, ``attempt``, ``accepted``, ``reason``, ``mvc_volts``, ``rest_volts``;
- ``done``: ``mvc_volts`` per muscle; ``failed``: ``reason``.
"""

from __future__ import annotations

import collections
import math
import threading


def _num(x) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class MvcFeed:
    mode = "mvc"

    def __init__(self, *, source: str, history_s: float = 20.0, rate_hz: float = 100 / 3) -> None:
        self.source = source
        self._lock = threading.Lock()
        n = max(1, round(history_s * rate_hz))
        self._history: collections.deque[tuple] = collections.deque(maxlen=n)
        self._pending: collections.deque[tuple] = collections.deque(maxlen=n)
        self.snap: dict = {"phase": "waiting", "muscles": [], "prompt": "waiting for the amplifier",
                           "muscle": None, "countdown": None, "levels": [], "running_max": [],
                           "repetitions": [], "mvc_volts": {}, "wanted": None, "session_mode": None}
        self.events = 0

    def event(self, ev: dict) -> None:
        """One event of the session (any thread); unknown types are ignored."""
        kind = ev.get("type")
        with self._lock:
            self.events += 1
            s = self.snap
            if kind == "session":
                muscles = list(ev["muscles"])
                s.update(muscles=muscles, session_mode=ev.get("mode"), wanted=ev.get("repetitions"),
                         phase="ready",
                         prompt=f"session on {ev.get('device', 'the amplifier')}: {', '.join(muscles)}",
                         levels=[None] * len(muscles), running_max=[0.0] * len(muscles))
            elif kind == "prompt":
                s.update(phase="rest", muscle=ev["muscle"], prompt=ev["text"], countdown=None,
                         attempt=ev.get("attempt"))
            elif kind == "countdown":
                s.update(phase="countdown", countdown=ev["seconds"])
            elif kind == "go":
                s.update(phase="hold", countdown=None,
                         prompt=f"GO: contract {ev['muscle']} as hard as you can for {ev['hold_s']:g} s")
            elif kind == "envelope":
                levels = [_num(v) for v in ev["volts"]]
                peaks = s["running_max"]
                if len(peaks) != len(levels):
                    peaks = [0.0] * len(levels)
                s["running_max"] = [max(p, v) if v is not None else p for p, v in zip(peaks, levels)]
                s["levels"] = levels
                point = (round(float(ev["t"]), 3), levels)
                self._history.append(point)
                self._pending.append(point)
            elif kind == "repetition":
                s["repetitions"].append({k: ev.get(k) for k in ("muscle", "attempt", "accepted", "reason")}
                                        | {"mvc_volts": _num(ev.get("mvc_volts")),
                                           "rest_volts": _num(ev.get("rest_volts"))})
                s["phase"] = "verdict"
            elif kind == "done":
                s.update(phase="done", muscle=None, countdown=None, mvc_volts=dict(ev["mvc_volts"]),
                         prompt="session complete: " + ", ".join(
                             f"{m} {1e6 * v:.1f} µV" for m, v in ev["mvc_volts"].items()))
            elif kind == "failed":
                s.update(phase="failed", countdown=None, prompt=f"session stopped: {ev['reason']}")

    def _message(self, kind: str, points: list) -> dict:
        s = self.snap
        return {**{k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                   for k, v in s.items()}, "repetitions": [dict(r) for r in s["repetitions"]],
                "type": kind, "mode": self.mode, "source": self.source, "points": points}

    def hello(self) -> dict:
        with self._lock:
            return self._message("hello", list(self._history))

    def tick(self) -> dict:
        with self._lock:
            points = list(self._pending)
            self._pending.clear()
            return self._message("tick", points)

    def summary(self) -> dict:
        with self._lock:
            return {"events": self.events, "repetitions": len(self.snap["repetitions"])}
