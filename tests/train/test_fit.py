"""Training loop: loss terms logged per iteration, determinism per seed, checkpoint round trip, scoring."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from myoedge.body.identify import PassiveMoment
from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.ground.errors import InputError
from myoedge.train.cli import accuracy, format_accuracy
from myoedge.train.data import load_sequences, split_intra_session
from myoedge.train.fit import fit
from myoedge.train.physics import sequence_residual
from myoedge.train.run import LOSS_TERMS, TrainConfig, TrainedModel

SMALL_EDGE = {"dilations": (1, 2, 4), "filters": 16, "hidden": 16, "smooth": 5}


@pytest.fixture(scope="module")
def split():
    subject = make_subject("knee", 2)
    seqs = load_sequences(simulate_session(subject, duration_s=3.0),
                          profiles={subject.name: true_profile(subject)})
    return split_intra_session(seqs, seed=0)[subject.name]


def _same_weights(a: TrainedModel, b: TrainedModel) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("preset, model", [("pi-cnn", {"filters": 16, "hidden": 16}),
                                           ("edge-window", SMALL_EDGE)])
def test_same_seed_same_model_other_seed_other_model(split, preset, model):
    train, test = split
    cfg = TrainConfig.for_preset(preset, iterations=6, model=model, batch=4, chunk=32)
    a, b, c = (fit(train, cfg, seed=s) for s in (1, 1, 2))
    assert _same_weights(a, b) and not _same_weights(a, c)
    pa, pb = a.predict(test[0]), b.predict(test[0])
    np.testing.assert_array_equal(pa[0], pb[0])
    np.testing.assert_array_equal(pa[1], pb[1])
    assert pa[0].shape == (test[0].n,) and pa[1].shape == (test[0].n, 2)
    assert len(a.history) == 6 and set(a.history[0]) == set(LOSS_TERMS)
    assert a.history == b.history


def test_loss_terms_are_weighted_as_configured(split):
    train, _ = split
    plain = fit(train, TrainConfig.for_preset("cnn", iterations=3, model={"filters": 8, "hidden": 8}), seed=0)
    for h in plain.history:
        assert h["L_P"] > 0 and h["total"] == pytest.approx(h["L_F"] + h["L_theta"], rel=1e-6)
    cfg = TrainConfig.for_preset("pi-cnn", iterations=3, w_force=2.0, w_theta=0.5, w_physics=0.1,
                                 model={"filters": 8, "hidden": 8})
    for h in fit(train, cfg, seed=0).history:
        assert h["total"] == pytest.approx(2 * h["L_F"] + 0.5 * h["L_theta"] + 0.1 * h["L_P"], rel=1e-5)


def test_paper_iterations_train_on_stretches_of_at_most_max_steps(split, monkeypatch):
    import myoedge.train.fit as fit_module

    train, _ = split
    seen, terms = [], fit_module._terms

    def spy(model, out, theta, forces, physics, stats):
        result = terms(model, out, theta, forces, physics, stats)
        seen.append((out.shape[0], theta.shape[0], physics(theta, forces).shape[0]))
        return result

    monkeypatch.setattr(fit_module, "_terms", spy)
    longest = max(s.n for s in train)
    cfg = TrainConfig.for_preset("pi-cnn", iterations=8, max_steps=40, model={"filters": 8, "hidden": 8})
    fit(train, cfg, seed=0)
    assert longest > 40 and seen and all(rows == n == res + 2 <= 40 for rows, n, res in seen)
    assert {rows for rows, _, _ in seen} <= {40} | {s.n for s in train if s.n < 40}
    seen.clear()
    fit(train, TrainConfig.for_preset("pi-cnn", iterations=len(train), model={"filters": 8, "hidden": 8}),
        seed=0)
    assert sorted(rows for rows, _, _ in seen) == sorted(s.n for s in train)  # whole pieces by default


def test_edge_training_lowers_the_loss_and_predicts_in_physical_units(split):
    train, test = split
    cfg = TrainConfig.for_preset("edge-window", iterations=150, model=SMALL_EDGE, batch=8, chunk=48)
    trained = fit(train, cfg, seed=0)
    totals = [h["total"] for h in trained.history]
    assert np.mean(totals[-20:]) < 0.5 * np.mean(totals[:5])
    for piece in train:  # radians and newtons, not z-scores: the training pieces' levels come back
        theta, forces = trained.predict(piece)
        assert abs(theta.mean() - piece.theta.mean()) < 0.5 * piece.theta.std()
        assert forces.mean() > 10.0
    theta, forces = trained.predict(test[0])
    assert theta.shape == (test[0].n,) and np.isfinite(theta).all() and np.isfinite(forces).all()
    acc = accuracy(trained.predict, train)
    assert acc["outputs"]["F_RF"]["cc"] > 0.5 and acc["physics"]["pred"] > acc["physics"]["truth"] > 0


def test_checkpoint_round_trip_predicts_identically(split, tmp_path):
    train, test = split
    cfg = TrainConfig.for_preset("edge-window", iterations=4, model=SMALL_EDGE, chunk=32)
    trained = fit(train, cfg, seed=0)
    trained.save(tmp_path / "run")
    loaded = TrainedModel.load(tmp_path / "run")
    assert loaded.config == trained.config and loaded.model_config == trained.model_config
    assert loaded.envelope_config == trained.envelope_config and loaded.muscles == trained.muscles
    assert loaded.history == trained.history
    np.testing.assert_array_equal(loaded.samples, trained.samples)
    for a, b in zip(trained.predict(test[1]), loaded.predict(test[1])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="already exists"):
        trained.save(tmp_path / "run")
    with pytest.raises(InputError, match="not a training run"):
        TrainedModel.load(tmp_path)


def test_accuracy_of_a_perfect_predictor(split):
    train, _ = split
    acc = accuracy(lambda s: (s.theta, s.forces), train)
    assert set(acc["outputs"]) == {"theta", "F_BFSH", "F_RF"}
    for o in acc["outputs"].values():
        assert o["rmse"] == 0.0 and o["nrmse"] == 0.0 and o["cc"] == pytest.approx(1.0)
    assert acc["steps"] == sum(s.n for s in train) and acc["physics"]["pred"] == acc["physics"]["truth"]
    assert any("physics residual" in line for line in format_accuracy(acc))


def test_bad_inputs_are_refused(split):
    train, _ = split
    with pytest.raises(InputError, match="no training sequences"):
        fit([], TrainConfig(), seed=0)
    other = make_subject("wrist", 1)
    wrist = load_sequences(simulate_session(other, duration_s=1.0, trial_paces=("slow",)),
                           profiles={other.name: true_profile(other)})
    with pytest.raises(InputError, match="must share joint, muscles and rate"):
        fit(train + wrist, TrainConfig(iterations=1), seed=0)
    with pytest.raises(InputError, match="iterations must be a positive int"):
        TrainConfig(iterations=0)
    with pytest.raises(InputError, match="muscles"):
        fit(train, TrainConfig(iterations=1, model={"filters": 4, "hidden": 4}), seed=0).predict(wrist[0])


def test_edge_predictions_use_the_history_before_a_split_point(split):
    train, test = split
    cfg = TrainConfig.for_preset("edge-window", iterations=3, model=SMALL_EDGE, chunk=32)
    trained = fit(train, cfg, seed=0)
    piece = next(s for s in test if s.lead is not None and len(s.lead) >= trained.window)
    theta, _ = trained.predict(piece)
    cold, _ = trained.predict(dataclasses.replace(piece, lead=None))
    w = trained.window
    assert not np.allclose(theta[: w - 1], cold[: w - 1])  # the first outputs differ ...
    np.testing.assert_allclose(theta[w - 1:], cold[w - 1:], rtol=1e-6, atol=1e-6)  # ... the rest do not


def test_train_help_states_the_default_loss_weights(capsys):
    from myoedge.cli import build_parser
    from myoedge.train.run import TrainConfig

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    c = TrainConfig()
    for flag, value in (("--w-force", c.w_force), ("--w-theta", c.w_theta), ("--w-physics", c.w_physics)):
        assert f"{flag} W_{flag[4:].upper()} weight of L_" in text and f"(default {value:g}" in text


def test_a_fit_against_a_recorded_net_moment_identifies_the_joints_passive_moment(split):
    """Sequences scored against τ_ID with no passive moment set: the fit identifies it from them (a
    joint spring and damper put into τ_ID here), records it, and its L_P on the truth is ~0."""
    train, _ = split
    law = PassiveMoment(elastic=(0.2, 3.0, 0.0, 0.0), damping=0.4, rmse=0.0, moment_rms=1.0)
    recorded = [dataclasses.replace(s, physics="id", torque=(s.moment_arms * s.forces).sum(-1)
                                    - law.moment(s.theta, np.gradient(s.theta, 1.0 / s.rate_hz)))
                for s in train]
    cfg = TrainConfig.for_preset("edge-rnn", iterations=2, batch=2, chunk=32, burn_in=8)
    trained = fit(recorded, cfg, seed=0)
    (got,) = trained.info["passive_joint"].values()
    assert got["elastic"][1] == pytest.approx(3.0, rel=0.05) and got["damping"] == pytest.approx(0.4, rel=0.1)
    identified = PassiveMoment.from_dict(got)
    truth = np.concatenate([sequence_residual(dataclasses.replace(s, passive=identified), s.theta, s.forces)
                            for s in recorded])
    assert np.sqrt(np.mean(truth**2)) < 0.02 * np.concatenate([s.torque for s in recorded]).std()
