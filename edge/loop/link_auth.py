"""An optional shared-key HMAC on the estimate datagrams (``myoedge run --udp-key FILE``, docs/runtime.md).

With a key, every datagram is the estimate (layout in :mod:`.estimate`) followed by ``TAG_BYTES`` (16)
bytes: HMAC-SHA256 over the whole estimate datagram, truncated to its first 16 bytes (RFC 2104; the
truncation as RFC 4868 allows, 128 bits). A controller on a shared network recomputes the tag and drops
a datagram whose tag differs (compared in constant time): a forged or corrupted estimate is never
acted on. Without a key, datagrams are unchanged.

The key is the file's bytes, exactly (no newline is stripped): at least ``MIN_KEY_BYTES`` (16) and at
most 4096, e.g. ``head -c 32 /dev/urandom > link.key; chmod 600 link.key``. A key file that every user
can read is refused: a key others can read authenticates nothing.

The HMAC object is keyed once (the key's inner and outer pads hashed); each datagram costs a ``copy()``,
an ``update`` and a ``digest`` (measured in docs/runtime.md).
"""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

from myoedge.ground.errors import InputError

__all__ = ["MIN_KEY_BYTES", "TAG_BYTES", "DatagramSigner", "load_udp_key", "verify_datagram"]

TAG_BYTES = 16
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096


def load_udp_key(path: str | os.PathLike, *, flag: str = "--udp-key") -> bytes:
    """The shared key in ``path``; ``InputError`` (one line) for a missing, world-readable, short or
    long file."""
    p = Path(path)
    try:
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{flag} {p}: not a regular file")
        if os.name == "posix" and info.st_mode & stat.S_IROTH:
            raise InputError(f"{flag} {p} is readable by every user (mode {stat.S_IMODE(info.st_mode):04o}); "
                             f"restrict it first: chmod 600 {p}")
        if info.st_size > MAX_KEY_BYTES:
            raise InputError(f"{flag} {p} has {info.st_size} bytes; a key has at most {MAX_KEY_BYTES}")
        key = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{flag} {p}: cannot read the key: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise InputError(f"{flag} {p} holds {len(key)} bytes; a key needs at least {MIN_KEY_BYTES} (e.g. "
                         f"head -c 32 /dev/urandom > {p})")
    return key


def _check_key(key) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        raise InputError(f"the datagram key must be at least {MIN_KEY_BYTES} bytes")
    return bytes(key)


class DatagramSigner:
    """``tag(datagram)``: the 16-byte truncated HMAC-SHA256 of ``datagram`` under the key."""

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(_check_key(key), digestmod="sha256")

    def tag(self, datagram) -> bytes:
        mac = self._mac.copy()
        mac.update(datagram)
        return mac.digest()[:TAG_BYTES]


def verify_datagram(datagram, key: bytes | DatagramSigner) -> bytes:
    """The estimate datagram inside an authenticated one (pass it to ``decode_estimate``); ``InputError``
    when the tag is missing or does not match (forged, corrupted, or another key)."""
    data = bytes(datagram)
    signer = key if isinstance(key, DatagramSigner) else DatagramSigner(key)
    if len(data) <= TAG_BYTES:
        raise InputError(f"an authenticated datagram has more than {TAG_BYTES} bytes, got {len(data)}")
    body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
    if not hmac.compare_digest(signer.tag(body), tag):
        raise InputError("datagram authentication failed: the HMAC tag does not match (forged, corrupted, or "
                         "sent with another key)")
    return body
