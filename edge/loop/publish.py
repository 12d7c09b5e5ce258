"""Where estimates go: UDP datagrams to the controller, an LSL stream, an in-process callback, a CSV log.

Publishers named by URL (``udp://HOST:PORT``, ``lsl://NAME``) are made by one factory, :func:`open_publisher`,
which ``myoedge run --publish URL`` (and its ``--udp HOST:PORT`` shorthand) uses.

A publisher is called in the loop's thread, so ``publish`` must be quick and must never block:

- ``UdpPublisher`` sends one datagram (layout in ``myoedge.edge.loop.estimate``) from a buffer encoded in
  place, on a non-blocking socket; a datagram the kernel cannot take at once, or one refused by the
  destination (nothing listening yet), is counted and dropped, since a late estimate is worse than none.
  With a shared ``key`` each datagram carries a 16-byte HMAC-SHA256 tag after the estimate
  (:mod:`.link_auth`), sent in the same datagram (``sendmsg`` of the two buffers, no concatenation).
- ``CallbackPublisher`` calls a function with the ``Estimate``; exceptions are counted and logged once,
  so a faulty consumer cannot stop the loop.
- ``LslPublisher`` (:mod:`.lsl_publish`) pushes one LSL sample per estimate; liblsl's threads serve it.
- ``CsvPublisher`` only appends the estimate to a queue; a writer thread turns the queue into rows.
  Rows are written whole (one ``os.write`` of complete lines) to ``<path>.partial``, flushed every
  ``flush_interval_s``; ``close()`` writes the rest, fsyncs and renames the file to ``<path>``. So the
  log under its final name is complete, and a killed process leaves a ``.partial`` file of whole rows.
"""

from __future__ import annotations

import abc
import collections
import errno
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from myoedge.edge.loop.estimate import Estimate, EstimateEncoder, Flags
from myoedge.edge.loop.link_auth import DatagramSigner
from myoedge.ground.errors import InputError
from myoedge.ground.fileio import replace_file

__all__ = ["PUBLISHER_SCHEMES", "CallbackPublisher", "CsvPublisher", "Publisher", "PublisherStats",
           "UdpPublisher", "csv_columns", "open_publisher", "parse_host_port", "publisher_stats"]

LOG = logging.getLogger("myoedge.edge")


@dataclass(slots=True)
class PublisherStats:
    published: int = 0  # estimates handed on successfully
    dropped: int = 0  # estimates that could not be handed on (full socket buffer, refused, raised)
    last_error: str = ""


class Publisher(abc.ABC):
    """Takes estimates in the loop's thread; ``close`` makes everything published durable."""

    name = "publisher"

    def __init__(self) -> None:
        self.stats = PublisherStats()

    @abc.abstractmethod
    def publish(self, estimate: Estimate) -> None:
        """Hand ``estimate`` on without blocking; never raises for a failure of the destination."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the destination (idempotent)."""

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publisher_stats(publishers: Sequence[Publisher]) -> dict:
    """Each publisher's counters by name (with its address where two share a name, as two UDP ones do)."""
    out = {}
    for p in publishers:
        shared = sum(q.name == p.name for q in publishers) > 1
        key = f"{p.name} {getattr(p, 'address', id(p))}" if shared else p.name
        out[key] = {"published": p.stats.published, "dropped": p.stats.dropped,
                    **({"last_error": p.stats.last_error} if p.stats.last_error else {})}
    return out


