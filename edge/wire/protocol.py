"""The stream side of the serial frame protocol: ``FrameParser`` turns bytes, cut anywhere, into frames.

The format itself (sync word, field tables, ``Frame``, ``DeviceInfo``, the encoders) is defined once in
``myoedge.edge.wire.frame_format``; every public name of it is re-exported here, so
``from myoedge.edge.wire.protocol import encode_frame, FrameParser, Frame`` is the one import callers need
(design.md section 3 fixes these names in this module). ``docs/protocol.md`` describes both halves.
"""

from __future__ import annotations

from dataclasses import dataclass

from myoedge.edge.wire.crc import CRC_SIZE, crc32
from myoedge.edge.wire.frame_format import (
    CRC_STRUCT,
    HEADER_FIELDS,
    HEADER_SIZE,
    HEADER_STRUCT,
    INFO_FIELDS,
    LABEL_BYTES,
    MAX_CHANNELS,
    MAX_FRAME_SIZE,
    MAX_PAYLOAD,
    MAX_SAMPLES_PER_FRAME,
    NAME_BYTES,
    SAMPLE_BITS,
    SEQ_MODULUS,
    SYNC,
    VERSION,
    DeviceInfo,
    Field,
    Frame,
    FrameType,
    decode_device_info,
    decode_samples,
    encode_device_info,
    encode_frame,
    frame_size,
    header_problem,
    layout_rows,
)
from myoedge.edge.wire.frame_ring import CRC_TABLE, FrameRing, scan_clean_frames

__all__ = [
    "CRC_STRUCT", "HEADER_FIELDS", "HEADER_SIZE", "HEADER_STRUCT", "INFO_FIELDS", "LABEL_BYTES",
    "MAX_CHANNELS", "MAX_FRAME_SIZE", "MAX_PAYLOAD", "MAX_SAMPLES_PER_FRAME", "NAME_BYTES", "SAMPLE_BITS",
    "SEQ_MODULUS", "SYNC", "VERSION", "DeviceInfo", "Field", "Frame", "FrameParser", "FrameRing", "FrameType",
    "ParserStats", "decode_device_info", "decode_samples", "encode_device_info", "encode_frame",
    "frame_size", "header_problem", "layout_rows",
]

@dataclass(slots=True)
class ParserStats:
    """What the parser saw. Every byte fed ends up in a CRC-valid frame, in ``discarded_bytes``, or
    still buffered (``FrameParser.buffered``)."""

    good: int = 0  # data frames delivered
    device_info: int = 0  # device-info frames accepted
    lost: int = 0  # frames missing from the sequence (gaps, across the 2^32 wrap)
    duplicates: int = 0  # CRC-valid frames repeating the last accepted seq: dropped
    out_of_order: int = 0  # CRC-valid frames older than the last accepted seq: dropped
    restarts: int = 0  # device-info frames with an older seq: the device restarted its counter
    breaks: int = 0  # discontinuities of the stream: sequence gaps (lost frames) and restarts
    crc_errors: int = 0  # plausible headers whose frame failed the CRC
    bad_header: int = 0  # sync words followed by an impossible header
    bad_info: int = 0  # CRC-valid device-info frames with unusable content (seq still counted)
    resyncs: int = 0  # times the parser lost alignment and had to hunt for a sync word
    discarded_bytes: int = 0
    last_reject: str = ""  # why the most recent header, CRC or device-info frame was rejected


_HALF = SEQ_MODULUS // 2
_SYNC_TAIL = len(SYNC) - 1


