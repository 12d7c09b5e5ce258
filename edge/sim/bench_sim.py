"""The amplifier side of ``myoedge bench``: the simulator in a process of its own, or inside the reader.

``SimProcess`` runs ``AmplifierSimulator`` in a child process (``multiprocessing``, spawn), as a real
amplifier is a separate device: the simulator's work then never waits for, nor holds up, the loop's
interpreter lock. The child notes each data frame's write with ``time.perf_counter_ns`` (on Linux the
system-wide monotonic clock, so the two processes' times compare) and hands back, by sequence number,
when each frame was due: the start of the benchmark's ``end_to_end`` latency.

``InprocTransport`` is the ``inproc`` transport: the reader thread's ``read`` makes each frame itself at
its due time. No operating-system link, no second thread: the loop's own cost. ``sim_transport`` makes
one from a ``sim://`` URL (``myoedge.edge.wire.transport.open_transport`` calls it), so ``myoedge run
--port sim://...`` and the benchmark run the same thing.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np

from myoedge.edge.sim.ampsim_signals import AmpSignal
from myoedge.edge.sim.faults import FaultInjector, FaultPlan
from myoedge.edge.wire.protocol import DeviceInfo, Frame, encode_device_info, encode_frame
from myoedge.edge.wire.transport import Transport, TransportStats
from myoedge.ground.errors import InputError

__all__ = ["SIM_URL_PARAMETERS", "InprocTransport", "SimProcess", "sim_transport", "sim_url",
           "tight_timer_slack"]

_START_TIMEOUT_S = 120.0  # a cold child imports numpy, scipy and the simulator
_PR_SET_TIMERSLACK = 29


def tight_timer_slack() -> bool:
    """Set the calling thread's timer slack to 1 ns (Linux; threads it starts inherit it); whether it did.

    A sleeping thread is woken up to ``timerslack`` (default 50 us) after its time so the kernel can
    batch wake-ups; the simulator paces frames with sleeps, and 50 us of that slack would be counted in
    every frame's end-to-end latency, as a hardware amplifier would not add it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _child(conn, signal: AmpSignal, capacity: int, options: dict, realtime_priority: int | None) -> None:
    from myoedge.edge.sim.ampsim import AmplifierSimulator

    tight_timer_slack()  # before the streaming thread starts: it inherits the slack
    if realtime_priority is not None and hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):  # threads started from here on inherit the policy
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime_priority))
    written = np.zeros(capacity, dtype=np.int64)  # perf_counter_ns after each data frame's write
    due = np.zeros(capacity, dtype=np.int64)  # stream time (ns) at which that frame's last sample existed
    period_ns = round(options.get("samples_per_frame", 2) / signal.fs * 1e9)

    def on_sent(frame: Frame, t_ns: int) -> None:
        if frame.seq < capacity:
            written[frame.seq] = t_ns
            due[frame.seq] = frame.timestamp_us * 1000 + period_ns

    try:
        sim = AmplifierSimulator(signal, on_sent=on_sent, **options).start()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("address", sim.address))
    while conn.recv() != "stop":
        conn.send((time.process_time(), sim.stats().expected_lost))
    stats = sim.stop()
    conn.send((dataclasses.asdict(stats), _due_on_host_clock(written, due)))


def _due_on_host_clock(written: np.ndarray, due: np.ndarray) -> np.ndarray:
    """When each frame was due (its last sample existed), on the host clock; 0 where none was sent.

    The stream's start on the host clock is taken from the frame written soonest after its due time,
    so a write's own delay is never counted as processing, and the loop's latency is measured from
    the moment the amplifier could have sent the frame: the simulator's pacing jitter is included.
    """
    sent = written > 0
    if not sent.any():
        return np.zeros_like(written)
    start = int(np.min(written[sent] - due[sent]))
    return np.where(sent, due + start, 0)


