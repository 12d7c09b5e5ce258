"""Report generation: the files, the Tables I and II layout, JSON without NaN, the target checks."""

import json

import numpy as np
import pytest

from myoedge.body.catalog import generic_model
from myoedge.ground.errors import InputError
from myoedge.train.data import Sequence
from myoedge.train.evaluate import EvaluationConfig, evaluate
from myoedge.train.physics import central_differences
from myoedge.train.report import rewrite_report, write_report
from myoedge.train.targets import check_targets


def knee_trial(subject: str, trial: str, *, seed: int, n: int = 240, rate: float = 100.0) -> Sequence:
    """Forces that obey the knee's equation of motion, envelopes that follow the forces (plus noise)."""
    rng = np.random.default_rng(seed)
    model = generic_model("knee")
    t = np.arange(n) / rate
    theta = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 1.0) * t + rng.uniform(0, 6))
    mid, dot, ddot = central_differences(theta, dt=1.0 / rate)
    tau = np.pad(model.required_torque(mid, dot, ddot), 1, mode="edge")
    r = model.moment_arms(theta)
    extensor = 80.0 + 40.0 * np.sin(2 * np.pi * 0.4 * t) + np.maximum(-tau, 0.0) / np.abs(r[:, 1])
    forces = np.column_stack([(tau - extensor * r[:, 1]) / r[:, 0], extensor])
    env = forces / 1000.0 + rng.normal(0, 0.005, forces.shape)
    return Sequence(name=f"{subject}/s1_{trial}", subject=subject, session="s1", trial=trial, joint="knee",
                    muscles=model.muscle_names, rate_hz=rate, t=t, envelopes=env.astype(np.float32),
                    theta=theta, forces=forces, moment_arms=None, torque=None, model=model, physics="eom")


@pytest.fixture(scope="module")
def result():
    seqs = [knee_trial(s, tr, seed=10 * i + j) for i, s in enumerate(("k1", "k2"))
            for j, tr in enumerate(("slow", "fast"))]
    config = EvaluationConfig(methods=("pi-cnn", "elm"), protocols=("intra", "loto", "size"),
                              size_fractions=(0.5, 1.0), quick=True)
    return evaluate(seqs, config)


def test_report_files_and_tables(result, tmp_path):
    paths = write_report(result, tmp_path, command="myoedge evaluate --data d --out r --quick")
    names = sorted(p.name for p in paths)
    assert names == ["loss_knee.png", "report.json", "report.md", "rmse_knee.png", "size_knee.png",
                     "traces_knee.png"]
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "myoedge evaluate --data d --out r --quick" in md
    assert "Quick configuration" in md
    for heading in ("### Targets", "### Table I — PI-CNN per subject (intra-session)",
                    "### Table II — methods compared, intra-session",
                    "### Table II (b) — methods compared, leave one trial out", "### Training-size curve"):
        assert heading in md
    assert "| Subject | θ (deg) | F_BFSH (N) | F_RF (N) |" in md  # Table I: a row per subject
    assert "| k1 |" in md and "| k2 |" in md and "| **Mean** |" in md
    assert "| Method | θ (deg) | F_BFSH (N) | F_RF (N) |" in md  # Table II: a row per method
    for row in ("| PI-CNN |", "| ELM |"):
        assert row in md
    assert "| 50% |" in md and "| 100% |" in md
    assert "![rmse_knee](rmse_knee.png)" in md


def test_report_json_is_strict_and_complete(result, tmp_path):
    write_report(result, tmp_path, figures=False)
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["format"] == "myoedge-evaluation" and "traces" not in doc
    knee = doc["joints"]["knee"]
    assert knee["outputs"] == ["theta", "F_BFSH", "F_RF"]
    protocols = {(r["protocol"], r["method"]) for r in knee["runs"]}
    assert {("intra", "elm"), ("loto", "pi-cnn"), ("size", "pi-cnn")} <= protocols
    assert ("size", "elm") not in protocols  # only the networks are swept by default
    swept = [r["fraction"] for r in knee["runs"] if r["protocol"] == "size" and r["subject"] == "k1"]
    assert swept == [0.5, 1.0]
    assert len([r for r in knee["runs"] if r["protocol"] == "loto" and r["method"] == "elm"]) == 4
    assert set(knee["summary"]["intra"]["anova"]) == {"theta", "F_BFSH", "F_RF"}
    assert doc["figures"] == {}
    assert [t["met"] for t in doc["targets"]["knee"]][-1] is None  # quick runs do not claim the time target


def test_rewrite_renders_the_same_report_from_report_json(result, tmp_path):
    write_report(result, tmp_path, command="myoedge evaluate --data d --out r", figures=False)
    before = (tmp_path / "report.md").read_text(encoding="utf-8")
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    doc["targets"] = {}  # as if written by an older target list
    (tmp_path / "report.json").write_text(json.dumps(doc), encoding="utf-8")
    rewrite_report(tmp_path)
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == before
    again = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert again["targets"]["knee"] and again["command"] == "myoedge evaluate --data d --out r"
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="report.json"):
        rewrite_report(tmp_path)


def test_target_checks_report_misses():
    joint = {"outputs": ["theta"], "per_subject": {"pi-cnn": {"a": {"theta": {"cc": 0.97, "nrmse": 0.12}}}},
             "summary": {"intra": {"table": {"pi-cnn": {"theta": {"rmse": {"mean": 2.0}}},
                                             "elm": {"theta": {"rmse": {"mean": 1.0}}}},
                                   "residual": {"pi-cnn": {"mean": 1.0}, "cnn": {"mean": 3.0}}}},
             "size_curve": {}, "seconds_by_protocol": {"intra": 600.0, "loto": 900.0}}
    checks = {c["target"].split(":")[0]: c for c in check_targets(joint)}
    accuracy = checks["PI-CNN intra-session"]
    assert accuracy["met"] is False and "12.0 %" in accuracy["measured"]
    elm = checks["PI-CNN ahead of ELM (lower mean RMSE) on every output"]
    assert elm["met"] is False and "θ" in elm["measured"]
    assert checks["PI-CNN physics residual below CNN's (intra-session)"]["met"] is True
    assert checks["One joint, all methods, both protocols in under 30 min"]["met"] is True
    assert not any(k.startswith("Edge ") for k in checks)  # no edge fits, no edge targets
    joint["per_subject"]["edge"] = {"a": {"theta": {"cc": 0.96, "nrmse": 0.08}}}
    joint["summary"]["intra"]["table"]["edge"] = {"theta": {"rmse": {"mean": 0.5}}}
    checks = {c["target"].split(":")[0]: c for c in check_targets(joint)}
    assert checks["Edge intra-session"]["met"] is True
    assert checks["Edge ahead of ELM (lower mean RMSE) on every output"]["met"] is True
