"""The evaluation loop: folds per protocol, failures kept out of the statistics, and ``myoedge evaluate``
end to end on a tiny simulated data set."""

import json
import zlib
from dataclasses import replace

import numpy as np
import pytest

from myoedge.body.identify import PassiveMoment
from myoedge.body.subjects import write_dataset
from myoedge.cli import main
from myoedge.ground.errors import InputError
from myoedge.train import methods
from myoedge.train.data import Sequence
from myoedge.train.evaluate import EvaluationConfig, FitCache, evaluate, group_by_channels, plan_folds


def trial(subject: str, name: str, *, joint: str = "knee", muscles=("A", "B"), n: int = 200) -> Sequence:
    rng = np.random.default_rng(zlib.crc32(f"{subject}/{name}".encode()))
    t, m = np.arange(n) / 100.0, len(muscles)
    env = 0.5 + 0.4 * np.sin(np.outer(t, rng.uniform(0.5, 2.0, m)) + rng.uniform(0, 6, m))
    return Sequence(name=f"{subject}/s1_{name}", subject=subject, session="s1", trial=name, joint=joint,
                    muscles=tuple(muscles), rate_hz=100.0, t=t, envelopes=env.astype(np.float32),
                    theta=0.5 * env[:, 0] - 0.2 * env[:, 1], forces=300.0 * env, moment_arms=None,
                    torque=None, model=None, physics="none")


SEQS = [trial(s, tr) for s in ("k1", "k2") for tr in ("slow", "fast")]


def test_folds_of_each_protocol():
    config = EvaluationConfig(methods=("elm",), size_fractions=(0.1, 0.5, 1.0))
    folds = plan_folds(SEQS, config)
    by = {p: [f for f in folds if f.protocol == p] for p in ("intra", "loto", "size")}
    assert [f.subject for f in by["intra"]] == ["k1", "k2"]
    assert all(sum(s.n for s in f.test) == 2 * 40 for f in by["intra"])  # 20 % of each 200-step trial
    assert sorted(f.name for f in by["loto"]) == sorted(s.name for s in SEQS)
    assert all(f.test[0].subject == f.subject and len(f.train) == 1 for f in by["loto"])
    # the 100 % point of the sweep is the intra fold itself, not planned twice
    assert sorted((f.subject, f.fraction) for f in by["size"]) == [("k1", 0.1), ("k1", 0.5), ("k2", 0.1),
                                                                   ("k2", 0.5)]
    intra_k1 = sum(s.n for s in by["intra"][0].train)
    assert sum(s.n for s in by["size"][0].train) == pytest.approx(0.1 * intra_k1, abs=6)


def test_channel_sets_are_evaluated_apart():
    wrist = [trial("w1", "slow", joint="wrist", muscles=("C", "D", "E"))]
    groups = group_by_channels(SEQS + wrist)
    assert sorted(groups) == ["knee", "wrist"] and len(groups["knee"]) == 4


def test_config_refuses_bad_choices():
    with pytest.raises(InputError, match="unknown method 'lstm'"):
        EvaluationConfig(methods=("pi-cnn", "lstm"))
    with pytest.raises(InputError, match="protocols"):
        EvaluationConfig(protocols=("cross-subject",))
    with pytest.raises(InputError, match="fractions"):
        EvaluationConfig(size_fractions=(0.0, 0.5))
    assert EvaluationConfig(methods=("elm",)).size_methods == ()  # networks not run: nothing to sweep


def test_a_failing_method_is_recorded_and_left_out(monkeypatch):
    def broken(train, **kwargs):
        raise InputError("training diverged")

    monkeypatch.setitem(methods.METHODS, "svr", methods.Method("svr", "SVR", broken, False))
    result = evaluate(SEQS, EvaluationConfig(methods=("elm", "svr"), protocols=("intra",), quick=True))
    knee = result["joints"]["knee"]
    assert len(knee["failures"]) == 2 and "training diverged" in knee["failures"][0]["error"]
    assert knee["summary"]["intra"]["methods"] == ["elm"]
    assert knee["per_subject"]["elm"]["k1"]["theta"]["cc"] > 0.9


