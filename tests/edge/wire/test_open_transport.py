"""``open_transport(url)``: one factory for every command; a URL that cannot work is a clear InputError."""

import time

import pytest

from myoedge.edge.sim.bench_sim import InprocTransport, sim_url
from myoedge.edge.wire.reader import Reader
from myoedge.edge.wire.transport import SerialTransport, open_transport
from myoedge.ground.errors import InputError


@pytest.mark.parametrize("url", ["/dev/ttyUSB0", "/dev/pts/7", "COM3", "socket://127.0.0.1:5555", "loop://"])
def test_serial_urls_give_a_serial_transport_not_yet_opened(url):
    transport = open_transport(url)
    assert isinstance(transport, SerialTransport)
    assert transport.url == url and not transport.connected


@pytest.mark.parametrize(("url", "says"), [
    ("", "non-empty"), ("   ", "non-empty"), ("nosuchscheme://x", "unknown URL scheme 'nosuchscheme'"),
    ("ttyUSB0", "neither a device path"), ("socket://127.0.0.1", "HOST:PORT"),
    ("socket://:5555", "HOST:PORT"), ("socket://host:99999", "1..65535"), ("socket://host:http", "1..65535"),
    ("sim://?channels=x", "channels='x' is not an integer"), ("sim://?colour=red", "unknown simulator"),
    ("sim://?channels=0", "out of range"), ("sim://?fault=disconnect@1s", "disconnect"),
])
def test_bad_urls_are_refused_naming_the_problem(url, says):
    with pytest.raises(InputError, match=says.replace("(", r"\(").replace(".", r"\.")):
        open_transport(url)


def test_a_non_string_url_is_refused():
    with pytest.raises(InputError, match="non-empty string"):
        open_transport(None)


def test_sim_url_streams_frames_of_the_requested_shape():
    url = sim_url(labels=("A", "B", "C"), fs_hz=1000.0, samples_per_frame=4, bits=16, seconds=1.0)
    transport = open_transport(url)
    assert isinstance(transport, InprocTransport) and transport.url == url
    reader = Reader(transport).start()
    try:
        deadline = time.monotonic() + 5
        got = []
        while len(got) < 20 and time.monotonic() < deadline:
            item = reader.get(timeout_s=0.1)
            if item is not None:
                got.append(item[0])
    finally:
        reader.stop()
    assert len(got) == 20
    assert got[0].samples.shape == (4, 3) and got[0].sample_bits == 16
    assert [f.seq for f in got] == list(range(got[0].seq, got[0].seq + 20))
    info = reader.device_info
    assert info.labels == ("A", "B", "C") and info.sample_rate_hz == 1000.0