class FrameParser:
    """Turns a byte stream, cut anywhere, into data frames; never raises on any bytes.

    Guarantees: the result does not depend on how the stream is chunked; frames come out once each and
    in sequence order (a frame whose seq is not newer than the last accepted one, modulo 2^32 with a
    half-range window, is dropped and counted); gaps are counted in ``stats.lost``; after ``feed``
    returns at most ``MAX_FRAME_SIZE - 1`` bytes stay buffered. Device-info frames update
    ``device_info`` (and ``device_info_seq``, to place it among the data frames) instead of being
    returned. A device-info frame with an older seq means the device restarted: it is accepted and
    sequence tracking restarts from it, so a rebooted amplifier is not ignored for 2^31 frames.

    Every discontinuity (a gap, a restart) is a *break*: ``stats.breaks`` counts them and
    ``break_frame`` is the number of data frames delivered before the latest one, so a consumer can tell
    which frames of a ``feed`` result come after it (``stats.good - len(frames)`` is the index of the first).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._last_seq: int | None = None
        self._hunting = False
        self.stats = ParserStats()
        self.device_info: DeviceInfo | None = None
        self.device_info_seq: int | None = None
        self.break_frame = 0  # ``stats.good`` at the latest break: data frames from this index on follow it
        self.break_kind = ""  # "lost" or "restart": what the latest break was

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    def reset(self) -> None:
        """Forget buffered bytes (counted as discarded) and the sequence, e.g. after a reconnect."""
        self.stats.discarded_bytes += len(self._buf)
        self._buf.clear()
        self._last_seq = None
        self._hunting = False
        self._break("reset")

    def _discard(self, count: int, reason: str = "") -> None:
        self.stats.discarded_bytes += count
        if reason:
            self.stats.last_reject = reason
        if not self._hunting:
            self._hunting = True
            self.stats.resyncs += 1

    def _admit(self, seq: int, is_info: bool) -> bool:
        last, stats = self._last_seq, self.stats
        if last is not None:
            ahead = (seq - last) % SEQ_MODULUS
            if ahead == 0:
                stats.duplicates += 1
                return False
            if ahead >= _HALF:
                if not is_info:
                    stats.out_of_order += 1
                    return False
                stats.restarts += 1
                self._break("restart")
            elif ahead > 1:
                stats.lost += ahead - 1
                self._break("lost")
        self._last_seq = seq
        return True

    def _break(self, kind: str) -> None:
        """Note a discontinuity before the next data frame (the consumer clears what it holds from before)."""
        self.stats.breaks += 1
        self.break_frame, self.break_kind = self.stats.good, kind

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add bytes from the stream; return the data frames they complete, oldest first."""
        buf, stats = self._buf, self.stats
        buf += data
        frames: list[Frame] = []
        pos, end = 0, len(buf)
        while True:
            start = buf.find(SYNC, pos)
            if start != pos:  # garbage before the next sync word; keep a tail that may start one
                keep = start if start >= 0 else max(pos, end - _SYNC_TAIL)
                if keep > pos:
                    self._discard(keep - pos)
                    pos = keep
                if start < 0:
                    break
            if end - pos < HEADER_SIZE:
                break
            _, version, ftype, n_channels, n_samples, seq, bits, reserved, length, stamp = \
                HEADER_STRUCT.unpack_from(buf, pos)
            problem = header_problem(version, ftype, n_channels, n_samples, bits, reserved, length)
            if problem:
                stats.bad_header += 1
                self._discard(1, problem)
                pos += 1
                continue
            crc_at = pos + HEADER_SIZE + length
            if end < crc_at + CRC_SIZE:
                break  # bounded wait: the header was checked against MAX_PAYLOAD above
            if crc32(buf[pos:crc_at]) != CRC_STRUCT.unpack_from(buf, crc_at)[0]:
                stats.crc_errors += 1
                self._discard(1, f"CRC mismatch in a frame claiming seq {seq}")
                pos += 1  # rescan from here: a real frame may start inside the rejected bytes
                continue
            self._hunting = False
            is_info = ftype == FrameType.DEVICE_INFO
            if self._admit(seq, is_info):
                if not is_info:
                    samples = decode_samples(buf, pos + HEADER_SIZE, n_samples, n_channels, bits)
                    frames.append(Frame(seq=seq, timestamp_us=stamp, samples=samples, sample_bits=bits))
                    stats.good += 1
                else:
                    info = decode_device_info(buf, pos, n_channels, n_samples, bits)
                    if isinstance(info, str):
                        stats.bad_info += 1
                        stats.last_reject = info
                    else:
                        self.device_info, self.device_info_seq = info, seq
                        stats.device_info += 1
            pos = crc_at + CRC_SIZE
        del buf[:pos]
        return frames

    def feed_into(self, data: bytes | bytearray | memoryview, ring: FrameRing) -> int:
        """Like :meth:`feed`, but the data frames go into ``ring`` (no object per frame); their count.

        The frames, their order and every statistic are those ``feed`` would give. Clean frames of the
        ring's shape are decoded by one compiled scan (``myoedge.edge.wire.frame_ring``); from the first
        byte that is anything else, ``feed`` parses the rest and its frames are copied into the ring
        (data frames of another shape are counted in ``ring.skipped`` instead). A break among them sets
        ``ring.break_at``.
        """
        buf, stats = self._buf, self.stats
        buf += data
        last = -1 if self._last_seq is None else self._last_seq
        n, used, last = scan_clean_frames(buf, len(buf), last, ring.template, ring.frame_bytes,
                                          ring.n_samples, ring.n_channels, ring.sample_bits, ring.samples,
                                          ring.seq, ring.timestamp_us, ring.count % ring.capacity, CRC_TABLE)
        if n:
            self._last_seq = last
            self._hunting = False
            stats.good += n
            ring.count += n
        if used:
            del buf[:used]
        if not buf:
            return n
        breaks = stats.breaks
        frames = self.feed(b"")
        if stats.breaks != breaks:  # index of the first frame after the break, among ``frames``
            after = min(max(self.break_frame - (stats.good - len(frames)), 0), len(frames))
            ring.break_at = ring.count + sum(1 for f in frames[:after] if ring.fits(f.samples))
        for frame in frames:
            if ring.fits(frame.samples):
                ring.put(frame.seq, frame.timestamp_us, frame.samples)
                n += 1
            else:
                ring.skipped += 1
        return n
