"""Firmware headers: compiled with this machine's C compiler, and a C program checks them against Python.

The C program (check_firmware.c, beside this file) computes the CRC on b"123456789" and on random
frames, reads the header struct's ``sizeof``/``offsetof``, decodes the example frames, and runs a
plain-C transcription of CMSIS-DSP's ``arm_biquad_cascade_df1_q31`` and ``arm_biquad_cas_df1_32x64_q31``
(their generic C code paths) over the filter test vectors, which must come out bit-identical.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from myoedge.cli import main
from myoedge.deploy.firmware import (
    design_from_bundle,
    envelope_vectors,
    example_frames,
    export_firmware,
)
from myoedge.deploy.firmware_frame import info_payload_length, naturally_aligned
from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope
from myoedge.edge.wire.protocol import (
    HEADER_FIELDS,
    HEADER_SIZE,
    INFO_FIELDS,
    DeviceInfo,
    Field,
    Frame,
    encode_device_info,
    encode_frame,
)
from myoedge.ground.errors import InputError

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on this machine")
CONFIG = EnvelopeConfig(fs_hz=1000.0, out_rate_hz=100.0, input_bits=24)



@pytest.fixture(scope="module")
def headers(tmp_path_factory):
    out = tmp_path_factory.mktemp("firmware")
    summary = export_firmware(out, design=design_envelope(CONFIG), source="a test config", n_samples=600,
                              seed=7)
    return out, summary


def _random_frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(11)
    frames = []
    for i in range(n):
        bits = (16, 24)[i % 2]
        c, s = int(rng.integers(1, 65)), int(rng.integers(1, 9))
        limit = 1 << (bits - 1)
        samples = rng.integers(-limit, limit, (s, c)).astype(np.int32)
        seq, ts = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**63))
        frames.append(encode_frame(Frame(seq=seq, timestamp_us=ts, samples=samples, sample_bits=bits)))
    info = DeviceInfo(sample_rate_hz=2048.0, scale_v=[1e-7] * 5, labels=("a", "b", "c", "d", "e"))
    return [*frames, encode_device_info(info, seq=99, timestamp_us=1)]


@needs_cc
@pytest.mark.parametrize("std", ["c99", "c11"])
def test_headers_compile_cleanly(headers, tmp_path, std):
    out, _ = headers
    src = tmp_path / "all.c"
    src.write_text('#include "myoedge_test_vectors.h"\n'
                   'int main(void) { return (int)myoedge_crc32("", 0); }\n')
    subprocess.run([CC, f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(out), "-o",
                    str(tmp_path / "a.out"), str(src)], check=True, capture_output=True, text=True)
    if CXX is not None:  # firmware written in C++ includes them too
        cpp = tmp_path / "all.cpp"
        cpp.write_text('#include "myoedge_test_vectors.h"\nint main() { return 0; }\n')
        subprocess.run([CXX, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I", str(out),
                        str(cpp)], check=True, capture_output=True, text=True)


@needs_cc
def test_c_matches_python_bit_for_bit(headers, tmp_path):
    out, _ = headers
    (tmp_path / "field_offsets.inc").write_text("".join(
        f'printf("offset {f.name} %u %u\\n", (unsigned)offsetof(myoedge_frame_header_t, {f.name}), '
        f"(unsigned)sizeof(((myoedge_frame_header_t *)0)->{f.name}));\n" for f in HEADER_FIELDS))
    src = Path(__file__).with_name("check_firmware.c")
    exe = tmp_path / "check"
    build = subprocess.run([CC, "-std=c99", "-O2", "-fwrapv", "-Wall", "-Wextra", "-Werror", "-I", str(out),
                            "-I", str(tmp_path), "-o", str(exe), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    frames = _random_frames(60)
    (tmp_path / "frames.bin").write_bytes(b"".join(struct.pack("<I", len(f)) + f for f in frames))
    run = subprocess.run([str(exe), str(tmp_path / "frames.bin")], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    lines = [line.split() for line in run.stdout.splitlines()]
    by_kind: dict[str, list[list[str]]] = {}
    for words in lines:
        by_kind.setdefault(words[0], []).append(words[1:])

    assert by_kind["sizeof"] == [[str(HEADER_SIZE)]]
    assert by_kind["offset"] == [[f.name, str(f.offset), str(f.size)] for f in HEADER_FIELDS]
    assert by_kind["check"] == [[f"{zlib.crc32(b'123456789'):08x}", "1"]]
    fixed, per_channel = info_payload_length()
    scale, labels, name = (f for f in INFO_FIELDS if f.name in ("scale_v", "labels", "device_name"))
    for c, length, *offs in ([int(w) for w in words] for words in by_kind["info"]):
        info = DeviceInfo(sample_rate_hz=1.0, scale_v=[1.0] * c, labels=tuple(f"c{i}" for i in range(c)))
        assert length == fixed + per_channel * c == len(encode_device_info(info)) - HEADER_SIZE - 4
        assert offs == [scale.offset_in(c), labels.offset_in(c), name.offset_in(c)]
    assert by_kind["tvframe"] == [[str(i), "crc", "1", "fields", "1", "samples", "1"] for i in range(3)]

    assert len(by_kind["frame"]) == len(frames)
    for words, wire in zip(by_kind["frame"], frames, strict=True):
        crc, stored, seq, ftype, ch, ns, length, ts = words
        assert int(crc, 16) == zlib.crc32(wire[:-4]) == int(stored, 16)
        head = struct.unpack_from("<4sBBBBIBBHQ", wire)
        assert [int(seq), int(ftype), int(ch), int(ns), int(length), int(ts)] == [
            head[5], head[2], head[3], head[4], head[8], head[9]]

    assert by_kind["filter"] == [["600", "0", "0", "1"]]  # bit-identical band and envelope, same hash


def test_vectors_exercise_the_filter(headers):
    design = design_envelope(CONFIG)
    v = envelope_vectors(design, n_samples=600, seed=7)
    full = 2 ** (CONFIG.input_bits - 1)
    assert v["counts"].min() == -full and v["counts"].max() == full - 1  # both full-scale extremes
    assert np.abs(v["band"]).max() > 2**28  # large signals reach the band stage's headroom region
    assert np.ptp(v["envelope"]) > 2**24 and v["envelope"].min() >= 0
    assert np.array_equal(envelope_vectors(design, n_samples=600, seed=7)["envelope"], v["envelope"])
    with pytest.raises(InputError, match="n_samples"):
        envelope_vectors(design, n_samples=10, seed=0)


def test_headers_are_deterministic_ascii_and_name_every_field(headers, tmp_path):
    out, summary = headers
    again = export_firmware(tmp_path, design=design_envelope(CONFIG), source="a test config", n_samples=600,
                            seed=7)
    for name in summary["files"]:
        text = (out / name).read_bytes()
        assert text == (tmp_path / name).read_bytes() and text.isascii()
    assert again["envelope_hash"] == summary["envelope_hash"]
    frame_h = (out / "myoedge_frame.h").read_text()
    for f in HEADER_FIELDS:
        assert f"offsetof(myoedge_frame_header_t, {f.name}) == {f.offset}u" in frame_h
    assert "0xEDB88320u" in frame_h and "0x3CC35AA5u" in frame_h


def test_layout_checks():
    assert naturally_aligned(HEADER_FIELDS)
    assert not naturally_aligned((Field("a", "B", ""), Field("b", "I", "", offset=1)))
    assert not naturally_aligned((Field("a", "I", ""), Field("b", "B", "", offset=4)))  # size 5, not 8
    frames = example_frames(seed=0)
    assert [f["frame_type"] for f in frames] == [1, 1, 2] and frames[1]["seq"] == 2**32 - 1


def test_bundle_envelope_must_match_this_myoedge(bundle):
    assert design_from_bundle(bundle).coefficients_hash() == bundle.envelope_hash
    meta = dataclasses.replace(bundle.meta, envelope=dataclasses.replace(bundle.meta.envelope, hash="0" * 64))
    with pytest.raises(InputError, match="differ from what this myoedge designs"):
        design_from_bundle(dataclasses.replace(bundle, meta=meta))


def test_export_firmware_verb(bundle_dir, tmp_path, capsys):
    assert main(["export-firmware", str(bundle_dir), "--out", str(tmp_path / "a"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == summary["files"]
    config = tmp_path / "envelope.json"
    config.write_text(json.dumps(CONFIG.to_dict()))
    assert main(["export-firmware", "--envelope", str(config), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    out = ["--out", str(tmp_path / "c")]
    both = [str(bundle_dir), "--envelope", str(config), *out]
    for argv, match in ([out, "exactly one"], [both, "exactly one"],
                        [["--envelope", str(tmp_path / "nope.json"), *out], "no such"]):
        assert main(["export-firmware", *argv]) == 2
        assert match in capsys.readouterr().err
    config.write_text(json.dumps({"fs_hz": 1000.0}))
    assert main(["export-firmware", "--envelope", str(config), "--out", str(tmp_path / "c")]) == 2
    assert "envelope.json" in capsys.readouterr().err
