"""The frame format, the encoder and the parser in designed scenarios with exact expected counts."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from myoedge.edge.wire import protocol as p
from myoedge.edge.wire.crc import CRC_CHECK, crc32, crc32_reference, crc32_table
from myoedge.ground.errors import InputError

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
INFO = p.DeviceInfo(sample_rate_hz=2000.0, scale_v=[1e-7, 2.5e-7], labels=("TA", "GAS-MED"),
                    sample_bits=16, samples_per_frame=2, device_name="myo-amp 1.2")


def frame(seq: int, *, n_samples: int = 2, n_channels: int = 8, bits: int = 16) -> p.Frame:
    counts = (np.arange(n_samples * n_channels).reshape(n_samples, n_channels) * 37 + seq) % 2000 - 1000
    return p.Frame(seq=seq, timestamp_us=1000 * seq, samples=counts, sample_bits=bits)


def wire(*seqs: int) -> list[bytes]:
    return [p.encode_frame(frame(s)) for s in seqs]


def parse(data: bytes) -> tuple[list[p.Frame], p.FrameParser]:
    parser = p.FrameParser()
    return parser.feed(data), parser


def test_crc_is_crc32_iso_hdlc() -> None:
    assert crc32(b"123456789") == CRC_CHECK == 0xCBF43926
    table = crc32_table()
    assert (table[1], table[255]) == (0x77073096, 0x2D02EF8D)
    data = np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes()
    assert crc32_reference(data) == crc32(data) == zlib.crc32(data)


@pytest.mark.parametrize("bits", [16, 24])
@pytest.mark.parametrize("shape", [(1, 1), (2, 8), (64, 64)])
def test_round_trip_keeps_every_sample_including_extremes(bits: int, shape: tuple[int, int]) -> None:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    counts = np.random.default_rng(bits).integers(low, high + 1, shape)
    counts.flat[0], counts.flat[-1] = low, high
    sent = p.Frame(seq=2**32 - 1, timestamp_us=2**64 - 1, samples=counts, sample_bits=bits)
    data = p.encode_frame(sent)
    assert len(data) == p.frame_size(n_channels=shape[1], n_samples=shape[0], sample_bits=bits)
    (got,), parser = parse(data)
    assert got == sent and got.samples.dtype == np.int32 and (got.n_samples, got.n_channels) == shape
    assert not got.samples.flags.writeable
    assert parser.stats.good == 1 and parser.buffered == 0


def test_header_fields_sit_where_the_layout_says() -> None:
    data = p.encode_frame(frame(0x01020304))
    field = {f.name: f for f in p.HEADER_FIELDS}
    assert data[:4] == p.SYNC and p.HEADER_SIZE == 24
    assert struct.unpack_from("<I", data, field["seq"].offset)[0] == 0x01020304
    assert struct.unpack_from("<Q", data, field["timestamp_us"].offset)[0] == 1000 * 0x01020304
    assert struct.unpack_from("<H", data, field["payload_length"].offset)[0] == 2 * 8 * 2
    assert struct.unpack_from("<h", data, p.HEADER_SIZE + 2)[0] == frame(0x01020304).samples[0, 1]
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == crc32(data[:-4])


def _doc_table(heading: str) -> list[tuple[str, ...]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(tuple(cell.strip().strip("`") for cell in line.strip("|").split("|")))
        elif rows:
            break
    assert rows[0] == ("offset", "size", "type", "field", "meaning") and set(rows[1][0]) <= set("-:")
    return rows[2:]


@pytest.mark.parametrize("heading, frame_type", [("### Data frame", p.FrameType.DATA),
                                                 ("### Device-info frame", p.FrameType.DEVICE_INFO)])
def test_docs_byte_tables_match_the_layout_definition(heading: str, frame_type: p.FrameType) -> None:
    assert _doc_table(heading) == p.layout_rows(frame_type)


def test_docs_example_frame_is_what_the_encoder_writes() -> None:
    example = re.search(r"```\n([0-9a-f ]+)\n```", DOC.read_text(encoding="utf-8")).group(1)
    sent = p.Frame(seq=1, timestamp_us=1000, samples=np.array([[1, -2]]), sample_bits=16)
    assert bytes.fromhex(example) == p.encode_frame(sent)


def test_device_info_round_trip_goes_to_parser_attribute() -> None:
    data = p.encode_device_info(INFO, seq=7, timestamp_us=5) + wire(8)[0]
    frames, parser = parse(data)
    assert [f.seq for f in frames] == [8]
    assert parser.device_info == INFO and parser.device_info_seq == 7
    assert parser.device_info.scale_v.dtype == np.float32 and parser.device_info.n_channels == 2
    assert (parser.stats.device_info, parser.stats.good, parser.stats.lost) == (1, 1, 0)


def test_garbage_between_frames_is_discarded_and_counted_exactly() -> None:
    a, b, c = wire(1, 2, 3)
    frames, parser = parse(b"\x00\xa5\x5a" + a + b"junk" + b + bytes(range(256)) + c + b"\xa5\x5a\xc3")
    assert [f.seq for f in frames] == [1, 2, 3]
    s = parser.stats
    assert (s.good, s.resyncs, s.discarded_bytes, s.crc_errors, s.bad_header) == (3, 3, 3 + 4 + 256, 0, 0)
    assert parser.buffered == 3  # "a5 5a c3" may begin a sync word


def test_every_single_bit_flip_is_rejected_and_the_next_frame_survives() -> None:
    first, second = wire(1, 2)
    for bit in range(8 * len(first)):
        bad = bytearray(first)
        bad[bit // 8] ^= 1 << (bit % 8)
        frames, parser = parse(bytes(bad) + second)
        assert [f.seq for f in frames] == [2], f"bit {bit}"
        assert parser.stats.discarded_bytes == len(first), f"bit {bit}"


def test_truncated_frame_costs_only_itself() -> None:
    a, b, c = wire(1, 2, 3)
    frames, parser = parse(a + b[:40] + c)
    assert [f.seq for f in frames] == [1, 3]
    s = parser.stats
    assert (s.crc_errors, s.lost, s.discarded_bytes, s.resyncs) == (1, 1, 40, 1)


def test_good_frame_inside_a_corrupted_frame_with_a_fake_header_is_recovered() -> None:
    # A corrupted frame whose samples spell a sync word and a plausible header claiming the largest
    # payload: after its CRC fails the parser must wait for that fake frame, reject it, and find seq 2.
    fake = p.SYNC + struct.pack("<BBBBIBBHQ", 1, 1, 64, 64, 99, 24, 0, p.MAX_PAYLOAD, 0)
    carrier = p.Frame(seq=1, timestamp_us=0, samples=np.frombuffer(fake, "<i2").reshape(-1, 4))
    bad = bytearray(p.encode_frame(carrier))
    bad[-1] ^= 0xFF
    later = wire(*range(2, 400))
    frames, parser = parse(bytes(bad) + b"".join(later))
    assert [f.seq for f in frames] == list(range(2, 400))
    assert (parser.stats.crc_errors, parser.stats.lost) == (2, 0)


def test_sequence_wrap_counts_the_frames_in_between() -> None:
    frames, parser = parse(b"".join(wire(2**32 - 2, 1)))
    assert [f.seq for f in frames] == [2**32 - 2, 1] and parser.stats.lost == 2
    frames, parser = parse(b"".join(wire(2**32 - 1, 0, 1)))
    assert len(frames) == 3 and parser.stats.lost == 0


def test_duplicates_and_reordered_frames_are_dropped_and_counted() -> None:
    f = dict(zip(range(1, 8), wire(*range(1, 8)), strict=True))
    frames, parser = parse(b"".join(f[s] for s in [1, 2, 2, 4, 3, 5, 1, 7, 7, 6]))
    assert [x.seq for x in frames] == [1, 2, 4, 5, 7]
    s = parser.stats
    assert (s.good, s.duplicates, s.out_of_order, s.lost, s.crc_errors) == (5, 2, 3, 2, 0)
    assert parser.last_seq == 7


def test_device_info_with_an_older_seq_restarts_the_sequence() -> None:
    data = b"".join(wire(100, 101)) + p.encode_device_info(INFO, seq=0) + b"".join(wire(1, 2, 0))
    frames, parser = parse(data)
    assert [f.seq for f in frames] == [100, 101, 1, 2]
    s = parser.stats
    assert (s.restarts, s.lost, s.out_of_order, s.device_info) == (1, 0, 1, 1)


def test_crc_valid_but_unusable_device_info_is_counted_not_raised() -> None:
    data = bytearray(p.encode_device_info(INFO, seq=5))
    label_at = p.INFO_FIELDS[2].offset_in(2)
    data[label_at] = 0xC3  # not ASCII
    data[-4:] = struct.pack("<I", crc32(bytes(data[:-4])))
    frames, parser = parse(bytes(data) + wire(6)[0])
    assert [f.seq for f in frames] == [6] and parser.device_info is None
    assert (parser.stats.bad_info, parser.stats.lost) == (1, 0)
    assert "device-info" in parser.stats.last_reject


def test_impossible_header_is_rejected_without_waiting_for_a_payload() -> None:
    future = bytearray(wire(1)[0])
    future[4] = 2  # a version this reader does not speak
    parser = p.FrameParser()
    assert parser.feed(bytes(future[:p.HEADER_SIZE])) == []
    assert parser.stats.bad_header == 1 and "version 2" in parser.stats.last_reject
    assert parser.buffered < len(p.SYNC)


def test_buffer_stays_bounded_under_endless_garbage() -> None:
    rng = np.random.default_rng(3)
    fake = p.SYNC + struct.pack("<BBBBIBBHQ", 1, 1, 64, 64, 0, 24, 0, p.MAX_PAYLOAD, 0)
    parser = p.FrameParser()
    fed = 0
    for i in range(300):
        chunk = rng.integers(0, 256, 1000, dtype=np.uint8).tobytes()
        chunk = fake + chunk if i % 3 == 0 else chunk
        assert parser.feed(chunk) == []
        fed += len(chunk)
        assert parser.buffered <= p.MAX_FRAME_SIZE - 1
    assert parser.stats.discarded_bytes + parser.buffered == fed and parser.stats.good == 0
    # and it still finds real frames, once the last fake header's wait has run out
    assert [f.seq for f in parser.feed(b"".join(wire(*range(1, 300))))] == list(range(1, 300))


def test_reset_forgets_buffer_and_sequence() -> None:
    a, b = wire(5, 3)
    parser = p.FrameParser()
    parser.feed(a + b[:10])
    parser.reset()
    assert parser.buffered == 0 and parser.last_seq is None and parser.stats.discarded_bytes == 10
    assert [f.seq for f in parser.feed(b)] == [3]


@pytest.mark.parametrize("change, message", [
    (dict(samples=np.array([[40000]])), "int16"),
    (dict(samples=np.array([[-(2**23) - 1]]), sample_bits=24), "int24"),
    (dict(samples=np.zeros(8, np.int32)), "shape"),
    (dict(samples=np.zeros((2, 8))), "integer"),
    (dict(samples=np.zeros((2, 65), np.int32)), "channels"),
    (dict(samples=np.zeros((0, 8), np.int32)), "samples"),
    (dict(sample_bits=32), "16 or 24"),
    (dict(seq=2**32), "seq"),
    (dict(seq=-1), "seq"),
    (dict(timestamp_us=-5), "timestamp_us"),
])
def test_encode_frame_refuses_what_a_reader_would_reject(change: dict, message: str) -> None:
    fields = dict(seq=1, timestamp_us=0, samples=np.zeros((2, 8), np.int32), sample_bits=16) | change
    with pytest.raises(InputError, match=message):
        p.encode_frame(p.Frame(**fields))


@pytest.mark.parametrize("change, message", [
    (dict(labels=("TOO-LONG-9", "B")), "channel label"),
    (dict(labels=("TA", "GAS\u00e9")), "channel label"),
    (dict(labels=("TA", "")), "channel label"),
    (dict(scale_v=[1e-7]), "scale_v"),
    (dict(scale_v=[1e-7, float("nan")]), "scale_v"),
    (dict(sample_rate_hz=0.0), "sample_rate_hz"),
    (dict(sample_rate_hz=float("inf")), "sample_rate_hz"),
    (dict(sample_bits=12), "sample_bits"),
    (dict(samples_per_frame=65), "samples_per_frame"),
    (dict(device_name="x" * 33), "device_name"),
])
def test_device_info_validates_its_fields(change: dict, message: str) -> None:
    fields = dict(sample_rate_hz=2000.0, scale_v=[1e-7, 1e-7], labels=("TA", "GL")) | change
    with pytest.raises(InputError, match=message):
        p.DeviceInfo(**fields)


def test_frame_size_and_encode_device_info_validate_numbers() -> None:
    assert p.frame_size(n_channels=8, n_samples=2, sample_bits=16) == 60
    assert p.frame_size(n_channels=8, n_samples=2, sample_bits=24) == 76
    with pytest.raises(InputError, match="n_channels"):
        p.frame_size(n_channels=0, n_samples=2, sample_bits=16)
    with pytest.raises(InputError, match="sample_bits"):
        p.frame_size(n_channels=8, n_samples=2, sample_bits=8)
    with pytest.raises(InputError, match="seq"):
        p.encode_device_info(INFO, seq=2**32)
