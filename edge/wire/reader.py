"""The reader thread: blocking reads from a transport into a ``FrameParser``, frames to one consumer.

Why a thread of its own: the port must be drained as bytes arrive (a pty or a USB-serial driver holds
only a few kB), whatever the processing side is doing. Every read is stamped with
``time.perf_counter_ns()`` right after it returns; the loop's latency is measured from that stamp (the
read that brought the last byte of a frame).

Two ways to receive frames, chosen when the reader is made:

- ``on_frames(frames, t_read_ns)`` is called *in the reader thread*, once per read that completed at
  least one frame. This is the low-latency path: the real-time loop processes right there, with no
  hand-off between threads. Exceptions it raises are logged and counted, and reading goes on.
- Otherwise frames go into a bounded queue as ``(frame, t_read_ns)`` pairs, taken with ``get()``. When
  the queue is full the *oldest* entry is dropped, since a controller wants the newest data, and each
  drop is counted in ``ReaderStats.queue_drops`` (the parser cannot see these: it delivered them).

``use_ring(ring, on_ring)`` switches a running reader to the parser's fast path: from the next read on,
frames are decoded into the preallocated ``FrameRing`` (``FrameParser.feed_into``) and
``on_ring(ring, n, t_read_ns)`` is called in the reader thread with the number of new frames (the ring's
last ``n``). No object is made per frame. The real-time loop switches once it knows the frame shape from
the device-info frame.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from myoedge.edge.wire.protocol import DeviceInfo, Frame, FrameParser, FrameRing, ParserStats
from myoedge.edge.wire.transport import Transport, TransportStats
from myoedge.ground.errors import InputError

LOG = logging.getLogger("myoedge.edge")

FrameConsumer = Callable[[list[Frame], int], None]
RingConsumer = Callable[[FrameRing, int, int], None]


@dataclass(frozen=True)
class ReaderStats:
    """A consistent snapshot of what the reader did (``Reader.stats()``)."""

    running: bool
    connected: bool
    frames: int  # data frames handed to the consumer or queued
    queue_drops: int  # queued frames dropped, oldest first, because the consumer fell behind
    consumer_errors: int  # exceptions raised by ``on_frames``
    last_read_ns: int  # perf_counter_ns stamp of the latest read that returned bytes (0: none yet)
    transport: TransportStats
    parser: ParserStats
    error: str = ""  # why the thread ended early, if it did


class Reader:
    """One thread doing ``transport.read`` into a ``FrameParser`` and passing frames on (see module doc).

    The parser is kept across reconnects, so frames the device sent while the port was gone show up as
    a sequence gap in ``parser.lost``; a device that restarted says so with a device-info frame.
    ``start()`` connects the transport in the caller's thread, so a missing port raises ``InputError``
    there; ``stop()`` ends the thread, joins it and closes the transport.
    """

    def __init__(self, transport: Transport, *, on_frames: FrameConsumer | None = None,
                 queue_size: int = 4096, read_size: int = 4096, parser: FrameParser | None = None,
                 name: str = "myoedge-reader") -> None:
        for what, value in (("queue_size", queue_size), ("read_size", read_size)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{what} must be an integer >= 1, got {value!r}")
        self.transport = transport
        self.parser = parser if parser is not None else FrameParser()
        self._on_frames = on_frames
        self._queue: collections.deque[tuple[Frame, int]] = collections.deque()
        self._queue_size, self._read_size, self._name = queue_size, read_size, name
        self._ready = threading.Condition(threading.Lock())  # guards the queue, the parser and counters
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frames = self._queue_drops = self._consumer_errors = self._last_read_ns = 0
        self._error = ""
        self._ring: FrameRing | None = None
        self._on_ring: RingConsumer | None = None

    def use_ring(self, ring: FrameRing, on_ring: RingConsumer) -> None:
        """From the next read on, decode frames into ``ring`` and call ``on_ring(ring, n, t_read_ns)``."""
        with self._ready:
            self._ring, self._on_ring = ring, on_ring

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def device_info(self) -> DeviceInfo | None:
        """The latest device-info frame the parser accepted, or None before one arrived."""
        return self.parser.device_info

    def start(self) -> Reader:
        if self._thread is not None:
            raise RuntimeError("this reader was already started")
        self.transport.connect()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self, *, timeout_s: float = 5.0) -> ReaderStats:
        """Stop reading, join the thread and close the transport; returns the final statistics."""
        self._stop.set()
        self.transport.abort()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"reader thread did not stop within {timeout_s} s")
        self.transport.close()
        return self.stats()

    def __enter__(self) -> Reader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, timeout_s: float | None = None) -> tuple[Frame, int] | None:
        """The oldest queued ``(frame, t_read_ns)``, waiting up to ``timeout_s``; None on timeout."""
        if self._on_frames is not None:
            raise RuntimeError("this reader hands frames to on_frames; it has no queue")
        with self._ready:
            if not self._queue:
                self._ready.wait(timeout_s)
            return self._queue.popleft() if self._queue else None

    def stats(self) -> ReaderStats:
        with self._ready:
            return ReaderStats(
                running=self.running, connected=self.transport.connected, frames=self._frames,
                queue_drops=self._queue_drops, consumer_errors=self._consumer_errors,
                last_read_ns=self._last_read_ns, transport=dataclasses.replace(self.transport.stats),
                parser=dataclasses.replace(self.parser.stats), error=self._error)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.transport.read(self._read_size)
                if data:
                    self._handle(data, time.perf_counter_ns())
        except Exception as exc:  # e.g. a port that became unusable for good: end, and say why
            LOG.exception("reader of %s stopped", self.transport.url)
            with self._ready:
                self._error = f"{type(exc).__name__}: {exc}"

    def _handle(self, data: bytes, t_read_ns: int) -> None:
        if self._ring is not None:
            self._handle_ring(data, t_read_ns)
            return
        with self._ready:
            frames = self.parser.feed(data)
            self._last_read_ns = t_read_ns
            self._frames += len(frames)
            if frames and self._on_frames is None:
                queue = self._queue
                for frame in frames:
                    if len(queue) >= self._queue_size:
                        queue.popleft()
                        self._queue_drops += 1
                    queue.append((frame, t_read_ns))
                self._ready.notify()
        if frames and self._on_frames is not None:
            try:
                self._on_frames(frames, t_read_ns)
            except Exception:
                self._consumer_failed()

    def _handle_ring(self, data: bytes, t_read_ns: int) -> None:
        ring = self._ring
        with self._ready:
            n = self.parser.feed_into(data, ring)
            self._last_read_ns = t_read_ns
            self._frames += n
        if n:
            try:
                self._on_ring(ring, n, t_read_ns)
            except Exception:
                self._consumer_failed()

    def _consumer_failed(self) -> None:
        self._consumer_errors += 1
        if self._consumer_errors == 1:
            LOG.exception("frame consumer raised (further errors are only counted)")
