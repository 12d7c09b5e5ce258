"""Faults the amplifier simulator injects on request, so tests and benchmarks exercise recovery.

Specs (``myoedge amp-sim --fault``, repeatable or comma-separated):

- ``bitflip:P`` each data frame, with probability P, has one random bit flipped (line noise);
- ``drop:P`` each data frame, with probability P, is not sent (its sequence number is used up);
- ``garbage:P`` before each data frame, with probability P, a burst of 1 to 64 random bytes;
- ``stall:SECONDS@Ts`` at stream time T the link stalls for SECONDS; the device keeps sampling and its
  backlog arrives in a burst afterwards (a USB or driver hiccup: nothing lost, frames late);
- ``disconnect[:SECONDS]@Ts`` at stream time T the port disappears for SECONDS (default 0.5): the pty
  is closed or the TCP server shut down, then a new one comes up; frames of the outage are lost.

Rates apply to data frames only; device-info frames always go out intact. Stream time is device time
(sample count / rate), so a fault lands on the same frame with ``--fast``. Everything is drawn from one
seeded generator. The injector counts what it did (``FaultStats``) so a test or the benchmark can
compare with the parser's counts: every bit flip and drop is one lost frame; a flip in the sync word
hides the frame (discarded bytes), any other flip is a ``crc_errors`` or ``bad_header``; garbage never
contains the sync word's first byte 0xA5, so each burst is exactly one resync and its length in
discarded bytes (a burst that happens to look like a frame header is the protocol fuzz test's job).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from myoedge.edge.wire.protocol import SYNC
from myoedge.ground.errors import InputError

RATE_KINDS = ("bitflip", "drop", "garbage")
TIMED_KINDS = ("stall", "disconnect")
DEFAULT_DISCONNECT_S = 0.5
GARBAGE_MAX_BYTES = 64
_GARBAGE_BYTES = bytes(b for b in range(256) if b != SYNC[0])
_SPEC = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<value>[^@]+))?(?:@(?P<at>[^@]+?)s?)?$")
SPEC_HELP = "bitflip:P, drop:P, garbage:P, stall:SECONDS@Ts or disconnect[:SECONDS]@Ts"


@dataclass(frozen=True, kw_only=True)
class FaultPlan:
    """What to inject. Rates are per data frame; timed events are (at_s, duration_s) in stream time."""

    bitflip: float = 0.0
    drop: float = 0.0
    garbage: float = 0.0
    stalls: tuple[tuple[float, float], ...] = ()
    disconnects: tuple[tuple[float, float], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in RATE_KINDS:
            p = getattr(self, kind)
            if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise InputError(f"fault rate {kind} must be a probability in [0, 1], got {p!r}")
        for kind in TIMED_KINDS:
            for at, duration in getattr(self, kind + "s"):
                if not (math.isfinite(at) and at >= 0 and math.isfinite(duration) and duration > 0):
                    raise InputError(f"{kind} at {at!r} s for {duration!r} s: need a time >= 0 and a "
                                     "duration > 0, in seconds")

    @classmethod
    def parse(cls, specs: str | list[str] | tuple[str, ...], *, seed: int = 0) -> FaultPlan:
        """A plan from specs such as ``["bitflip:0.001", "stall:2.0@10s,disconnect@15s"]``."""
        items = [specs] if isinstance(specs, str) else list(specs)
        rates: dict[str, float] = {}
        timed: dict[str, list[tuple[float, float]]] = {k: [] for k in TIMED_KINDS}
        for text in (part.strip() for item in items for part in item.split(",")):
            if not text:
                continue
            match = _SPEC.match(text.lower())
            kind = match["kind"] if match else ""
            try:
                if kind in RATE_KINDS and match["value"] is not None and match["at"] is None:
                    if kind in rates:
                        raise InputError(f"fault {kind} given twice")
                    rates[kind] = float(match["value"])
                elif kind in TIMED_KINDS and match["at"] is not None and (match["value"] or kind != "stall"):
                    duration = float(match["value"]) if match["value"] else DEFAULT_DISCONNECT_S
                    timed[kind].append((float(match["at"]), duration))
                else:
                    raise ValueError(text)
            except ValueError as exc:
                if isinstance(exc, InputError):
                    raise
                raise InputError(f"fault {text!r} not understood: expected {SPEC_HELP}") from None
        return cls(**rates, stalls=tuple(sorted(timed["stall"])),
                   disconnects=tuple(sorted(timed["disconnect"])), seed=seed)

    @property
    def active(self) -> bool:
        return bool(self.bitflip or self.drop or self.garbage or self.stalls or self.disconnects)

    def describe(self) -> list[str]:
        """The plan as specs again (for logs and the JSON summary)."""
        out = [f"{k}:{getattr(self, k):g}" for k in RATE_KINDS if getattr(self, k)]
        out += [f"stall:{d:g}@{t:g}s" for t, d in self.stalls]
        return out + [f"disconnect:{d:g}@{t:g}s" for t, d in self.disconnects]


@dataclass(slots=True)
class FaultStats:
    """What was injected. ``lost_frames`` is how many data frames the parser must count as lost."""

    bitflips: int = 0  # data frames sent with one bit flipped
    bitflips_in_sync: int = 0  # of these, flips inside the sync word (the frame is not even seen)
    drops: int = 0  # data frames not sent
    garbage_bursts: int = 0
    garbage_bytes: int = 0
    stalls: int = 0
    stalled_s: float = 0.0
    disconnects: int = 0

    @property
    def lost_frames(self) -> int:
        return self.bitflips + self.drops


class FaultInjector:
    """Applies a ``FaultPlan`` to the simulator's frames, one frame at a time, and counts what it did."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.stats = FaultStats()
        self._rng = random.Random(plan.seed)
        self._events = sorted([(t, "stall", d) for t, d in plan.stalls]
                              + [(t, "disconnect", d) for t, d in plan.disconnects])
        self._next_event = 0

    def apply(self, wire: bytes) -> bytes:
        """The bytes to send for one encoded data frame: maybe a garbage burst, then the frame, flipped
        or left out. Without faults it returns ``wire`` itself."""
        plan, rng, stats = self.plan, self._rng, self.stats
        prefix = b""
        if plan.garbage and rng.random() < plan.garbage:
            n = rng.randint(1, GARBAGE_MAX_BYTES)
            prefix = bytes(rng.choices(_GARBAGE_BYTES, k=n))
            stats.garbage_bursts += 1
            stats.garbage_bytes += n
        if plan.drop and rng.random() < plan.drop:
            stats.drops += 1
            return prefix
        if plan.bitflip and rng.random() < plan.bitflip:
            bit = rng.randrange(8 * len(wire))
            flipped = bytearray(wire)
            flipped[bit // 8] ^= 1 << (bit % 8)
            wire = bytes(flipped)
            stats.bitflips += 1
            stats.bitflips_in_sync += bit < 8 * len(SYNC)
        return prefix + wire if prefix else wire

    def due(self, stream_s: float) -> list[tuple[str, float]]:
        """Timed events (kind, duration_s) whose time has come by ``stream_s``, each returned once."""
        out = []
        while self._next_event < len(self._events) and self._events[self._next_event][0] <= stream_s:
            _, kind, duration = self._events[self._next_event]
            out.append((kind, duration))
            self._next_event += 1
        return out
