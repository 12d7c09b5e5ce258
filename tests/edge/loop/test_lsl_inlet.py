"""``lsl://NAME`` as the amplifier: ``myoedge amp-sim --lsl`` streams EMG as an LSL outlet, the inlet
transport turns it back into frames equal to the ones the same signal gives over a pty (and the loop's
estimates equal), counts lost frames from time-stamp gaps, converts a third-party stream's units to ADC
counts, and refuses a stream it cannot use, or one that is not there, with a clear error in bounded time."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from loop_parts import FS, MUSCLES, VPC, run_pipeline, setup_parts

from myoedge.cli import main
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope_report import emg_like
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.loop.runtime import Runtime
from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import AmpSignal
from myoedge.edge.sim.faults import FaultPlan
from myoedge.edge.wire.protocol import encode_frame
from myoedge.edge.wire.reader import Reader
from myoedge.edge.wire.transport import SerialTransport, open_transport
from myoedge.ground.errors import InputError

pylsl = pytest.importorskip("pylsl")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def emg_signal(seconds: float = 2.0) -> AmpSignal:
    return AmpSignal(volts=emg_like(fs_hz=FS, seconds=seconds, n_channels=len(MUSCLES), seed=3), fs=FS,
                     labels=MUSCLES, description="test EMG")


@contextlib.contextmanager
def simulator(*, lsl: str | None = None, faults: tuple[str, ...] = (), loop: bool = True):
    sim = AmplifierSimulator(emg_signal(), bits=24, samples_per_frame=2, lsl_name=lsl, loop=loop,
                             faults=FaultPlan.parse(list(faults), seed=1))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def read_frames(transport, *, quiet_s: float = 1.0):
    frames = []
    reader = Reader(transport).start()
    try:
        while (got := reader.get(quiet_s)) is not None:
            frames.append(got[0])
    finally:
        stats = reader.stop()
    return frames, stats


def test_amp_sim_streams_emg_described_as_lsl_says():
    name = unique("myoedge-test-emg")
    with simulator(lsl=name) as sim:
        found = pylsl.resolve_byprop("name", name, 1, 5.0)
        inlet = pylsl.StreamInlet(found[0])
        info = inlet.info(5.0)
        assert sim.address == f"lsl://{name}"
        assert (info.type(), info.channel_count(), info.nominal_srate()) == ("EMG", len(MUSCLES), FS)
        assert info.channel_format() == pylsl.cf_float32 and info.source_id() == f"myoedge-amp-sim-{name}"
        ch, labels, units, types = info.desc().child("channels").child("channel"), [], [], []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            units.append(ch.child_value("unit"))
            types.append(ch.child_value("type"))
            ch = ch.next_sibling("channel")
        assert labels == list(MUSCLES) and set(units) == {"microvolts"} and set(types) == {"EMG"}
        acq = info.desc().child("acquisition")
        assert int(acq.child_value("precision")) == 24 and float(acq.child_value("volts_per_count")) == VPC
        inlet.open_stream(5.0)
        sample, _ = inlet.pull_sample(timeout=5.0)
        assert np.allclose(np.float32(sample), np.float32(sim.counts[0] * VPC * 1e6))  # microvolts
        inlet.close_stream()


def test_lsl_frames_and_estimates_equal_those_of_the_same_signal_over_a_pty(tmp_path):
    name = unique("myoedge-test-trip")
    with simulator(lsl=name, loop=False) as sim:
        lsl_frames, stats = read_frames(open_transport(f"lsl://{name}?timeout=5&spf=2"))
    with simulator(loop=False) as sim_pty:
        pty_frames, pty_stats = read_frames(SerialTransport(sim_pty.address))
    n = len(sim.counts) // 2
    assert len(lsl_frames) == len(pty_frames) == n and stats.parser.lost == pty_stats.parser.lost == 0
    for a, b in zip(lsl_frames, pty_frames):  # same counts, sequence numbers and device times
        assert (a.seq, a.timestamp_us) == (b.seq, b.timestamp_us)
        assert np.array_equal(a.samples, b.samples)
    assert np.array_equal(np.concatenate([f.samples for f in lsl_frames]), sim.counts[:2 * n])

    # the loop's estimates from either path are the same (the offline pipeline, frame for frame)
    parts = setup_parts(tmp_path)
    estimates = [run_pipeline(parts, b"".join(encode_frame(f) for f in frames))[1]
                 for frames in (lsl_frames, pty_frames)]
    assert len(estimates[0]) == len(estimates[1]) > 150
    assert [(e.seq, e.theta_rad, e.forces_n, e.torque_nm, int(e.flags)) for e in estimates[0]] == \
        [(e.seq, e.theta_rad, e.forces_n, e.torque_nm, int(e.flags)) for e in estimates[1]]


def test_myoedge_run_reads_an_lsl_emg_stream(tmp_path):
    bundle, profile, _ = setup_parts(tmp_path)
    name, got = unique("myoedge-test-run"), []
    with simulator(lsl=name):
        runtime = Runtime(bundle=bundle, profile=profile, transport=open_transport(f"lsl://{name}"),
                          publishers=[CallbackPublisher(got.append)])
        summary = runtime.run(duration_s=1.2, say=lambda line: None)
    assert summary["parser"]["lost"] == 0 and summary["estimates"] == len(got) > 80
    assert sum(e.valid for e in got) > 50 and len({e.theta_rad for e in got}) > 50


def test_frames_dropped_at_the_source_are_counted_lost_from_the_time_stamps():
    name = unique("myoedge-test-drop")
    with simulator(lsl=name, loop=False, faults=("drop:0.02",)) as sim:
        frames, stats = read_frames(open_transport(f"lsl://{name}?spf=2&gap_ms=1.5"))
        dropped = sim.stats().faults.lost_frames
    assert dropped > 5
    assert stats.parser.lost == dropped and len(frames) + dropped == len(sim.counts) // 2
    for frame in frames:  # every frame that arrived holds the samples of its device time
        k = round(frame.timestamp_us * FS / 1e6)
        assert np.array_equal(frame.samples, sim.counts[k:k + 2])


def third_party(name: str, *, unit: str | None, fmt=None, rate: float = FS, labels=MUSCLES):
    info = pylsl.StreamInfo(name, "EMG", len(labels), rate, fmt or pylsl.cf_double64, name)
    channels = info.desc().append_child("channels")
    for label in labels:
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        if unit is not None:
            ch.append_child_value("unit", unit)
    return pylsl.StreamOutlet(info)


@pytest.mark.parametrize("unit, per_volt", [("millivolts", 1e3), (None, 1e6), ("V", 1.0)])
def test_a_third_party_stream_is_read_in_its_units_with_the_default_adc(unit, per_volt):
    name = unique("myoedge-test-units")
    outlet = third_party(name, unit=unit)
    transport = open_transport(f"lsl://{name}?spf=2")
    volts = emg_like(fs_hz=FS, seconds=0.2, n_channels=len(MUSCLES), seed=5)
    reader = Reader(transport).start()
    try:
        assert transport.info.scale_v[0] == np.float32(default_adc(24).volts_per_count)
        assert transport.info.labels == MUSCLES and transport.info.sample_rate_hz == FS
        t0 = pylsl.local_clock()
        outlet.push_chunk(volts * per_volt, t0 + (len(volts) - 1) / FS)
        frames = []
        deadline = time.monotonic() + 5.0
        while len(frames) < len(volts) // 2 and time.monotonic() < deadline:
            if (got := reader.get(0.2)) is not None:
                frames.append(got[0])
    finally:
        reader.stop()
        del outlet
    got = np.concatenate([f.samples for f in frames])
    assert np.array_equal(got, default_adc(24).counts(volts))  # volts -> counts, documented rounding


@pytest.mark.parametrize("make, words", [
    (lambda n: third_party(n, unit="celsius"), "unit 'celsius' is not a voltage"),
    (lambda n: third_party(n, unit="uV", rate=0.0), "no nominal rate"),
    (lambda n: pylsl.StreamOutlet(pylsl.StreamInfo(n, "Markers", 1, 0.0, pylsl.cf_string, n)), "strings")])
def test_a_stream_that_is_not_emg_is_refused(make, words):
    name = unique("myoedge-test-bad")
    outlet = make(name)
    try:
        with pytest.raises(InputError, match=words):
            open_transport(f"lsl://{name}").connect()
    finally:
        del outlet


def test_a_missing_stream_is_a_clear_error_after_its_timeout(tmp_path, capsys):
    name = unique("myoedge-test-missing")
    start = time.monotonic()
    with pytest.raises(InputError, match=f"no LSL stream named '{name}' found within 0.3 s"):
        open_transport(f"lsl://{name}?timeout=0.3").connect()
    assert time.monotonic() - start < 5.0
    bundle, profile, _ = setup_parts(tmp_path)
    code = main(["run", "--port", f"lsl://{name}?timeout=0.3", "--bundle", str(bundle.path), "--profile",
                 str(profile.save(tmp_path / "p.json"))])
    err = capsys.readouterr().err
    assert code == 2 and f"no LSL stream named '{name}'" in err and "Traceback" not in err


@pytest.mark.parametrize("url, words", [("lsl://x?colour=red", "unknown LSL parameter"),
                                        ("lsl://x?timeout=soon", "is not a number"),
                                        ("lsl://x?spf=1.5", "is not an integer"),
                                        ("lsl://x?spf=0", "spf must be within"),
                                        ("lsl://x?spf=100000", "spf must be within"),
                                        ("lsl://x?bits=12", "ADC bits"), ("lsl://x?timeout=0", "timeout"),
                                        ("lsl://", "stream name")])
def test_lsl_urls_that_cannot_work_are_refused_before_anything_opens(url, words):
    with pytest.raises(InputError, match=words):
        open_transport(url)


def test_amp_sim_lsl_on_the_command_line_streams_every_frame_it_counts():
    name = unique("myoedge-test-cli-emg")
    cmd = [sys.executable, "-m", "myoedge", "amp-sim", "--joint", "wrist", "--duration", "1", "--lsl", name,
           "--stop-after", "0.5", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = pylsl.resolve_byprop("name", name, 1, 120.0)
        assert found, proc.stderr.read() if proc.poll() is not None else "no stream"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(10.0)
        n = 0
        while inlet.pull_sample(timeout=3.0)[0] is not None:
            n += 1
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["address"] == f"lsl://{name}" and summary["connections"] == 1
    samples = summary["frames_sent"] * summary["samples_per_frame"]
    assert n == samples == round(0.5 * summary["sample_rate_hz"])
    assert "amp-sim: streaming on lsl://" in out


def test_after_a_disconnect_the_inlet_recovers_and_counts_what_it_missed():
    name = unique("myoedge-test-disc")
    with simulator(lsl=name, faults=("disconnect:0.3@0.5s",)) as sim:
        transport = open_transport(f"lsl://{name}?spf=2")
        reader = Reader(transport).start()
        frames, gap_seq, deadline = [], None, time.monotonic() + 30.0
        try:  # liblsl re-resolves the stream by its source_id: about 2 s here
            while time.monotonic() < deadline:
                if (got := reader.get(0.2)) is None:
                    continue
                frames.append(got[0])
                if gap_seq is None and transport.gaps:
                    gap_seq = got[0].seq
                if gap_seq is not None and got[0].seq >= gap_seq + 500:
                    break
        finally:
            stats = reader.stop()
        assert sim.stats().faults.disconnects == 1
    assert transport.gaps == 1 and stats.parser.lost == transport.samples_lost // 2 > 100
    assert gap_seq is not None and frames[-1].seq >= gap_seq + 500  # it came back and went on
    for frame in frames:  # each frame holds the samples of its device time, before and after the gap
        k = round(frame.timestamp_us * FS / 1e6) % len(sim.counts)
        assert np.array_equal(frame.samples, sim.counts[k:k + 2])