def test_a_rerun_resumes_from_the_fit_cache(tmp_path):
    config = EvaluationConfig(methods=("elm",), protocols=("intra", "loto"), quick=True)
    first_cache = FitCache(tmp_path / "cache")
    first = evaluate(SEQS, config, cache=first_cache)
    assert first_cache.hits == 0 and len(list((tmp_path / "cache").glob("*.pkl"))) == 6
    again = FitCache(tmp_path / "cache")
    second = evaluate(SEQS, config, cache=again)
    assert again.hits == 6
    assert second["joints"]["knee"]["runs"] == first["joints"]["knee"]["runs"]
    assert second["joints"]["knee"]["resumed_protocols"] == ["intra", "loto"]
    other = FitCache(tmp_path / "cache")
    evaluate(SEQS, EvaluationConfig(methods=("elm",), protocols=("intra",), quick=True, seed=1), cache=other)
    assert other.hits == 0  # another seed is another fit
    fold = plan_folds(SEQS, config)[0]  # another cycle batch or residual window is another fit
    batch = EvaluationConfig(methods=("elm",), protocols=("intra", "loto"), quick=True, cycle_batch=3)
    assert other.name("knee", fold, "elm", batch) != other.name("knee", fold, "elm", config)
    window = EvaluationConfig(methods=("elm",), protocols=("intra", "loto"), quick=True, physics_smooth=5)
    assert other.name("knee", fold, "elm", window) != other.name("knee", fold, "elm", config)


def test_worker_processes_give_the_same_numbers():
    config = EvaluationConfig(methods=("elm",), protocols=("intra", "loto"), quick=True)
    one, two = evaluate(SEQS, config), evaluate(SEQS, config, jobs=2)

    def numbers(result):
        return [(r["protocol"], r["fold"], r["outputs"]) for r in result["joints"]["knee"]["runs"]]

    assert numbers(one) == numbers(two) and len(numbers(one)) == 2 + 4
    with pytest.raises(InputError, match="jobs"):
        evaluate(SEQS, config, jobs=0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, joints=("knee",), n_subjects=1, duration_s=3.0, seed=1)
    return root


def test_evaluate_verb_end_to_end(tiny_data, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(tiny_data), "--out", str(out), "--quick", "--methods",
            "pi-cnn,elm", "--fractions", "0.5,1", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    knee = summary["joints"]["knee"]
    assert knee["subjects"] == ["knee01"] and knee["failures"] == 0
    assert set(knee["intra"]) == {"pi-cnn", "elm"}
    assert {"report.md", "report.json", "traces_knee.png", "loss_knee.png", "size_knee.png",
            "rmse_knee.png"} <= {p.name for p in out.iterdir()}
    assert not (tmp_path / ".report.cache").exists()  # the default fit cache goes once the report is out
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    runs = doc["joints"]["knee"]["runs"]
    assert len([r for r in runs if r["protocol"] == "loto"]) == 3 * 2  # 3 trials held out × 2 methods
    assert all(r["residual"]["mode"] == "eom" for r in runs)  # the subject's profile gives the physics
    # an existing report is not replaced without --overwrite; bad names are input errors
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tiny_data), "--out", str(tmp_path / "x"), "--methods", "x"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_every_fold_scores_against_the_net_moment_with_its_training_parts_passive_moment():
    """Trials scored against τ_ID whose joints carry a spring and damper of their own per subject: each
    fold identifies the passive moment on its training part and sets it on both parts."""
    stiffness = {"k1": 2.0, "k2": 5.0}

    def recorded(s):
        arms = np.tile([0.04, -0.03], (s.n, 1))
        law = PassiveMoment(elastic=(0.1, stiffness[s.subject], 0.0, 0.0), damping=0.3, rmse=0.0,
                            moment_rms=1.0)
        torque = (arms * s.forces).sum(-1) - law.moment(s.theta, np.gradient(s.theta, 0.01))
        return replace(s, moment_arms=arms, torque=torque, physics="id")

    config = EvaluationConfig(methods=("elm",), protocols=("intra", "loto"))
    folds = plan_folds([recorded(s) for s in SEQS], config)
    assert {f.protocol for f in folds} == {"intra", "loto"}
    for fold in folds:
        (law,) = {s.passive for s in fold.train}
        assert all(s.passive is law for s in fold.test)
        assert law.elastic[1] == pytest.approx(stiffness[fold.subject], rel=0.05)
