"""The MVC session front-end: the real edge reader, parser and fixed-point envelope, and the wearer.

``run_mvc_session`` opens the port by URL (:class:`myoedge.edge.wire.transport.SerialTransport`: a serial
device, ``socket://``, or the pty of ``myoedge amp-sim``), reads frames on the edge's reader thread,
waits for the device-info frame (sample rate, volts per count, channel labels) and runs the envelope
the runtime runs. Two modes:

- guided (default): per muscle a prompt naming the contraction, a rest with a countdown, a hold with
  a live bar of the envelope, then the verdict; a rejected repetition says why and is asked again.
  The phases are timed in *stream* time (samples received), so the cut matches what was recorded;
- scripted (``auto``): no prompts; contractions are found wherever they are in the stream
  (:class:`myoedge.calibrate.mvc_stream.BurstFinder`), e.g. ``myoedge amp-sim --protocol mvc``.

Failures are ``InputError``s that say what happened (no device-info frame, unknown channel, no data
for ``stall_s`` — an unplugged port — or a session that ran out of attempts); the caller writes a
profile only after a complete session.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from myoedge.calibrate.mvc import MvcConfig, MvcSession
from myoedge.calibrate.mvc_stream import (
    BurstFinder,
    EnvelopeStream,
    guided_repetition,
    stream_envelope_config,
)
from myoedge.edge.wire.protocol import LABEL_BYTES, DeviceInfo, Frame
from myoedge.edge.wire.reader import Reader
from myoedge.edge.wire.transport import SerialTransport, Transport
from myoedge.ground.errors import InputError

Say = Callable[[str], None]
LOG = logging.getLogger("myoedge.calibrate")
EVENT_ENVELOPE_S = 1 / 30  # envelope events at most this often (a live display redraws at 30 fps)


@dataclass(frozen=True)
class MvcResult:
    """A complete session: MVC per muscle and everything the profile's provenance records."""

    mvc_volts: dict[str, float]
    session: dict  # per muscle: pooled MVC and every repetition
    device: DeviceInfo
    port: str
    mode: str  # "guided" | "auto"
    envelope: dict  # the envelope config and the hash of its coefficients
    lost_frames: int
    reconnects: int
    stream_s: float
    config: MvcConfig = field(repr=False, default_factory=MvcConfig)


class _Ended(InputError):
    """The session cannot go on: no data for ``stall_s`` (unplugged port, device stopped) or time is up."""


class _FrameSink:
    """Frames from the reader thread, taken in batches by the session thread."""

    def __init__(self) -> None:
        self._frames: list[Frame] = []
        self._ready = threading.Condition()

    def on_frames(self, frames: list[Frame], t_read_ns: int) -> None:
        with self._ready:
            self._frames.extend(frames)
            self._ready.notify()

    def take(self, timeout_s: float) -> list[Frame]:
        with self._ready:
            if not self._frames:
                self._ready.wait(timeout_s)
            frames, self._frames = self._frames, []
        return frames


class _Events:
    """Hands the session's events (``myoedge.edge.monitor.mvc_feed`` lists them) to ``on_event``; a consumer
    that raises is logged once and then ignored: a display must not stop a session."""

    def __init__(self, on_event: Callable[[dict], None] | None) -> None:
        self._on_event, self.errors, self._next = on_event, 0, 0  # _next: envelope sample of the next event

    def __call__(self, kind: str, **fields) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event({"type": kind, **fields})
        except Exception:
            self.errors += 1
            if self.errors == 1:
                LOG.exception("the session's event consumer raised (further errors are only counted)")

    def envelope(self, stream: EnvelopeStream) -> None:
        """Every measured channel's envelope every ``EVENT_ENVELOPE_S`` of stream, however the frames came
        in batches."""
        if self._on_event is None or stream.n <= self._next:
            return
        step = max(1, round(stream.rate_hz * EVENT_ENVELOPE_S))
        env = stream.envelope
        for i in range(self._next, stream.n, step):
            self("envelope", t=i / stream.rate_hz, volts=[float(v) for v in env[i]])
            self._next = i + step


def channel_map(info: DeviceInfo, muscles: Sequence[str] | None) -> list[tuple[str, int]]:
    """(muscle, device channel) per muscle: a channel's label is its muscle's name (first 8 characters)."""
    labels = list(info.labels)
    names = list(muscles) if muscles else labels
    out, missing = [], []
    for m in names:
        hit = [c for c, label in enumerate(labels) if label == m[:LABEL_BYTES]]
        if hit:
            out.append((m, hit[0]))
        else:
            missing.append(m)
    if missing:
        raise InputError(f"the device has no channel for {missing}; its channels are {labels}")
    return out


