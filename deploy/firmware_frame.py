"""``myoedge_frame.h``: the serial frame format and its CRC for amplifier firmware, generated from Python.

Everything comes from the one definition the host uses — the field tables ``HEADER_FIELDS`` and
``INFO_FIELDS`` of :mod:`myoedge.edge.wire.protocol` and the CRC parameters and table of
:mod:`myoedge.edge.wire.crc` — so changing the protocol and regenerating changes the firmware's view with it.

The header struct is laid out field by field from ``HEADER_FIELDS``. When every field sits at a
multiple of its own size (true of the version-1 layout) the plain struct has exactly the wire layout on
any C ABI, so it needs no ``packed`` attribute (packed structs cost unaligned accesses and are a
portability trap on Cortex-M0); otherwise it is emitted packed for GCC/Clang. Either way the header
``MYOEDGE_STATIC_ASSERT``s ``sizeof`` and every ``offsetof``, so a compiler that lays it out differently
refuses to build. The device-info payload has per-channel arrays, so it is described by offset macros
linear in the channel count instead of a struct.
"""

from __future__ import annotations

from myoedge.deploy.c_source import STATIC_ASSERT, c_array, c_header, c_int
from myoedge.edge.wire.crc import (
    CRC_CHECK,
    CRC_INIT,
    CRC_POLY,
    CRC_POLY_REFLECTED,
    CRC_SIZE,
    CRC_XOROUT,
    crc32_table,
)
from myoedge.edge.wire.protocol import (
    HEADER_FIELDS,
    HEADER_SIZE,
    INFO_FIELDS,
    LABEL_BYTES,
    MAX_CHANNELS,
    MAX_FRAME_SIZE,
    MAX_PAYLOAD,
    MAX_SAMPLES_PER_FRAME,
    NAME_BYTES,
    SYNC,
    VERSION,
    Field,
    FrameType,
)

__all__ = ["FRAME_HEADER_FILE", "STRUCT_NAME", "c_member", "frame_header_text", "info_payload_length",
           "naturally_aligned"]

FRAME_HEADER_FILE = "myoedge_frame.h"
STRUCT_NAME = "myoedge_frame_header_t"
_C_TYPES = {"B": "uint8_t", "H": "uint16_t", "I": "uint32_t", "Q": "uint64_t", "f": "float", "d": "double",
            "s": "uint8_t"}


def c_member(field: Field) -> tuple[str, str, int]:
    """(C type, declarator, alignment) of one field: ``4s`` -> ``uint8_t``, ``sync[4]``, 1."""
    count, code = field.code[:-1], field.code[-1]
    if code not in _C_TYPES:
        raise ValueError(f"field {field.name}: no C type for struct code {field.code!r}")
    alignment = field.size // int(count) if count else field.size
    return _C_TYPES[code], field.name + (f"[{count}]" if count else ""), alignment


def naturally_aligned(fields: tuple[Field, ...]) -> bool:
    """True when the fields are contiguous, each at a multiple of its element size, and the total is a
    multiple of the largest: then every C ABI lays the struct out exactly as the wire bytes."""
    at, widest = 0, 1
    for f in fields:
        _, _, alignment = c_member(f)
        if f.offset != at or f.offset % alignment:
            return False
        at, widest = at + f.size, max(widest, alignment)
    return at % widest == 0


def info_payload_length() -> tuple[int, int]:
    """The device-info payload length as (fixed bytes, bytes per channel), from ``INFO_FIELDS``."""
    last = INFO_FIELDS[-1]
    fixed = last.offset + (0 if last.per_channel else last.size) - HEADER_SIZE
    per_channel = last.offset_per_channel + (last.size if last.per_channel else 0)
    return fixed, per_channel


