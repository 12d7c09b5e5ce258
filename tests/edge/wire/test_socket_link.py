"""socket:// messages (issue 15, case 7): a busy amplifier is reported as busy, a bad host by name."""

import socket
import threading
import time

import pytest
from sim_helpers import noise_signal

from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.wire.socket_link import busy_message, check_not_busy
from myoedge.edge.wire.transport import SerialTransport, open_transport
from myoedge.ground.errors import InputError


def test_a_second_reader_of_amp_sim_is_told_the_amplifier_is_busy():
    sim = AmplifierSimulator(noise_signal(), tcp_port=0, stop_after_s=5.0)
    sim.start()
    first = SerialTransport(sim.address)
    try:
        first.connect()
        got = b""
        while len(got) < 200:
            got += first.read()
        second = SerialTransport(sim.address)
        with pytest.raises(InputError, match="is busy: another reader is connected") as info:
            second.connect()
        assert "no device-info frame" not in str(info.value) and not second.connected
        assert first.read() or first.read()  # the first reader keeps its stream
    finally:
        first.close()
        sim.stop()


def serve_once(action):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def run():
        conn, _ = server.accept()
        action(conn)
        conn.close()
        server.close()

    threading.Thread(target=run, daemon=True).start()
    return f"socket://127.0.0.1:{server.getsockname()[1]}"


def test_a_bridge_that_hangs_up_at_once_is_reported_as_probably_busy():
    url = serve_once(lambda conn: None)
    with pytest.raises(InputError, match="closed the connection at once.*busy"):
        SerialTransport(url).connect()


def test_the_busy_check_consumes_nothing_from_a_live_amplifier():
    a, b = socket.socketpair()
    try:
        b.sendall(b"\xa5\x5a frame bytes")
        check_not_busy(a, "socket://test")
        assert a.recv(64) == b"\xa5\x5a frame bytes"
        b.sendall(busy_message("in use by\nsomeone"))
        with pytest.raises(InputError, match="busy: in use by someone; stop"):
            check_not_busy(a, "socket://test")
    finally:
        a.close()
        b.close()


def test_bytes_sent_while_the_reader_connects_are_kept(monkeypatch):
    """A server that streams from accept (an amplifier, amp-sim --fast): pyserial's own open flushes the
    input, and a reader held up between connect and flush would lose the first frames uncounted."""
    sent, done = b"\xa5\x5a first frames", threading.Event()
    url = serve_once(lambda conn: (conn.sendall(sent), done.wait(5.0)))
    real = socket.create_connection

    def slow_connect(*args, **kwargs):  # the reader's thread is held up after connecting
        sock = real(*args, **kwargs)
        time.sleep(0.2)
        return sock

    monkeypatch.setattr(socket, "create_connection", slow_connect)
    transport = SerialTransport(url)
    try:
        transport.connect()
        got = b""
        for _ in range(20):
            got += transport.read()
            if len(got) >= len(sent):
                break
        assert got == sent and transport.stats.read_errors == 0
    finally:
        done.set()
        transport.close()


@pytest.mark.parametrize("url", ["socket://no-such-host.invalid:5555", "socket://256.1.1.1:5555"])
def test_a_host_that_does_not_resolve_is_named_in_one_clean_line(url):
    with pytest.raises(InputError) as info:
        open_transport(url)
    message = str(info.value)
    host = url.removeprefix("socket://").rsplit(":", 1)[0]
    assert f"host {host!r} not found" in message and "Could not open port" not in message
    assert message.count(url) == 1


def test_a_second_reader_of_a_pty_is_told_the_port_is_in_use():
    sim = AmplifierSimulator(noise_signal(), stop_after_s=5.0)
    sim.start()
    first = SerialTransport(sim.address)
    try:
        first.connect()
        with pytest.raises(InputError, match="in use by another program"):
            SerialTransport(sim.address).connect()
    finally:
        first.close()
        sim.stop()
