"""The amplifier simulator: an ``AmpSignal`` streamed as real frames at real-time pace over a pty or TCP
(or, with ``lsl_name``, as an LSL EMG outlet: :mod:`.ampsim_lsl`).

It speaks the protocol through the same module as the reader (``encode_frame``, ``encode_device_info``),
so nothing about the wire format is written twice. A device-info frame goes out first on every new
connection and then every ``info_interval_s`` of stream time; every frame of either type takes the next
sequence number, as the firmware does.

Pacing uses an absolute schedule: frame k is written when its last sample exists, at
``t0 + (k + 1) * samples_per_frame / fs`` on ``time.perf_counter``, so sleep overshoot never accumulates
into drift (a late frame is followed by an on-time one). ``fast=True`` writes as fast as the reader takes
the bytes. The stream starts when the first reader attaches; after that the device's clock runs whether
or not anyone listens, and frames produced with no reader attached (during a disconnect fault, or before
a reader comes back) are counted in ``frames_unsent``.

Counts. Volts become counts through the ADC (:class:`myoedge.edge.dsp.adc.Adc`; by default the one
training assumes for the sample width, ``default_adc(bits)``), clipped to the integer range (clipped
samples are counted); the device-info frame announces that ADC's scale for every channel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from myoedge.edge.dsp.adc import Adc, default_adc, quantise
from myoedge.edge.sim.ampsim_links import Link, PtyLink, TcpLink
from myoedge.edge.sim.ampsim_signals import AmpSignal
from myoedge.edge.sim.faults import FaultInjector, FaultPlan, FaultStats
from myoedge.edge.wire.protocol import (
    MAX_SAMPLES_PER_FRAME,
    SEQ_MODULUS,
    DeviceInfo,
    Frame,
    encode_device_info,
    encode_frame,
)
from myoedge.ground.errors import InputError

LOG = logging.getLogger("myoedge.edge")
TURN_AWAY_EVERY = 16  # frames between answers to a second reader (TCP): 16 ms at 1 ms frames

DEVICE_NAME = "myoedge amp-sim"


@dataclass(frozen=True)
class SimStats:
    """What the simulator did. ``expected_lost`` is what a parser that read the whole stream counts as
    ``lost``: frames numbered but not delivered intact (a reader that leaves on its own is not counted)."""

    address: str
    running: bool
    connections: int  # readers attached, the first one included
    frames_sent: int  # data frames written intact
    info_sent: int  # device-info frames written
    frames_unsent: int  # frames of either type produced while no reader was attached
    bytes_sent: int
    clipped_samples: int  # samples of the signal that did not fit the sample width
    late_frames: int  # frames written more than one frame period after their deadline (stalls included)
    max_late_ms: float
    stream_s: float  # device time streamed
    elapsed_s: float  # wall time since the first reader attached
    faults: FaultStats
    error: str = ""

    @property
    def expected_lost(self) -> int:
        return self.faults.lost_frames + self.frames_unsent


class AmplifierSimulator:
    """Streams ``signal`` as frames on a pty (default), a TCP server (``tcp_port``; 0 = a free port) or an
    LSL outlet (``lsl_name``).

    ``start()`` opens the output (``address`` is then the path or ``socket://`` URL a reader opens) and
    starts the streaming thread; ``stop()`` ends it and closes the output. ``loop`` repeats the signal
    forever; otherwise the stream ends after it (``wait()``). ``on_sent(frame, t_ns)`` is called in the
    streaming thread after each data frame was written intact (``t_ns`` from ``perf_counter_ns``), for
    tests and end-to-end latency; ``on_address(address)`` when a disconnect fault brought up a new pty.
    """

    def __init__(self, signal: AmpSignal, *, bits: int = 24, adc: Adc | None = None,
                 samples_per_frame: int = 2, tcp_port: int | None = None, link_path: str | None = None,
                 lsl_name: str | None = None,
                 fast: bool = False, loop: bool = True, faults: FaultPlan | None = None,
                 info_interval_s: float = 1.0, first_seq: int = 0, stop_after_s: float | None = None,
                 device_name: str = DEVICE_NAME,
                 on_sent: Callable[[Frame, int], None] | None = None,
                 on_address: Callable[[str], None] | None = None) -> None:
        if not isinstance(samples_per_frame, int) or not 1 <= samples_per_frame <= MAX_SAMPLES_PER_FRAME:
            raise InputError(f"samples_per_frame must be an integer in [1, {MAX_SAMPLES_PER_FRAME}], got "
                             f"{samples_per_frame!r}")
        if not isinstance(first_seq, int) or not 0 <= first_seq < SEQ_MODULUS or info_interval_s <= 0:
            raise InputError(f"need 0 <= first_seq < 2^32 and info_interval_s > 0, got {first_seq!r}, "
                             f"{info_interval_s!r}")
        if stop_after_s is not None and not stop_after_s > 0:
            raise InputError(f"stop_after_s must be > 0 seconds, got {stop_after_s!r}")
        if not loop and signal.volts.shape[0] < samples_per_frame:
            raise InputError(f"the signal has {signal.volts.shape[0]} samples, less than one frame")
        if adc is None:
            adc = default_adc(bits)
        elif not isinstance(adc, Adc) or adc.bits != bits:
            raise InputError(f"adc must be an Adc of {bits} bits (the sample width), got {adc!r}")
        self.signal, self.adc = signal, adc
        self.counts, self.clipped_samples = quantise(signal.volts, volts_per_count=adc.volts_per_count,
                                                     bits=adc.bits)
        if self.clipped_samples:
            LOG.warning("amp-sim: %d samples clipped to the %d-bit range", self.clipped_samples, bits)
        self.device_info = DeviceInfo(
            sample_rate_hz=signal.fs, scale_v=[adc.volts_per_count] * len(signal.labels),
            labels=signal.labels, sample_bits=bits, samples_per_frame=samples_per_frame,
            device_name=device_name)
        self.bits, self.samples_per_frame, self.fast, self.loop = bits, samples_per_frame, fast, loop
        if lsl_name is not None and (tcp_port is not None or link_path is not None):
            raise InputError("an LSL outlet is an output of its own: give lsl_name without tcp_port or "
                             "link_path")
        self._tcp_port, self._link_path, self._lsl_name = tcp_port, link_path, lsl_name
        self._info_every = max(1, round(info_interval_s * signal.fs / samples_per_frame))
        self._first_seq, self._stop_after_s = first_seq, stop_after_s
        self._on_sent, self._on_address = on_sent, on_address
        self._injector = FaultInjector(faults or FaultPlan())
        self._link: Link | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = dict.fromkeys(("connections", "frames_sent", "info_sent", "frames_unsent", "bytes_sent",
                                     "late_frames", "frames"), 0)
        self._max_late_s = 0.0
        self._t0: float | None = None
        self._error = ""

    @property
    def address(self) -> str:
        """The pty slave path or ``socket://127.0.0.1:PORT``; known once ``start()`` returned."""
        return self._link.address if self._link is not None else ""

    @property
    def port(self) -> int | None:
        """The TCP port being served (useful with ``tcp_port=0``), or None for a pty."""
        return self._link.port if isinstance(self._link, TcpLink) else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AmplifierSimulator:
        if self._thread is not None:
            raise RuntimeError("this simulator was already started")
        if self._lsl_name is not None:
            from myoedge.edge.sim.ampsim_lsl import LslLink

            self._link = LslLink(self._lsl_name, labels=self.signal.labels, fs=self.signal.fs, adc=self.adc)
        elif self._tcp_port is not None:
            self._link = TcpLink(port=self._tcp_port)
        else:
            self._link = PtyLink(link_path=self._link_path)
        self._thread = threading.Thread(target=self._run, name="myoedge-amp-sim", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the stream to end by itself (``loop=False`` or ``stop_after_s``); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running

    def stop(self, *, timeout_s: float = 5.0) -> SimStats:
        """End the stream, join the thread and close the output; returns the final statistics."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"amp-sim thread did not stop within {timeout_s} s")
        if self._link is not None:
            self._link.drop()  # a pty first lets the reader take what it has not read yet
        return self.stats()

    def stats(self) -> SimStats:
        c = self._count
        period = self.samples_per_frame / self.signal.fs
        return SimStats(address=self.address, running=self.running, connections=c["connections"],
                        frames_sent=c["frames_sent"], info_sent=c["info_sent"],
                        frames_unsent=c["frames_unsent"], bytes_sent=c["bytes_sent"],
                        clipped_samples=self.clipped_samples,
                        late_frames=c["late_frames"], max_late_ms=1e3 * self._max_late_s,
                        stream_s=c["frames"] * period,
                        elapsed_s=time.perf_counter() - self._t0 if self._t0 is not None else 0.0,
                        faults=replace(self._injector.stats), error=self._error)

    def frame_samples(self, index: int) -> np.ndarray:
        """The counts (samples_per_frame, n_channels) of data frame ``index`` of the stream (0-based)."""
        s = self.samples_per_frame
        return self.counts[(index * s + np.arange(s)) % self.counts.shape[0]]

    def _run(self) -> None:
        try:
            self._stream()
        except Exception as exc:
            LOG.exception("amp-sim stopped")
            self._error = f"{type(exc).__name__}: {exc}"

    def _stream(self) -> None:
        link, stop, c, injector = self._link, self._stop, self._count, self._injector
        if not link.wait_reader(stop):
            return
        c["connections"] += 1
        fs, spf, info_every = self.signal.fs, self.samples_per_frame, self._info_every
        period = spf / fs
        n_frames = None if self.loop else self.counts.shape[0] // spf
        if self._stop_after_s is not None:
            limit = max(1, round(self._stop_after_s / period))
            n_frames = limit if n_frames is None else min(n_frames, limit)
        seq, k, attached, announce, restore_at = self._first_seq, 0, True, True, None
        t0 = self._t0 = time.perf_counter()
        while not stop.is_set() and (n_frames is None or k < n_frames):
            for kind, duration in injector.due(k * period):
                if kind == "stall":
                    injector.stats.stalls += 1
                    injector.stats.stalled_s += duration
                    stop.wait(duration)
                else:
                    injector.stats.disconnects += 1
                    LOG.info("amp-sim: disconnecting %s for %g s", link.address, duration)
                    link.drop()
                    attached, restore_at = False, time.perf_counter() + duration
            if not self.fast:
                late = time.perf_counter() - (t0 + (k + 1) * period)
                if late < 0:
                    time.sleep(-late)
                elif late > period:
                    c["late_frames"] += 1
                    self._max_late_s = max(self._max_late_s, late)
            if restore_at is not None and (self.fast or time.perf_counter() >= restore_at):
                if stop.wait(max(0.0, restore_at - time.perf_counter())):
                    break
                link.restore()
                restore_at = None
                LOG.info("amp-sim: back on %s", link.address)
                if self._on_address is not None:
                    self._on_address(link.address)
            if not attached and restore_at is None:
                attached = link.wait_reader(stop) if self.fast else link.poll_reader()
                if attached:
                    c["connections"] += 1
                    announce = True
            if attached and k % TURN_AWAY_EVERY == 0:
                link.turn_away()
            info_due = announce or k % info_every == 0
            stamp = round(k * spf * 1e6 / fs)
            if info_due:
                info = encode_device_info(self.device_info, seq=seq, timestamp_us=stamp)
                if attached and link.write(info, stop):
                    c["info_sent"] += 1
                    announce = False
                elif stop.is_set():
                    break
                else:
                    c["frames_unsent"] += 1
                    attached = attached and link.poll_reader()
                seq = (seq + 1) % SEQ_MODULUS
            frame = Frame(seq=seq, timestamp_us=stamp, samples=self.frame_samples(k), sample_bits=self.bits)
            seq, k, c["frames"] = (seq + 1) % SEQ_MODULUS, k + 1, k + 1
            if not attached:
                c["frames_unsent"] += 1
                continue
            wire = encode_frame(frame)
            faults_before = injector.stats.lost_frames
            out = injector.apply(wire)
            if not link.write(out, stop):
                if stop.is_set():
                    break
                c["frames_unsent"] += injector.stats.lost_frames == faults_before  # else counted as a fault
                attached = False
                continue
            c["bytes_sent"] += len(out)
            if injector.stats.lost_frames == faults_before:
                c["frames_sent"] += 1
                if self._on_sent is not None:
                    self._on_sent(frame, time.perf_counter_ns())
