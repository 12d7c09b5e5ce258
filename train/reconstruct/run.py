"""One reconstruction run: fit every subject on its training trials, reconstruct the test trials, score
and write the run folder.

Scores (test trials, pooled per subject, then averaged over subjects): per hidden muscle Pearson's CC and
RMSE of the reconstructed excitation against the hidden channel's envelope (÷ MVC, the same chain as
the surface channels); the torque's R² and RMSE against inverse dynamics.

Run folder: ``summary.json`` (scores per subject and load, configuration, timings),
``parameters.json`` (per subject: personalised values, generic values and bounds),
``envelopes/<subject>/<trial>.csv`` and ``.sto`` (time, reconstructed and, where recorded, true hidden
envelopes, model and ID torque), ``report.md`` with its figures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myoedge.ground.errors import InputError
from myoedge.ground.fileio import atomic_write_text
from myoedge.train.metrics import pearson_cc, rmse
from myoedge.train.reconstruct.data import SubjectData, Trial, split

log = logging.getLogger(__name__)
METHODS = ("nmm", "synx")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    method: str = "nmm"
    split: str = "trial"
    nmm: object = None  # NmmConfig
    synx: object = None  # SynxConfig


def r2(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    var = float(np.var(y_true))
    return float(1.0 - np.mean((y_true - y_pred) ** 2) / var) if var > 0 else float("nan")


def score(data: SubjectData, trials: list[Trial], preds: list[dict]) -> dict:
    """Hidden-muscle CC / RMSE and torque R² / RMSE over ``trials`` pooled."""
    out = {"hidden": {}, "torque": {}}
    for j, h in enumerate(data.hidden):
        truth = np.concatenate([t.truth[:, j] for t in trials])
        recon = np.concatenate([p["excitation"][:, h] for p in preds])
        out["hidden"][data.muscles[h]] = {"cc": pearson_cc(truth, recon), "rmse": rmse(truth, recon)}
    tau_id = np.concatenate([t.torque for t in trials])
    tau = np.concatenate([p["torque"] for p in preds])
    out["torque"] = {"r2": r2(tau_id, tau), "rmse": rmse(tau_id, tau)}
    return out


def _fit_predict(data: SubjectData, train, test, cfg: RunConfig, progress):
    if cfg.method == "nmm":
        from myoedge.train.reconstruct import nmm

        fitted = nmm.fit(data, train, cfg.nmm, progress=progress)
        params = fitted.model.personal.report()
        return [nmm.predict(fitted, t) for t in test], params, fitted.seconds, fitted.losses[-1]
    from myoedge.train.reconstruct import synx

    fitted = synx.fit(data, train, cfg.synx)
    if progress is not None:
        progress.update(1, data.subject)  # one step per subject
    preds = [synx.predict(fitted, t) for t in test]
    return preds, synx.parameters(fitted), fitted.seconds, fitted.config["cost"]


def _mean_scores(per_subject: dict) -> dict:
    first = next(iter(per_subject.values()))
    subjects = list(per_subject.values())
    hidden = {m: {k: float(np.mean([s["hidden"][m][k] for s in subjects])) for k in ("cc", "rmse")}
              for m in first["hidden"]}
    torque = {k: float(np.mean([s["torque"][k] for s in per_subject.values()])) for k in ("r2", "rmse")}
    return {"hidden": hidden, "torque": torque}


def reconstruct(dataset: dict[str, SubjectData], cfg: RunConfig, *, progress=None) -> dict:
    """Fit and score every subject; returns the summary (``write_run`` writes it with the outputs)."""
    if cfg.method not in METHODS:
        raise InputError(f"unknown method {cfg.method!r}; choose one of {list(METHODS)}")
    subjects, outputs = {}, {}
    for name, data in dataset.items():
        train, test = split(data, cfg.split)
        preds, params, seconds, final = _fit_predict(data, train, test, cfg, progress)
        by_load = {f"{load:g}": score(data, [t for t in test if t.load_kg == load],
                                      [p for t, p in zip(test, preds) if t.load_kg == load])
                   for load in sorted({t.load_kg for t in test})}
        subjects[name] = {**score(data, test, preds), "by_load": by_load, "seconds": seconds,
                          "final_loss": final, "train": [t.name for t in train],
                          "test": [t.name for t in test]}
        outputs[name] = {"test": test, "preds": preds, "parameters": params}
        log.info("%s: %s in %.0f s", name, cfg.method, seconds)
    first = next(iter(dataset.values()))
    summary = {"method": cfg.method, **_mean_scores(subjects), "split": cfg.split,
               "muscles": list(first.muscles), "hidden_muscles": [first.muscles[h] for h in first.hidden],
               "subjects": subjects,
               "config": (cfg.nmm.__dict__ if cfg.method == "nmm" else cfg.synx.__dict__)}
    return {"summary": summary, "outputs": outputs}


def write_run(result: dict, out, *, command: str | None = None, figures: bool = True) -> Path:
    from myoedge.body.opensim import write_storage
    from myoedge.train.reconstruct.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result["summary"]
    hidden = summary["hidden_muscles"]
    muscles = summary["muscles"]
    for subject, o in result["outputs"].items():
        folder = out / "envelopes" / subject
        folder.mkdir(parents=True, exist_ok=True)
        for t, p in zip(o["test"], o["preds"]):
            cols = {"time": t.t}
            for j, h in enumerate(hidden):
                cols[f"{h}_reconstructed"] = p["excitation"][:, muscles.index(h)]
                if t.truth is not None:
                    cols[f"{h}_measured"] = t.truth[:, j]
            cols["torque_model"], cols["torque_id"] = p["torque"], t.torque
            header = ",".join(cols)
            rows = np.column_stack(list(cols.values()))
            lines = [header] + [",".join(f"{v:.6g}" for v in row) for row in rows]
            atomic_write_text(folder / f"{t.name}.csv", "\n".join(lines) + "\n")
            write_storage(folder / f"{t.name}.sto", cols, name=f"{subject} {t.name} reconstructed envelopes",
                          in_degrees=False)
    params = {s: o["parameters"] for s, o in result["outputs"].items()}
    atomic_write_text(out / "parameters.json", json.dumps(params, indent=1) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    write_report(result, out, command=command, figures=figures)
    return out
