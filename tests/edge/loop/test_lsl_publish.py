"""Publishers by URL and the LSL estimate outlet: an inlet opened in-process receives every estimate that
the UDP controller receives in the same run, with the same values, and the stream describes its
channels (labels, units, types) and its nominal rate as LSL's conventions say."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from loop_parts import FS, MUSCLES, setup_parts
from test_estimate import estimate

from myoedge.cli import main
from myoedge.edge.loop.estimate import Flags, decode_estimate
from myoedge.edge.loop.publish import UdpPublisher, open_publisher
from myoedge.edge.loop.runtime import Runtime
from myoedge.edge.sim.bench_sim import sim_url
from myoedge.edge.wire.transport import open_transport
from myoedge.ground.errors import InputError

pylsl = pytest.importorskip("pylsl")
from myoedge.edge.loop.lsl_publish import LslPublisher, estimate_channels  # noqa: E402


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def open_inlet(name: str, *, timeout_s: float = 5.0, **options):
    found = pylsl.resolve_byprop("name", name, 1, timeout_s)
    assert len(found) == 1, f"stream {name} not found"
    inlet = pylsl.StreamInlet(found[0], **options)
    info = inlet.info(timeout_s)
    inlet.open_stream(timeout_s)
    return inlet, info


def pull_all(inlet, *, quiet_s: float = 1.0) -> list[list[float]]:
    out = []
    while True:
        sample, _ = inlet.pull_sample(timeout=quiet_s)
        if sample is None:
            return out
        out.append(sample)


def channel_values(info, what: str) -> list[str]:
    values, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        values.append(ch.child_value(what))
        ch = ch.next_sibling("channel")
    return values


@pytest.mark.parametrize("url, words", [
    ("udp://nowhere", "HOST:PORT"), ("udp://127.0.0.1:99999", "HOST:PORT"),
    ("udp://127.0.0.1:9/x", "HOST:PORT"),
    ("tcp://127.0.0.1:9", "unknown URL scheme 'tcp'"), ("127.0.0.1:9870", "a publisher is a URL"),
    ("lsl://", "stream name"), ("lsl://two words", "stream name"), ("lsl://a/b", "stream name")])
def test_open_publisher_refuses_urls_that_cannot_work(url, words):
    with pytest.raises(InputError, match=words):
        open_publisher(url, muscles=MUSCLES, rate_hz=100.0)


def test_open_publisher_makes_the_publisher_the_url_names(receiver):
    port = receiver.getsockname()[1]
    with open_publisher(f"udp://127.0.0.1:{port}", muscles=MUSCLES, rate_hz=100.0, key=b"k" * 16) as pub:
        assert isinstance(pub, UdpPublisher) and pub.address == f"127.0.0.1:{port}"
        pub.publish(estimate(len(MUSCLES)))
        data = receiver.recv(4096)
    assert len(data) == 48 + 4 * len(MUSCLES) + 16  # the estimate and its HMAC tag: the key was used
    name = unique("myoedge-test-pub")
    pub = open_publisher(f"lsl://{name}", muscles=MUSCLES, rate_hz=100.0)
    try:
        assert isinstance(pub, LslPublisher) and pub.address == f"lsl://{name}"
    finally:
        pub.close()


def test_the_estimate_stream_describes_its_channels_and_keeps_its_source_id():
    name = unique("myoedge-test-info")
    pub = LslPublisher(name, muscles=MUSCLES, rate_hz=125.0)
    try:
        inlet, info = open_inlet(name)
        assert (info.type(), info.channel_count(), info.nominal_srate()) == \
            ("Estimate", len(MUSCLES) + 10, 125.0)
        assert info.channel_format() == pylsl.cf_double64 and info.source_id() == pub.source_id
        labels = channel_values(info, "label")
        assert labels[:2 + len(MUSCLES) + 1] == ["theta_rad", "torque_nm", *[f"force_{m}_n" for m in MUSCLES],
                                                 "flags"]
        assert labels == [c[0] for c in estimate_channels(MUSCLES)]
        units = dict(zip(labels, channel_values(info, "unit")))
        assert units["theta_rad"] == "radians" and units["torque_nm"] == "newton_meters"
        assert units["force_FCR_n"] == "newtons" and units["timestamp_us"] == "microseconds"
        types = dict(zip(labels, channel_values(info, "type")))
        assert types["force_ECU_n"] == "Force" and types["flags"] == "Flags"
        flags = info.desc().child("flags")
        assert int(flags.child_value("invalid_mask")) & Flags.STALE
        inlet.close_stream()
    finally:
        pub.close()
    again = LslPublisher(name, muscles=MUSCLES, rate_hz=125.0)
    other = LslPublisher(unique("myoedge-test-info"), muscles=MUSCLES, rate_hz=125.0)
    try:  # the same name and muscles give the same source_id, so an inlet recovers after a restart
        assert again.source_id == pub.source_id != other.source_id
    finally:
        again.close()
        other.close()


def test_values_arrive_exactly_and_publish_never_waits_for_a_consumer_that_does_not_read():
    name = unique("myoedge-test-block")
    pub = LslPublisher(name, muscles=MUSCLES, rate_hz=100.0, linger_s=0.0)
    inlet, _ = open_inlet(name, max_buflen=1)  # buffers 1 s (100 samples) and is never read below
    sent = [estimate(len(MUSCLES), index=i, theta_rad=0.1 + i, flags=Flags.STALE | Flags.TORQUE_CLAMPED)
            for i in range(20_000)]
    done = threading.Event()

    def push_all():
        for e in sent:
            pub.publish(e)
        done.set()

    threading.Thread(target=push_all, daemon=True).start()
    try:
        assert done.wait(30.0), "publishing blocked on an inlet that does not read"
        assert pub.stats.published == len(sent) and pub.stats.dropped == 0
        first, _ = inlet.pull_sample(timeout=5.0)  # the oldest the full inlet kept
        got = dict(zip([c[0] for c in estimate_channels(MUSCLES)], first))
        e = sent[int(got["index"])]
        assert got["bad_channels_lo"] == 4 and got["bad_channels_hi"] == 1 << 31  # bits 2 and 63, exactly
        assert e.bad_channels == (1 << 63) | 4 and got["theta_rad"] == e.theta_rad and got["seq"] == e.seq
        assert got["timestamp_us"] == e.timestamp_us == 2**40 + 5 and got["flags"] == int(e.flags)
    finally:
        inlet.close_stream()
        pub.close()


def test_an_lsl_inlet_receives_every_estimate_that_udp_receives(tmp_path):
    bundle, profile, _ = setup_parts(tmp_path)
    name = unique("myoedge-test-run")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sink.settimeout(0.5)
    publishers = [open_publisher(url, muscles=bundle.muscles, rate_hz=bundle.input_rate_hz)
                  for url in (f"udp://127.0.0.1:{sink.getsockname()[1]}", f"lsl://{name}")]
    inlet, info = open_inlet(name)
    assert info.nominal_srate() == bundle.input_rate_hz == 100.0
    transport = open_transport(sim_url(labels=MUSCLES, fs_hz=FS, samples_per_frame=2, seconds=2.0))
    runtime = Runtime(bundle=bundle, profile=profile, transport=transport, publishers=publishers)
    try:
        summary = runtime.run(duration_s=1.5, say=lambda line: None)
        datagrams = []
        with contextlib.suppress(TimeoutError):
            while True:
                datagrams.append(decode_estimate(sink.recv(4096)))
        samples = pull_all(inlet)
    finally:
        sink.close()
        inlet.close_stream()
    assert summary["estimates"] > 100 and len(datagrams) == summary["estimates"]
    assert len(samples) == len(datagrams)  # every estimate, none twice
    labels = [c[0] for c in estimate_channels(MUSCLES)]
    lsl = {label: np.array([s[i] for s in samples]) for i, label in enumerate(labels)}
    for field in ("index", "seq", "timestamp_us"):
        assert lsl[field].tolist() == [getattr(e, field) for e in datagrams], field
    assert lsl["flags"].tolist() == [int(e.flags) for e in datagrams]
    assert (lsl["bad_channels_lo"] + lsl["bad_channels_hi"] * 2.0**32).tolist() == \
        [e.bad_channels for e in datagrams]
    # the datagram carries float32: its value is the float32 of the LSL one
    for field in ("theta_rad", "torque_nm", "torque_requested_nm", "latency_us"):
        udp = np.float32([getattr(e, field) for e in datagrams])
        assert np.array_equal(lsl[field].astype(np.float32), udp), field
    for m, muscle in enumerate(MUSCLES):
        assert np.array_equal(lsl[f"force_{muscle}_n"].astype(np.float32),
                              np.float32([e.forces_n[m] for e in datagrams]))
    assert np.ptp(lsl["theta_rad"]) > 0  # real, varying estimates
    assert summary["publishers"]["lsl"]["published"] == len(samples)


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(["run", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_myoedge_run_publishes_to_every_url_and_udp_is_the_same_as_its_shorthand(tmp_path, capsys):
    bundle, profile, _ = setup_parts(tmp_path)
    files = ["--bundle", str(bundle.path), "--profile", str(profile.save(tmp_path / "p.json"))]
    port = sim_url(labels=MUSCLES, fs_hz=FS, samples_per_frame=2, seconds=2.0)
    sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sink in sinks:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.5)
    name, received = unique("myoedge-test-cli"), []

    def listen():  # an inlet that joins once `myoedge run` has opened its outlet
        inlet, info = open_inlet(name, timeout_s=60.0)
        received.append(channel_values(info, "label"))
        received.extend(pull_all(inlet, quiet_s=2.0))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        code, out, err = run_cli([*files, "--port", port, "--publish", f"lsl://{name}", "--publish",
                                  f"udp://127.0.0.1:{sinks[0].getsockname()[1]}", "--udp",
                                  f"127.0.0.1:{sinks[1].getsockname()[1]}", "--duration", "1.5", "--json"],
                                 capsys)
        counts = []
        for sink in sinks:
            n = 0
            with contextlib.suppress(TimeoutError):
                while sink.recv(4096):
                    n += 1
            counts.append(n)
    finally:
        for sink in sinks:
            sink.close()
    listener.join(10.0)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    pubs = summary["publishers"]
    assert len(pubs) == 3 and pubs["lsl"]["published"] == summary["estimates"] > 50
    assert counts == [summary["estimates"]] * 2  # --publish udp://... and --udp: the same datagrams
    assert received and received[0] == [c[0] for c in estimate_channels(MUSCLES)]
    assert 0 < len(received) - 1 <= summary["estimates"]  # the inlet joined during the run


@pytest.mark.parametrize("extra, words", [
    (["--publish", "lsl://two words"], "stream name"),
    (["--publish", "udp://127.0.0.1:9870", "--udp", "127.0.0.1:9870"], "named twice"),
    (["--publish", "lsl://x", "--udp-key", "key.bin"], "--udp-key signs the UDP datagrams"),
    (["--publish", "smtp://x"], "unknown URL scheme")])
def test_myoedge_run_refuses_publishers_that_cannot_work(tmp_path, capsys, extra, words):
    bundle, profile, _ = setup_parts(tmp_path)
    code, _, err = run_cli(["--port", "loop://", "--bundle", str(bundle.path), "--profile",
                            str(profile.save(tmp_path / "p.json")), *extra], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_the_documented_stream_layout_is_the_one_published():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "runtime.md").read_text(encoding="utf-8")
    section = doc.split("### The LSL estimate stream")[1].split("\n#")[0]
    rows = [line.split("|")[2:5] for line in section.splitlines() if line.startswith("| ") and "`" in line]
    documented = [(label.strip().strip("`"), unit.strip(), kind.strip()) for label, unit, kind in rows]
    assert documented == estimate_channels(["<muscle>"])


def test_without_pylsl_lsl_urls_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl now raises ImportError
    for make in (lambda: open_publisher("lsl://a", muscles=MUSCLES, rate_hz=100.0),
                 lambda: open_transport("lsl://a")):
        with pytest.raises(InputError, match=r"pip install 'myoedge\[lsl\]'"):
            make()
