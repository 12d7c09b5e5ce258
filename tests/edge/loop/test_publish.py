"""Publishers: UDP datagrams decode to the estimates, a callback that raises is contained, the CSV log is
complete after shutdown and never holds half a row."""

from __future__ import annotations

import csv
import socket
import time

import pytest
from test_estimate import estimate

from myoedge.edge.loop.estimate import decode_estimate
from myoedge.edge.loop.publish import (
    CallbackPublisher,
    CsvPublisher,
    UdpPublisher,
    csv_columns,
    parse_host_port,
)
from myoedge.ground.errors import InputError

MUSCLES = ("FCR", "ECRL", "ECU")


def test_udp_datagrams_decode_to_the_estimates(receiver):
    port = receiver.getsockname()[1]
    sent = [estimate(3, index=i, theta_rad=0.125 * i) for i in range(20)]
    with UdpPublisher(f"127.0.0.1:{port}", n_muscles=3) as pub:
        for e in sent:
            pub.publish(e)
        got = [decode_estimate(receiver.recv(2048)) for _ in sent]
    assert got == sent
    assert pub.stats.published == 20 and pub.stats.dropped == 0


def test_udp_without_a_listener_never_raises():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the kernel answers with "port unreachable"
    with UdpPublisher(("127.0.0.1", port), n_muscles=3) as pub:
        for i in range(10):
            pub.publish(estimate(3, index=i))
    assert pub.stats.published + pub.stats.dropped == 10


@pytest.mark.parametrize("text, expected", [("127.0.0.1:9870", ("127.0.0.1", 9870)),
                                            ("controller.local:1", ("controller.local", 1)),
                                            ("[::1]:5000", ("::1", 5000))])
def test_parse_host_port(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["9870", "host:", ":80", "host:0", "host:70000", "host:http"])
def test_parse_host_port_refuses(text):
    with pytest.raises(InputError, match="HOST:PORT"):
        parse_host_port(text)


def test_unresolvable_udp_destination_is_an_input_error():
    with pytest.raises(InputError, match="cannot resolve"):
        UdpPublisher("no-such-host.invalid:9870", n_muscles=3)


def test_callback_errors_are_counted_not_raised():
    seen = []

    def flaky(e):
        seen.append(e.index)
        if e.index % 2:
            raise RuntimeError("consumer bug")

    pub = CallbackPublisher(flaky)
    for i in range(6):
        pub.publish(estimate(index=i))
    assert seen == list(range(6)) and pub.stats.published == 3 and pub.stats.dropped == 3
    assert "consumer bug" in pub.stats.last_error


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_log_is_complete_after_close(tmp_path):
    path = tmp_path / "logs" / "run.csv"
    pub = CsvPublisher(path, muscles=MUSCLES, flush_interval_s=0.01)
    sent = [estimate(3, index=i, torque_nm=0.5 * i) for i in range(500)]
    for e in sent:
        pub.publish(e)
    pub.close()
    pub.close()  # idempotent
    assert not pub.partial_path.exists()
    rows = read_rows(path)
    assert rows[0] == csv_columns(MUSCLES)
    assert len(rows) == 501 and all(len(r) == len(rows[0]) for r in rows)
    assert [int(r[0]) for r in rows[1:]] == list(range(500))
    assert [float(r[rows[0].index("torque_nm")]) for r in rows[1:]] == [e.torque_nm for e in sent]
    last = dict(zip(rows[0], rows[-1], strict=True))
    assert last["flag_names"] == "saturated|torque_clamped" and last["valid"] == "0"
    assert float(last["force_ECU_n"]) == 30.0
    pub.publish(estimate(3))
    assert pub.stats.dropped == 1  # after close


def test_csv_partial_file_holds_whole_rows_while_running(tmp_path):
    path = tmp_path / "run.csv"
    pub = CsvPublisher(path, muscles=MUSCLES, flush_interval_s=0.01)
    try:
        for i in range(200):
            pub.publish(estimate(3, index=i))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(read_rows(pub.partial_path)) < 201:
            time.sleep(0.01)
        text = pub.partial_path.read_text()
        assert text.endswith("\n") and len(text.splitlines()) == 201
        assert not path.exists()  # the final name appears only when the log is complete
    finally:
        pub.close()
    assert len(read_rows(path)) == 201
