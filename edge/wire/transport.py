"""Where the amplifier's bytes come from: a port chosen by URL, and the reader thread that drains it.

Ports are opened the pyserial way, by URL (``serial.serial_for_url``): a real port (``/dev/ttyUSB0``,
``COM3``, a ``/dev/pts/N`` of ``myoedge amp-sim``), ``socket://127.0.0.1:PORT`` (the simulator's TCP
server, or a network serial bridge) or ``loop://`` (bytes written come back; for tests). So the same
reader runs against a simulator and a bench rig.

``SerialTransport`` keeps a port open: a read that fails because the port went away (USB cable pulled,
simulator restarted) closes it and re-opens it with exponential back-off, counted and logged, instead of
ending the program. The first ``connect()`` does not retry: a port that is not there at start-up is a
configuration mistake and gets a clear ``InputError``.

``open_transport(url)`` is the one factory every command uses (``myoedge run``, ``calibrate mvc``, the
demo, ``myoedge bench``): serial paths, ``socket://``, ``loop://`` and pyserial's other URL schemes become a
``SerialTransport``; ``sim://?...`` is the amplifier simulator inside the reader thread (no operating-system
link), provided by ``myoedge.edge.sim`` and loaded when such a URL is opened; ``lsl://NAME`` is an LSL EMG
stream turned into frames (``myoedge.edge.loop.lsl_inlet``, needs pylsl). A URL that cannot work is an
``InputError`` naming it, before anything is opened.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import random
import re
import select
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import serial
import serial.tools.list_ports

from myoedge.edge.wire.ftdi import LATENCY_TIMER_MAX_MS, UDEV_RULE, check_latency_timer
from myoedge.edge.wire.socket_link import check_not_busy, check_socket_url, socket_port
from myoedge.ground.errors import InputError

LOG = logging.getLogger("myoedge.edge")
__all__ = ["DEFAULT_BAUDRATE", "LATENCY_TIMER_MAX_MS", "MAX_SPIN_US", "PLUGIN_SCHEMES", "SERIAL_SCHEMES",
           "UDEV_RULE", "SerialTransport", "Transport", "TransportStats", "check_latency_timer",
           "check_spin_us", "open_transport", "transport_schemes"]

# 8 channels x 2 kHz x 24 bit in 1 ms frames is 76 kB/s, about 760 kbaud with start and stop bits; FTDI
# and CP210x adapters run 2 Mbaud exactly. Ignored by socket:// and loop:// and by USB CDC devices.
DEFAULT_BAUDRATE = 2_000_000
MAX_SPIN_US = 100_000  # a busy-poll longer than 0.1 s only burns the core: frames come every few ms


@dataclass(slots=True)
class TransportStats:
    """Counters of one transport, kept across reconnects."""

    bytes_read: int = 0
    reads: int = 0  # reads that returned data
    read_errors: int = 0  # reads that failed because the port went away or broke
    reconnects: int = 0  # successful re-opens after a read error
    reconnect_attempts: int = 0  # re-open attempts, failed ones included
    last_error: str = ""


class Transport(ABC):
    """A byte source the ``Reader`` drains: connect, read with a short timeout, close.

    ``url`` and ``connected`` are usable before ``connect()``. ``read`` is called from one thread (the
    reader's); ``abort`` may be called from any thread to make a pending ``read`` return soon.
    """

    stats: TransportStats

    @property
    @abstractmethod
    def url(self) -> str: ...

    @property
    @abstractmethod
    def connected(self) -> bool: ...

    @abstractmethod
    def connect(self) -> None:
        """Open the port; raises ``InputError`` saying why when it cannot be opened."""

    @abstractmethod
    def read(self, max_bytes: int = 4096) -> bytes:
        """Up to ``max_bytes`` bytes, as soon as any arrive; ``b""`` after a short timeout."""

    @abstractmethod
    def abort(self) -> None:
        """Make a pending or later ``read`` return promptly (used before stopping the reader)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _errno_of(exc: BaseException) -> int | None:
    """The OS error number behind a pyserial exception (it may sit on the exception it wraps)."""
    while exc is not None:
        number = getattr(exc, "errno", None)
        if isinstance(number, int):
            return number
        exc = exc.__cause__ or exc.__context__
    return None


def _ports_found() -> str:
    ports = sorted(p.device for p in serial.tools.list_ports.comports())
    return ", ".join(ports) if ports else "none"


def check_spin_us(spin_us: object, *, realtime_priority: int | None = None) -> None:
    """Refuse a busy-poll time that is not a number of microseconds within [0, MAX_SPIN_US], and any
    poll in a real-time reader: asked for (``realtime_priority``) or inherited by this process (systemd's
    ``CPUSchedulingPolicy=``, ``chrt``), SCHED_FIFO or SCHED_RR would let the poll hold the tty layer's
    kernel worker, which delivers the bytes, off the loop's core."""
    if isinstance(spin_us, bool) or not isinstance(spin_us, (int, float)) or not 0 <= spin_us <= MAX_SPIN_US:
        raise InputError(f"spin_us must be a number of microseconds within [0, {MAX_SPIN_US}], "
                         f"got {spin_us!r}")
    if spin_us and (realtime_priority is not None or _inherited_realtime()):
        why = "a real-time priority" if realtime_priority is not None else \
            "a real-time scheduling policy set from outside (systemd's CPUSchedulingPolicy=, chrt)"
        raise InputError(f"busy-polling the port (spin_us) and {why} do not go together: under "
                         "SCHED_FIFO or SCHED_RR the poll would hold the tty layer's kernel worker, "
                         "which delivers the bytes, off the loop's core; choose one (docs/runtime.md)")


def _inherited_realtime() -> bool:
    """Whether this process already runs under a real-time policy (SCHED_FIFO or SCHED_RR)."""
    if not hasattr(os, "sched_getscheduler"):
        return False
    return os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR)


