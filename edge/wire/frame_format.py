"""The serial frame format between an EMG amplifier and the host, defined once.

Every frame is ``header | payload | crc``. The header starts with a 4-byte sync word so a reader that
joins mid-stream (or loses bytes) can find the next frame start, carries a 32-bit sequence number so
losses are counted exactly even after the counter wraps (an 8-bit counter cannot tell 3 lost frames from
259), and repeats the payload length next to the channel count, samples per frame and sample width: a
header whose fields disagree is rejected at once, before the reader waits for any payload. Sizes are
bounded (``MAX_CHANNELS``, ``MAX_SAMPLES_PER_FRAME``), so garbage can never make the reader wait for
more than ``MAX_FRAME_SIZE`` bytes. A CRC-32 (``myoedge.edge.wire.crc``) covers header and payload.

The field tables below (``HEADER_FIELDS``, ``INFO_FIELDS``) are the single definition of the layout:
the encoder and the parser build their structs from them, ``layout_rows`` renders them for
``docs/protocol.md`` (a test keeps the two equal) and the firmware C header generator reads them.

This module is the format (what a frame is, bytes in and out of one frame); ``myoedge.edge.wire.protocol``
holds the stream parser and re-exports every public name here, which is where callers import them from.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from myoedge.edge.wire.crc import CRC_SIZE, crc32
from myoedge.ground.errors import InputError

SYNC = b"\xa5\x5a\xc3\x3c"  # four distinct bytes: no shifted copy of the word overlaps itself
VERSION = 1
MAX_CHANNELS = 64
MAX_SAMPLES_PER_FRAME = 64
SAMPLE_BITS = (16, 24)
SEQ_MODULUS = 1 << 32


class FrameType(IntEnum):
    DATA = 1
    DEVICE_INFO = 2


_CTYPES = {"B": "uint8", "H": "uint16", "I": "uint32", "Q": "uint64", "f": "float32", "d": "float64",
           "s": "uint8"}


@dataclass(frozen=True)
class Field:
    """One field of the layout. Offsets count from the frame start; per-channel parts scale with C."""

    name: str
    code: str  # struct code of one element, little-endian
    meaning: str
    per_channel: bool = False  # the field is repeated C = n_channels times
    offset: int = 0
    offset_per_channel: int = 0

    @property
    def size(self) -> int:
        """Bytes of one element (of all of the field when it is not per channel)."""
        return struct.calcsize("<" + self.code)

    @property
    def ctype(self) -> str:
        count = self.code[:-1]
        return _CTYPES[self.code[-1]] + ("[C]" if self.per_channel else "") + (f"[{count}]" if count else "")

    def offset_in(self, n_channels: int) -> int:
        return self.offset + self.offset_per_channel * n_channels


def _layout(start: int, specs: list[tuple[str, str, str, bool]]) -> tuple[Field, ...]:
    fields, fixed, per = [], start, 0
    for name, code, meaning, per_channel in specs:
        fields.append(Field(name, code, meaning, per_channel, fixed, per))
        size = struct.calcsize("<" + code)
        fixed, per = (fixed, per + size) if per_channel else (fixed + size, per)
    return tuple(fields)


HEADER_FIELDS = _layout(0, [
    ("sync", "4s", "sync word A5 5A C3 3C; marks a frame start", False),
    ("version", "B", f"protocol version, {VERSION}", False),
    ("frame_type", "B", "1 = data frame, 2 = device-info frame", False),
    ("n_channels", "B", f"channel count C, 1 to {MAX_CHANNELS}", False),
    ("n_samples", "B", f"samples per channel in a data frame S, 1 to {MAX_SAMPLES_PER_FRAME}", False),
    ("seq", "I", "sequence number: +1 for every frame of any type, wraps from 2^32 - 1 to 0", False),
    ("sample_bits", "B", "sample width B: 16 or 24 bits", False),
    ("reserved", "B", "0; a reader rejects any other value", False),
    ("payload_length", "H", "payload bytes L; must equal the length that C, S and B imply", False),
    ("timestamp_us", "Q", "device clock in microseconds at the first sample of the frame", False),
])
HEADER_STRUCT = struct.Struct("<" + "".join(f.code for f in HEADER_FIELDS))
HEADER_SIZE = HEADER_STRUCT.size
CRC_STRUCT = struct.Struct("<I")

INFO_FIELDS = _layout(HEADER_SIZE, [
    ("sample_rate_hz", "d", "samples per second per channel, finite and > 0", False),
    ("scale_v", "f", "volts per count of each channel, finite", True),
    ("labels", "8s", "channel labels: 1 to 8 printable ASCII characters, NUL-padded", True),
    ("device_name", "32s", "firmware and device name: printable ASCII, NUL-padded", False),
])
_RATE, _SCALE, _LABELS, _NAME = INFO_FIELDS
LABEL_BYTES, NAME_BYTES = _LABELS.size, _NAME.size
_INFO_FIXED = _NAME.offset + _NAME.size - HEADER_SIZE
_INFO_PER_CHANNEL = _NAME.offset_per_channel

MAX_PAYLOAD = MAX_CHANNELS * MAX_SAMPLES_PER_FRAME * max(SAMPLE_BITS) // 8
MAX_FRAME_SIZE = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
assert _INFO_FIXED + _INFO_PER_CHANNEL * MAX_CHANNELS <= MAX_PAYLOAD


def _linear(fixed: int, per_channel: int) -> str:
    if not per_channel:
        return str(fixed)
    return f"{fixed} + {per_channel}C" if fixed else f"{per_channel}C"


def layout_rows(frame_type: FrameType) -> list[tuple[str, str, str, str, str]]:
    """The byte table of a frame type as (offset, size, type, field, meaning) rows, for docs and codegen."""
    rows = [(str(f.offset), str(f.size), f.ctype, f.name, f.meaning) for f in HEADER_FIELDS]
    if frame_type == FrameType.DATA:
        rows.append((str(HEADER_SIZE), "L = S * C * B / 8", "int16 or int24 [S][C]", "samples",
                     "two's complement, little-endian, sample-major: all C channels of sample 0 first"))
        crc_at = f"{HEADER_SIZE} + L"
    else:
        rows += [(_linear(f.offset, f.offset_per_channel), _linear(0 if f.per_channel else f.size,
                  f.size if f.per_channel else 0), f.ctype, f.name, f.meaning) for f in INFO_FIELDS]
        crc_at = _linear(HEADER_SIZE + _INFO_FIXED, _INFO_PER_CHANNEL)
    rows.append((crc_at, str(CRC_SIZE), "uint32", "crc", "CRC-32/ISO-HDLC of every byte before it"))
    return rows


def _payload_length(frame_type: int, n_channels: int, n_samples: int, sample_bits: int) -> int:
    if frame_type == FrameType.DATA:
        return n_channels * n_samples * sample_bits // 8
    return _INFO_FIXED + _INFO_PER_CHANNEL * n_channels


def header_problem(version: int, frame_type: int, n_channels: int, n_samples: int, sample_bits: int,
                   reserved: int, length: int) -> str:
    """Why a header is impossible, or "" when it is plausible (its CRC is checked later)."""
    if version != VERSION:
        return f"unsupported protocol version {version} (this reader speaks version {VERSION})"
    if frame_type not in (FrameType.DATA, FrameType.DEVICE_INFO):
        return f"unknown frame type {frame_type} (expected 1 or 2)"
    if reserved:
        return f"reserved byte is {reserved} (expected 0)"
    if not 1 <= n_channels <= MAX_CHANNELS or not 1 <= n_samples <= MAX_SAMPLES_PER_FRAME:
        return (f"{n_channels} channels x {n_samples} samples is outside 1..{MAX_CHANNELS} x "
                f"1..{MAX_SAMPLES_PER_FRAME}")
    if sample_bits not in SAMPLE_BITS:
        return f"sample width {sample_bits} bits (expected 16 or 24)"
    expected = _payload_length(frame_type, n_channels, n_samples, sample_bits)
    if length != expected:
        return f"payload length {length} disagrees with the header's sizes (expected {expected})"
    return ""


def frame_size(*, n_channels: int, n_samples: int, sample_bits: int) -> int:
    """Bytes of one data frame on the wire, header and CRC included."""
    _check_int("n_channels", n_channels, 1, MAX_CHANNELS)
    _check_int("n_samples", n_samples, 1, MAX_SAMPLES_PER_FRAME)
    if sample_bits not in SAMPLE_BITS:
        raise InputError(f"sample_bits must be 16 or 24, got {sample_bits!r}")
    return HEADER_SIZE + n_channels * n_samples * sample_bits // 8 + CRC_SIZE


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _printable(text: object, what: str, *, min_len: int, max_len: int) -> str:
    if (not isinstance(text, str) or not min_len <= len(text) <= max_len
            or any(not " " <= ch <= "~" for ch in text)):
        raise InputError(f"{what} must be {min_len} to {max_len} printable ASCII characters, got {text!r}")
    return text


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class Frame:
    """One data frame. ``samples`` is int32 of shape (n_samples, n_channels) holding raw counts.

    Construction does not validate (the parser makes 1000 of these a second); ``encode_frame`` does.
    """

    seq: int
    timestamp_us: int
    samples: np.ndarray
    sample_bits: int = 16

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    @property
    def n_channels(self) -> int:
        return self.samples.shape[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return ((self.seq, self.timestamp_us, self.sample_bits) == (other.seq, other.timestamp_us,
                other.sample_bits) and np.array_equal(self.samples, other.samples))


@dataclass(frozen=True, eq=False, kw_only=True)
class DeviceInfo:
    """What the amplifier says about itself, so the host can check its configuration against it.

    ``scale_v[c]`` converts channel c to volts: volts = counts * scale_v[c].
    """

    sample_rate_hz: float
    scale_v: np.ndarray
    labels: tuple[str, ...]
    sample_bits: int = 16
    samples_per_frame: int = 1
    device_name: str = ""

    def __post_init__(self) -> None:
        rate = self.sample_rate_hz
        if not isinstance(rate, (int, float, np.floating)) or not math.isfinite(rate) or rate <= 0:
            raise InputError(f"sample_rate_hz must be a finite number > 0, got {rate!r}")
        labels = tuple(self.labels)
        if not 1 <= len(labels) <= MAX_CHANNELS:
            raise InputError(f"expected 1 to {MAX_CHANNELS} channel labels, got {len(labels)}")
        for label in labels:
            _printable(label, "a channel label", min_len=1, max_len=LABEL_BYTES)
        scale = np.array(self.scale_v, dtype=np.float32).reshape(-1)
        if scale.shape != (len(labels),) or not np.all(np.isfinite(scale)):
            raise InputError(f"scale_v must hold {len(labels)} finite numbers (one per label), "
                             f"got {np.asarray(self.scale_v)!r}")
        if self.sample_bits not in SAMPLE_BITS:
            raise InputError(f"sample_bits must be 16 or 24, got {self.sample_bits!r}")
        _check_int("samples_per_frame", self.samples_per_frame, 1, MAX_SAMPLES_PER_FRAME)
        _printable(self.device_name, "device_name", min_len=0, max_len=NAME_BYTES)
        scale.setflags(write=False)
        object.__setattr__(self, "sample_rate_hz", float(rate))
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scale_v", scale)

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceInfo):
            return NotImplemented
        return ((self.sample_rate_hz, self.labels, self.sample_bits, self.samples_per_frame,
                 self.device_name) == (other.sample_rate_hz, other.labels, other.sample_bits,
                 other.samples_per_frame, other.device_name) and np.array_equal(self.scale_v, other.scale_v))


def _encode(frame_type: FrameType, seq: int, timestamp_us: int, n_channels: int, n_samples: int,
            sample_bits: int, payload: bytes) -> bytes:
    _check_int("seq", seq, 0, SEQ_MODULUS - 1)
    _check_int("timestamp_us", timestamp_us, 0, (1 << 64) - 1)
    body = HEADER_STRUCT.pack(SYNC, VERSION, frame_type, n_channels, n_samples, int(seq), sample_bits, 0,
                        len(payload), int(timestamp_us)) + payload
    return body + CRC_STRUCT.pack(crc32(body))


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of a data frame; raises ``InputError`` for anything a reader would reject."""
    bits = frame.sample_bits
    if bits not in SAMPLE_BITS:
        raise InputError(f"sample_bits must be 16 or 24, got {bits!r}")
    samples = np.asarray(frame.samples)
    if samples.ndim != 2 or samples.dtype.kind not in "iu":
        raise InputError("samples must be an integer array of shape (n_samples, n_channels), got "
                         f"{samples.dtype} of shape {samples.shape}")
    n_samples, n_channels = samples.shape
    if not (1 <= n_channels <= MAX_CHANNELS and 1 <= n_samples <= MAX_SAMPLES_PER_FRAME):
        raise InputError(f"samples must have 1..{MAX_SAMPLES_PER_FRAME} rows (samples) and 1..{MAX_CHANNELS} "
                         f"columns (channels), got shape {samples.shape}")
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    found_low, found_high = int(samples.min()), int(samples.max())
    if found_low < low or found_high > high:
        raise InputError(f"samples must fit int{bits} [{low}, {high}], found values in "
                         f"[{found_low}, {found_high}]")
    if bits == 16:
        payload = samples.astype("<i2").tobytes()
    else:  # the low three bytes of each little-endian int32
        payload = np.ascontiguousarray(samples, dtype="<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return _encode(FrameType.DATA, frame.seq, frame.timestamp_us, n_channels, n_samples, bits, payload)


def encode_device_info(info: DeviceInfo, *, seq: int = 0, timestamp_us: int = 0) -> bytes:
    """The wire bytes of a device-info frame; it takes a sequence number like any other frame."""
    n = info.n_channels
    payload = bytearray(_INFO_FIXED + _INFO_PER_CHANNEL * n)
    base = -HEADER_SIZE
    struct.pack_into("<" + _RATE.code, payload, base + _RATE.offset_in(n), info.sample_rate_hz)
    at = base + _SCALE.offset_in(n)
    payload[at:at + _SCALE.size * n] = info.scale_v.astype("<" + _SCALE.code).tobytes()
    at = base + _LABELS.offset_in(n)
    payload[at:at + LABEL_BYTES * n] = b"".join(x.encode().ljust(LABEL_BYTES, b"\0") for x in info.labels)
    struct.pack_into("<" + _NAME.code, payload, base + _NAME.offset_in(n), info.device_name.encode())
    return _encode(FrameType.DEVICE_INFO, seq, timestamp_us, n, info.samples_per_frame, info.sample_bits,
                   bytes(payload))


def decode_samples(buf: bytearray, at: int, n_samples: int, n_channels: int, sample_bits: int) -> np.ndarray:
    """The read-only int32 (n_samples, n_channels) samples of a data payload starting at ``buf[at]``."""
    # A function of its own so the views into ``buf`` die on return and the buffer can be resized.
    count = n_samples * n_channels
    if sample_bits == 16:
        samples = np.frombuffer(buf, "<i2", count, at).astype(np.int32)
    else:  # the 3 bytes go to the top of an int32 (strided byte copies, in C); a shift sign-extends
        wide, stop = bytearray(4 * count), at + 3 * count
        wide[1::4], wide[2::4], wide[3::4] = buf[at:stop:3], buf[at + 1:stop:3], buf[at + 2:stop:3]
        samples = np.frombuffer(wide, "<i4") >> 8
    samples = samples.reshape(n_samples, n_channels)
    samples.flags.writeable = False
    return samples


def decode_device_info(buf: bytearray, at: int, n: int, n_samples: int, sample_bits: int) -> DeviceInfo | str:
    """The device info of a CRC-valid frame at ``at``, or why its content is unusable."""
    def text(field: Field, index: int) -> str:
        start = at + field.offset_in(n) + index * field.size
        return bytes(buf[start:start + field.size]).rstrip(b"\0").decode("ascii")

    try:
        return DeviceInfo(
            sample_rate_hz=struct.unpack_from("<" + _RATE.code, buf, at + _RATE.offset_in(n))[0],
            scale_v=np.frombuffer(buf, "<" + _SCALE.code, n, at + _SCALE.offset_in(n)).astype(np.float32),
            labels=tuple(text(_LABELS, i) for i in range(n)), sample_bits=sample_bits,
            samples_per_frame=n_samples, device_name=text(_NAME, 0))
    except ValueError as exc:  # InputError and UnicodeDecodeError both derive from it
        return f"device-info frame rejected: {exc}"
