"""Where the amplifier simulator's bytes go: a pseudo-terminal or a TCP server on 127.0.0.1.

Both look to the reader like any serial port: a pty slave is opened by its path (``/dev/pts/5``), the
TCP server by ``socket://127.0.0.1:PORT``. A link knows whether a reader is attached (a pty whose slave
nobody holds open reports POLLHUP on its master; a TCP server has accepted a connection), can vanish
(``drop``: the disconnect fault) and come back (``restore``), and writes with back-pressure: a reader
that falls behind slows the simulator down instead of losing bytes.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from pathlib import Path

from myoedge.edge.wire.socket_link import busy_message
from myoedge.ground.errors import InputError

try:  # POSIX only; on Windows the simulator serves TCP
    import fcntl
    import termios
    import tty
except ImportError:  # pragma: no cover
    fcntl = termios = tty = None

# pyserial flushes a port's input while opening it; bytes written between the reader's open() and that
# flush would be lost, so a pty reader counts as attached only this long after its open was seen.
PTY_ATTACH_GRACE_S = 0.05
_POLL_S = 0.02


class Link:
    """Interface of an output: ``address`` for ``SerialTransport``, attach, write, vanish, return."""

    address: str

    def poll_reader(self) -> bool:
        """Whether a reader is attached now (accepting a new TCP connection if one is waiting)."""
        raise NotImplementedError

    def wait_reader(self, stop: threading.Event) -> bool:
        """Block until a reader is attached (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if self.poll_reader():
                return True
            stop.wait(_POLL_S)
        return False

    def turn_away(self) -> int:
        """Answer readers that arrive while one is attached (TCP: a busy notice, then hang up); how many."""
        return 0

    def write(self, data: bytes, stop: threading.Event) -> bool:
        """Write all of ``data``, waiting while the reader is behind; False if the reader left or on stop."""
        raise NotImplementedError

    def drop(self) -> None:
        """Vanish like an unplugged device: the reader's next read fails."""
        raise NotImplementedError

    def restore(self) -> None:
        """Come back after ``drop`` (a new pty, or the TCP server listening again on the same port)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _write_fd(fd: int, data: bytes, stop: threading.Event, still_there) -> bool:
    view, sent = memoryview(data), 0
    while sent < len(data):
        try:
            sent += os.write(fd, view[sent:])
            continue
        except BlockingIOError:
            pass
        except OSError:  # EIO, EPIPE, ECONNRESET: the other end is gone
            return False
        if stop.is_set() or not still_there():
            return False
        select.select([], [fd], [], _POLL_S)
    return True


class PtyLink(Link):
    """A pty in raw mode; ``address`` is its slave path. ``link_path``, if given, is kept a symlink to
    the current slave, so a reader can reconnect by that name after a disconnect fault (the new pty
    gets a new number), as ``/dev/serial/by-id`` names work for real adapters."""

    def __init__(self, *, link_path: str | os.PathLike | None = None) -> None:
        if tty is None:  # pragma: no cover
            raise InputError("a pty output needs a POSIX system; use a TCP output (--tcp PORT) instead")
        self._link = Path(link_path) if link_path is not None else None
        self._master: int | None = None
        self._seen_at: float | None = None
        self.address = ""
        self.restore()

    def restore(self) -> None:
        master, slave = os.openpty()
        # raw before any reader opens it: in the default cooked mode the line discipline would turn CR
        # into NL and ^C into a signal in bytes that arrive before the reader configures the port
        tty.setraw(slave)
        self.address = os.ttyname(slave)
        os.close(slave)  # hold only the master, so POLLHUP tells whether a reader has the slave open
        os.set_blocking(master, False)
        self._master, self._seen_at = master, None
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.address)
            os.replace(tmp, self._link)

    def _slave_open(self) -> bool:
        if self._master is None:
            return False
        poller = select.poll()
        poller.register(self._master, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in poller.poll(0))

    def poll_reader(self) -> bool:
        if not self._slave_open():
            self._seen_at = None
            return False
        now = time.monotonic()
        if self._seen_at is None:
            self._seen_at = now
        return now - self._seen_at >= PTY_ATTACH_GRACE_S

    def write(self, data: bytes, stop: threading.Event) -> bool:
        if self._master is None or not self._slave_open():
            self._seen_at = None
            return False
        return _write_fd(self._master, data, stop, self._slave_open)

    def _pending(self) -> int:
        """Bytes written but not yet read by the reader (the slave's input queue)."""
        try:
            fd = os.open(self.address, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCINQ, b"\0" * 4))[0]
        finally:
            os.close(fd)

    def drop(self) -> None:
        # closing the master flushes what the reader has not read yet; give it a moment to take it, so
        # the outage loses exactly the frames of the outage. Bytes just written may still sit in the
        # kernel's flip buffer, not yet counted by TIOCINQ: wait for two empty readings in a row.
        deadline, empty = time.monotonic() + 0.25, 0
        while self._master is not None and time.monotonic() < deadline and self._slave_open() and empty < 2:
            empty = 0 if self._pending() else empty + 1
            time.sleep(0.005)
        self.close()

    def close(self) -> None:
        master, self._master = self._master, None
        if master is not None:
            os.close(master)
        if self._link is not None and self._link.is_symlink():
            self._link.unlink(missing_ok=True)


class TcpLink(Link):
    """A TCP server on 127.0.0.1 serving one reader at a time; ``port`` 0 picks a free port."""

    def __init__(self, *, port: int = 0) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InputError(f"TCP port must be an integer in [0, 65535], got {port!r}")
        self._conn: socket.socket | None = None
        self._server: socket.socket | None = None
        self.port = port
        self.restore()

    def restore(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", self.port))
        except OSError as exc:
            server.close()
            raise InputError(f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror}") from exc
        server.listen(1)
        server.setblocking(False)
        self._server, self.port = server, server.getsockname()[1]
        self.address = f"socket://127.0.0.1:{self.port}"

    def poll_reader(self) -> bool:
        if self._conn is not None:
            return True
        if self._server is None:
            return False
        try:
            conn, _ = self._server.accept()
        except (BlockingIOError, InterruptedError):
            return False
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a 60-byte frame goes out at once
        conn.setblocking(False)
        self._conn = conn
        return True

    def turn_away(self) -> int:
        """Tell readers who connect while one is attached that the amplifier is busy, and hang up."""
        turned = 0
        while self._conn is not None and self._server is not None:
            try:
                conn, _ = self._server.accept()
            except (BlockingIOError, InterruptedError, OSError):
                return turned
            with contextlib.suppress(OSError):
                conn.sendall(busy_message("another reader is connected to this amp-sim"))
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            turned += 1
        return turned

    def write(self, data: bytes, stop: threading.Event) -> bool:
        conn = self._conn
        if conn is None:
            return False
        if _write_fd(conn.fileno(), data, stop, lambda: True):
            return True
        self._close_conn()
        return False

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # what was sent is still delivered before the FIN
            except OSError:
                pass
            conn.close()

    def drop(self) -> None:
        self.close()

    def close(self) -> None:
        self._close_conn()
        server, self._server = self._server, None
        if server is not None:
            server.close()