class _Pump:
    """Drains the reader into the envelope stream; raises when the data stop for ``stall_s``."""

    def __init__(self, reader: Reader, sink: _FrameSink, stream: EnvelopeStream, *, stall_s: float,
                 events: _Events | None = None):
        self.reader, self.sink, self.stream, self.stall_s = reader, sink, stream, stall_s
        self.events = events or _Events(None)
        self.device = reader.device_info
        self._lost = reader.stats().parser.lost
        self._last_data = time.monotonic()

    def __call__(self, timeout_s: float = 0.05) -> int:
        frames = self.sink.take(timeout_s)
        stats = self.reader.stats()
        if stats.error:
            raise InputError(f"reading {self.reader.transport.url} failed: {stats.error}")
        info = self.reader.device_info
        if info is not None and self.device is not None and (
                info.sample_rate_hz != self.device.sample_rate_hz or info.labels != self.device.labels
                or not np.array_equal(info.scale_v, self.device.scale_v)):
            raise InputError(f"the device changed its configuration mid-session (now {info.labels} at "
                             f"{info.sample_rate_hz:g} Hz); start the session again")
        if not frames:
            if time.monotonic() - self._last_data > self.stall_s:
                raise _Ended(f"no data from {self.reader.transport.url} for {self.stall_s:g} s (port "
                             f"unplugged or device stopped; {stats.transport.reconnects} reconnects); "
                             "the profile was not changed")
            return 0
        self._last_data = time.monotonic()
        lost, self._lost = stats.parser.lost - self._lost, stats.parser.lost
        counts = np.concatenate([f.samples for f in frames])
        n = self.stream.feed(counts, lost_frames=lost)
        self.events.envelope(self.stream)
        return n

    def until(self, n: int, *, on_sample: Callable[[], None] | None = None) -> None:
        while self.stream.n < n:
            if self() and on_sample is not None:
                on_sample()


def _wait_device_info(reader: Reader, sink: _FrameSink, timeout_s: float) -> DeviceInfo:
    deadline = time.monotonic() + timeout_s
    while reader.device_info is None:
        if time.monotonic() > deadline:
            raise InputError(f"no device-info frame from {reader.transport.url} within {timeout_s:g} s "
                             "(is it a myoedge amplifier, and streaming?)")
        time.sleep(0.01)
    return reader.device_info


def run_mvc_session(url: str, *, muscles: Sequence[str] | None = None, config: MvcConfig | None = None,
                    auto: bool = False, actions: dict[str, str] | None = None, timeout_s: float = 600.0,
                    stall_s: float = 3.0, info_timeout_s: float = 5.0, say: Say = print,
                    transport: Transport | None = None,
                    on_event: Callable[[dict], None] | None = None) -> MvcResult:
    """Run a session on the amplifier at ``url``; returns the MVC or raises ``InputError`` saying why.

    ``actions`` maps muscle → the movement to prompt (e.g. "knee flexion"); ``timeout_s`` bounds a
    scripted session; ``stall_s`` is how long without data counts as an unplugged port. ``transport``
    replaces the ``SerialTransport`` opened on ``url`` (any :class:`myoedge.edge.wire.transport.Transport`).
    ``on_event`` receives the session's events (prompts, countdown, envelopes, verdicts: the live page of
    ``calibrate mvc --monitor``), in this thread.
    """
    events = _Events(on_event)
    config = config or MvcConfig()
    sink = _FrameSink()
    reader = Reader(transport or SerialTransport(url), on_frames=sink.on_frames)
    reader.start()
    try:
        info = _wait_device_info(reader, sink, info_timeout_s)
        pairs = channel_map(info, muscles)
        names = [m for m, _ in pairs]
        env_cfg = stream_envelope_config(fs_hz=info.sample_rate_hz, input_bits=info.sample_bits,
                                         rate_hz=config.envelope_rate_hz)
        stream = EnvelopeStream(env_cfg, volts_per_count=np.asarray(info.scale_v, dtype=float),
                                channels=[c for _, c in pairs], samples_per_frame=info.samples_per_frame)
        session = MvcSession(muscles=tuple(names), config=config)
        pump = _Pump(reader, sink, stream, stall_s=stall_s, events=events)
        say(f"{info.device_name or 'amplifier'} on {url}: {info.n_channels} channels at "
            f"{info.sample_rate_hz:g} Hz; measuring {', '.join(names)} "
            f"({config.repetitions} repetitions each, {'scripted' if auto else 'guided'})")
        events("session", muscles=names, mode="auto" if auto else "guided", repetitions=config.repetitions,
               device=f"{info.device_name or 'amplifier'} on {url}")
        try:
            if auto:
                _scripted(session, stream, pump, names, timeout_s=timeout_s, say=say, events=events)
            else:
                _guided(session, stream, pump, names, actions or {}, say=say, events=events)
            mvc = session.mvc()
        except InputError as exc:
            events("failed", reason=str(exc))
            raise
        events("done", mvc_volts=mvc)
        stats = reader.stats()
    finally:
        reader.stop()
    envelope = {"config": env_cfg.to_dict(), "coefficients_sha256": stream.filter.coefficients_hash()}
    return MvcResult(mvc_volts=mvc, session=session.summary(), device=info, port=url,
                     mode="auto" if auto else "guided", envelope=envelope,
                     lost_frames=int(stats.parser.lost), reconnects=int(stats.transport.reconnects),
                     stream_s=stream.n / stream.rate_hz, config=config)