def parse_host_port(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``[v6addr]:PORT`` for IPv6) -> (host, port), or ``InputError`` saying why not."""
    host, sep, port = str(text).rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"expected HOST:PORT with a port in 1..65535 (e.g. 127.0.0.1:9870), got {text!r}")
    return host, int(port)


class UdpPublisher(Publisher):
    """One datagram per estimate to ``address`` ("HOST:PORT" or (host, port)); with ``key`` (bytes), each
    followed by its HMAC tag."""

    name = "udp"

    def __init__(self, address: str | tuple[str, int], *, n_muscles: int, key: bytes | None = None) -> None:
        super().__init__()
        self._signer = None if key is None else DatagramSigner(key)
        host, port = parse_host_port(address) if isinstance(address, str) else address
        try:
            family, kind, proto, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise InputError(f"cannot resolve UDP destination {host!r}: {exc}") from None
        self.address = f"{host}:{port}"
        self.status_sent = self.status_dropped = 0  # status datagrams (send_status), not estimates
        self._encoder = EstimateEncoder(n_muscles=n_muscles)
        self._sock = socket.socket(family, kind, proto)
        self._sock.setblocking(False)
        try:
            self._sock.connect(target)  # fixed destination: send() skips the per-call address lookup
        except OSError as exc:
            self._sock.close()
            raise InputError(f"cannot send UDP to {self.address}: {exc.strerror}") from None

    def publish(self, estimate: Estimate) -> None:
        try:
            data = self._encoder.encode(estimate)
            if self._signer is None:
                self._sock.send(data)
            else:
                self._sock.sendmsg((data, self._signer.tag(data)))
        except OSError as exc:  # BlockingIOError, ConnectionRefusedError (ICMP port unreachable), ...
            self.stats.dropped += 1
            code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            if code != self.stats.last_error:  # log each new kind of failure once, not every datagram
                LOG.warning("UDP to %s: %s (estimates are dropped while this lasts)", self.address, exc)
            self.stats.last_error = code
            return
        self.stats.published += 1

    def send_status(self, datagram: bytes) -> None:
        """An out-of-band datagram on the same link (the runtime's status, :mod:`.status`), signed like the
        estimates; sent from the status thread, never the loop's. Counted apart from the estimates."""
        try:
            if self._signer is None:
                self._sock.send(datagram)
            else:
                self._sock.sendmsg((datagram, self._signer.tag(datagram)))
        except OSError:
            self.status_dropped += 1
            return
        self.status_sent += 1

    def close(self) -> None:
        self._sock.close()


class CallbackPublisher(Publisher):
    """Calls ``callback(estimate)`` in the loop's thread (keep it short: it adds to the latency)."""

    name = "callback"

    def __init__(self, callback: Callable[[Estimate], object]) -> None:
        super().__init__()
        if not callable(callback):
            raise InputError(f"callback must be callable, got {type(callback).__name__}")
        self._callback = callback

    def publish(self, estimate: Estimate) -> None:
        try:
            self._callback(estimate)
        except Exception as exc:  # the consumer's bug must not stop the loop
            self.stats.dropped += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if self.stats.dropped == 1:
                LOG.exception("estimate callback raised (further errors are only counted)")
            return
        self.stats.published += 1

    def close(self) -> None:
        pass


def csv_columns(muscles: Sequence[str]) -> list[str]:
    return ["index", "seq", "timestamp_us", "valid", "flags", "flag_names", "bad_channels", "theta_rad",
            "torque_nm", "torque_requested_nm", "latency_us", *[f"force_{m}_n" for m in muscles]]


def csv_row(e: Estimate) -> str:
    names = "|".join(f.name.lower() for f in Flags if f in e.flags)
    forces = ",".join(f"{f:.6g}" for f in e.forces_n)
    return (f"{e.index},{e.seq},{e.timestamp_us},{int(e.valid)},{int(e.flags)},{names},{e.bad_channels},"
            f"{e.theta_rad:.6g},{e.torque_nm:.6g},{e.torque_requested_nm:.6g},{e.latency_us:.1f},{forces}\n")


class CsvPublisher(Publisher):
    """A CSV log of every estimate (columns: :func:`csv_columns`), written by a thread of its own."""

    name = "csv"

    def __init__(self, path: str | os.PathLike, *, muscles: Sequence[str], flush_interval_s: float = 0.25,
                 overwrite: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise InputError(f"{self.path} already exists")
        if not 0 < flush_interval_s <= 60:
            raise InputError(f"flush_interval_s must be in (0, 60], got {flush_interval_s!r}")
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.n_muscles = len(muscles)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise InputError(f"cannot write the CSV log {self.partial_path}: {exc.strerror}") from None
        self._written = 0  # bytes of complete rows in the file
        self.delivered = False  # True once close() has moved the complete log to its name
        self._queue: collections.deque[Estimate] = collections.deque()
        self._interval = float(flush_interval_s)
        self._wake = threading.Event()
        self._closing = False
        self._lock = threading.Lock()  # one writer at a time: the thread, or close()
        self._write(",".join(csv_columns(muscles)) + "\n")
        self._thread = threading.Thread(target=self._run, name="myoedge-csv", daemon=True)
        self._thread.start()

    def publish(self, estimate: Estimate) -> None:
        if self._closing:
            self.stats.dropped += 1
            return
        self._queue.append(estimate)  # deque.append is atomic: no lock on the loop's side
        self.stats.published += 1

    def _write(self, text: str) -> None:
        """Append whole lines; on a short or failed write cut the file back to the last whole row."""
        data = text.encode("ascii")
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            os.ftruncate(self._fd, self._written)
            os.lseek(self._fd, self._written, os.SEEK_SET)
            self.stats.last_error = exc.strerror or str(exc)
            raise
        self._written += len(data)

    def _drain(self) -> None:
        queue, rows = self._queue, []
        while queue:
            rows.append(csv_row(queue.popleft()))
        if rows:
            with self._lock:
                if self._fd >= 0:
                    self._write("".join(rows))

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            try:
                self._drain()
            except OSError:
                LOG.exception("CSV log %s: write failed; the rows since the last flush are lost",
                              self.partial_path)

    def close(self) -> None:
        """Write what is queued, fsync, and move the log to its final name (a file already there, which only
        ``overwrite`` allows, is kept as ``<name>.prev``); ``delivered`` says it worked. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._drain()
        try:
            with self._lock:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
            # only an --overwrite run finds a file in place: it is kept as FILE.prev
            replace_file(self.partial_path, self.path, keep_previous=True)
        except OSError as exc:
            self.stats.last_error = f"{exc.strerror or exc}"
            raise
        self.delivered = True


PUBLISHER_SCHEMES = ("udp", "lsl")


def open_publisher(url: str, *, muscles: Sequence[str], rate_hz: float,
                   key: bytes | None = None) -> Publisher:
    """The publisher for ``url``: the one factory behind ``myoedge run --publish``.

    - ``udp://HOST:PORT`` (``udp://[v6addr]:PORT``): :class:`UdpPublisher`, signed with ``key`` when given;
    - ``lsl://NAME``: :class:`~myoedge.edge.loop.lsl_publish.LslPublisher`, an LSL outlet named NAME at the
      nominal rate ``rate_hz`` (the bundle's model rate) with one force channel per muscle.

    A URL that cannot work is an ``InputError`` naming it, before anything is opened.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InputError(f"a publisher is a URL ({', '.join(s + '://' for s in PUBLISHER_SCHEMES)}), e.g. "
                         f"udp://127.0.0.1:9870 or lsl://myoedge-knee; got {url!r}")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "udp":
        return UdpPublisher(_udp_address(url, rest), n_muscles=len(muscles), key=key)
    if scheme == "lsl":
        from myoedge.edge.loop.lsl_publish import LslPublisher, check_stream_name

        return LslPublisher(check_stream_name(url), muscles=muscles, rate_hz=rate_hz)
    raise InputError(f"publisher {url!r}: unknown URL scheme {scheme!r} (known: "
                     f"{', '.join(s + '://' for s in PUBLISHER_SCHEMES)})")


def _udp_address(url: str, rest: str) -> tuple[str, int]:
    if "/" in rest.rstrip("/") or "?" in rest:
        raise InputError(f"publisher {url!r}: udp:// takes HOST:PORT only, e.g. udp://127.0.0.1:9870")
    try:
        return parse_host_port(rest.rstrip("/"))
    except InputError as exc:
        raise InputError(f"publisher {url!r}: {exc}") from None
