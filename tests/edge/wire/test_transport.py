"""Transports and the reader thread: real bytes through loop://, a pty and a TCP socket, reconnects,
clear errors for missing ports, the FTDI latency_timer check, and the reader's queue accounting."""

from __future__ import annotations

import logging
import os
import pty
import select
import socket
import time

import numpy as np
import pytest
from sim_helpers import LABELS, Collector, noise_signal, streaming, wait_until

from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.faults import FaultPlan
from myoedge.edge.wire.protocol import Frame, encode_frame
from myoedge.edge.wire.reader import Reader
from myoedge.edge.wire.transport import SerialTransport, check_latency_timer, open_transport
from myoedge.ground.errors import InputError


def frames(n: int, *, first: int = 0) -> list[Frame]:
    rng = np.random.default_rng(first)
    return [Frame(seq=first + i, timestamp_us=1000 * (first + i), samples=rng.integers(-3000, 3000, (2, 4)))
            for i in range(n)]


def test_loop_url_round_trip_through_the_reader_queue() -> None:
    sent = frames(40)
    reader = Reader(SerialTransport("loop://", timeout_s=0.02)).start()
    try:
        assert reader.transport.connected and reader.transport.url == "loop://"
        wire = b"".join(encode_frame(f) for f in sent)
        for start in range(0, len(wire), 37):  # frames cut anywhere
            reader.transport.write(wire[start:start + 37])
        got = [reader.get(timeout_s=2.0) for _ in sent]
    finally:
        stats = reader.stop()
    assert [g[0] for g in got] == sent
    stamps = [g[1] for g in got]
    assert stamps == sorted(stamps) and stamps[0] > 0
    assert stats.frames == 40 and stats.queue_drops == 0 and stats.parser.lost == 0
    assert stats.transport.bytes_read == len(wire) and not stats.running and not reader.transport.connected


def test_a_full_queue_drops_the_oldest_frames_and_counts_them() -> None:
    sent = frames(20)
    reader = Reader(SerialTransport("loop://", timeout_s=0.02), queue_size=5).start()
    try:
        reader.transport.write(b"".join(encode_frame(f) for f in sent))
        assert wait_until(lambda: reader.stats().frames == 20, 15.0)
        kept = [reader.get(timeout_s=0.0)[0] for _ in range(5)]
        assert reader.get(timeout_s=0.0) is None
    finally:
        stats = reader.stop()
    assert kept == sent[-5:] and stats.queue_drops == 15


def test_consumer_errors_are_counted_and_reading_goes_on() -> None:
    calls = []

    def consumer(batch: list[Frame], t_read_ns: int) -> None:
        calls.append(len(batch))
        raise RuntimeError("consumer bug")

    reader = Reader(SerialTransport("loop://", timeout_s=0.02), on_frames=consumer).start()
    try:
        for f in frames(3):
            reader.transport.write(encode_frame(f))
            assert wait_until(lambda n=f.seq + 1: sum(calls) == n, 15.0)
    finally:
        stats = reader.stop()
    assert stats.consumer_errors == len(calls) >= 1 and stats.frames == 3 and stats.error == ""


@pytest.mark.parametrize("spin_us", [0, 3000])
@pytest.mark.parametrize("output", ["pty", "tcp"])
def test_every_frame_arrives_in_order_through_real_bytes(output: str, spin_us: int) -> None:
    got = Collector()
    sim = AmplifierSimulator(noise_signal(), bits=24, tcp_port=0 if output == "tcp" else None,
                             stop_after_s=0.4, on_sent=got.on_sent)
    with streaming(sim, collector=got, spin_us=spin_us) as (sim, reader):
        assert sim.wait(10.0)
        assert wait_until(lambda: len(got.got) == len(got.sent), 15.0)
        stats = reader.stats()
        info = reader.device_info
    assert len(got.sent) == 400 and got.got == got.sent  # 0.4 s of 1 ms frames, all equal and in order
    assert [f.seq for f in got.got] == sorted(f.seq for f in got.got)
    assert stats.parser.lost == stats.parser.crc_errors == stats.parser.discarded_bytes == 0
    assert info == sim.device_info and info.labels == LABELS
    assert got.read_ns == sorted(got.read_ns)
    assert stats.transport.reconnects == 0
    assert sim.address == (f"socket://127.0.0.1:{sim.port}" if output == "tcp" else reader.transport.url)