class _LiveBar:
    """The current envelope of one channel as a bar, scaled to the largest value seen in this hold."""

    def __init__(self, stream: EnvelopeStream, channel: int):
        self.stream, self.channel, self.peak = stream, channel, 1e-12

    def __call__(self) -> None:
        level = float(self.stream.envelope[-1, self.channel])
        self.peak = max(self.peak, level)
        filled = int(30 * level / self.peak)
        sys.stdout.write(f"\r  [{'#' * filled:<30}] {1e6 * level:7.1f} µV")
        sys.stdout.flush()


def _report(say: Say, rep, events: _Events) -> None:
    events("repetition", muscle=rep.muscle, attempt=rep.attempt, accepted=rep.accepted, reason=rep.reason,
           mvc_volts=rep.mvc_volts, rest_volts=rep.rest_volts)
    if rep.accepted:
        lost = f", {rep.lost_frames} frames lost" if rep.lost_frames else ""
        say(f"  {rep.muscle} #{rep.attempt}: {1e6 * rep.mvc_volts:.1f} µV "
            f"({rep.mvc_volts / rep.rest_volts:.0f}× rest){lost}")
    else:
        say(f"  {rep.muscle} #{rep.attempt} rejected: {rep.reason}")


def _scripted(session: MvcSession, stream: EnvelopeStream, pump: _Pump, names: list[str], *, timeout_s: float,
              say: Say, events: _Events) -> None:
    finder = BurstFinder(stream, config=session.config)
    deadline = time.monotonic() + timeout_s
    expected = None

    def announce() -> None:  # the muscle the scripted stream should bring next
        nonlocal expected
        wanted = next((m for m in names if session.wants(m)), None)
        if wanted is not None and wanted != expected:
            expected = wanted
            events("prompt", muscle=wanted, attempt=len(session.repetitions[wanted]) + 1,
                   text=f"scripted session: waiting for contractions of {wanted}")

    def take(final: bool = False) -> None:
        for burst in finder.poll(final=final):
            muscle = names[burst.channel]
            if session.wants(muscle):
                _report(say, session.add(muscle, finder.repetition(burst), rate_hz=stream.rate_hz), events)
        announce()

    announce()
    try:
        while not session.complete:
            pump()
            take()
            if time.monotonic() > deadline:
                raise _Ended(f"the scripted session did not complete within {timeout_s:g} s")
    except _Ended as exc:
        take(final=True)  # a contraction that was running when the data stopped still counts
        if not session.complete:
            try:
                session.mvc()
            except InputError as incomplete:
                raise InputError(f"{exc}; {incomplete}") from None


def _guided(session: MvcSession, stream: EnvelopeStream, pump: _Pump, names: list[str],
            actions: dict[str, str], *, say: Say, events: _Events) -> None:
    cfg, rate = session.config, stream.rate_hz
    tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    rest_n, hold_n, count_n = (int(round(x * rate)) for x in (cfg.rest_s, cfg.hold_s, cfg.countdown_s))
    start = stream.n  # phases are anchored to sample indexes, however the frames arrive in batches
    for index, muscle in enumerate(names):
        what = actions.get(muscle, f"contract {muscle}")
        while session.wants(muscle):
            attempt = len(session.repetitions[muscle]) + 1
            say(f"{muscle}, repetition {attempt}: relax for {cfg.rest_s:g} s, then {what} as hard as you can "
                f"for {cfg.hold_s:g} s")
            events("prompt", muscle=muscle, attempt=attempt,
                   text=f"{muscle}, repetition {attempt}: relax, then {what} as hard as you can "
                        f"for {cfg.hold_s:g} s")
            hold0 = start + rest_n
            for k in range(int(round(cfg.countdown_s)), 0, -1):
                pump.until(hold0 - int(round(k * count_n / cfg.countdown_s)))
                say(f"  {k}…")
                events("countdown", muscle=muscle, seconds=k)
            pump.until(hold0)
            say(f"  GO — {what}, hold it!")
            events("go", muscle=muscle, hold_s=cfg.hold_s)
            bar = _LiveBar(stream, index) if tty else None
            pump.until(hold0 + hold_n, on_sample=bar)
            if tty:
                sys.stdout.write("\n")
            data = guided_repetition(stream, channel=index, rest=(start, hold0), hold=(hold0, hold0 + hold_n),
                                     labels=names)
            start = hold0 + hold_n
            _report(say, session.add(muscle, data, rate_hz=rate), events)
