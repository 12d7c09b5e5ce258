"""The estimate datagram: round trips, refusals, and the C struct agreeing with the Python layout."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from myoedge.edge.loop.estimate import (
    ESTIMATE_MAGIC,
    FIELDS,
    FIXED_SIZE,
    INVALID,
    Estimate,
    EstimateEncoder,
    Flags,
    c_header,
    decode_estimate,
    encode_estimate,
    layout_rows,
)
from myoedge.ground.errors import InputError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "runtime.md"


def estimate(m: int = 3, **changes) -> Estimate:
    fields = dict(index=7, seq=2**32 - 1, timestamp_us=2**40 + 5, theta_rad=0.25,
                  forces_n=tuple(10.0 * (i + 1) for i in range(m)), torque_nm=1.5, torque_requested_nm=2.0,
                  flags=Flags.SATURATED | Flags.TORQUE_CLAMPED, bad_channels=(1 << 63) | 4, latency_us=123.5)
    fields.update(changes)
    return Estimate(**fields)


@pytest.mark.parametrize("m", [1, 5, 64])
def test_round_trip(m):
    e = estimate(m)
    data = encode_estimate(e)
    assert len(data) == FIXED_SIZE + 4 * m and data[:4] == ESTIMATE_MAGIC
    assert decode_estimate(data) == e  # every value above is exact in float32


def test_float32_rounding_and_nan_survive():
    e = estimate(2, theta_rad=0.1, forces_n=(math.nan, 1e-3))
    back = decode_estimate(encode_estimate(e))
    assert back.theta_rad == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert math.isnan(back.forces_n[0]) and back.forces_n[1] == pytest.approx(1e-3, rel=1e-7)


def test_encoder_reuses_one_buffer():
    enc = EstimateEncoder(n_muscles=3)
    first = enc.encode(estimate(3))
    kept = bytes(first)
    second = enc.encode(estimate(3, index=8))
    assert second.obj is first.obj and bytes(second) != kept
    with pytest.raises(InputError, match="3 forces"):
        enc.encode(estimate(4))


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"XXXX" + b[4:], "magic"),
    (lambda b: b[:4] + bytes([9]) + b[5:], "version"),
    (lambda b: b[:-1], "bytes"),
    (lambda b: b[:20], "at least"),
])
def test_decode_refuses_what_is_not_an_estimate(mutate, message):
    with pytest.raises(InputError, match=message):
        decode_estimate(mutate(encode_estimate(estimate())))


def test_validity():
    information = (Flags.TORQUE_CLAMPED, Flags.RECONSTRUCTED)
    for flag in information:
        assert estimate(flags=flag).valid
    for flag in Flags:
        if flag not in information:
            assert flag & INVALID and not estimate(flags=flag).valid
    text = estimate(flags=Flags.STALE | Flags.LOST_FRAMES).describe()
    assert text.startswith("invalid: stale, lost_frames")
    text = estimate(flags=Flags.RECONSTRUCTED, bad_channels=0b100).describe()
    assert text.startswith("valid, with channels filled in from the others") and "[2]" in text


def test_layout_is_naturally_aligned_without_padding():
    offset = 0
    for name, code, _, _ in FIELDS:
        size = struct.calcsize("<" + code)
        assert offset % min(size, 8) == 0 or code.endswith("s"), name
        offset += size
    assert offset == FIXED_SIZE == 48
    assert layout_rows()[-1][:2] == ("48", "4M")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_struct_matches_the_python_layout(tmp_path):
    offsets = "\n".join(f'    printf("%zu\\n", offsetof(myoe_estimate_t, {name}));' for name, *_ in FIELDS)
    source = (c_header() + "#include <stdio.h>\n#include <stddef.h>\nint main(void) {\n" + offsets +
              '\n    printf("%zu\\n", offsetof(myoe_estimate_t, forces_n));\n'
              '    printf("%zu\\n", sizeof(myoe_estimate_t));\n    return 0;\n}\n')
    (tmp_path / "t.c").write_text(source)
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")],
                   check=True, capture_output=True)
    got = [int(v) for v in subprocess.run([str(tmp_path / "t")], capture_output=True, text=True,
                                          check=True).stdout.split()]
    assert got == [int(row[0]) for row in layout_rows()] + [FIXED_SIZE]


def test_docs_carry_the_generated_c_struct_and_table():
    text = DOCS.read_text(encoding="utf-8")
    assert c_header().strip() in text
    for offset, size, ctype, name, meaning in layout_rows():
        assert f"| {offset} | {size} | {ctype} | `{name}` | {meaning} |" in text
