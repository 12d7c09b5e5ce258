"""The paper's protocol: trials -> cycle sequences (phase as time, real frame spacing), the 80/20 split of
a subject's fused cycles, the inter-session split, the folds and a quick ``myoedge evaluate --protocol
paper`` end to end."""

import dataclasses
import json

import numpy as np
import pytest

from myoedge.cli import main
from myoedge.ground.errors import InputError
from myoedge.train.cycles import cycle_sequences, split_cycles, split_sessions, trial_cycles
from myoedge.train.data import Sequence
from myoedge.train.evaluate import EvaluationConfig, plan_folds
from myoedge.train.fit import fit
from myoedge.train.run import TrainConfig


def cyclic_trial(subject: str, session: str, name: str, *, period: float, n_cycles: int = 6,
                 joint: str = "wrist") -> Sequence:
    """A trial of ``n_cycles`` flexion cycles (plus half a cycle either side) at 100 Hz."""
    t = np.arange(0.0, (n_cycles + 1) * period, 0.01)
    phase = 2 * np.pi * (t / period - 0.25)  # flexion maxima at 0.5 P, 1.5 P, ...
    theta = 0.6 * np.sin(phase)
    env = np.column_stack([0.5 + 0.4 * np.cos(phase), 0.5 - 0.4 * np.cos(phase)]).astype(np.float32)
    return Sequence(name=f"{subject}/{session}_{name}", subject=subject, session=session, trial=name,
                    joint=joint, muscles=("A", "B"), rate_hz=100.0, t=t, envelopes=env, theta=theta,
                    forces=300.0 * env, moment_arms=None, torque=None, model=None, physics="none",
                    source=f"data/{subject}/{session}_{name}")


SEQS = [cyclic_trial(s, ses, name, period=p) for s in ("w1", "w2") for ses in ("s1", "s2")
        for name, p in (("slow", 2.0), ("fast", 1.2))]


def test_a_trial_becomes_cycle_sequences_with_the_phase_as_time():
    cycles, counts = trial_cycles(SEQS[0])
    assert counts["kept"] == 6 and counts["rejected"] == 0 and counts["method"] == "flexion peak"
    assert all(c.n == 100 and c.cycle_s == pytest.approx(2.0, abs=0.02) for c in cycles)
    np.testing.assert_allclose(cycles[0].t, np.arange(100) / 99)
    assert cycles[0].rate_hz == pytest.approx(99 / cycles[0].cycle_s)
    assert cycles[0].envelopes.dtype == np.float32 and cycles[0].forces.shape == (100, 2)
    assert cycles[0].theta[0] == pytest.approx(0.6, abs=1e-3)  # a cycle starts at a flexion maximum
    assert len({c.name for c in cycles}) == 6 and cycles[0].lead is None
    with pytest.raises(InputError, match="already a time-normalised cycle"):
        trial_cycles(cycles[0])


def test_a_trial_without_a_cycle_names_its_file():
    flat = cyclic_trial("w9", "s1", "rest", period=2.0)
    flat = Sequence(**{**flat.__dict__, "theta": np.zeros(flat.n)})
    with pytest.raises(InputError, match="data/w9/s1_rest: no complete movement cycle"):
        cycle_sequences([SEQS[0], flat])


def test_paper_split_fuses_a_subjects_cycles_80_20_with_a_fixed_seed():
    cycles, _ = cycle_sequences(SEQS)
    split = split_cycles(cycles, train_fraction=0.8, seed=0)
    assert sorted(split) == ["w1", "w2"]
    train, test = split["w1"]
    mine = [c for c in cycles if c.subject == "w1"]
    assert len(test) == round(0.2 * len(mine)) and len(train) + len(test) == len(mine)
    assert not {c.name for c in train} & {c.name for c in test}
    assert len({c.trial for c in train}) == 2  # trials (speeds) fused
    again = split_cycles(cycles, train_fraction=0.8, seed=0)["w1"][1]
    other = split_cycles(cycles, train_fraction=0.8, seed=1)["w1"][1]
    assert [c.name for c in again] == [c.name for c in test] != [c.name for c in other]


