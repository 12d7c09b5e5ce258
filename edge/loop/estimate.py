"""The ``Estimate`` the runtime hands the exoskeleton controller, and its UDP datagram layout.

One estimate per model-rate output: joint angle, muscle forces, the torque they produce about the
joint (after clamping to the configured limits) and the torque that was asked for before clamping,
validity flags, and how long the estimate took from the read of its last byte. The datagram layout is
defined once, in ``FIELDS``: the encoder, the decoder, the byte table in docs/runtime.md and the C struct
for controller firmware (:func:`c_header`) are all derived from it, so they cannot drift apart.

Every field is little-endian and naturally aligned (no padding); the forces follow the fixed part as
``n_muscles`` float32 values, so a datagram is ``FIXED_SIZE + 4 * n_muscles`` bytes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from myoedge.ground.errors import InputError

__all__ = [
    "ESTIMATE_MAGIC", "ESTIMATE_VERSION", "FIELDS", "FIXED_SIZE", "INVALID", "MAX_MUSCLES", "Estimate",
    "EstimateEncoder", "Flags", "c_header", "decode_estimate", "encode_estimate", "layout_rows",
]

ESTIMATE_MAGIC = b"MYOE"
ESTIMATE_VERSION = 1
MAX_MUSCLES = 64


class Flags(enum.IntFlag):
    """Validity flags. Any bit of ``INVALID`` set means: do not act on this estimate."""

    STALE = 1  # the watchdog saw no frame for longer than its limit; values are the last ones computed
    SATURATED = 2  # a channel hit the ADC's full scale within the window
    ELECTRODE_OFF = 4  # a channel has been flat (no EMG at all) for longer than the flat limit
    LOST_FRAMES = 8  # frames were lost within the window the model saw
    OUT_OF_RANGE = 16  # theta or a force is outside the bundle's physiological range, or not finite
    WARMING_UP = 32  # since start-up or a reset (restart, reconnect, lost frames, gap) the window is not
    # yet full again plus the bundle's warmup_steps: the model has not seen enough data to be trusted
    TORQUE_CLAMPED = 64  # information, not invalidity: torque was limited; torque_requested_nm has the rest
    OUT_OF_DISTRIBUTION = 128  # a channel's normalised envelope sits far outside what the bundle was trained
    # on (the bundle's input_range), or is not finite: a wrong MVC in the profile, an amplifier gain change
    FLAT_OUTPUT = 256  # theta and every force have not moved for flat_output_ms while the envelopes did
    RECONSTRUCTED = 512  # information, not invalidity: the envelope of a channel whose electrode is off was
    # filled in from the other channels (run --fill-off-channels; bad_channels says which), in place of
    # ELECTRODE_OFF; a controller that must not act on filled channels treats this bit as invalid
    WARMUP = 32  # an alias: the name of WARMING_UP's bit before resets set it too


INVALID = Flags.STALE | Flags.SATURATED | Flags.ELECTRODE_OFF | Flags.LOST_FRAMES | Flags.OUT_OF_RANGE \
    | Flags.WARMING_UP | Flags.OUT_OF_DISTRIBUTION | Flags.FLAT_OUTPUT

# (name, struct code, C type, meaning): the fixed part of the datagram, in order.
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("magic", "4s", "uint8_t magic[4]", "'MYOE'"),
    ("version", "B", "uint8_t version", f"layout version, {ESTIMATE_VERSION}"),
    ("n_muscles", "B", "uint8_t n_muscles", f"M, number of forces that follow (1 to {MAX_MUSCLES})"),
    ("flags", "H", "uint16_t flags", "validity flags (MYOE_FLAG_*); valid when (flags & MYOE_INVALID) == 0"),
    ("index", "I", "uint32_t index", "estimate counter since start, +1 per datagram (gaps: lost datagrams)"),
    ("seq", "I", "uint32_t seq", "sequence number of the amplifier frame that completed the estimate"),
    ("timestamp_us", "Q", "uint64_t timestamp_us", "device clock (us) at the first sample of that frame"),
    ("bad_channels", "Q", "uint64_t bad_channels", "bit c set: channel c is saturated or flat"),
    ("theta_rad", "f", "float theta_rad", "joint angle, rad"),
    ("torque_nm", "f", "float torque_nm", "muscle torque about the joint after clamping, N*m"),
    ("torque_requested_nm", "f", "float torque_requested_nm", "torque before clamping, N*m"),
    ("latency_us", "f", "float latency_us", "host time from the read of the frame's last byte to this "
                                            "estimate, us"),
)
_FIXED = struct.Struct("<" + "".join(code for _, code, _, _ in FIELDS))
FIXED_SIZE = _FIXED.size
_FORCE = struct.Struct("<f")


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """One output of the loop. ``torque_nm`` is what was actually sent after clamping."""

    index: int
    seq: int
    timestamp_us: int
    theta_rad: float
    forces_n: tuple[float, ...]
    torque_nm: float
    torque_requested_nm: float
    flags: Flags
    bad_channels: int = 0
    latency_us: float = 0.0

    @property
    def valid(self) -> bool:
        return not (self.flags & INVALID)

    @property
    def clamped(self) -> bool:
        return bool(self.flags & Flags.TORQUE_CLAMPED)

    def describe(self) -> str:
        """A one-line human reading: what is wrong, what was filled in and what was clamped."""
        names = [f.name.lower() for f in Flags if f in self.flags and f & INVALID]
        text = "valid" if not names else "invalid: " + ", ".join(names)
        if self.flags & Flags.RECONSTRUCTED:
            text += ", with channels filled in from the others"
        if self.bad_channels:
            text += f" (channels {[c for c in range(64) if self.bad_channels >> c & 1]})"
        if self.clamped:
            text += f"; torque clamped from {self.torque_requested_nm:.3f} to {self.torque_nm:.3f} N*m"
        return text


def _n_forces(estimate: Estimate) -> int:
    m = len(estimate.forces_n)
    if not 1 <= m <= MAX_MUSCLES:
        raise InputError(f"an estimate carries 1 to {MAX_MUSCLES} forces, got {m}")
    return m


class EstimateEncoder:
    """Encodes estimates of ``n_muscles`` forces into one preallocated buffer (no allocation per call).

    ``encode`` returns a memoryview of the internal buffer, valid until the next call: send it at once.
    """

    def __init__(self, *, n_muscles: int) -> None:
        if isinstance(n_muscles, bool) or not isinstance(n_muscles, int) or not 1 <= n_muscles <= MAX_MUSCLES:
            raise InputError(f"n_muscles must be an int in 1..{MAX_MUSCLES}, got {n_muscles!r}")
        self.n_muscles = n_muscles
        self._struct = struct.Struct("<" + "".join(c for _, c, _, _ in FIELDS) + f"{n_muscles}f")
        self._buf = bytearray(self._struct.size)
        self._view = memoryview(self._buf)
        # the constant head (magic, version, n_muscles) is written once; encode packs the rest after it
        head = struct.Struct("<" + "".join(c for _, c, _, _ in FIELDS[:3]))
        head.pack_into(self._buf, 0, ESTIMATE_MAGIC, ESTIMATE_VERSION, n_muscles)
        self._head_size = head.size
        self._rest = struct.Struct("<" + "".join(c for _, c, _, _ in FIELDS[3:]) + f"{n_muscles}f")

    @property
    def size(self) -> int:
        return self._struct.size

    def encode(self, estimate: Estimate) -> memoryview:
        e = estimate
        if len(e.forces_n) != self.n_muscles:
            raise InputError(f"this encoder is for {self.n_muscles} forces, the estimate has "
                             f"{len(e.forces_n)}")
        self._rest.pack_into(self._buf, self._head_size, e.flags, e.index & 0xFFFFFFFF, e.seq, e.timestamp_us,
                             e.bad_channels, e.theta_rad, e.torque_nm, e.torque_requested_nm, e.latency_us,
                             *e.forces_n)
        return self._view


def encode_estimate(estimate: Estimate) -> bytes:
    """The datagram bytes of ``estimate`` (allocates; the loop uses an :class:`EstimateEncoder`)."""
    return bytes(EstimateEncoder(n_muscles=_n_forces(estimate)).encode(estimate))


def decode_estimate(data: bytes | bytearray | memoryview) -> Estimate:
    """Parse one datagram; ``InputError`` says what is wrong with one that is not an estimate."""
    data = bytes(data)
    if len(data) < FIXED_SIZE:
        raise InputError(f"an estimate datagram has at least {FIXED_SIZE} bytes, got {len(data)}")
    (magic, version, m, flags, index, seq, stamp, bad, theta, torque, requested,
     latency) = _FIXED.unpack_from(data, 0)
    if magic != ESTIMATE_MAGIC:
        raise InputError(f"not an estimate datagram: magic {magic!r}, expected {ESTIMATE_MAGIC!r}")
    if version != ESTIMATE_VERSION:
        raise InputError(f"estimate layout version {version}, this reader speaks {ESTIMATE_VERSION}")
    if len(data) != FIXED_SIZE + _FORCE.size * m or m < 1:
        raise InputError(f"an estimate of {m} forces has {FIXED_SIZE + _FORCE.size * m} bytes, "
                         f"got {len(data)}")
    forces = struct.unpack_from(f"<{m}f", data, FIXED_SIZE)
    return Estimate(index=index, seq=seq, timestamp_us=stamp, theta_rad=theta, forces_n=forces,
                    torque_nm=torque, torque_requested_nm=requested, flags=Flags(flags), bad_channels=bad,
                    latency_us=latency)


def layout_rows() -> list[tuple[str, str, str, str, str]]:
    """The datagram's byte table as (offset, size, C type, field, meaning) rows, for the docs."""
    rows, offset = [], 0
    for name, code, ctype, meaning in FIELDS:
        size = struct.calcsize("<" + code)
        rows.append((str(offset), str(size), ctype.rsplit(" ", 1)[0], name, meaning))
        offset += size
    rows.append((str(offset), "4M", "float[M]", "forces_n", "muscle forces, N, in the bundle's muscle order"))
    return rows


