"""MVC sessions through the real reader, parser and fixed-point envelope, fed by the in-process amplifier
simulator over a pty: scripted (--auto) and guided sessions, and every way a session can fail."""

import contextlib
import json

import numpy as np
import pytest

from myoedge.body.profile import SubjectProfile
from myoedge.body.subjects import make_subject, true_profile
from myoedge.calibrate.mvc import MvcConfig
from myoedge.calibrate.mvc_session import run_mvc_session
from myoedge.cli import main
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope import envelope_from_volts
from myoedge.edge.sim.ampsim import AmplifierSimulator
from myoedge.edge.sim.ampsim_signals import AmpSignal, mvc_protocol_signal
from myoedge.edge.sim.faults import FaultPlan
from myoedge.ground.errors import InputError

SPF = 20  # samples per frame: fewer, larger frames keep the test fast; the content is the same


@pytest.fixture(scope="module")
def knee_protocol():
    return mvc_protocol_signal(joint="knee", subject=1, seed=0)


@contextlib.contextmanager
def amp(signal, **options):
    options = {"samples_per_frame": SPF, "fast": True, "loop": False, **options}
    sim = AmplifierSimulator(signal, **options).start()
    try:
        yield sim
    finally:
        sim.stop()


def plateau_truth(sig: AmpSignal) -> np.ndarray:
    """Per channel, the fixed-point envelope averaged over the protocol's full-effort plateaus: the MVC as
    the device's envelope chain sees this very signal."""
    from myoedge.calibrate.mvc_stream import stream_envelope_config

    cfg = stream_envelope_config(fs_hz=sig.fs, input_bits=24, rate_hz=100.0)
    env = envelope_from_volts(sig.volts, fs_hz=sig.fs, config=cfg,
                              volts_per_count=default_adc(24).volts_per_count)
    out = np.zeros(len(sig.labels))
    for c in range(len(sig.labels)):
        parts = [env[int(k.plateau_s[0] * 100):int(k.plateau_s[1] * 100), c] for k in sig.contractions
                 if k.channel == c]
        out[c] = np.concatenate(parts).mean()
    return out


def test_auto_session_recovers_the_true_mvc(knee_protocol):
    lines = []
    with amp(knee_protocol) as sim:
        result = run_mvc_session(sim.address, auto=True, timeout_s=60, say=lines.append)
    got = np.array([result.mvc_volts[m] for m in knee_protocol.labels])
    # Against the envelope of this very signal over the known plateaus: the session's cutting and statistic.
    np.testing.assert_allclose(got, plateau_truth(knee_protocol), rtol=0.02)
    # Against the body model's MVC (E|x| of the ideal 20-450 Hz band): the fixed-point chain reads 0.9 % below
    # it and three 3 s plateaus scatter about 1 %, so allow 3 %.
    np.testing.assert_allclose(got, knee_protocol.true_mvc_volts, rtol=0.03)
    assert result.lost_frames == 0 and result.mode == "auto"
    assert all(len(v["repetitions"]) == 3 for v in result.session.values())
    assert sum("#" in line for line in lines) == 6


def test_guided_session_follows_its_prompts(knee_protocol):
    lines = []
    with amp(knee_protocol) as sim:  # the protocol's timing (rest 3 s, hold 5 s) is the guided default
        result = run_mvc_session(sim.address, say=lines.append,
                                 actions={"BFSH": "bend the knee", "RF": "straighten the knee"})
    text = "\n".join(lines)
    assert "BFSH, repetition 1: relax for 3 s, then bend the knee as hard as you can" in text
    assert "  3…" in text and "GO — straighten the knee" in text and "rejected" not in text
    got = np.array([result.mvc_volts[m] for m in knee_protocol.labels])
    np.testing.assert_allclose(got, plateau_truth(knee_protocol), rtol=0.02)


