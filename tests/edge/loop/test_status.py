"""The runtime's status datagram: its layout, that estimate receivers reject it cleanly, and that it is
sent by a thread of its own, so the loop's work per estimate is the same with or without it (and with or
without a monitor listening)."""

from __future__ import annotations

import math
import threading

import pytest
from loop_parts import MUSCLES, setup_parts

from myoedge.edge.loop.estimate import decode_estimate
from myoedge.edge.loop.publish import UdpPublisher
from myoedge.edge.loop.runtime import Runtime
from myoedge.edge.loop.status import FIXED_SIZE, Status, decode_status, encode_status, layout_rows
from myoedge.edge.wire.transport import open_transport
from myoedge.ground.errors import InputError

SIM_PORT = "sim://?labels=FCR,FCU,ECRL,ECRB,ECU&fs=1000"


def _status(**over) -> Status:
    fields = dict(index=7, watchdog_ms=50, uptime_ms=12_345, frames=1000, estimates=100, invalid_estimates=9,
                  stale_estimates=2, lost_frames=3, crc_errors=1, reconnects=1, resets=4, deadline_misses=5,
                  latency_p50_us=80.5, latency_p99_us=700.0, latency_p999_us=1100.0, latency_max_us=1500.0,
                  envelopes=(0.1, 0.2, 0.3))
    return Status(**{**fields, **over})


def test_a_status_round_trips_and_estimate_receivers_reject_it_by_its_magic():
    data = encode_status(_status())
    assert len(data) == FIXED_SIZE + 4 * 3 and data[:4] == b"MYOS"
    back = decode_status(data)
    assert back.lost_frames == 3 and back.crc_errors == 1 and back.uptime_ms == 12_345 and back.index == 7
    assert back.latency_p99_us == pytest.approx(700.0) and back.envelopes == pytest.approx((0.1, 0.2, 0.3))
    with pytest.raises(InputError, match="not an estimate datagram: magic b'MYOS'"):
        decode_estimate(data)
    with pytest.raises(InputError, match="has 80 bytes, got 79"):
        decode_status(data[:-1])
    nan = decode_status(encode_status(_status(latency_p50_us=math.nan))).to_dict()
    assert nan["latency_p50_us"] is None and nan["lost_frames"] == 3


def test_the_docs_byte_table_is_the_layout():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "runtime.md").read_text()
    for offset, size, ctype, name, meaning in layout_rows():
        assert f"| {offset} | {size} | {ctype} | `{name}` | {meaning} |" in text


class _Recording:
    """Wraps a socket: which thread sent how many datagrams of which kind."""

    def __init__(self, sock) -> None:
        self._sock, self.sends = sock, []

    def send(self, data):
        self.sends.append((threading.current_thread().name, bytes(data[:4])))
        return self._sock.send(data)

    def close(self):
        self._sock.close()


def _run(tmp_path, receiver, *, status_interval_s):
    bundle, profile, _ = setup_parts(tmp_path)
    udp = UdpPublisher(receiver.getsockname(), n_muscles=len(MUSCLES))
    udp._sock = _Recording(udp._sock)
    runtime = Runtime(bundle=bundle, profile=profile, transport=open_transport(SIM_PORT), publishers=[udp],
                      status_interval_s=status_interval_s)
    stats = runtime.run(duration_s=1.0, say=lambda _: None)
    return udp, stats


@pytest.mark.parametrize("status_interval_s", [None, 0.05])
def test_the_loop_sends_one_datagram_per_estimate_and_status_comes_from_its_own_thread(
        tmp_path, receiver, status_interval_s):
    """What ``myoedge bench`` measures is unchanged by the monitor: the reader thread's work per estimate
    is one send of the estimate, with or without status datagrams (and a listener never talks back)."""
    udp, stats = _run(tmp_path, receiver, status_interval_s=status_interval_s)
    loop_sends = [kind for thread, kind in udp._sock.sends if thread != "myoedge-status"]
    status_sends = [(thread, kind) for thread, kind in udp._sock.sends if kind == b"MYOS"]
    assert stats["estimates"] > 40 and loop_sends == [b"MYOE"] * stats["estimates"]
    assert udp.stats.published == stats["estimates"] and udp.stats.dropped == 0
    if status_interval_s is None:
        assert status_sends == [] and "status_datagrams" not in stats
    else:
        assert 5 <= len(status_sends) <= 21 and {t for t, _ in status_sends} == {"myoedge-status"}
        assert udp.status_sent == len(status_sends) == stats["status_datagrams"]["sent"]
        receiver.settimeout(0.5)
        got = []
        while True:
            try:
                got.append(receiver.recv(4096))
            except TimeoutError:
                break
        statuses = [decode_status(d) for d in got if d[:4] == b"MYOS"]
        last = statuses[-1]
        assert last.frames > 200 and last.estimates > 40 and last.watchdog_ms == 50
        assert len(last.envelopes) == len(MUSCLES) and any(v > 0 for v in last.envelopes)
        assert [s.index for s in statuses] == list(range(len(statuses)))
        assert last.latency_p50_us > 0 and last.latency_max_us >= last.latency_p99_us


def test_run_refuses_status_without_udp_or_at_a_silly_rate(tmp_path, capsys):
    from myoedge.cli import main

    bundle, profile, _ = setup_parts(tmp_path)
    path = profile.save(tmp_path / "p.json")
    base = ["run", "--port", SIM_PORT, "--bundle", str(bundle.path), "--profile", str(path)]
    assert main([*base, "--status-hz", "20"]) == 2
    assert "--status-hz needs a UDP publisher" in capsys.readouterr().err
    assert main([*base, "--udp", "127.0.0.1:9", "--status-hz", "1000"]) == 2
    assert "within [1/60, 100] Hz, got 1000" in capsys.readouterr().err
