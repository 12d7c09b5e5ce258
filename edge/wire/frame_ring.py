"""The parser's fast path: data frames decoded straight into a preallocated ring, no object per frame.

``FrameParser.feed(data) -> list[Frame]`` makes a ``Frame`` and a samples array for every frame (and a
list per call); at 1 kHz that is thousands of short-lived objects a second in the loop's thread.
``FrameParser.feed_into(data, ring)`` delivers the same frames, in the same order and with the same
statistics, into a :class:`FrameRing` allocated once: ``samples`` (capacity, n_samples, n_channels) int32
with one read-only view per slot, and the sequence numbers and device time stamps beside them.

One compiled kernel (:func:`scan_clean_frames`) takes the frames a read brought as long as they are
*clean*: a sync word where the frame must start, the header the ring's shape implies (version, data
frame, channel and sample counts, sample width, payload length), the whole frame present, the CRC right
and the sequence number the next one. The first byte that is anything else (a partial frame, garbage, a
device-info frame, a CRC error, a gap, another shape) hands the rest to ``feed``, the parser that never
raises and counts everything; what it returns is copied into the ring. Both paths agree byte for byte
(the tests feed the same streams, cut anywhere and with faults, through both).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from myoedge.edge.wire.crc import crc32_table
from myoedge.edge.wire.frame_format import (
    HEADER_SIZE,
    HEADER_STRUCT,
    SEQ_MODULUS,
    SYNC,
    VERSION,
    FrameType,
    frame_size,
)
from myoedge.ground.errors import InputError

__all__ = ["CRC_TABLE", "FrameRing", "scan_clean_frames", "warm_up_scan"]

CRC_TABLE = np.array(crc32_table(), dtype=np.uint32)
_SEQ_AT, _STAMP_AT = 8, 16  # header offsets of the 32-bit sequence number and the 64-bit time stamp


class FrameRing:
    """``capacity`` data frames of one shape, allocated once; ``count`` frames were written so far.

    Frame ``i`` (0-based over the ring's life) lives in slot ``i % capacity``: ``views[slot]`` (read-only
    int32 (n_samples, n_channels), as the parser's ``Frame.samples``), ``seq[slot]``, ``timestamp_us[slot]``.
    A consumer handed ``n`` new frames reads slots ``count - n`` .. ``count - 1``; the capacity must hold
    the frames of one read (a 4 kB read holds at most 4096 // frame size of them).

    ``break_at`` is ``count`` at the parser's latest break (lost frames, a restart): frames from that
    index on come after it (``FrameParser.break_frame`` in ring terms). ``skipped`` counts data frames of
    another shape, which the ring cannot hold (the consumer counts them as skipped).
    """

    def __init__(self, *, n_samples: int, n_channels: int, sample_bits: int, capacity: int = 256) -> None:
        size = frame_size(n_channels=n_channels, n_samples=n_samples, sample_bits=sample_bits)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InputError(f"capacity must be a positive int, got {capacity!r}")
        self.n_samples, self.n_channels, self.sample_bits = n_samples, n_channels, sample_bits
        self.capacity, self.frame_bytes = capacity, size
        self.samples = np.zeros((capacity, n_samples, n_channels), dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int64)
        self.timestamp_us = np.zeros(capacity, dtype=np.uint64)
        views = []
        for slot in range(capacity):
            view = self.samples[slot]
            view.flags.writeable = False
            views.append(view)
        self.views = tuple(views)
        # the 12 header bytes every clean frame of this shape has: sync, version .. n_samples, bits ..
        # payload length (seq and time stamp excluded)
        header = HEADER_STRUCT.pack(SYNC, VERSION, FrameType.DATA, n_channels, n_samples, 0, sample_bits, 0,
                                    size - HEADER_SIZE - 4, 0)
        self.template = np.frombuffer(header[:_SEQ_AT] + header[_SEQ_AT + 4:_STAMP_AT], dtype=np.uint8).copy()
        self.count = 0
        self.break_at = -1
        self.skipped = 0

    def fits(self, samples: np.ndarray) -> bool:
        return samples.shape == (self.n_samples, self.n_channels)

    def put(self, seq: int, timestamp_us: int, samples: np.ndarray) -> None:
        """Copy one frame in (the slow path's frames)."""
        slot = self.count % self.capacity
        self.samples[slot] = samples
        self.seq[slot] = seq
        self.timestamp_us[slot] = timestamp_us
        self.count += 1


@njit(cache=True, nogil=True)
def _crc32(buf, start, stop, table):
    crc = np.uint32(0xFFFFFFFF)
    for i in range(start, stop):
        crc = table[(crc ^ np.uint32(buf[i])) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def scan_clean_frames(buf, end, last_seq, template, frame_bytes, n_samples, n_channels, sample_bits,
                      samples, seqs, stamps, first, table):
    """Decode clean frames from ``buf[0:end]`` into ring slots from ``first`` on (see the module doc).

    ``last_seq`` is -1 when no frame was accepted yet. Returns (frames decoded, bytes used, last seq).
    """
    capacity = samples.shape[0]
    n_tpl = template.shape[0]
    pos = 0
    n = 0
    while n < capacity and end - pos >= frame_bytes:
        ok = True
        for j in range(n_tpl):  # template: header bytes 0..7 and 12..15
            k = j if j < 8 else j + 4
            if buf[pos + k] != template[j]:
                ok = False
                break
        if not ok:
            break
        seq = np.int64(buf[pos + 8]) | (np.int64(buf[pos + 9]) << 8) | (np.int64(buf[pos + 10]) << 16) \
            | (np.int64(buf[pos + 11]) << 24)
        if last_seq >= 0 and seq != (last_seq + 1) % SEQ_MODULUS:
            break
        crc_at = pos + frame_bytes - 4
        want = np.uint32(buf[crc_at]) | (np.uint32(buf[crc_at + 1]) << np.uint32(8)) \
            | (np.uint32(buf[crc_at + 2]) << np.uint32(16)) | (np.uint32(buf[crc_at + 3]) << np.uint32(24))
        if _crc32(buf, pos, crc_at, table) != want:
            break
        stamp = np.uint64(0)
        for b in range(8):
            stamp |= np.uint64(buf[pos + _STAMP_AT + b]) << np.uint64(8 * b)
        slot = (first + n) % capacity
        at = pos + HEADER_SIZE
        for s in range(n_samples):
            for c in range(n_channels):
                if sample_bits == 24:
                    v = np.int32(buf[at]) | (np.int32(buf[at + 1]) << 8) | (np.int32(buf[at + 2]) << 16)
                    if v >= 0x800000:
                        v -= 0x1000000
                    at += 3
                else:
                    v = np.int32(buf[at]) | (np.int32(buf[at + 1]) << 8)
                    if v >= 0x8000:
                        v -= 0x10000
                    at += 2
                samples[slot, s, c] = v
        seqs[slot] = seq
        stamps[slot] = stamp
        last_seq = seq
        n += 1
        pos += frame_bytes
    return n, pos, last_seq


def warm_up_scan(ring: FrameRing) -> None:
    """Compile (or load from numba's cache) the scan for ``ring``'s buffer types, before the port opens."""
    scan_clean_frames(bytearray(4), 0, -1, ring.template, ring.frame_bytes, ring.n_samples, ring.n_channels,
                      ring.sample_bits, ring.samples, ring.seq, ring.timestamp_us, 0, CRC_TABLE)

