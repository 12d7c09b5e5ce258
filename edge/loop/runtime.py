"""The real-time loop assembled: reader thread, pipeline, publishers, watchdog, clean shutdown.

Threads: the **reader** does blocking reads and, in the same thread, runs the pipeline on the frames a
read completed (``Reader(on_frames=...)``), so a frame's latency from read to publish is one thread's
work with no hand-off. The **watchdog** wakes every quarter of ``watchdog_ms``; when no frame was read
for ``watchdog_ms`` it publishes the last estimate flagged STALE, once per ``watchdog_ms`` while the
silence lasts. The **main** thread waits, and turns SIGINT/SIGTERM into a clean stop: reader joined,
port closed, publishers closed (the CSV log completed and renamed), then one final statistics line.

Start-up refuses (``InputError``, exit status 2) before any estimate goes out: a profile that does not
fit the bundle, an envelope the runtime would compute differently, a predictor that does not reproduce
the bundle's test vectors, no device-info frame within ``device_info_timeout_s``, a device-info frame
that disagrees with the bundle. A device-info frame that changes mid-run to one that disagrees stops
the loop the same way.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from myoedge.body.profile import SubjectProfile
from myoedge.edge.loop.latency import LatencyRecorder
from myoedge.edge.loop.pipeline import Pipeline, warm_up
from myoedge.edge.loop.publish import Publisher
from myoedge.edge.loop.safety import SafetyConfig
from myoedge.edge.loop.setup_checks import check_device, check_profile, envelope_config
from myoedge.edge.loop.status_report import StatusReporter
from myoedge.edge.model import Predictor, replay_test_vectors, select_predictor
from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.predictor import check_load
from myoedge.edge.wire.frame_ring import warm_up_scan
from myoedge.edge.wire.protocol import MAX_FRAME_SIZE, DeviceInfo, Frame, FrameRing, frame_size
from myoedge.edge.wire.reader import Reader
from myoedge.edge.wire.transport import Transport, check_spin_us
from myoedge.ground.errors import InputError

__all__ = ["LATENCY_CAPACITY", "Runtime"]

LOG = logging.getLogger("myoedge.edge")
LATENCY_CAPACITY = 1 << 16  # frames kept for the percentiles: the last ~65 s at 1 kHz
READ_SIZE = 4096  # bytes asked of one read: what has arrived comes back at once, up to this
SWITCH_INTERVAL_S = 0.0005  # a thread waiting for the GIL forces a switch after this long (default 5 ms)


class Runtime:
    """The loop for one bundle, one subject and one port. ``start`` / ``stop``, or ``run`` for both."""

    def __init__(self, *, bundle: Bundle, profile: SubjectProfile, transport: Transport,
                 safety: SafetyConfig | None = None, publishers: Sequence[Publisher] = (),
                 predictor: Predictor | None = None, backend: str = "auto",
                 engine_path: str | os.PathLike | None = None,
                 device_info_timeout_s: float = 5.0, latency_capacity: int = LATENCY_CAPACITY,
                 realtime_priority: int | None = None, prewarm: bool = True,
                 status_interval_s: float | None = None, load_kg: float | None = None) -> None:
        check_profile(bundle, profile)
        if load_kg is not None:  # refused before anything is opened
            load_kg = check_load(load_kg, None if bundle.meta.state is None else bundle.meta.state.load_index)
        self._load_kg = load_kg
        self.config = envelope_config(bundle)
        self.bundle, self.profile, self.transport = bundle, profile, transport
        self.safety = safety or SafetyConfig()
        self.publishers = tuple(publishers)
        self._predictor, self._backend, self._engine = predictor, backend, engine_path
        self._info_timeout_s = float(device_info_timeout_s)
        if realtime_priority is not None and not (isinstance(realtime_priority, int)
                                                  and 1 <= realtime_priority <= 99):
            raise InputError(f"realtime_priority must be an int in 1..99 (SCHED_FIFO), "
                             f"got {realtime_priority!r}")
        check_spin_us(getattr(transport, "spin_us", 0), realtime_priority=realtime_priority)
        self._rt_priority = realtime_priority
        self._prewarm = prewarm
        if status_interval_s is not None and not 0.01 <= status_interval_s <= 60:
            raise InputError(f"status_interval_s must be within [0.01, 60] s, got {status_interval_s!r}")
        self._status_interval_s = status_interval_s
        self.status_reporter: StatusReporter | None = None
        self.realtime = "off" if realtime_priority is None else "pending"
        self._latency_capacity = latency_capacity
        self.reader: Reader | None = None
        self.pipeline: Pipeline | None = None
        self.latency: LatencyRecorder | None = None
        self._info_seen: DeviceInfo | None = None
        self._stop = threading.Event()
        self._failed = ""
        self._watchdog: threading.Thread | None = None
        self.frames_before_info = 0
        self.stale_estimates = self.stale_periods = 0
        self.verify_deviation: float | None = None
        self._started_at = 0.0
        self._switch_interval = sys.getswitchinterval()
        self._reconnects_seen = 0

    @property
    def predictor(self) -> Predictor | None:
        return self._predictor

    def start(self) -> Runtime:
        """Build and check everything, start reading, wait for the device info; raises InputError."""
        if self._predictor is None:
            self._predictor = select_predictor(self.bundle, backend=self._backend, engine_path=self._engine)
        self.verify_deviation = replay_test_vectors(self.bundle, self._predictor).check().deviation
        if self._load_kg is not None:  # after the replay: the test vectors start from the bundle's state
            self._predictor.set_load(self._load_kg)
        warm_up(self.config, n_channels=self.bundle.n_channels)
        warm_up_scan(FrameRing(n_samples=1, n_channels=1, sample_bits=16, capacity=1))
        gc.collect()
        self.reader = Reader(self.transport, on_frames=self._on_frames, read_size=READ_SIZE)
        self.reader.start()
        try:
            info = self._wait_device_info()
            check_device(self.bundle, info, self.config)
        except BaseException:
            self.reader.stop()
            raise
        deadline_ns = round(info.samples_per_frame / info.sample_rate_hz * 1e9)
        self.latency = LatencyRecorder(capacity=self._latency_capacity, deadline_ns=deadline_ns)
        self._info_seen = info
        self._reconnects_seen = self.transport.stats.reconnects
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.pipeline = Pipeline(bundle=self.bundle, predictor=self._predictor, profile=self.profile,
                                 device_info=info, safety=self.safety, publishers=self.publishers,
                                 latency=self.latency, parser=self.reader.parser, prewarm=self._prewarm)
        # from here on the reader decodes into a ring allocated once (the parser's fast path)
        # it holds every frame one read can complete: the read, and what the parser kept (< MAX_FRAME_SIZE)
        shape = {"n_samples": info.samples_per_frame, "n_channels": info.n_channels,
                 "sample_bits": info.sample_bits}
        ring = FrameRing(**shape, capacity=(READ_SIZE + MAX_FRAME_SIZE) // frame_size(**shape) + 1)
        self.reader.use_ring(ring, self._on_ring)
        gc.freeze()  # what set-up made is never scanned again: shorter collections in the loop
        self._started_at = time.monotonic()
        self._watchdog = threading.Thread(target=self._watch, name="myoedge-watchdog", daemon=True)
        self._watchdog.start()
        senders = [p.send_status for p in self.publishers if hasattr(p, "send_status")]
        if self._status_interval_s is not None and senders:  # status datagrams: a thread of their own
            self.status_reporter = StatusReporter(self, interval_s=self._status_interval_s,
                                                  senders=senders).start()
        LOG.info("running bundle %s (%s) on %s: %d channels at %g Hz; model at %g Hz, window %d, "
                 "predictor %s", self.bundle.path, self.bundle.meta.name, self.transport.url,
                 info.n_channels, info.sample_rate_hz, self.bundle.input_rate_hz, self.bundle.window,
                 self._predictor.name)
        return self

    def _wait_device_info(self) -> DeviceInfo:
        deadline = time.monotonic() + self._info_timeout_s
        while time.monotonic() < deadline:
            info = self.reader.device_info
            if info is not None:
                return info
            if not self.reader.running:
                raise InputError(f"reading {self.transport.url} failed: {self.reader.stats().error}")
            time.sleep(0.005)
        stats = self.reader.stats()
        raise InputError(f"no device-info frame from {self.transport.url} within {self._info_timeout_s:g} "
                         f"s ({stats.transport.bytes_read} bytes, {stats.frames} data frames read); the "
                         "runtime needs the amplifier's rate, channels and scale before it can run")

    def _on_frames(self, frames: list[Frame], t_read_ns: int) -> None:
        pipe = self._ready_pipeline()
        if pipe is None:
            self.frames_before_info += len(frames) if self.pipeline is None else 0
            return
        pipe.on_frames(frames, t_read_ns)

    def _on_ring(self, ring: FrameRing, n: int, t_read_ns: int) -> None:
        pipe = self._ready_pipeline()
        if pipe is not None:
            pipe.on_ring(ring, n, t_read_ns)

    def _ready_pipeline(self) -> Pipeline | None:
        """In the reader thread before each read's frames: real-time priority on the first call, a changed
        device-info frame (stops the loop), a reconnect (resets the pipeline); the pipeline, or None when
        there is none yet or the loop failed."""
        if self.realtime == "pending":  # the first call runs in the reader thread: raise its priority
            self.realtime = _make_realtime(self._rt_priority)
        pipe = self.pipeline
        if pipe is None or self._failed:
            return None
        info = self.reader.parser.device_info
        if info is not self._info_seen:  # a new device-info frame (sent periodically, or after a restart)
            self._info_seen = info
            if info != pipe.device_info:
                try:
                    check_device(self.bundle, info, self.config)
                    problem = "the amplifier changed its configuration mid-run (restart the loop to use it)"
                except InputError as exc:
                    problem = str(exc)
                self._fail(problem)
                return None
        reconnects = self.transport.stats.reconnects
        if reconnects != self._reconnects_seen:  # the port was lost and opened again: start afresh
            self._reconnects_seen = reconnects
            pipe.reset("reconnect")
        return pipe

    def _fail(self, problem: str) -> None:
        LOG.error("stopping: %s", problem)
        self._failed = problem
        self._stop.set()

    def _watch(self) -> None:
        limit_ns = round(self.safety.watchdog_ms * 1e6)
        last_stale = 0
        started = time.perf_counter_ns()
        while not self._stop.wait(self.safety.watchdog_ms / 4e3):
            pipe = self.pipeline
            now = time.perf_counter_ns()
            silent = now - (pipe.last_frame_ns or started)
            if silent <= limit_ns:
                last_stale = 0
                continue
            if last_stale == 0:
                self.stale_periods += 1
                LOG.warning("watchdog: no frame from %s for %.0f ms; estimates are flagged stale",
                            self.transport.url, silent / 1e6)
            if now - last_stale >= limit_ns:
                pipe.publish(pipe.stale_estimate())
                self.stale_estimates += 1
                last_stale = now

    def stop(self) -> dict:
        """Stop the watchdog and the reader, close the publishers and the predictor; the final stats."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
        if self.status_reporter is not None:
            self.status_reporter.stop()
        reader_stats = self.reader.stop() if self.reader is not None else None
        for publisher in self.publishers:
            try:
                publisher.close()
            except OSError as exc:
                LOG.error("closing the %s publisher failed: %s", publisher.name, exc)
        if self._predictor is not None:
            self._predictor.close()
        sys.setswitchinterval(self._switch_interval)
        gc.unfreeze()
        return self.stats(reader_stats)

    def stats(self, reader_stats=None) -> dict:
        reader_stats = reader_stats or (self.reader.stats() if self.reader is not None else None)
        out = {"port": self.transport.url, "bundle": str(self.bundle.path), "subject": self.profile.subject,
               "predictor": self._predictor.name if self._predictor is not None else None,
               "verify_max_deviation": self.verify_deviation,
               "seconds": round(time.monotonic() - self._started_at, 3) if self._started_at else 0.0,
               "frames_before_device_info": self.frames_before_info,
               "stale_periods": self.stale_periods, "stale_estimates": self.stale_estimates,
               "realtime": self.realtime}
        if self.pipeline is not None:
            out.update(self.pipeline.stats())
        if reader_stats is not None:
            out["parser"] = dataclasses.asdict(reader_stats.parser)
            out["transport"] = dataclasses.asdict(reader_stats.transport)
            out["consumer_errors"] = reader_stats.consumer_errors
            out["reader_error"] = reader_stats.error
        if self.latency is not None:
            out["latency"] = self.latency.summary()
        if self.status_reporter is not None:
            reporter = self.status_reporter
            out["status_datagrams"] = {"sent": reporter.sent, "errors": reporter.errors}
        if self._failed:
            out["failure"] = self._failed
        return out

    def run(self, *, duration_s: float | None = None, stop: threading.Event | None = None,
            say: Callable[[str], None] | None = None) -> dict:
        """Start, run until ``duration_s``, ``stop``, SIGINT/SIGTERM or a failure, stop; the final stats.

        ``say`` gets the final statistics line (default: stderr). A failure is raised as InputError.
        """
        say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        stop = stop or threading.Event()
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {n: signal.signal(n, lambda *_: stop.set()) for n in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            end = None if duration_s is None else time.monotonic() + duration_s
            while not (stop.wait(0.05) or self._stop.is_set()):
                if end is not None and time.monotonic() >= end:
                    break
                if not self.reader.running:
                    self._fail(f"the reader of {self.transport.url} stopped: {self.reader.stats().error}")
            stats = self.stop()
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
            if not self._stop.is_set():
                self.stop()
        say(stats_line(stats))
        if self._failed:
            raise InputError(self._failed)
        return stats


def _make_realtime(priority: int) -> str:
    """Put the calling thread under SCHED_FIFO at ``priority``; how that went, as a short text.

    A real-time thread preempts every ordinary one, so a busy machine no longer delays the loop by a
    scheduler time slice (several ms). It needs CAP_SYS_NICE or an rtprio limit (``ulimit -r``);
    without them the loop runs at normal priority and says so.
    """
    if not hasattr(os, "sched_setscheduler"):
        LOG.warning("real-time priority requested but this platform has no SCHED_FIFO; running normally")
        return "unavailable"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: the calling thread
    except OSError as exc:
        LOG.warning("cannot use SCHED_FIFO priority %d (%s; needs CAP_SYS_NICE or `ulimit -r %d`); running "
                    "at normal priority", priority, exc.strerror, priority)
        return f"refused: {exc.strerror}"
    LOG.info("reader thread runs under SCHED_FIFO priority %d", priority)
    return f"SCHED_FIFO {priority}"


def stats_line(stats: dict) -> str:
    """The one line ``myoedge run`` ends with."""
    parser, lat = stats.get("parser", {}), stats.get("latency", {})
    line = (f"myoedge run: stopped after {stats.get('seconds', 0):.1f} s: {stats.get('frames', 0)} frames, "
            f"{stats.get('estimates', 0)} estimates ({stats.get('invalid_estimates', 0)} invalid, "
            f"{stats.get('clamped_estimates', 0)} clamped, {stats.get('stale_estimates', 0)} stale), "
            f"{parser.get('lost', 0)} frames lost, {parser.get('crc_errors', 0)} CRC errors, "
            f"{stats.get('transport', {}).get('reconnects', 0)} reconnects")
    processing = lat.get("all", {}).get("processing", {})
    if processing.get("n"):
        line += (f"; read->publish p50 {processing['p50']:.0f} us, p99 {processing['p99']:.0f} us, "
                 f"max {lat['max_processing_us']:.0f} us, {lat['deadline_misses']} deadline misses "
                 f"(> {lat['deadline_us']:.0f} us)")
    return line
