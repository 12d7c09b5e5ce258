"""The thread that sends the runtime's status datagrams (layout: :mod:`.status`), off the loop's path.

Every ``interval_s`` it reads the counters the loop keeps anyway (pipeline, parser, transport, latency
recorder) and the newest envelope row of the model's window, encodes one :class:`.status.Status` and hands
it to each publisher that takes status (``send_status``: the UDP publisher). The loop's thread does
nothing for it: no call, no lock, no copy per estimate. Reading counters another thread writes is safe in
Python (each is one int); a row read while the loop writes it may mix two model steps' envelopes, which
a display can bear. The latency percentiles cover the frames of the last second, recomputed once a
second (a percentile of 1 000 values takes about 50 us).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from myoedge.edge.loop.status import Status, encode_status

LOG = logging.getLogger("myoedge.edge")
LATENCY_EVERY_S = 1.0


class StatusReporter:
    """Sends a status datagram every ``interval_s`` through ``senders`` until :meth:`stop`."""

    def __init__(self, runtime, *, interval_s: float, senders: Sequence[Callable[[bytes], object]]) -> None:
        self.runtime, self.interval_s, self.senders = runtime, float(interval_s), tuple(senders)
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._latency = (math.nan,) * 4
        self._latency_at = 0.0
        self._thread = threading.Thread(target=self._run, name="myoedge-status", daemon=True)

    def start(self) -> StatusReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval_s):
            try:
                data = encode_status(self.status(uptime_s=time.monotonic() - started))
                for send in self.senders:
                    send(data)
                self.sent += 1
            except Exception:  # a display must never stop the loop: count, log once
                self.errors += 1
                if self.errors == 1:
                    LOG.exception("status datagram failed (further failures are only counted)")

    def _recent_latency(self) -> tuple[float, float, float, float]:
        now = time.monotonic()
        latency = self.runtime.latency
        if latency is not None and now - self._latency_at >= LATENCY_EVERY_S:
            self._latency_at = now
            frames = round(LATENCY_EVERY_S * 1e9 / latency.deadline_ns)  # a frame per deadline
            recent = latency.recent_processing_ns(frames)
            if recent.size:
                p50, p99, p999 = np.percentile(recent, (50.0, 99.0, 99.9)) / 1e3
                self._latency = (float(p50), float(p99), float(p999), float(recent.max()) / 1e3)
            else:
                self._latency = (math.nan,) * 4
        return self._latency

    def status(self, *, uptime_s: float) -> Status:
        rt = self.runtime
        pipe, parser = rt.pipeline, rt.reader.parser.stats
        envelopes = pipe.current_window()[-1]
        p50, p99, p999, peak = self._recent_latency()
        return Status(index=self.sent, watchdog_ms=round(rt.safety.watchdog_ms),
                      uptime_ms=round(uptime_s * 1e3), frames=pipe.frames, estimates=pipe.estimates,
                      invalid_estimates=pipe.invalid_estimates, stale_estimates=rt.stale_estimates,
                      lost_frames=parser.lost, crc_errors=parser.crc_errors,
                      reconnects=rt.transport.stats.reconnects, resets=sum(pipe.resets.values()),
                      deadline_misses=rt.latency.deadline_misses if rt.latency is not None else 0,
                      latency_p50_us=p50, latency_p99_us=p99, latency_p999_us=p999, latency_max_us=peak,
                      envelopes=tuple(float(v) for v in envelopes))