def test_inter_session_split_trains_on_the_first_session():
    cycles, _ = cycle_sequences(SEQS)
    folds = split_sessions(cycles)
    assert [(held, tr[0].subject) for held, tr, _ in folds] == [("s2", "w1"), ("s2", "w2")]
    assert all({c.session for c in tr} == {"s1"} and {c.session for c in te} == {"s2"} for _, tr, te in folds)
    assert split_sessions([c for c in cycles if c.session == "s1"]) == []


def test_paper_folds_and_the_paper_hyperparameters():
    config = EvaluationConfig(methods=("elm",), protocols=("paper", "sessions"))
    folds = plan_folds(SEQS, config)
    assert [(f.protocol, f.subject) for f in folds] == [("paper", "w1"), ("paper", "w2"), ("sessions", "w1"),
                                                        ("sessions", "w2")]
    assert all(s.cycle_s is not None for f in folds for s in f.train + f.test)
    # cycles of different durations train together (each keeps its own frame spacing)
    cycles, _ = cycle_sequences(SEQS[:2])
    model = fit(cycles, TrainConfig(preset="pi-cnn", iterations=3, w_physics=0.0, max_steps=100), seed=0)
    assert len(model.history) == 3
    with pytest.raises(InputError, match="share joint, muscles and rate"):
        fit([SEQS[0], *cycles], TrainConfig(preset="pi-cnn", iterations=1, w_physics=0.0), seed=0)


def test_paper_options_batch_whole_cycles_with_the_paper_hyperparameters(monkeypatch):
    from myoedge.train.evaluate import (
        PAPER_CYCLES_PER_ITERATION,
        PAPER_HYPERPARAMETERS,
        PAPER_PHYSICS_SMOOTH,
        paper_options,
    )
    from myoedge.train.models import PerStepCNN

    assert paper_options(100) == {**PAPER_HYPERPARAMETERS, "max_steps": PAPER_CYCLES_PER_ITERATION * 100,
                                  "physics_smooth": PAPER_PHYSICS_SMOOTH}
    assert TrainConfig.for_preset("pi-cnn", **paper_options(100)).physics_smooth == PAPER_PHYSICS_SMOOTH
    assert paper_options(50, 3)["max_steps"] == 150
    assert EvaluationConfig().cycle_batch == PAPER_CYCLES_PER_ITERATION
    with pytest.raises(InputError, match="cycle_batch"):
        EvaluationConfig(cycle_batch=0)
    assert EvaluationConfig().physics_smooth == PAPER_PHYSICS_SMOOTH
    assert paper_options(100, physics_smooth=1)["physics_smooth"] == 1
    with pytest.raises(InputError, match="physics_smooth"):
        EvaluationConfig(physics_smooth=4)
    seen, original = [], PerStepCNN.forward

    def spy(self, env, t, lengths=None):
        seen.append(lengths)
        return original(self, env, t, lengths)

    monkeypatch.setattr(PerStepCNN, "forward", spy)
    cycles, _ = cycle_sequences(SEQS[:2])
    fit(cycles, TrainConfig(preset="pi-cnn", iterations=2, w_physics=0.0, max_steps=300), seed=0)
    assert seen == [[100, 100, 100]] * 2  # three whole cycles per iteration, a dropout mask each