@pytest.mark.parametrize("spin_us", [0, 3000])  # with the poll, the end of file still reaches select
def test_reconnects_when_the_tcp_server_goes_away_and_comes_back(caplog: pytest.LogCaptureFixture,
                                                                 spin_us: int) -> None:
    caplog.set_level(logging.INFO, logger="myoedge.edge")
    got = Collector()
    sim = AmplifierSimulator(noise_signal(), tcp_port=0, stop_after_s=1.0, on_sent=got.on_sent,
                             faults=FaultPlan.parse("disconnect:0.3@0.3s"))
    with streaming(sim, collector=got, spin_us=spin_us) as (sim, reader):
        assert sim.wait(10.0)
        assert wait_until(lambda: len(got.got) == len(got.sent), 15.0)
        stats, sim_stats = reader.stats(), sim.stats()
    assert sim_stats.faults.disconnects == 1 and sim_stats.connections == 2
    assert stats.transport.reconnects == 1 and stats.transport.read_errors == 1
    assert got.got == got.sent and stats.parser.lost == sim_stats.expected_lost == sim_stats.frames_unsent > 0
    assert any("reconnected" in r.getMessage() for r in caplog.records)
    assert any("port lost" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_back_off_spaces_the_attempts_while_the_port_is_gone(tmp_path) -> None:
    sim = AmplifierSimulator(noise_signal(), link_path=str(tmp_path / "amp"), stop_after_s=0.05)
    with streaming(sim, str(tmp_path / "amp"), seed=1) as (sim, reader):
        assert sim.wait(10.0)
        sim.stop()  # the pty and its link vanish; the reader retries with back-off
        assert wait_until(lambda: reader.stats().transport.read_errors == 1, 15.0)
        time.sleep(0.6)
        attempts = reader.stats().transport.reconnect_attempts
    # 50 ms doubling, each delay jittered to 50-100 %: at most 5 attempts in 0.6 s, not one per read
    assert 1 <= attempts <= 5


def test_a_missing_port_is_a_clear_input_error(tmp_path) -> None:
    port = str(tmp_path / "ttyUSB9")
    expected = r"no serial port .*ttyUSB9 \(is the amplifier plugged in\? ports found: "
    with pytest.raises(InputError, match=expected):
        Reader(SerialTransport(port)).start()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    number = free.getsockname()[1]
    free.close()
    with pytest.raises(InputError, match="nothing accepts connections at socket://127.0.0.1"):
        SerialTransport(f"socket://127.0.0.1:{number}").connect()
    with pytest.raises(InputError, match="cannot use port"):
        SerialTransport("nosuchscheme://x").connect()
    with pytest.raises(RuntimeError, match="connect"):
        SerialTransport("loop://").read()


def test_a_port_opened_elsewhere_is_refused_as_in_use() -> None:
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        with SerialTransport(path) as first:
            assert first.connected
            with pytest.raises(InputError, match="in use by another program"):
                SerialTransport(path).connect()
    finally:
        os.close(slave)
        os.close(master)


def fake_sysfs(root, name: str, value: str):
    folder = root / "bus" / "usb-serial" / "devices" / name
    folder.mkdir(parents=True)
    (folder / "latency_timer").write_text(value + "\n")


def test_latency_timer_above_1_ms_is_warned_with_the_fix(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    fake_sysfs(tmp_path, "ttyUSB7", "16")
    fake_sysfs(tmp_path, "ttyUSB8", "1")
    with caplog.at_level(logging.WARNING, logger="myoedge.edge"):
        assert check_latency_timer("/dev/ttyUSB8", sysfs_root=tmp_path) == 1
        assert check_latency_timer("/dev/ttyS0", sysfs_root=tmp_path) is None
        assert not caplog.records
        assert check_latency_timer("/dev/ttyUSB7", sysfs_root=tmp_path) == 16
    (record,) = caplog.records
    assert "16 ms" in record.getMessage() and "echo 1 | sudo tee" in record.getMessage()
    assert str(tmp_path / "bus/usb-serial/devices/ttyUSB7/latency_timer") in record.getMessage()
    assert 'ATTR{latency_timer}="1"' in record.getMessage()


def test_connect_checks_the_latency_timer_of_a_usb_port(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    fake_sysfs(tmp_path / "sys", "ttyUSB3", "16")
    master, slave = os.openpty()
    link = tmp_path / "ttyUSB3"  # stands in for the adapter's device node
    link.symlink_to(os.ttyname(slave))
    try:
        with caplog.at_level(logging.WARNING, logger="myoedge.edge"):
            with SerialTransport(str(link), sysfs_root=tmp_path / "sys") as transport:
                assert transport.latency_timer_ms == 16
        assert any("latency_timer is 16 ms" in r.getMessage() for r in caplog.records)
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("spin_us", [0, 5000])
def test_a_spinning_read_polls_before_it_blocks_and_takes_bytes_without_select(monkeypatch, spin_us) -> None:
    master, slave = pty.openpty()
    transport = SerialTransport(os.ttyname(slave), timeout_s=0.01, spin_us=spin_us)
    transport.connect()
    calls = {"read": 0, "select": 0}
    real_read, real_select = os.read, select.select

    def counted_read(fd, n):
        calls["read"] += 1
        return real_read(fd, n)

    def counted_select(*args):
        calls["select"] += 1
        return real_select(*args)

    monkeypatch.setattr(os, "read", counted_read)
    monkeypatch.setattr(select, "select", counted_select)
    try:
        t0 = time.perf_counter()
        assert transport.read() == b""  # nothing sent: poll (when spinning), then wait in select
        waited = time.perf_counter() - t0
        idle = dict(calls)
        os.write(master, b"\x01\x02\x03")
        time.sleep(0.02)
        calls.update(read=0, select=0)
        assert transport.read() == b"\x01\x02\x03"
    finally:
        transport.close()
        os.close(master)
        os.close(slave)
    assert idle["select"] == 1 and waited >= 0.01 + spin_us * 1e-6
    if spin_us:
        assert idle["read"] >= 2 and calls == {"read": 1, "select": 0}  # polled; bytes taken by the poll
    else:
        assert idle["read"] == 0 and calls == {"read": 1, "select": 1}


@pytest.mark.parametrize("value", [-1, 100_001, float("nan"), True, "50"])
def test_a_bad_spin_time_is_refused(value) -> None:
    with pytest.raises(InputError, match="spin_us"):
        SerialTransport("loop://", spin_us=value)


def test_spinning_is_refused_for_streams_that_are_not_ports() -> None:
    with pytest.raises(InputError, match="serial ports and sockets"):
        open_transport("sim://?channels=2", spin_us=100)
    assert open_transport("socket://127.0.0.1:9", spin_us=100).spin_us == 100