class SerialTransport(Transport):
    """A pyserial port opened by URL with ``exclusive=True``, re-opened with back-off when it disappears.

    Reads return as soon as any bytes are there: where the port has a file descriptor (POSIX serial
    ports, ptys, sockets) it is put in non-blocking mode and waited on with ``select`` for at most
    ``timeout_s``; elsewhere (``loop://``, Windows) the first byte is waited for and then what is
    waiting is taken. (pyserial's ``read(n)`` with a timeout would wait for all ``n`` bytes.)

    ``spin_us`` > 0 busy-polls the port for up to that long before blocking in ``select``: a loop that
    sleeps between 1 ms frames wakes on a cold core (a virtual one may not even be running) and its
    first instructions after the wake cost several times their warm cost; polling keeps the core and its
    caches with the loop, at the price of that core (the reader thread uses ~100 % of it while frames
    flow). For a core kept for the loop (docs/runtime.md); refused in a real-time process
    (``check_spin_us``).

    Back-off after the port vanishes: ``backoff_initial_s`` doubling to ``backoff_max_s``, each delay
    jittered to 50-100 % of itself so that several readers do not retry in lock-step. The 1 s cap
    bounds the time from the port's return to the reconnect (the issue's recovery target is 1 s).
    """

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE, timeout_s: float = 0.05,
                 backoff_initial_s: float = 0.05, backoff_max_s: float = 1.0, exclusive: bool = True,
                 sysfs_root: str | os.PathLike = "/sys", seed: int | None = None,
                 spin_us: float = 0.0) -> None:
        if not isinstance(url, str) or not url:
            raise InputError(f"a port URL must be a non-empty string, got {url!r}")
        check_spin_us(spin_us)
        self.spin_us = float(spin_us)
        self._spin_ns = int(spin_us * 1000)
        if not 0 < timeout_s <= 10 or not 0 < backoff_initial_s <= backoff_max_s:
            raise InputError(f"need 0 < timeout_s <= 10 and 0 < backoff_initial_s <= backoff_max_s, got "
                             f"{timeout_s}, {backoff_initial_s}, {backoff_max_s}")
        self._url, self._baudrate, self._timeout_s = url, int(baudrate), float(timeout_s)
        self._backoff = (float(backoff_initial_s), float(backoff_max_s))
        self._exclusive, self._sysfs_root = exclusive, sysfs_root
        self._rng = random.Random(seed)
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None
        self._ever_connected = False
        self._aborted = False
        self._failures = 0  # consecutive failed re-open attempts
        self._next_attempt = 0.0
        self._lost_at = 0.0
        self.latency_timer_ms: int | None = None
        self.stats = TransportStats()

    @property
    def url(self) -> str:
        return self._url

    @property
    def connected(self) -> bool:
        return self._port is not None

    def connect(self) -> None:
        if self._port is not None:
            return
        self._aborted = False
        try:
            self._open()
        except serial.SerialException as exc:
            raise self._explain(exc) from exc
        sock = getattr(self._port, "_socket", None)  # socket:// only: a busy server says so at once
        if sock is not None:
            try:
                check_not_busy(sock, self._url)
            except InputError:
                self._close_port()
                raise
        self._ever_connected = True

    def _open(self) -> None:
        options = {"baudrate": self._baudrate, "timeout": self._timeout_s, "do_not_open": True}
        try:
            if self._url.startswith("socket://"):
                port = socket_port(self._url, **options)
            else:
                try:
                    port = serial.serial_for_url(self._url, exclusive=self._exclusive, **options)
                except TypeError:  # a URL handler (or a pyserial before 3.3) without ``exclusive``
                    LOG.debug("%s: no exclusive-access option for this port; opening it shared", self._url)
                    port = serial.serial_for_url(self._url, **options)
        except ValueError as exc:  # unknown URL scheme or an impossible setting: no retry can fix it
            raise InputError(f"cannot use port {self._url!r}: {exc}") from exc
        port.open()
        try:
            try:
                fd = port.fileno()
            except Exception:  # loop:// and Windows ports have none
                fd = None
            if fd is not None:
                port.timeout = 0  # non-blocking: ``read`` waits with select and takes what is there
        except BaseException:
            port.close()
            raise
        self._port, self._fd = port, fd
        if "://" not in self._url and sys.platform.startswith("linux"):
            self.latency_timer_ms = check_latency_timer(self._url, sysfs_root=self._sysfs_root)

    def _explain(self, exc: serial.SerialException) -> InputError:
        url, number, text = self._url, _errno_of(exc), str(exc)
        if "://" not in url:
            if number == errno.ENOENT or "FileNotFound" in text:
                return InputError(f"no serial port {url} (is the amplifier plugged in? ports found: "
                                  f"{_ports_found()})")
            if number in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY) or "exclusive" in text:
                return InputError(f"serial port {url} is in use by another program (it is opened with an "
                                  "exclusive lock); stop that program first")
            if number == errno.EACCES:
                return InputError(f"no permission to open {url} (add the user to the 'dialout' group, or "
                                  "install the udev rule from myoedge.deploy)")
        elif number == errno.ECONNREFUSED or "refused" in text:
            return InputError(f"nothing accepts connections at {url} (is `myoedge amp-sim --tcp PORT` or "
                              "the serial bridge running?)")
        return InputError(f"cannot open {url}: {text.removeprefix(f'Could not open port {url}: ')}")

    def read(self, max_bytes: int = 4096) -> bytes:
        if self._port is None:
            if not self._ever_connected:
                raise RuntimeError(f"{self._url}: call connect() before read()")
            return self._try_reopen()
        try:
            if self._fd is not None:
                data = self._poll(max_bytes) if self._spin_ns else b""
                if not data:
                    # one select and one read(2) of what is there: pyserial's own read() would add a
                    # select, a second one to see that nothing more came, and a copy, to every frame
                    ready, _, _ = select.select([self._fd], [], [], self._timeout_s)
                    data = os.read(self._fd, max_bytes) if ready else b""
                    if ready and not data:  # readable and no bytes: the device went away (EOF)
                        raise serial.SerialException("device reports readiness to read but returned no data")
            else:
                data = self._port.read(1)
                waiting = self._port.in_waiting if data else 0
                if waiting:
                    data += self._port.read(min(waiting, max_bytes - 1))
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            return b""
        if data:
            self.stats.reads += 1
            self.stats.bytes_read += len(data)
        return data

    def _poll(self, max_bytes: int) -> bytes:
        """Non-blocking reads until bytes arrive or ``spin_us`` has passed (then b""). A port with no
        bytes answers b"" (a tty with VMIN 0) or EAGAIN (a socket); an end of file is left to the
        ``select`` that follows, which sees it as readable with nothing to read."""
        fd, end = self._fd, time.perf_counter_ns() + self._spin_ns
        while time.perf_counter_ns() < end:
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                continue
            if data:
                return data
        return b""

    def _lost(self, exc: BaseException) -> None:
        self.stats.read_errors += 1
        self.stats.last_error = str(exc)
        LOG.warning("%s: port lost (%s); reconnecting with back-off", self._url, exc)
        self._close_port()
        self._failures = 0
        self._lost_at = time.monotonic()
        self._next_attempt = self._lost_at + self._delay()

    def _delay(self) -> float:
        initial, cap = self._backoff
        delay = min(cap, initial * 2.0 ** min(self._failures, 30))
        return delay * self._rng.uniform(0.5, 1.0)

    def _try_reopen(self) -> bytes:
        """One back-off step: wait (at most ``timeout_s``, so ``abort`` is noticed), then maybe re-open."""
        wait = self._next_attempt - time.monotonic()
        if self._aborted:
            return b""
        if wait > 0:
            time.sleep(min(wait, self._timeout_s))
            return b""
        self.stats.reconnect_attempts += 1
        try:
            self._open()
        except (serial.SerialException, OSError) as exc:
            self._failures += 1
            self._next_attempt = time.monotonic() + self._delay()
            LOG.debug("%s: re-open attempt %d failed: %s", self._url, self._failures, exc)
            return b""
        self.stats.reconnects += 1
        LOG.info("%s: reconnected after %.2f s (%d failed attempts); %d reconnects so far", self._url,
                 time.monotonic() - self._lost_at, self._failures, self.stats.reconnects)
        return b""

    def write(self, data: bytes) -> int:
        """Send bytes to the device (amplifier commands; with ``loop://`` they come back to ``read``)."""
        if self._port is None:
            raise RuntimeError(f"{self._url}: not connected")
        return self._port.write(data)

    def abort(self) -> None:
        self._aborted = True

    def _close_port(self) -> None:
        port, self._port, self._fd = self._port, None, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:  # closing a vanished device may fail too
                LOG.debug("%s: close failed: %s", self._url, exc)

    def close(self) -> None:
        self._aborted = True
        self._close_port()
        self._ever_connected = False