def c_header() -> str:
    """A C header for controller firmware: flag macros and the datagram struct (little-endian targets)."""
    lines = [f"/* myoedge estimate datagram, layout version {ESTIMATE_VERSION}; generated by "
             "myoedge.edge.loop.estimate.c_header */", "#include <stdint.h>", "",
             f"#define MYOE_ESTIMATE_VERSION {ESTIMATE_VERSION}u",
             f"#define MYOE_ESTIMATE_FIXED_SIZE {FIXED_SIZE}u",
             f"#define MYOE_MAX_MUSCLES {MAX_MUSCLES}u"]
    lines += [f"#define MYOE_FLAG_{flag.name} {int(flag)}u" for flag in Flags]
    lines += [f"#define MYOE_FLAG_{alias} MYOE_FLAG_{flag.name} /* former name */"
              for alias, flag in Flags.__members__.items() if alias != flag.name]
    lines += [f"#define MYOE_INVALID {int(INVALID)}u", "",
              "typedef struct __attribute__((packed)) {"]
    for _, _, ctype, meaning in FIELDS:
        lines.append(f"    {ctype + ';':<30} /* {meaning} */")
    lines += [f"    {'float forces_n[];':<30} /* n_muscles forces, N, in the bundle's muscle order */",
              "} myoe_estimate_t;", "",
              "/* datagram size: MYOE_ESTIMATE_FIXED_SIZE + 4 * n_muscles */"]
    return "\n".join(lines) + "\n"
