"""The runtime's status datagram: counters, recent latency and the latest envelopes, a few times a second.

Estimates go out one datagram per model step (:mod:`.estimate`); what a live display needs besides them
(frames lost, CRC errors, reconnects, the loop's latency, the envelopes the model saw) is sent by a
thread of its own (``Runtime(status_interval_s=...)``, ``myoedge run --status-hz``) on the same UDP link,
so the loop does no extra work per estimate. The datagram starts with another magic, ``'MYOS'``: a
receiver of estimates rejects it cleanly (``decode_estimate`` raises ``InputError`` naming the magic;
a C controller that checks ``magic`` drops it).

The layout is defined once, in ``FIELDS`` (the byte table of docs/runtime.md comes from
:func:`layout_rows`), little-endian and naturally aligned; ``n_channels`` float32 envelopes follow the
fixed part, so a datagram is ``FIXED_SIZE + 4 * n_channels`` bytes (and a 16-byte tag with ``--udp-key``).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from myoedge.edge.wire.protocol import MAX_CHANNELS
from myoedge.ground.errors import InputError

__all__ = ["FIELDS", "FIXED_SIZE", "STATUS_MAGIC", "STATUS_VERSION", "Status", "decode_status",
           "encode_status", "layout_rows"]

STATUS_MAGIC = b"MYOS"
STATUS_VERSION = 1
U32 = 0xFFFFFFFF

# (name, struct code, meaning): the fixed part, in order
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("magic", "4s", "'MYOS'"),
    ("version", "B", f"layout version, {STATUS_VERSION}"),
    ("n_channels", "B", f"C, number of envelopes that follow (1 to {MAX_CHANNELS})"),
    ("watchdog_ms", "H", "the runtime's watchdog: estimates are flagged STALE after this long "
                                          "without a frame"),
    ("index", "I", "status counter since start, +1 per status datagram"),
    ("uptime_ms", "I", "milliseconds since the loop started"),
    ("frames", "I", "frames processed"),
    ("estimates", "I", "estimates published (stale ones included)"),
    ("invalid_estimates", "I", "estimates with an invalidating flag"),
    ("stale_estimates", "I", "estimates the watchdog published flagged STALE"),
    ("lost_frames", "I", "frames the parser counted lost (sequence gaps)"),
    ("crc_errors", "I", "frames dropped for a bad CRC"),
    ("reconnects", "I", "times the port was lost and opened again"),
    ("resets", "I", "pipeline resets (restart, lost frames, reconnect, gap)"),
    ("deadline_misses", "I", "frames whose processing exceeded the frame period"),
    ("latency_p50_us", "f", "processing (read to publish) p50 over the last second, us (NaN: no frame)"),
    ("latency_p99_us", "f", "p99, same frames"),
    ("latency_p999_us", "f", "p99.9, same frames"),
    ("latency_max_us", "f", "max, same frames"),
)
_FIXED = struct.Struct("<" + "".join(code for _, code, _ in FIELDS))
FIXED_SIZE = _FIXED.size
_COUNTERS = tuple(name for name, code, _ in FIELDS[6:] if code == "I")  # after index, uptime_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """One status datagram's content (``envelopes``: the newest normalised envelope row, per channel)."""

    index: int
    watchdog_ms: int
    uptime_ms: int
    frames: int
    estimates: int
    invalid_estimates: int
    stale_estimates: int
    lost_frames: int
    crc_errors: int
    reconnects: int
    resets: int
    deadline_misses: int
    latency_p50_us: float
    latency_p99_us: float
    latency_p999_us: float
    latency_max_us: float
    envelopes: tuple[float, ...]

    def to_dict(self) -> dict:
        """JSON-ready (NaN latencies become None)."""
        out = {name: getattr(self, name) for name in self.__slots__ if name != "envelopes"}
        for name in ("latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us"):
            out[name] = None if math.isnan(out[name]) else round(out[name], 1)
        out["envelopes"] = [None if math.isnan(v) else v for v in self.envelopes]
        return out


def encode_status(status: Status) -> bytes:
    c = len(status.envelopes)
    if not 1 <= c <= MAX_CHANNELS:
        raise InputError(f"a status carries 1 to {MAX_CHANNELS} envelopes, got {c}")
    head = _FIXED.pack(STATUS_MAGIC, STATUS_VERSION, c, min(int(status.watchdog_ms), 0xFFFF),
                       status.index & U32, status.uptime_ms & U32,
                       *(getattr(status, name) & U32 for name in _COUNTERS),
                       status.latency_p50_us, status.latency_p99_us, status.latency_p999_us,
                       status.latency_max_us)
    return head + struct.pack(f"<{c}f", *status.envelopes)


def decode_status(data: bytes | bytearray | memoryview) -> Status:
    """Parse one status datagram; ``InputError`` says what is wrong with one that is not."""
    data = bytes(data)
    if len(data) < FIXED_SIZE:
        raise InputError(f"a status datagram has at least {FIXED_SIZE} bytes, got {len(data)}")
    values = _FIXED.unpack_from(data, 0)
    magic, version, c = values[:3]
    if magic != STATUS_MAGIC:
        raise InputError(f"not a status datagram: magic {magic!r}, expected {STATUS_MAGIC!r}")
    if version != STATUS_VERSION:
        raise InputError(f"status layout version {version}, this reader speaks {STATUS_VERSION}")
    if c < 1 or len(data) != FIXED_SIZE + 4 * c:
        raise InputError(f"a status of {c} envelopes has {FIXED_SIZE + 4 * c} bytes, got {len(data)}")
    fields = dict(zip((name for name, _, _ in FIELDS[3:]), values[3:], strict=True))
    return Status(**fields, envelopes=struct.unpack_from(f"<{c}f", data, FIXED_SIZE))


def layout_rows() -> list[tuple[str, str, str, str, str]]:
    """The byte table as (offset, size, C type, field, meaning) rows, for the docs."""
    ctypes = {"4s": "uint8_t[4]", "B": "uint8_t", "H": "uint16_t", "I": "uint32_t", "f": "float"}
    rows, offset = [], 0
    for name, code, meaning in FIELDS:
        size = struct.calcsize("<" + code)
        rows.append((str(offset), str(size), ctypes[code], name, meaning))
        offset += size
    rows.append((str(offset), "4C", "float[C]", "envelopes",
                 "the newest envelope row the model saw, per channel, normalised to MVC"))
    return rows
