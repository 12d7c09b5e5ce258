"""The monitor's feeds without a browser: decimation that keeps every flag, bounded buffers, the
waiting / live / stale states, datagrams that are rejected (wrong magic, forged tag), MVC events."""

from __future__ import annotations

import pytest

from myoedge.edge.loop.estimate import Estimate, Flags, encode_estimate
from myoedge.edge.loop.link_auth import DatagramSigner
from myoedge.edge.loop.status import Status, encode_status
from myoedge.edge.monitor.mvc_feed import MvcFeed
from myoedge.edge.monitor.run_feed import FLAG_REASONS, RunFeed, flag_table
from myoedge.edge.monitor.subscriber import handle_datagram


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def estimate(index: int, *, flags: int = 0, theta: float = 0.1) -> Estimate:
    return Estimate(index=index, seq=index, timestamp_us=index * 10_000, theta_rad=theta, forces_n=(1.0, 2.0),
                    torque_nm=0.5, torque_requested_nm=0.5, flags=Flags(flags))


def status(**over) -> Status:
    fields = dict(index=0, watchdog_ms=50, uptime_ms=1, frames=10, estimates=1, invalid_estimates=0,
                  stale_estimates=0, lost_frames=2, crc_errors=1, reconnects=0, resets=0, deadline_misses=0,
                  latency_p50_us=80.0, latency_p99_us=700.0, latency_p999_us=900.0, latency_max_us=950.0,
                  envelopes=(0.5, 0.25))
    return Status(**{**fields, **over})


def test_every_flag_has_a_reason_and_aliases_are_not_listed_twice():
    assert set(FLAG_REASONS) == set(Flags) and [f["name"] for f in flag_table()].count("WARMING_UP") == 1
    assert {f["name"] for f in flag_table() if not f["invalid"]} == {"TORQUE_CLAMPED", "RECONSTRUCTED"}


def test_100_hz_estimates_reach_the_page_at_50_hz_with_every_flag_kept():
    clock = Clock()
    feed = RunFeed(source="udp://x", clock=clock, bucket_s=0.02)
    for k in range(100):  # one second at 100 Hz; one estimate in the middle is flagged
        clock.t = k * 0.01
        feed.add_estimate(estimate(k, flags=Flags.SATURATED if k == 51 else 0))
    clock.t = 1.0
    points = feed.tick()["points"]
    assert 49 <= len(points) <= 51
    flagged = [p for p in points if p[3]]
    assert len(flagged) == 1 and flagged[0][3] == int(Flags.SATURATED)
    assert feed.tick()["points"] == []  # what was sent is not sent again


def test_buffers_are_bounded_and_a_late_tab_gets_the_history():
    clock = Clock()
    feed = RunFeed(source="udp://x", clock=clock, bucket_s=0.02, history_s=2.0)
    for k in range(20_000):
        clock.t = k * 0.01
        feed.add_estimate(estimate(k))
    hello = feed.hello()
    assert len(hello["points"]) == 100 and hello["history_s"] == pytest.approx(2.0)
    assert len(feed.tick()["points"]) == 100  # a page that stopped reading does not make it grow
    assert hello["mode"] == "run" and hello["invalid_mask"] == 447


def test_waiting_then_live_then_stale_by_watchdog_flag_and_by_silence():
    clock = Clock()
    feed = RunFeed(source="udp://127.0.0.1:9870", clock=clock, stale_after_s=0.5)
    state, reason = feed.state()
    assert state == "waiting" and "waiting for the runtime" in reason and "9870" in reason
    feed.add_estimate(estimate(0))
    assert feed.state()[0] == "live"
    feed.add_status(status())
    feed.add_estimate(estimate(1, flags=Flags.STALE))
    state, reason = feed.state()
    assert state == "stale" and "no frame from the amplifier for longer than 50 ms" in reason
    feed.add_estimate(estimate(2))
    clock.t = 0.6
    state, reason = feed.state()
    assert state == "stale" and "no datagram for 0.6 s" in reason


def test_datagrams_are_decoded_counted_and_rejected_with_their_reason():
    feed = RunFeed(source="udp://x")
    handle_datagram(feed, encode_estimate(estimate(0)))
    handle_datagram(feed, encode_estimate(estimate(3)))  # 1 and 2 were lost on the way
    handle_datagram(feed, encode_status(status()))
    handle_datagram(feed, b"GARBAGE-GARBAGE-GARBAGE")
    assert feed.estimates == 2 and feed.statuses == 1 and feed.datagrams_lost == 2 and feed.rejected == 1
    assert "neither an estimate nor a status" in feed.last_rejection
    tick = feed.tick()
    assert tick["status"]["lost_frames"] == 2 and tick["status"]["envelopes"] == [0.5, 0.25]
    assert tick["counts"]["datagrams_lost"] == 2


def test_with_a_key_a_forged_datagram_is_rejected_and_a_signed_one_shown():
    signer, other = DatagramSigner(b"k" * 32), DatagramSigner(b"x" * 32)
    feed = RunFeed(source="udp://x")
    body = encode_estimate(estimate(0))
    handle_datagram(feed, body + other.tag(body), signer)
    handle_datagram(feed, body, signer)
    assert feed.estimates == 0 and feed.rejected == 2 and "authentication failed" in feed.last_rejection
    handle_datagram(feed, body + signer.tag(body), signer)
    assert feed.estimates == 1


def test_mvc_events_become_the_session_snapshot():
    feed = MvcFeed(source="socket://amp", history_s=1.0, rate_hz=10.0)
    assert feed.hello()["phase"] == "waiting" and feed.hello()["mode"] == "mvc"
    feed.event({"type": "session", "muscles": ["BFSH", "RF"], "mode": "guided", "repetitions": 3,
                "device": "amp"})
    feed.event({"type": "prompt", "muscle": "BFSH", "attempt": 1, "text": "BFSH, repetition 1: relax"})
    feed.event({"type": "countdown", "muscle": "BFSH", "seconds": 2})
    assert feed.tick()["countdown"] == 2
    for k, v in enumerate((1e-5, 4e-4, 2e-4)):
        feed.event({"type": "envelope", "t": k / 30, "volts": [v, 1e-5]})
    feed.event({"type": "go", "muscle": "BFSH", "hold_s": 5.0})
    feed.event({"type": "repetition", "muscle": "BFSH", "attempt": 1, "accepted": False,
                "reason": "clipping: 3% of raw samples at the ADC limit", "mvc_volts": 4e-4,
                "rest_volts": 1e-5})
    tick = feed.tick()
    assert tick["mode"] == "mvc" and tick["session_mode"] == "guided" and tick["phase"] == "verdict"
    assert tick["running_max"] == [4e-4, 1e-5] and tick["levels"] == [2e-4, 1e-5] and len(tick["points"]) == 3
    assert tick["repetitions"][0]["accepted"] is False and "clipping" in tick["repetitions"][0]["reason"]
    for k in range(100):
        feed.event({"type": "envelope", "t": 1 + k / 30, "volts": [1e-5, 1e-5]})
    assert len(feed.hello()["points"]) == 10  # bounded
    feed.event({"type": "done", "mvc_volts": {"BFSH": 4e-4, "RF": 3e-4}})
    assert feed.tick()["phase"] == "done" and "BFSH 400.0 µV" in feed.tick()["prompt"]
