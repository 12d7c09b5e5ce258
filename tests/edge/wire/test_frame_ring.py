"""The parser's fast path (``FrameParser.feed_into`` a ``FrameRing``) gives exactly what ``feed`` gives:
the same frames in the same order, the same statistics and break positions, whatever the bytes and
however they are cut; and it never raises."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myoedge.edge.wire import protocol as p

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHAPE = (2, 3, 24)  # n_samples, n_channels, bits of the ring


@st.composite
def streams(draw) -> bytes:
    """Mostly clean frames of the ring's shape; also other shapes, device-info frames, gaps, repeats,
    garbage (sync bytes included), flipped bits and truncations."""
    seq = draw(st.integers(0, 2**32 - 1))
    info = p.DeviceInfo(sample_rate_hz=1000.0, scale_v=[1e-7] * 3, labels=("a", "b", "c"), sample_bits=24,
                        samples_per_frame=2)
    parts = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["clean"] * 6 + ["other", "info", "gap", "repeat", "garbage", "flip",
                                                     "cut"]))
        if kind == "garbage":
            parts.append(draw(st.binary(max_size=30)) + draw(st.sampled_from([b"", p.SYNC, p.SYNC[:2]])))
            continue
        step = {"gap": draw(st.integers(2, 5)), "repeat": 0}.get(kind, 1)
        seq = (seq + step) % p.SEQ_MODULUS
        if kind == "info":
            parts.append(p.encode_device_info(info, seq=seq, timestamp_us=0))
            continue
        n_s, n_c, bits = (1, 3, 16) if kind == "other" else SHAPE
        limit = 1 << (bits - 1)
        counts = np.random.default_rng(draw(st.integers(0, 2**16))).integers(-limit, limit, (n_s, n_c))
        data = bytearray(p.encode_frame(p.Frame(seq=seq, timestamp_us=draw(st.integers(0, 2**64 - 1)),
                                                samples=counts, sample_bits=bits)))
        if kind == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        if kind == "cut":
            data = data[:draw(st.integers(0, len(data) - 1))]
        parts.append(bytes(data))
    return b"".join(parts)


def _both(data: bytes, cuts: list[int], capacity: int = 64):
    slow, fast, ring = p.FrameParser(), p.FrameParser(), p.FrameRing(n_samples=SHAPE[0], n_channels=SHAPE[1],
                                                                     sample_bits=SHAPE[2], capacity=capacity)
    want, got, last = [], [], 0
    slow.break_at = -1  # the index among ``want`` of the first frame after the latest break
    for cut in sorted(cuts) + [len(data)]:
        breaks = slow.stats.breaks
        frames = slow.feed(data[last:cut])
        if slow.stats.breaks != breaks:
            after = min(max(slow.break_frame - (slow.stats.good - len(frames)), 0), len(frames))
            slow.break_at = len(want) + sum(f.samples.shape == SHAPE[:2] for f in frames[:after])
        want += [(f.seq, f.timestamp_us, f.samples.tolist()) for f in frames if f.samples.shape == SHAPE[:2]]
        n = fast.feed_into(data[last:cut], ring)
        for i in range(ring.count - n, ring.count):
            slot = i % ring.capacity
            got.append((int(ring.seq[slot]), int(ring.timestamp_us[slot]), ring.views[slot].tolist()))
        last = cut
    return want, got, slow, fast, ring


@FAST
@given(streams(), st.lists(st.integers(0, 3000), max_size=20))
def test_fast_path_equals_feed(data, cuts) -> None:
    cuts = [c % (len(data) + 1) for c in cuts]
    want, got, slow, fast, ring = _both(data, cuts)
    assert got == want
    assert fast.stats == slow.stats and fast.buffered == slow.buffered and fast.last_seq == slow.last_seq
    assert fast.device_info == slow.device_info and fast.break_kind == slow.break_kind
    assert ring.skipped == slow.stats.good - len(want) and ring.break_at == slow.break_at


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=10))
def test_fast_path_never_raises(data, cuts) -> None:
    want, got, slow, fast, _ = _both(data, [c % (len(data) + 1) for c in cuts])
    assert got == want and fast.stats == slow.stats


def _frame(seq: int) -> p.Frame:
    return p.Frame(seq=seq, timestamp_us=seq, samples=np.full(SHAPE[:2], seq), sample_bits=24)


def test_break_position_in_ring_terms():
    frames = [_frame(s) for s in (1, 2, 5, 6)]
    ring = p.FrameRing(n_samples=2, n_channels=3, sample_bits=24, capacity=8)
    parser = p.FrameParser()
    assert parser.feed_into(b"".join(p.encode_frame(f) for f in frames), ring) == 4
    assert ring.break_at == 2 and parser.stats.lost == 2 and parser.break_kind == "lost"
    assert [int(ring.seq[i]) for i in range(4)] == [1, 2, 5, 6]
    assert not ring.views[0].flags.writeable


def test_a_read_longer_than_the_ring_keeps_the_newest_and_order():
    frames = [_frame(s) for s in range(1, 12)]
    ring = p.FrameRing(n_samples=2, n_channels=3, sample_bits=24, capacity=4)
    parser = p.FrameParser()
    n = parser.feed_into(b"".join(p.encode_frame(f) for f in frames), ring)
    assert n == 11 and ring.count == 11 and parser.stats.good == 11
    assert [int(ring.seq[i % 4]) for i in range(ring.count - 4, ring.count)] == [8, 9, 10, 11]
