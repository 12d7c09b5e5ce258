"""Property tests: chunking does not matter, no byte sequence makes the parser raise or misdeliver."""

from __future__ import annotations

import struct
from itertools import pairwise

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myoedge.edge.wire import protocol as p
from myoedge.edge.wire.crc import crc32

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw) -> p.Frame:
    bits = draw(st.sampled_from(p.SAMPLE_BITS))
    n_samples, n_channels = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    limit = 1 << (bits - 1)
    seed = draw(st.integers(0, 2**32))
    counts = np.random.default_rng(seed).integers(-limit, limit, (n_samples, n_channels))
    return p.Frame(seq=0, timestamp_us=draw(st.integers(0, 2**64 - 1)), samples=counts, sample_bits=bits)


# Garbage without 0xA5 cannot hold or begin a sync word, so the frames sent are exactly the frames due.
garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\xa5", b"\x00"))


@st.composite
def streams(draw) -> tuple[bytes, list[p.Frame]]:
    """Frames with increasing (wrapping) seq and random gaps, garbage before each."""
    seq = draw(st.integers(0, 2**32 - 1))
    parts, sent = [], []
    for item in draw(st.lists(frames(), min_size=1, max_size=8)):
        seq = (seq + draw(st.integers(1, 3))) % p.SEQ_MODULUS
        sent.append(p.Frame(seq=seq, timestamp_us=item.timestamp_us, samples=item.samples,
                            sample_bits=item.sample_bits))
        parts += [draw(garbage), p.encode_frame(sent[-1])]
    return b"".join(parts) + draw(garbage), sent


def feed_in_pieces(data: bytes, cuts: list[int]) -> tuple[list[p.Frame], p.FrameParser]:
    parser, got, last = p.FrameParser(), [], 0
    for cut in sorted(cuts) + [len(data)]:
        got += parser.feed(data[last:cut])
        last = cut
    return got, parser


@FAST
@given(streams(), st.lists(st.integers(0, 2000), max_size=30))
def test_any_chunking_gives_the_same_frames_and_stats(stream, cuts) -> None:
    data, sent = stream
    whole, one_shot = feed_in_pieces(data, [])
    pieces, chunked = feed_in_pieces(data, [c % (len(data) + 1) for c in cuts])
    bytewise, single = feed_in_pieces(data, list(range(len(data))))
    assert whole == sent and pieces == sent and bytewise == sent
    assert one_shot.stats == chunked.stats == single.stats
    assert one_shot.buffered == chunked.buffered == single.buffered
    assert one_shot.stats.crc_errors == one_shot.stats.bad_header == 0
    gaps = sum((b.seq - a.seq) % p.SEQ_MODULUS - 1 for a, b in pairwise(sent))
    assert one_shot.stats.lost == gaps
    framed = sum(len(p.encode_frame(f)) for f in sent)
    assert framed + one_shot.stats.discarded_bytes + one_shot.buffered == len(data)


def check_delivery(parser: p.FrameParser, data: bytes, delivered: list[p.Frame]) -> None:
    """What every input must satisfy: increasing seq, bounded buffer, every byte accounted for."""
    seqs = [f.seq for f in delivered]
    assert all(0 < (b - a) % p.SEQ_MODULUS < p.SEQ_MODULUS // 2 for a, b in pairwise(seqs))
    assert parser.buffered <= p.MAX_FRAME_SIZE - 1
    assert parser.stats.good == len(delivered)
    assert parser.stats.discarded_bytes + parser.buffered <= len(data)


@FAST
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=10))
def test_arbitrary_bytes_never_raise(data, cuts) -> None:
    delivered, parser = feed_in_pieces(data, [c % (len(data) + 1) for c in cuts])
    check_delivery(parser, data, delivered)


@st.composite
def frame_like(draw) -> bytes:
    """A sync word and a header that is mostly plausible, a random payload of mostly the right length,
    and a correct CRC half of the time: random sample bytes and random device-info payloads (non-ASCII
    labels, NaN sample rates) reach the decoders."""
    version, ftype = draw(st.sampled_from([1, 1, 1, 2])), draw(st.sampled_from([1, 2, 2, 3]))
    n_channels, n_samples = draw(st.integers(0, 66)), draw(st.integers(0, 6))
    bits, reserved = draw(st.sampled_from([16, 24, 24, 8])), draw(st.sampled_from([0, 0, 0, 1]))
    length = (n_channels * n_samples * bits // 8 if ftype == 1 else 40 + 12 * n_channels)
    length = max(0, length + draw(st.sampled_from([0, 0, 0, -1, 3])))
    payload = np.random.default_rng(draw(st.integers(0, 2**32))).bytes(length - draw(st.integers(0, 2)))
    if draw(st.booleans()):  # sometimes a payload that looks like text
        payload = bytes(32 + b % 95 for b in payload)
    body = p.SYNC + struct.pack("<BBBBIBBHQ", version, ftype, n_channels, n_samples,
                                draw(st.integers(0, 2**32 - 1)), bits, reserved, length, 0) + payload
    return body + (struct.pack("<I", crc32(body)) if draw(st.booleans()) else b"")


@FAST
@given(st.lists(frame_like(), max_size=12), st.lists(st.integers(0, 20000), max_size=6))
def test_sync_words_with_random_headers_and_payloads_never_raise(pieces, cuts) -> None:
    data = b"".join(pieces)
    delivered, parser = feed_in_pieces(data, [c % (len(data) + 1) for c in cuts])
    check_delivery(parser, data, delivered)


@FAST
@given(streams(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6))
def test_corruption_never_delivers_a_wrong_frame(stream, damage) -> None:
    data, sent = stream
    bad = bytearray(data)
    for where, value in damage:
        bad[where % len(bad)] ^= value or 1
    delivered, parser = feed_in_pieces(bytes(bad), [])
    check_delivery(parser, bytes(bad), delivered)
    by_seq = {f.seq: f for f in sent}
    assert all(f == by_seq.get(f.seq) for f in delivered)


@FAST
@given(st.lists(frames(), min_size=1, max_size=6), st.lists(st.integers(0, 50), min_size=1, max_size=12))
def test_replayed_and_reordered_frames_come_out_once_in_order(items, order) -> None:
    encoded = [p.encode_frame(p.Frame(seq=i + 10, timestamp_us=f.timestamp_us, samples=f.samples,
                                      sample_bits=f.sample_bits)) for i, f in enumerate(items)]
    picks = [encoded[i % len(encoded)] for i in order]
    delivered, parser = feed_in_pieces(b"".join(picks), [])
    seqs = [f.seq for f in delivered]
    assert seqs == sorted(set(seqs)) and len(seqs) + parser.stats.duplicates + parser.stats.out_of_order \
        == len(picks)