def test_evaluate_protocol_paper_end_to_end(tmp_path, capsys):
    from myoedge.body.subjects import write_dataset

    write_dataset(tmp_path / "data", joints=("wrist",), n_subjects=2, sessions=2, duration_s=8.0, seed=3,
                  family="easy")
    out = tmp_path / "report"
    code = main(["evaluate", "--data", str(tmp_path / "data"), "--out", str(out), "--protocol", "paper",
                 "--methods", "pi-cnn,elm", "--quick", "--no-figures", "--no-cache", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    wrist = summary["joints"]["wrist"]
    assert set(wrist["paper"]) == {"pi-cnn", "elm"} and set(wrist["sessions"]) == {"pi-cnn", "elm"}
    assert set(wrist["intra"]) == {"pi-cnn", "elm"}  # the time split beside it
    text = (out / "report.md").read_text()
    for heading in ("Movement cycles", "Table I — PI-CNN per subject, paper protocol beside our time split",
                    "Table II — methods compared, paper protocol", "Table II beside our time split",
                    "across sessions", "Which protocol to trust for a controller", "Table I — PI-CNN per "
                    "subject (time split)"):
        assert heading in text
    assert "PI-CNN ahead of ELM on mean θ RMSE, paper protocol" in text
    assert "residual is averaged by a zero-phase Hann window of 15 frames" in text
    doc = json.loads((out / "report.json").read_text())
    seg = doc["joints"]["wrist"]["segmentation"]
    assert len(seg) == 12 and all(c["kept"] >= 1 for c in seg)
    capsys.readouterr()
    assert main(["train", str(tmp_path / "data"), "--protocol", "paper", "--preset", "pi-cnn", "--iterations",
                 "5", "--out", str(tmp_path / "run"), "--quiet", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["split"] == "paper" and len(trained["cycles"]) == 12 and trained["test_sequences"] >= 2
    from myoedge.train.evaluate import PAPER_PHYSICS_SMOOTH

    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["config"]["physics_smooth"] == PAPER_PHYSICS_SMOOTH
    assert main(["train", str(tmp_path / "data"), "--protocol", "paper", "--preset", "pi-cnn",
                 "--physics-smooth", "4", "--out", str(tmp_path / "run4")]) == 2
    assert main(["train", str(tmp_path / "data"), "--protocol", "paper", "--preset", "edge", "--out",
                 str(tmp_path / "run2")]) == 2
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r2"), "--protocol",
                 "paper", "--split", "time"]) == 2
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r3"), "--protocol",
                 "paper", "--protocols", "loto"]) == 2


def test_heel_strike_events_of_a_recording_reach_the_cycles():
    from myoedge.body.cycles import flexion_peaks
    from myoedge.body.subjects import make_subject, simulate_session, true_profile
    from myoedge.train.data import load_sequences

    subject = make_subject("knee", 1, family="easy")
    rec = simulate_session(subject, duration_s=8.0, trial_paces=("normal",))[0]
    strikes = rec.time[flexion_peaks(rec.theta)] - 0.5  # a heel strike half a second before each swing peak
    object.__setattr__(rec, "events", {"Right Foot Strike": strikes})  # Recording.events, where recorded
    seq = load_sequences([rec], profiles={subject.name: true_profile(subject)})[0]
    assert list(seq.events) == ["Right Foot Strike"]
    cycles, counts = trial_cycles(seq)
    assert counts["method"] == "event: Right Foot Strike"
    inside = strikes[(strikes >= seq.t[0]) & (strikes <= seq.t[-1])]
    assert counts["detected"] == len(inside) - 1 and len(cycles) == counts["kept"]
    np.testing.assert_allclose([c.cycle_s for c in cycles], np.diff(inside)[:len(cycles)], atol=1e-9)


def test_the_physics_term_averages_the_residual_of_each_cycle_as_configured(monkeypatch):
    """With ``physics_smooth`` the fit hands the window to every cycle's residual; bad windows are refused
    before any training."""
    import myoedge.train.fit as fit_module

    windows, original = [], fit_module.sequence_residual

    def spy(seq, theta, forces, *, smooth=1):
        windows.append(smooth)
        return original(seq, theta, forces, smooth=smooth)

    monkeypatch.setattr(fit_module, "sequence_residual", spy)
    arms = np.array([0.02, -0.02])
    cycles = [dataclasses.replace(c, physics="id", moment_arms=np.tile(arms, (c.n, 1)),
                                  torque=c.forces @ arms) for c in cycle_sequences(SEQS[:2])[0]]
    model = fit(cycles, TrainConfig(preset="pi-cnn", iterations=2, max_steps=200, physics_smooth=9), seed=0)
    assert windows == [9] * 4 and all(np.isfinite(h["L_P"]) for h in model.history)
    for bad in (0, 2, -1, 1.0, True):
        with pytest.raises(InputError, match="physics_smooth"):
            TrainConfig(physics_smooth=bad)