# pyserial's URL handlers (serial.serial_for_url) besides plain device paths
SERIAL_SCHEMES = ("socket", "loop", "rfc2217", "spy", "hwgrep", "alt", "cp2110")
# schemes served by a room above this one: scheme -> (module, factory name), imported when first opened
PLUGIN_SCHEMES = {"sim": ("myoedge.edge.sim.bench_sim", "sim_transport"),
                  "lsl": ("myoedge.edge.loop.lsl_inlet", "lsl_transport")}
_WINDOWS_PORT = re.compile(r"^(?:\\\\\.\\)?COM\d+$", re.IGNORECASE)


def transport_schemes() -> tuple[str, ...]:
    """The URL schemes ``open_transport`` knows (a path or ``COMn`` needs none)."""
    return (*SERIAL_SCHEMES, *PLUGIN_SCHEMES)


def open_transport(url: str, **options) -> Transport:
    """The transport for ``url``, not yet connected (``Reader.start`` or ``connect()`` opens it).

    - ``/dev/ttyUSB0``, ``/dev/ttyACM0``, a ``/dev/pts/N`` of ``myoedge amp-sim``, ``COM3``: a serial port;
    - ``socket://HOST:PORT``: a TCP serial bridge or ``myoedge amp-sim --tcp PORT``;
    - ``loop://``: bytes written come back (tests); other pyserial schemes (``rfc2217://`` ...) as pyserial;
    - ``sim://?channels=8&fs=2000&...``: the amplifier simulator inside the reader thread
      (``myoedge.edge.sim.bench_sim.sim_transport`` lists its parameters);
    - ``lsl://NAME?timeout=5&...``: the LSL EMG stream named NAME (``myoedge.edge.loop.lsl_inlet``).

    ``options`` go to the transport (``SerialTransport``'s keyword arguments for serial URLs). Raises
    ``InputError`` for a URL that cannot work: empty, an unknown scheme, ``socket://`` without a valid
    host and port.
    """
    if not isinstance(url, str) or not url.strip():
        raise InputError(f"a port URL must be a non-empty string, got {url!r}")
    url = url.strip()
    if "://" not in url:
        if not (url.startswith(("/", "./", "../")) or _WINDOWS_PORT.match(url)):
            raise InputError(f"port {url!r} is neither a device path (/dev/ttyUSB0, /dev/pts/3), a Windows "
                             f"port (COM3) nor a URL with one of the schemes "
                             f"{', '.join(transport_schemes())}")
        return SerialTransport(url, **options)
    scheme = url.split("://", 1)[0].lower()
    if scheme in PLUGIN_SCHEMES:
        if options.get("spin_us"):
            raise InputError(f"port {url!r}: spin_us (busy-polling) applies to serial ports and sockets, not "
                             f"to {scheme}:// streams")
        options.pop("spin_us", None)
        module, name = PLUGIN_SCHEMES[scheme]
        factory: Callable[..., Transport] = getattr(importlib.import_module(module), name)
        return factory(url, **options)
    if scheme not in SERIAL_SCHEMES:
        raise InputError(f"port {url!r}: unknown URL scheme {scheme!r} (known: "
                         f"{', '.join(s + '://' for s in transport_schemes())}, or a device path)")
    if scheme == "socket":
        check_socket_url(url)
    return SerialTransport(url, **options)