def test_lost_frames_are_counted_per_repetition_and_too_many_reject_it(knee_protocol):
    with amp(knee_protocol, faults=FaultPlan(drop=0.002, seed=1)) as sim:
        result = run_mvc_session(sim.address, auto=True, timeout_s=60, say=lambda _: None,
                                 config=MvcConfig(max_lost_fraction=0.05))
    reps = [r for v in result.session.values() for r in v["repetitions"]]
    assert result.lost_frames > 0 and sum(r["lost_frames"] for r in reps) > 0
    with amp(knee_protocol, faults=FaultPlan(drop=0.05, seed=1)) as sim:
        with pytest.raises(InputError, match="frames lost"):
            run_mvc_session(sim.address, auto=True, timeout_s=60, stall_s=0.5, say=lambda _: None)


def test_unplugged_port_mid_session_is_a_clear_error(knee_protocol):
    # Over TCP: a vanished pty's number can be taken by another process's pty while the reader retries.
    with amp(knee_protocol, tcp_port=0, faults=FaultPlan.parse("disconnect:60@10s")) as sim:
        with pytest.raises(InputError, match="no data from .* for 1 s"):
            run_mvc_session(sim.address, auto=True, stall_s=1.0, say=lambda _: None)


def test_a_clipped_channel_is_rejected_with_the_reason():
    sig = mvc_protocol_signal(joint="knee", subject=1, seed=0, repetitions=1)
    hot = AmpSignal(volts=sig.volts * np.array([8.0, 1.0]), fs=sig.fs, labels=sig.labels, description="hot",
                    contractions=sig.contractions)
    with amp(hot, bits=16) as sim:  # 16-bit: +-16.4 mV, which BFSH now exceeds at full effort
        with pytest.raises(InputError) as e:
            run_mvc_session(sim.address, auto=True, stall_s=0.5, say=lambda _: None,
                            config=MvcConfig(repetitions=1, max_attempts=1))
    assert "BFSH: 0 of 1" in str(e.value) and "clipped" in str(e.value) and "RF" not in str(e.value)


def rest_only(seconds=8.0):
    from myoedge.body.emg_synth import ElectrodeSetup, synthesize

    subject = make_subject("knee", 1)
    exc = np.full((int(seconds * 2000), 2), 0.02)
    volts = synthesize(exc, fs=2000.0, setup=ElectrodeSetup(gain_volts=subject.gain_volts,
                                                           crosstalk=subject.crosstalk),
                       rng=np.random.default_rng(0))
    return AmpSignal(volts=volts, fs=2000.0, labels=subject.model.muscle_names, description="at rest")


def test_no_contraction_and_unknown_muscles_are_clear_errors():
    with amp(rest_only()) as sim:
        with pytest.raises(InputError, match=r"BFSH: 0 of 3 repetitions accepted \(no contraction detected"):
            run_mvc_session(sim.address, auto=True, stall_s=0.5, say=lambda _: None)
    with amp(rest_only(1.0)) as sim:
        with pytest.raises(InputError, match="no channel for \\['VL'\\]"):
            run_mvc_session(sim.address, muscles=["VL"], auto=True, say=lambda _: None)


def test_cli_writes_the_profile_and_a_failed_session_leaves_it_untouched(tmp_path, knee_protocol, capsys):
    path = tmp_path / "knee01.json"
    start = true_profile(make_subject("knee", 1)).replace(mvc_volts=(1e-3, 1e-3))
    start.save(path)
    with amp(knee_protocol) as sim:
        code = main(["calibrate", "mvc", "--port", sim.address, "--auto", "--out", str(path), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = SubjectProfile.load(path)
    assert written.mvc == pytest.approx([summary["mvc_volts"][m] for m in written.muscles])
    np.testing.assert_allclose(written.mvc, knee_protocol.true_mvc_volts, rtol=0.03)
    assert written.provenance["mvc"]["port"] == sim.address
    assert written.provenance["history"][-1]["calibration"] == "mvc"
    assert SubjectProfile.load(tmp_path / "knee01.json.prev").mvc == pytest.approx([1e-3, 1e-3])

    before = path.read_bytes()
    with amp(rest_only()) as sim:
        code = main(["calibrate", "mvc", "--port", sim.address, "--auto", "--out", str(path),
                     "--stall", "0.5"])
    assert code == 2
    assert "no contraction detected" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knee01.json", "knee01.json.prev"]
