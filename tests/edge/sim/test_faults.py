"""Fault injection: spec parsing, what each fault does to the bytes, and that the parser counts every
injected fault exactly, in memory and through the simulator, a socket and the reader."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import Collector, noise_signal, streaming, wait_until

from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.faults import GARBAGE_MAX_BYTES, FaultInjector, FaultPlan
from myoedge.edge.wire.protocol import SYNC, Frame, FrameParser, encode_frame
from myoedge.ground.errors import InputError


def test_specs_parse_combine_and_describe_themselves() -> None:
    plan = FaultPlan.parse(["bitflip:0.001", "drop:0.01,garbage:0.005", "stall:2.0@10s", "disconnect@15s",
                            "disconnect:1.5@3"], seed=7)
    assert (plan.bitflip, plan.drop, plan.garbage, plan.seed) == (0.001, 0.01, 0.005, 7)
    assert plan.stalls == ((10.0, 2.0),) and plan.disconnects == ((3.0, 1.5), (15.0, 0.5))
    assert FaultPlan.parse(plan.describe(), seed=7) == plan and plan.active
    assert not FaultPlan.parse([]).active


@pytest.mark.parametrize("spec", ["bitflip", "bitflip:2", "drop:-0.1", "stall@3s", "stall:1@", "melt:0.1",
                                  "garbage:0.1@2s", "disconnect:0@1s", "drop:0.1,drop:0.2", "stall:x@1s"])
def test_bad_specs_are_input_errors(spec: str) -> None:
    with pytest.raises(InputError, match="fault|rate|duration|given twice"):
        FaultPlan.parse(spec)


def wire_frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [encode_frame(Frame(seq=i, timestamp_us=500 * i, samples=rng.integers(-30000, 30000, (2, 8))))
            for i in range(n)]


def inject(plan: FaultPlan, n: int = 3000) -> tuple[FaultInjector, FrameParser, list[Frame]]:
    injector, parser = FaultInjector(plan), FrameParser()
    stream = b"".join(injector.apply(w) for w in wire_frames(n))
    return injector, parser, parser.feed(stream)


def test_each_injection_does_what_it_says_to_the_bytes() -> None:
    (wire,) = wire_frames(1)
    flip = FaultInjector(FaultPlan(bitflip=1.0))
    out = flip.apply(wire)
    diff = np.unpackbits(np.frombuffer(out, np.uint8) ^ np.frombuffer(wire, np.uint8))
    assert len(out) == len(wire) and diff.sum() == 1
    assert FaultInjector(FaultPlan(drop=1.0)).apply(wire) == b""
    garbage = FaultInjector(FaultPlan(garbage=1.0, seed=2))
    bursts = [garbage.apply(wire) for _ in range(200)]
    assert all(b.endswith(wire) and 1 <= len(b) - len(wire) <= GARBAGE_MAX_BYTES for b in bursts)
    assert all(SYNC[0] not in b[:len(b) - len(wire)] for b in bursts)
    assert garbage.stats.garbage_bytes == sum(len(b) - len(wire) for b in bursts)
    assert FaultInjector(FaultPlan()).apply(wire) is wire


def test_bit_flips_become_crc_errors_or_bad_headers_and_lost_frames() -> None:
    injector, parser, got = inject(FaultPlan(bitflip=0.02, seed=1))
    fs, ps = injector.stats, parser.stats
    assert fs.bitflips > 30 and ps.lost == fs.bitflips and ps.good == len(got) == 3000 - fs.bitflips
    assert ps.crc_errors > 0 and ps.crc_errors + ps.bad_header == fs.bitflips - fs.bitflips_in_sync


def test_drops_become_lost_frames() -> None:
    injector, parser, got = inject(FaultPlan(drop=0.02, seed=2))
    assert injector.stats.drops > 30 and parser.stats.lost == injector.stats.drops
    assert parser.stats.crc_errors == parser.stats.discarded_bytes == 0


def test_garbage_becomes_discarded_bytes_and_resyncs() -> None:
    injector, parser, got = inject(FaultPlan(garbage=0.02, seed=3))
    fs, ps = injector.stats, parser.stats
    assert fs.garbage_bursts > 30 and len(got) == 3000 and ps.lost == 0
    assert ps.resyncs == fs.garbage_bursts and ps.discarded_bytes == fs.garbage_bytes


def test_timed_events_fire_once_in_stream_time() -> None:
    injector = FaultInjector(FaultPlan.parse("stall:0.5@1s,disconnect@2s"))
    assert injector.due(0.999) == []
    assert injector.due(1.0) == [("stall", 0.5)]
    assert injector.due(5.0) == [("disconnect", 0.5)] and injector.due(9.0) == []


def test_rate_faults_through_a_socket_are_counted_exactly() -> None:
    got = Collector()
    plan = FaultPlan.parse("bitflip:0.02,drop:0.02,garbage:0.02", seed=5)
    sim = AmplifierSimulator(noise_signal(), bits=16, tcp_port=0, fast=True, stop_after_s=2.0,
                             faults=plan, on_sent=got.on_sent)
    with streaming(sim, collector=got) as (sim, reader):
        assert sim.wait(10.0)
        assert wait_until(lambda: len(got.got) == len(got.sent), 15.0)
        ps, ss = reader.stats().parser, sim.stats()
    fs = ss.faults
    assert min(fs.bitflips, fs.drops, fs.garbage_bursts) > 10
    assert got.got == got.sent and ps.lost == ss.expected_lost == fs.bitflips + fs.drops
    assert ps.crc_errors + ps.bad_header == fs.bitflips - fs.bitflips_in_sync
    assert ps.resyncs == fs.garbage_bursts + fs.bitflips  # each corrupted frame is one more resync


def test_a_stall_stops_frames_and_the_stream_recovers_without_loss() -> None:
    got = Collector()
    sim = AmplifierSimulator(noise_signal(), tcp_port=0, stop_after_s=0.6, on_sent=got.on_sent,
                             faults=FaultPlan.parse("stall:0.4@0.2s"))
    with streaming(sim, collector=got) as (sim, reader):
        assert sim.wait(10.0)
        assert wait_until(lambda: len(got.got) == len(got.sent), 15.0)
        ps, ss = reader.stats().parser, sim.stats()
    gaps = np.diff(np.array(got.read_ns)) / 1e9
    assert ss.faults.stalls == 1 and ps.lost == 0 and got.got == got.sent and len(got.got) == 600
    assert gaps.max() >= 0.3  # nothing arrived during the stall ...
    before = int(np.argmax(gaps))
    assert got.got[before].timestamp_us < 200_000 <= got.got[before + 1].timestamp_us  # ... from 0.2 s
    assert ss.late_frames > 0  # and the backlog came late, in a burst
