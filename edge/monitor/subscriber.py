"""The monitor's end of the runtime's UDP link: estimates and status datagrams into a :class:`RunFeed`.

It binds ``HOST:PORT`` (the runtime's ``--udp`` destination). A multicast group address (224.0.0.0/4) is
joined instead, with ``SO_REUSEADDR``: then the controller and any number of monitors receive the one
datagram the runtime sends, and the loop sends nothing more for them. A datagram that is neither an
estimate nor a status, or whose tag fails with ``key``, is counted and its reason shown, never acted on.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct

from myoedge.edge.loop.estimate import ESTIMATE_MAGIC, decode_estimate
from myoedge.edge.loop.link_auth import DatagramSigner, verify_datagram
from myoedge.edge.loop.status import STATUS_MAGIC, decode_status
from myoedge.edge.monitor.run_feed import RunFeed
from myoedge.ground.errors import InputError


def handle_datagram(feed: RunFeed, data: bytes, signer: DatagramSigner | None = None) -> None:
    """Decode one datagram into ``feed`` (an estimate or a status); anything else is counted."""
    try:
        body = verify_datagram(data, signer) if signer is not None else data
        magic = bytes(body[:4])
        if magic == ESTIMATE_MAGIC:
            feed.add_estimate(decode_estimate(body))
        elif magic == STATUS_MAGIC:
            feed.add_status(decode_status(body))
        else:
            raise InputError(f"neither an estimate nor a status datagram (magic {magic!r})")
    except InputError as exc:
        feed.reject(str(exc))


def open_udp(host: str, port: int) -> socket.socket:
    """A bound, non-blocking UDP socket on ``host:port`` (a multicast group: joined); InputError if not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"cannot resolve {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        group = ipaddress.ip_address(address[0]).is_multicast
        if group:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", port) if family == socket.AF_INET else ("::", port))
            if family == socket.AF_INET:
                mreq = struct.pack("4s4s", socket.inet_aton(address[0]), socket.inet_aton("0.0.0.0"))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            else:
                mreq = socket.inet_pton(socket.AF_INET6, address[0]) + struct.pack("@I", 0)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        else:
            sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = " (another monitor or the controller is bound to it; use a multicast group to share it)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise InputError(f"cannot listen for datagrams on {host}:{port}: {exc.strerror}{hint}") from None
    sock.setblocking(False)
    return sock


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, feed: RunFeed, signer: DatagramSigner | None) -> None:
        self.feed, self.signer = feed, signer

    def datagram_received(self, data: bytes, addr) -> None:
        handle_datagram(self.feed, data, self.signer)

    def error_received(self, exc: Exception) -> None:
        self.feed.reject(f"socket error: {exc}")


async def subscribe(feed: RunFeed, sock: socket.socket, *, key: bytes | None = None):
    """Start receiving on ``sock`` (from :func:`open_udp`) in the running loop; returns the transport."""
    signer = DatagramSigner(key) if key is not None else None
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Protocol(feed, signer), sock=sock)
    return transport
