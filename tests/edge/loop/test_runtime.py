"""The assembled loop against the amplifier simulator over a real pty: estimates, the watchdog during a
stall, clean shutdown on SIGTERM with a complete CSV log and UDP datagrams, and ``myoedge run`` refusing
what does not match with exit status 2."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time

import pytest
from loop_parts import FS, MUSCLES, setup_parts

from myoedge.body.catalog import generic_model
from myoedge.body.profile import SubjectProfile
from myoedge.cli import main
from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope
from myoedge.edge.dsp.envelope_report import emg_like
from myoedge.edge.loop.estimate import Flags, decode_estimate
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.loop.runtime import Runtime
from myoedge.edge.loop.safety import SafetyConfig
from myoedge.edge.model.bundle import write_bundle
from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import AmpSignal
from myoedge.edge.sim.faults import FaultPlan
from myoedge.edge.wire.transport import SerialTransport
from myoedge.ground.errors import InputError


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return setup_parts(tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="module")
def files(parts, tmp_path_factory):
    bundle, profile, _ = parts
    return bundle.path, profile.save(tmp_path_factory.mktemp("profile") / "s01.json")


@contextlib.contextmanager
def simulator(*, labels=MUSCLES, faults: tuple[str, ...] = ()):
    signal_ = AmpSignal(volts=emg_like(fs_hz=FS, seconds=2.0, n_channels=len(labels)), fs=FS, labels=labels,
                        description="test EMG")
    sim = AmplifierSimulator(signal_, bits=24, samples_per_frame=2, faults=FaultPlan.parse(list(faults)))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def test_loop_over_a_pty_publishes_estimates_and_the_watchdog_flags_a_stall(parts):
    bundle, profile, _ = parts
    got, lines = [], []
    with simulator(faults=("stall:0.3@0.8s",)) as sim:
        runtime = Runtime(bundle=bundle, profile=profile, transport=SerialTransport(sim.address),
                          safety=SafetyConfig(watchdog_ms=50), publishers=[CallbackPublisher(got.append)])
        stats = runtime.run(duration_s=2.0, say=lines.append)
    stale = [e for e in got if Flags.STALE in e.flags]
    fresh = [e for e in got if Flags.STALE not in e.flags]
    assert [e.index for e in got] == list(range(len(got)))  # one numbering, in publishing order
    # 300 ms of silence gives about 6 stale estimates (one per 50 ms); a loaded machine can add a
    # short extra silence of its own, so only bound it loosely
    assert 2 <= len(stale) <= 30 and stats["stale_periods"] >= 1
    assert all(not e.valid for e in stale) and stale[0].seq == got[got.index(stale[0]) - 1].seq
    assert len(fresh) > 120 and fresh[-1].index > stale[-1].index  # it came back after the stall
    assert all(e.valid or e.flags & (Flags.WARMUP | Flags.OUT_OF_RANGE) for e in fresh)
    assert stats["parser"]["lost"] == 0 and stats["frames"] > 800 and stats["consumer_errors"] == 0
    assert stats["latency"]["frames"] > 800 and stats["latency"]["all"]["processing"]["p50"] > 0
    assert lines and lines[-1].startswith("myoedge run: stopped after") and "read->publish p50" in lines[-1]
    assert threading.active_count() < 5  # reader, watchdog and simulator threads are gone


def test_run_cli_stops_cleanly_on_sigterm_with_complete_logs(files, tmp_path, capsys):
    bundle_path, profile_path = files
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.2)
    csv_path = tmp_path / "log" / "run.csv"
    datagrams = []

    def stop_once_running():  # SIGTERM after 60 estimates arrived, however slow the start on a busy machine
        deadline = time.monotonic() + 60.0
        while len(datagrams) < 60 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                datagrams.append(decode_estimate(sink.recv(4096)))
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=stop_once_running, daemon=True)
    try:
        with simulator() as sim:
            killer.start()
            code = main(["run", "--port", sim.address, "--bundle", str(bundle_path), "--profile",
                         str(profile_path), "--udp", f"127.0.0.1:{sink.getsockname()[1]}", "--csv",
                         str(csv_path), "--torque-limit", "0.05", "--duration", "90", "--json"])
        killer.join(timeout=5.0)
        with contextlib.suppress(TimeoutError):
            while True:
                datagrams.append(decode_estimate(sink.recv(4096)))
    finally:
        sink.close()
    out, err = capsys.readouterr()
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert "stopped after" in err and summary["estimates"] > 50
    rows = csv_path.read_text().splitlines()
    assert len(rows) == summary["estimates"] + 1 and not csv_path.with_name("run.csv.partial").exists()
    assert len(datagrams) == summary["estimates"] == summary["publishers"]["udp"]["published"]
    assert all(abs(e.torque_nm) <= 0.05 + 1e-7 for e in datagrams)
    assert [e.index for e in datagrams] == list(range(len(datagrams)))


def run_cli(args, capsys) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().err


def test_run_refuses_a_profile_of_another_joint(files, tmp_path, capsys):
    bundle_path, _ = files
    knee = generic_model("knee")
    other = SubjectProfile(subject="k", model=knee, mvc_volts=(1e-4,) * len(knee.muscles))
    other = other.save(tmp_path / "k.json")
    code, err = run_cli(["--port", "loop://", "--bundle", str(bundle_path), "--profile", str(other),
                         "--csv", str(tmp_path / "never.csv")], capsys)
    assert code == 2 and "was trained on muscles" in err and not (tmp_path / "never.csv").exists()


def test_run_refuses_an_amplifier_whose_channels_differ(files, capsys):
    bundle_path, profile_path = files
    with simulator(labels=MUSCLES[::-1]) as sim:
        code, err = run_cli(["--port", sim.address, "--bundle", str(bundle_path), "--profile",
                             str(profile_path)], capsys)
    assert code == 2 and "channel labels" in err and "other order" in err


def test_run_refuses_a_bundle_whose_envelope_the_runtime_computes_differently(parts, files, tmp_path, capsys):
    bundle, _, _ = parts
    _, profile_path = files
    meta = json.loads((bundle.path / "meta.json").read_text())
    other = design_envelope(EnvelopeConfig(**{**meta["envelope"]["config"], "band_hz": (25.0, 450.0)}))
    meta["envelope"].update(coefficients=other.coefficients(), hash=other.coefficients_hash())
    path = write_bundle(tmp_path / "edited", onnx_bytes=(bundle.path / "model.onnx").read_bytes(), meta=meta,
                        test_inputs=bundle.test_inputs, test_outputs=dict(bundle.test_outputs))
    code, err = run_cli(["--port", "loop://", "--bundle", str(path), "--profile", str(profile_path)], capsys)
    assert code == 2 and "envelope hash" in err


@pytest.mark.parametrize("extra, message", [(["--port", "/dev/no-such-amplifier"], "no serial port"),
                                            (["--port", "loop://", "--udp", "nowhere"], "HOST:PORT"),
                                            (["--port", "loop://", "--torque-limit", "-1"], "torque limit"),
                                            (["--port", "loop://", "--load-kg", "2"], "load_index"),
                                            (["--port", "loop://", "--spin-us", "100", "--rt-priority", "10"],
                                             "do not go together"),
                                            (["--port", "loop://", "--spin-us", "-1"], "spin_us")])
def test_run_refuses_bad_options(files, capsys, extra, message):
    bundle_path, profile_path = files
    code, err = run_cli(["--bundle", str(bundle_path), "--profile", str(profile_path), *extra], capsys)
    assert code == 2 and message in err


def test_no_device_info_frame_is_refused(parts):
    bundle, profile, _ = parts
    runtime = Runtime(bundle=bundle, profile=profile, transport=SerialTransport("loop://"),
                      device_info_timeout_s=0.3)
    with pytest.raises(InputError, match="no device-info frame"):
        runtime.run(say=lambda line: None)
    assert not runtime.reader.running


def test_polling_is_refused_under_a_real_time_policy_set_from_outside(files, capsys, monkeypatch):
    # systemd's CPUSchedulingPolicy=fifo or chrt: the process starts real-time without --rt-priority
    bundle_path, profile_path = files
    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_FIFO, raising=False)
    monkeypatch.setattr(os, "SCHED_FIFO", getattr(os, "SCHED_FIFO", 1), raising=False)
    monkeypatch.setattr(os, "SCHED_RR", getattr(os, "SCHED_RR", 2), raising=False)
    code, err = run_cli(["--bundle", str(bundle_path), "--profile", str(profile_path), "--port", "loop://",
                         "--spin-us", "100"], capsys)
    assert code == 2 and "set from outside" in err