class SimProcess:
    """``AmplifierSimulator(signal, **options)`` in a child process; ``address`` is where to read it."""

    def __init__(self, signal: AmpSignal, *, capacity: int, realtime_priority: int | None = None,
                 **options) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child, name="myoedge-amp-sim", daemon=True,
                                 args=(child_conn, signal, capacity, options, realtime_priority))
        self._proc.start()
        child_conn.close()
        if not self._conn.poll(_START_TIMEOUT_S):
            self._proc.kill()
            raise RuntimeError(f"the simulator process did not start within {_START_TIMEOUT_S:g} s")
        kind, value = self._conn.recv()
        if kind == "error":
            self._proc.join(5.0)
            raise InputError(f"the amplifier simulator failed to start: {value}")
        self.address: str = value
        self.sent_ns = np.zeros(capacity, dtype=np.int64)  # each frame's due time, by seq: set by stop()
        self.stats: dict = {}

    def poll(self) -> tuple[float, int]:
        """(CPU seconds the child has used so far, frames a reader of the whole stream counts lost so far).

        Taken before the loop lets go of the port: frames made after that are not losses of the loop.
        """
        self._conn.send("poll")
        return self._conn.recv()

    def stop(self) -> dict:
        """Stop streaming; the simulator's statistics (``SimStats`` as a dict). Idempotent."""
        if self._proc.is_alive() and not self.stats:
            self._conn.send("stop")
            if self._conn.poll(30.0):
                self.stats, self.sent_ns = self._conn.recv()
            self._proc.join(10.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()
        return self.stats


class InprocTransport(Transport):
    """The amplifier inside the reader thread: each ``read`` sleeps until the next frame is due and
    returns its bytes (a device-info frame first and every second). Faults apply as in the simulator,
    except disconnects (there is no port to lose). ``counts`` and ``info`` come from an
    ``AmplifierSimulator``, so the frames are the ones it would send."""

    def __init__(self, counts: np.ndarray, info: DeviceInfo, *, faults: FaultPlan, capacity: int,
                 url: str = "sim://") -> None:
        if faults.disconnects:
            raise InputError("disconnect faults need --transport pty or tcp (inproc has no port to lose)")
        self._counts, self._info, self._url = counts, info, url
        self.sent_ns = np.zeros(capacity, dtype=np.int64)  # perf_counter_ns of each frame's read, by seq
        self._spf, self._bits = info.samples_per_frame, info.sample_bits
        self._period = self._spf / info.sample_rate_hz
        self._info_every = max(1, round(1.0 / self._period))
        self.injector = FaultInjector(faults)
        self.stats = TransportStats()
        self.frames_sent = self.lost_before_last_sent = 0
        self._k = self._seq = 0
        self._t0: float | None = None
        self._stalled_until = 0.0
        self._aborted = False
        self._slack_set = False

    @property
    def url(self) -> str:
        return self._url

    @property
    def connected(self) -> bool:
        return self._t0 is not None

    def connect(self) -> None:
        self._t0 = time.perf_counter()

    def read(self, max_bytes: int = 4096) -> bytes:
        if not self._slack_set:  # the reader thread paces the frames here, like the simulator process
            self._slack_set = True
            tight_timer_slack()
        k, period = self._k, self._period
        for _, duration in self.injector.due(k * period):  # only stalls: disconnects refused above
            self.injector.stats.stalls += 1
            self.injector.stats.stalled_s += duration
            self._stalled_until = time.perf_counter() + duration
        wait = max(self._t0 + (k + 1) * period, self._stalled_until) - time.perf_counter()
        if wait > 0:
            time.sleep(min(wait, 0.05))
            if self._aborted or wait > 0.05:
                return b""
        stamp = round(k * self._spf * 1e6 / self._info.sample_rate_hz)
        out = b""
        if k % self._info_every == 0:
            out = encode_device_info(self._info, seq=self._seq, timestamp_us=stamp)
            self._seq += 1
        rows = (k * self._spf + np.arange(self._spf)) % len(self._counts)
        frame = Frame(seq=self._seq, timestamp_us=stamp, samples=self._counts[rows], sample_bits=self._bits)
        lost_before = self.injector.stats.lost_frames
        out += self.injector.apply(encode_frame(frame))
        self._k, self._seq = k + 1, self._seq + 1
        if self.injector.stats.lost_frames == lost_before:
            self.frames_sent += 1
            self.lost_before_last_sent = lost_before  # a parser can only count gaps a later frame reveals
            if frame.seq < len(self.sent_ns):
                self.sent_ns[frame.seq] = time.perf_counter_ns()
        self.stats.reads += 1
        self.stats.bytes_read += len(out)
        return out

    def abort(self) -> None:
        self._aborted = True

    def close(self) -> None:
        self._aborted = True




# sim:// query parameters: name -> (type, default, meaning)
SIM_URL_PARAMETERS: dict[str, tuple[type, object, str]] = {
    "channels": (int, 8, "EMG channels (ignored with recording=)"),
    "fs": (float, 2000.0, "sample rate, Hz (ignored with recording=)"),
    "spf": (int, 2, "samples per channel per frame"),
    "bits": (int, 24, "sample width, 16 or 24"),
    "seconds": (float, 11.0, "length of the generated signal, s; it repeats (ignored with recording=)"),
    "seed": (int, 0, "seed of the generated signal and of random faults"),
    "labels": (str, "", "comma-separated channel labels (default M0, M1, ...)"),
    "recording": (str, "", "a recording folder whose raw EMG is streamed instead of generated noise"),
    "fault": (str, "", "fault specs as `myoedge amp-sim --fault` (repeatable; no disconnects)"),
    "capacity": (int, 1_200_000, "frames whose send time is kept for end-to-end latency"),
}


def sim_transport(url: str, **options) -> InprocTransport:
    """The ``InprocTransport`` described by ``sim://?channels=8&fs=2000&spf=2&bits=24&fault=drop:0.01``.

    Parameters: :data:`SIM_URL_PARAMETERS`; ``options`` override them by name (``labels`` may be a
    sequence, ``fault`` a list). Unknown or malformed parameters are an ``InputError`` naming them.
    """
    from myoedge.edge.dsp.envelope_report import emg_like
    from myoedge.edge.sim.ampsim import AmplifierSimulator
    from myoedge.edge.sim.ampsim_signals import recording_signal

    parts = urlsplit(url)
    if parts.scheme.lower() != "sim" or parts.path not in ("", "/") or parts.netloc not in ("", "amp-sim"):
        raise InputError(f"port {url!r}: a simulator URL is sim://?name=value&... "
                         f"({', '.join(SIM_URL_PARAMETERS)})")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(SIM_URL_PARAMETERS)) + sorted(set(options) - set(SIM_URL_PARAMETERS))
    if unknown:
        raise InputError(f"port {url!r}: unknown simulator parameter(s) {unknown}; known: "
                         f"{', '.join(SIM_URL_PARAMETERS)}")
    values: dict[str, object] = {}
    for name, (kind, default, _) in SIM_URL_PARAMETERS.items():
        given = query.get(name)
        if name == "fault":
            values[name] = [v for v in (given or []) if v]
        elif given:
            try:
                values[name] = kind(given[-1])
            except ValueError:
                raise InputError(f"port {url!r}: simulator parameter {name}={given[-1]!r} is not "
                                 f"{'an integer' if kind is int else 'a number'}") from None
        else:
            values[name] = default
    values.update(options)
    if isinstance(values["labels"], str):
        values["labels"] = tuple(x for x in values["labels"].split(",") if x)
    if isinstance(values["fault"], str):
        values["fault"] = [values["fault"]] if values["fault"] else []
    for name in ("channels", "spf", "capacity"):
        if not 1 <= values[name] <= (64 if name != "capacity" else 1 << 28):
            raise InputError(f"port {url!r}: simulator parameter {name}={values[name]} is out of range")
    if not 0.1 <= values["seconds"] <= 3600 or not values["fs"] > 0:
        raise InputError(f"port {url!r}: simulator needs 0.1 <= seconds <= 3600 and fs > 0")
    if values["recording"]:
        signal = recording_signal(values["recording"])
    else:
        labels = values["labels"] or tuple(f"M{i}" for i in range(values["channels"]))
        volts = emg_like(fs_hz=values["fs"], seconds=values["seconds"], n_channels=len(labels),
                         seed=values["seed"])
        signal = AmpSignal(volts=volts, fs=values["fs"], labels=tuple(labels),
                           description="band-limited amplitude-modulated noise (envelope_report.emg_like)")
    plan = FaultPlan.parse(list(values["fault"]), seed=values["seed"])
    made = AmplifierSimulator(signal, bits=values["bits"], samples_per_frame=values["spf"])
    return InprocTransport(made.counts, made.device_info, faults=plan, capacity=values["capacity"], url=url)


def sim_url(*, labels: Sequence[str], fs_hz: float, samples_per_frame: int = 2, bits: int = 24,
            seconds: float = 11.0, seed: int = 0, faults: Sequence[str] = (),
            capacity: int | None = None) -> str:
    """The ``sim://`` URL of a generated-noise simulator with these settings (for ``open_transport``)."""
    query = [("labels", ",".join(labels)), ("fs", repr(float(fs_hz))), ("spf", samples_per_frame),
             ("bits", bits), ("seconds", repr(float(seconds))), ("seed", seed)]
    query += [("fault", f) for f in faults]
    if capacity is not None:
        query.append(("capacity", capacity))
    return "sim://?" + urlencode(query)