def _constants() -> str:
    rows = [("MYOEDGE_PROTOCOL_VERSION", f"{VERSION}u", "protocol version carried in every header")]
    rows += [(f"MYOEDGE_SYNC_{i}", c_int(b, "uint8_t"), f"sync byte {i}") for i, b in enumerate(SYNC)]
    rows += [("MYOEDGE_SYNC_WORD_LE", c_int(int.from_bytes(SYNC, "little"), "uint32_t"),
              "the four sync bytes read as a little-endian uint32")]
    rows += [(f"MYOEDGE_FRAME_TYPE_{t.name}", f"{int(t)}u", f"frame_type of a {t.name.lower()} frame")
             for t in FrameType]
    rows += [("MYOEDGE_MAX_CHANNELS", f"{MAX_CHANNELS}u", "channel count C is 1..this"),
             ("MYOEDGE_MAX_SAMPLES_PER_FRAME", f"{MAX_SAMPLES_PER_FRAME}u", "samples per frame S is 1..this"),
             ("MYOEDGE_HEADER_SIZE", f"{HEADER_SIZE}u", "bytes of the header"),
             ("MYOEDGE_CRC_SIZE", f"{CRC_SIZE}u", "bytes of the trailing CRC"),
             ("MYOEDGE_MAX_PAYLOAD", f"{MAX_PAYLOAD}u", "largest payload L a reader accepts"),
             ("MYOEDGE_MAX_FRAME_SIZE", f"{MAX_FRAME_SIZE}u", "largest frame on the wire"),
             ("MYOEDGE_LABEL_BYTES", f"{LABEL_BYTES}u", "bytes of one channel label (NUL-padded ASCII)"),
             ("MYOEDGE_NAME_BYTES", f"{NAME_BYTES}u", "bytes of the device name (NUL-padded ASCII)")]
    width = max(len(name) for name, _, _ in rows) + 1
    return "".join(f"#define {name:<{width}} {value:<14} /* {note} */\n" for name, value, note in rows)


def _payload_macros() -> str:
    fixed, per_channel = info_payload_length()
    lines = ["/* Data payload: S samples x C channels of B-bit two's complement, little-endian,\n"
             "   sample-major (all C channels of sample 0 first); B is 16 or 24, a 24-bit sample takes\n"
             "   3 bytes. */",
             "#define MYOEDGE_DATA_PAYLOAD_LENGTH(n_channels, n_samples, sample_bits) \\\n"
             "    ((uint32_t)(n_channels) * (uint32_t)(n_samples) * (uint32_t)(sample_bits) / 8u)",
             "#define MYOEDGE_FRAME_SIZE(payload_length) (MYOEDGE_HEADER_SIZE + (uint32_t)(payload_length) + "
             "MYOEDGE_CRC_SIZE)",
             "",
             "/* Device-info payload: each field's offset from the frame start, linear in the channel\n"
             "   count C. Per-channel fields hold C elements of the given size. */",
             f"#define MYOEDGE_INFO_PAYLOAD_LENGTH(n_channels) "
             f"({fixed}u + {per_channel}u * (uint32_t)(n_channels))"]
    for f in INFO_FIELDS:
        ctype, _, _ = c_member(f)
        count = f.code[:-1]
        decl = f.name + ("[C]" if f.per_channel else "") + (f"[{count}]" if count else "")
        name = f.name.upper()
        lines.append(f"/* {ctype} {decl}: {f.meaning} */")
        lines.append(f"#define MYOEDGE_INFO_{name}_OFFSET(n_channels) "
                     f"({f.offset}u + {f.offset_per_channel}u * (uint32_t)(n_channels))")
        unit = "bytes per channel" if f.per_channel else "bytes"
        lines.append(f"#define MYOEDGE_INFO_{name}_SIZE {f.size}u /* {unit} */")
    return "\n".join(lines) + "\n"


