"""What ``socket://`` adds to a serial port: a host that must resolve, and a server that may be busy.

A TCP serial bridge (and ``myoedge amp-sim --tcp``) serves one reader at a time. ``amp-sim`` answers a
second reader with :data:`BUSY_BANNER` and a reason, then closes; other bridges just close at once or
never send. :func:`check_not_busy`, called once when the reader first connects, turns either answer into
an ``InputError`` that says the amplifier is busy, instead of a later "no device-info frame".
:func:`socket_port` opens the port without pyserial's input flush, which would drop the first frames of a
server that streams from the moment it accepts.
"""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit

from serial.urlhandler import protocol_socket

from myoedge.ground.errors import InputError

BUSY_BANNER = b"MYOEDGE-BUSY "  # then a one-line reason and b"\n"
BUSY_WAIT_S = 0.25  # how long connect() waits for a first byte or a close (a live amplifier sends at once)


def busy_message(reason: str) -> bytes:
    """What a one-reader server sends a second reader before closing the connection."""
    return BUSY_BANNER + reason.replace("\n", " ").encode("ascii", "replace") + b"\n"


def resolve_host(url: str) -> None:
    """Refuse a ``socket://HOST:PORT`` whose host does not resolve, naming the host."""
    parts = urlsplit(url)
    try:
        socket.getaddrinfo(parts.hostname, parts.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"port {url!r}: host {parts.hostname!r} not found ({why})") from None


def check_not_busy(sock: socket.socket, url: str, *, wait_s: float = BUSY_WAIT_S) -> None:
    """Peek (consume nothing) at what a freshly connected server sends first; refuse a busy one."""
    try:
        ready, _, _ = select.select([sock], [], [], wait_s)
        if not ready:
            return  # silent so far: a slow device, or a bridge that queues; the runtime's wait decides
        head = sock.recv(256, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:
        raise InputError(f"the amplifier at {url} dropped the connection at once ({exc.strerror or exc})"
                         ) from None
    if head.startswith(BUSY_BANNER):
        reason = head[len(BUSY_BANNER):].split(b"\n")[0].decode("ascii", "replace").strip()
        raise InputError(f"the amplifier at {url} is busy: {reason or 'another reader is connected'}; stop "
                         "the other reader first")
    if head == b"":
        raise InputError(f"the amplifier at {url} closed the connection at once without sending anything: "
                         "it is most likely busy with another reader (a TCP bridge serves one at a time)")


def check_socket_url(url: str) -> None:
    """Refuse a ``socket://`` URL without a valid HOST:PORT, or whose host does not resolve."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise InputError(f"port {url!r}: socket:// needs HOST:PORT with PORT in 1..65535 ({exc})") from exc
    if not parts.hostname or port is None or not 1 <= port <= 65535:
        raise InputError(f"port {url!r}: socket:// needs HOST:PORT, e.g. socket://127.0.0.1:5555")
    resolve_host(url)


class _KeepFirstBytes(protocol_socket.Serial):
    """pyserial's ``socket://`` port, except that ``open`` keeps what the server has already sent.

    pyserial ends ``open`` with ``reset_input_buffer()``, a serial port's habit; on a fresh TCP
    connection every byte in the buffer is data the server sent after accepting it, and an amplifier (or
    ``amp-sim --fast``) that streams at once would lose its first frames to the flush, uncounted, when the
    reader's thread is held up between connect and flush on a busy machine."""

    _opening = False

    def open(self) -> None:
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def reset_input_buffer(self) -> None:
        if not self._opening:
            super().reset_input_buffer()


def socket_port(url: str, **options) -> protocol_socket.Serial:
    """An unopened pyserial port for ``socket://HOST:PORT`` (``options`` as ``serial_for_url`` takes
    them, ``do_not_open`` aside) whose ``open`` keeps the bytes that arrive while it connects."""
    options.pop("do_not_open", None)
    port = _KeepFirstBytes(None, **options)
    port.port = url
    return port