def _struct() -> str:
    natural = naturally_aligned(HEADER_FIELDS)
    members = []
    for f in HEADER_FIELDS:
        ctype, decl, _ = c_member(f)
        members.append(f"    {ctype + ' ' + decl + ';':<24} /* offset {f.offset:>2}: {f.meaning} */")
    if natural:
        intro = ("/* The frame header. Every field sits at a multiple of its size, so this plain struct has "
                 "the wire\n   layout on every C ABI; the asserts below check it. Copy the received header "
                 "into it with\n   memcpy (the receive buffer may be unaligned). */\n")
        head, tail = "typedef struct myoedge_frame_header {", "} myoedge_frame_header_t;"
    else:
        intro = ("/* The frame header (packed: the wire layout is not naturally aligned). */\n"
                 "#if !defined(__GNUC__)\n"
                 "#error \"myoedge_frame.h needs a packed struct: GCC or Clang\"\n#endif\n")
        head = "typedef struct __attribute__((packed)) myoedge_frame_header {"
        tail = "} myoedge_frame_header_t;"
    asserts = [f"MYOEDGE_STATIC_ASSERT(sizeof({STRUCT_NAME}) == {HEADER_SIZE}u, header_size);"]
    asserts += [f"MYOEDGE_STATIC_ASSERT(offsetof({STRUCT_NAME}, {f.name}) == {f.offset}u, offset_{f.name});"
                for f in HEADER_FIELDS]
    return intro + "\n".join([head, *members, tail, "", *asserts]) + "\n"


def _crc() -> str:
    defines = [("MYOEDGE_CRC32_POLY", CRC_POLY, "CRC-32/ISO-HDLC (IEEE 802.3, zlib, PNG)"),
               ("MYOEDGE_CRC32_POLY_REFLECTED", CRC_POLY_REFLECTED, "the same, right-shifting form"),
               ("MYOEDGE_CRC32_INIT", CRC_INIT, "initial value"),
               ("MYOEDGE_CRC32_XOROUT", CRC_XOROUT, "final xor"),
               ("MYOEDGE_CRC32_CHECK", CRC_CHECK, "myoedge_crc32(\"123456789\", 9)")]
    text = "".join(f"#define {n:<28} {c_int(v, 'uint32_t')} /* {note} */\n" for n, v, note in defines)
    text += ("\n/* Table of the reflected byte-at-a-time algorithm: entry b is the CRC register after\n"
             "   shifting byte b through eight rounds of MYOEDGE_CRC32_POLY_REFLECTED. */\n")
    text += c_array("uint32_t", "myoedge_crc32_table", crc32_table(), per_line=6)
    text += """
/* Continue a CRC over more bytes. Start from MYOEDGE_CRC32_INIT and xor the end result with
   MYOEDGE_CRC32_XOROUT (myoedge_crc32 does both), so a frame can be checked in pieces. */
static inline uint32_t myoedge_crc32_update(uint32_t crc, const uint8_t *data, size_t length)
{
    while (length--) {
        crc = (crc >> 8) ^ myoedge_crc32_table[(crc ^ *data++) & 0xFFu];
    }
    return crc;
}

/* The frame CRC of data[0 .. length-1]; a frame stores it little-endian right after the payload. */
static inline uint32_t myoedge_crc32(const void *data, size_t length)
{
    return myoedge_crc32_update(MYOEDGE_CRC32_INIT, (const uint8_t *)data, length) ^ MYOEDGE_CRC32_XOROUT;
}
"""
    return text


def frame_header_text() -> str:
    """The complete ``myoedge_frame.h``."""
    body = "\n".join([
        "#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && "
        "__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__\n"
        "#error \"myoedge_frame.h: wire fields are little-endian; this target is big-endian\"\n#endif\n",
        STATIC_ASSERT, _constants(), _payload_macros(), _struct(), _crc()])
    return c_header(FRAME_HEADER_FILE, summary="the myoedge serial frame format and its CRC-32",
                    sources="myoedge.edge.wire.protocol (HEADER_FIELDS, INFO_FIELDS) and "
                            "myoedge.edge.wire.crc",
                    body="/* Frame = header | payload (L bytes) | CRC-32 of header and payload (4 bytes, "
                         "little-endian).\n   All multi-byte fields are little-endian. */\n\n" + body,
                    includes=("<stddef.h>", "<stdint.h>"))
