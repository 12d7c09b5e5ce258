"""The evaluation report: ``report.md`` (tables laid out like Tables I and II of Zhang et al. 2023),
``report.json`` (every number behind it) and PNG figures (matplotlib, Agg backend: no display needed).

Table I gives the PI-CNN per subject (intra-session); Table II compares the methods (mean ± SD over
folds) with Tukey-HSD marks against the PI-CNN. The targets of the project's training issue are
checked against the measured numbers and listed as met or not met — the report never hides a miss.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from myoedge.ground.errors import InputError
from myoedge.ground.fileio import atomic_write_text
from myoedge.train.methods import METHODS, label
from myoedge.train.metrics import output_symbol, output_unit
from myoedge.train.stats import significance_mark
from myoedge.train.targets import REFERENCE, check_targets, fmt

METHODS_WITH_PHYSICS = {name: m.physics_loss for name, m in METHODS.items()}


def _pm(d: dict, scale: float = 1.0, digits: int = 2) -> str:
    if not d or d.get("n", 0) == 0:
        return "–"
    return f"{fmt(d['mean'] * scale, digits)} ± {fmt(d['sd'] * scale, digits)}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    body = ("| " + " | ".join(r) + " |" for r in rows)
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *body]


METRIC_ROWS = (("rmse", "RMSE", 1.0), ("nrmse", "nRMSE (%)", 100.0), ("cc", "CC", 1.0))


def _header(first: str, outputs: list[str], metric: str) -> list[str]:
    unit = (lambda o: f" ({output_unit(o)})") if metric == "rmse" else (lambda o: "")
    return [first, *(output_symbol(o) + unit(o) for o in outputs)]


def _digits(metric: str) -> int:
    return 3 if metric == "cc" else 2


def finite_or_none(x):
    """JSON has no NaN: map non-finite floats to None (used when writing report.json)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    if isinstance(x, np.generic):
        return finite_or_none(x.item())
    if isinstance(x, np.ndarray):
        return finite_or_none(x.tolist())
    return x


# ---------------------------------------------------------------------------------------------- tables

def _table1(joint: dict, protocol: str = "intra-session") -> list[str]:
    per, outputs = joint["per_subject"].get(REFERENCE), joint["outputs"]
    if not per:
        return []
    lines = [f"### Table I — PI-CNN per subject ({protocol})", ""]
    for metric, title, scale in METRIC_ROWS:
        rows = [[s, *(fmt(per[s][o][metric] * scale, _digits(metric)) for o in outputs)] for s in per]
        means = [float(np.mean([per[s][o][metric] for s in per])) * scale for o in outputs]
        rows.append(["**Mean**", *(fmt(m, _digits(metric)) for m in means)])
        lines += [f"{title}:", "", *_table(_header("Subject", outputs, metric), rows), ""]
    return lines


def _table2(joint: dict, protocol: str, title: str) -> list[str]:
    summ = joint["summary"].get(protocol)
    if not summ or not summ["methods"]:
        return []
    outputs, methods, anova = joint["outputs"], summ["methods"], summ["anova"]
    lines = [f"### {title}", ""]
    for metric, name, scale in METRIC_ROWS:
        header = _header("Method", outputs, metric)
        rows = []
        for m in methods:
            cells = []
            for o in outputs:
                cell = _pm(summ["table"][m][o][metric], scale, _digits(metric))
                if metric == "rmse" and m != REFERENCE and o in anova:
                    pair = next((p for p in anova[o]["pairs"] if {p["a"], p["b"]} == {m, REFERENCE}), None)
                    cell += significance_mark(pair["p"]) if pair else ""
                cells.append(cell)
            rows.append([label(m), *cells])
        lines += [f"{name}, mean ± SD over {summ['table'][methods[0]][outputs[0]]['rmse']['n']} folds:", "",
                  *_table(header, rows), ""]
    if anova:
        lines += ["One-way ANOVA on RMSE across methods (marks above: Tukey HSD against PI-CNN, "
                  "\\* p < 0.05, \\*\\* p < 0.01, \\*\\*\\* p < 0.001):", ""]
        rows = []
        for o, a in anova.items():
            differ = [f"{label(p['b'] if p['a'] == REFERENCE else p['a'])} ({p['p']:.3g})" for p in a["pairs"]
                      if REFERENCE in (p["a"], p["b"]) and p["significant"]]
            note = ", ".join(differ) or a.get("note") or "none"
            rows.append([output_symbol(o), fmt(a["f"]), fmt(a["p"], 4), note])
        lines += _table(["Output", "F", "p", "pairs different from PI-CNN (p)"], rows)
        lines.append("")
    res, truth = summ["residual"], summ["residual_truth"]
    lines += ["Physics residual of the predictions (RMS over test steps, N·m; ground truth through the same "
              f"finite differences: {_pm(truth, 1.0, 3)}):", ""]
    rel = summ.get("residual_relative", {})
    lines += _table(["Method", "residual RMS (N·m)", "÷ RMS net muscle moment (%)"],
                    [[label(m), _pm(res[m], 1.0, 3), _pm(rel.get(m, {}), 100.0, 1)] for m in methods])
    return lines + [""]


def _size_table(joint: dict) -> list[str]:
    curve = joint.get("size_curve") or {}
    if not curve:
        return []
    methods = list(curve)
    fracs = sorted({f for m in methods for f in curve[m]})
    rows = [[f"{f:.0%}", *(_pm(curve[m].get(f, {}), 100.0) for m in methods)] for f in fracs]
    return ["### Training-size curve (intra-session test block; nRMSE % averaged over outputs, "
            "mean ± SD over subjects)", "", *_table(["Training data", *(label(m) for m in methods)], rows),
            ""]


def render_markdown(result: dict, *, figures: dict[str, list[str]], command: str | None = None) -> str:
    cfg = result["config"]
    lines = ["# myoedge evaluation report", ""]
    if command:
        lines += ["Produced by:", "", f"    {command}", ""]
    if cfg.get("quick"):
        lines += ["**Quick configuration** (tiny training budgets, for tests and demos): the numbers below "
                  "are not results.", ""]
    lags = ", ".join(f"{1000 * x:g} ms" for x in cfg["baseline_lags_s"])
    lines += [f"Methods: {', '.join(label(m) for m in cfg['methods'])}. "
              f"Protocols: {', '.join(cfg['protocols'])}. Seed {cfg['seed']}. Baseline inputs: time step and "
              f"envelopes at lags {lags}. Total time {result.get('seconds', 0) / 60:.1f} min.", "",
              "Definitions: θ errors in degrees, forces in newtons; nRMSE = RMSE ÷ (max − min) of the true "
              "signal over the fold's test samples; CC = Pearson correlation; a fold is one subject's 80/20 "
              "split (intra-session) or one held-out trial (leave-one-trial-out)"
              + ("; under the paper's protocol one subject's 80/20 split of its cycles (paper) or one "
                 "subject's second session (sessions)" if {"paper", "sessions"} & set(cfg["protocols"])
                 else "")
              + "; the physics residual is "
              "the equation-of-motion residual (M θ̈ + C + G + P − Σ r F, or Σ r F − P(θ, θ̇) − τ_ID with P "
              "the joint's passive moment identified on the fold's training part) of the predicted "
              "sequence with θ̇, θ̈ by central differences.", ""]
    for key, joint in result["joints"].items():
        lines += [f"## {key}", "",
                  f"Subjects {', '.join(joint['subjects'])}; trials {', '.join(joint['trials'])}; muscles "
                  f"{', '.join(joint['muscles'])}; {joint['rate_hz']:g} Hz; physics mode "
                  f"{'/'.join(joint['physics'])}; MVC from {'/'.join(joint['mvc_source'])}.", ""]
        targets = check_targets(joint, quick=bool(cfg.get("quick")))
        if targets:
            verdict = {True: "met", False: "**not met**", None: "not measured"}
            rows = [[t["target"], t["measured"], verdict[t["met"]]] for t in targets]
            lines += ["### Targets", "", *_table(["Target", "Measured", "Verdict"], rows), ""]
        from myoedge.train.report_paper import paper_sections

        lines += paper_sections(joint, cfg)
        split = "time split" if cfg.get("held_out") == "end" else "intra-session"
        lines += _table1(joint, split)
        lines += _table2(joint, "intra", f"Table II — methods compared, {split}")
        lines += _table2(joint, "loto", "Table II (b) — methods compared, leave one trial out")
        lines += _size_table(joint)
        secs = joint["seconds_by_protocol"]
        wall = ", ".join(f"{p} {s / 60:.1f} min" for p, s in secs.items())
        lines += [f"Wall time by protocol ({result.get('jobs', 1)} fit(s) at a time): {wall}."]
        if joint.get("resumed_protocols"):
            again = ", ".join(joint["resumed_protocols"])
            lines.append(f"Resumed from the fit cache after an interruption: {again} (their time adds each "
                         "cached fit's own time ÷ the fits run at a time).")
        lines.append("")
        if joint["failures"]:
            lines += ["Failed fits (left out of the statistics):", ""]
            lines += [f"- {label(r['method'])}, {r['protocol']} {r['subject']} {r['fold']}: {r['error']}"
                      for r in joint["failures"]]
            lines.append("")
        lines += [f"![{Path(f).stem}]({f})" for f in figures.get(key, [])]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------- figures

def _figures(result: dict, out: Path) -> dict[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    made: dict[str, list[str]] = {}
    for key, joint in result["joints"].items():
        names = []
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)
        trace = result.get("traces", {}).get(key)
        if trace:
            outs = list(trace["truth"])
            fig, axes = plt.subplots(len(outs), 1, figsize=(10, 2.2 * len(outs)), sharex=True, squeeze=False)
            for ax, o in zip(axes[:, 0], outs, strict=True):
                ax.plot(trace["t"], trace["truth"][o], color="k", lw=2, label="true")
                for m, pred in trace["pred"].items():
                    ax.plot(trace["t"], pred[o], lw=1, label=label(m))
                ax.set_ylabel(f"{output_symbol(o)} ({output_unit(o)})")
            axes[0, 0].legend(ncol=4, fontsize=8, loc="upper right")
            axes[0, 0].set_title(f"{key}: {trace['sequence']} (intra-session test block)")
            axes[-1, 0].set_xlabel("time in test block (s)")
            names.append(_save(fig, out / f"traces_{safe}.png", plt))
        hist = result.get("histories", {}).get(key)
        if hist:
            fig, axes = plt.subplots(1, len(hist), figsize=(5 * len(hist), 3.5), squeeze=False)
            for ax, (m, h) in zip(axes[0], hist.items(), strict=True):
                for i, term in enumerate(("L_F", "L_theta", "L_P", "total")):
                    y = np.array([row[term] for row in h])
                    if not np.any(y > 0):
                        continue
                    k = max(1, len(y) // 50)  # running mean over ~2 % of the run, raw values faint behind it
                    smooth = np.convolve(y, np.ones(k) / k, mode="valid")
                    style = {"color": "k", "ls": "--"} if term == "total" else {"color": f"C{i}"}
                    ax.semilogy(y, lw=0.5, alpha=0.25, color=style["color"])
                    ax.semilogy(np.arange(len(smooth)) + k - 1, smooth, lw=1.2, label=term, **style)
                ax.set_title(f"{label(m)} training loss" + ("" if METHODS_WITH_PHYSICS.get(m, True)
                                                            else " (L_P logged, not trained)"), fontsize=9)
                ax.set_xlabel("iteration")
                ax.legend(fontsize=8)
            names.append(_save(fig, out / f"loss_{safe}.png", plt))
        curve = joint.get("size_curve")
        if curve:
            fig, ax = plt.subplots(figsize=(6, 4))
            for m, pts in curve.items():
                f = sorted(pts)
                ax.errorbar([100 * x for x in f], [100 * pts[x]["mean"] for x in f],
                            yerr=[100 * pts[x]["sd"] for x in f], marker="o", capsize=3, label=label(m))
            ax.set_xlabel("training data used (%)")
            ax.set_ylabel("nRMSE, mean over outputs (%)")
            ax.set_title(f"{key}: training-size curve")
            ax.legend()
            names.append(_save(fig, out / f"size_{safe}.png", plt))
        for protocol, tag, title in (("intra", "", "intra-session"), ("paper", "paper_", "paper protocol")):
            summ = joint["summary"].get(protocol)
            if summ and summ["methods"]:
                fig = _bar_chart(plt, key, joint, summ, title)
                names.append(_save(fig, out / f"rmse_{tag}{safe}.png", plt))
        made[key] = names
    return made


def _bar_chart(plt, key: str, joint: dict, summ: dict, title: str = "intra-session"):
    outputs, methods = joint["outputs"], summ["methods"]
    fig, axes = plt.subplots(1, len(outputs), figsize=(3.2 * len(outputs), 3.6), squeeze=False)
    for ax, o in zip(axes[0], outputs, strict=True):
        means = [summ["table"][m][o]["rmse"]["mean"] for m in methods]
        sds = [summ["table"][m][o]["rmse"]["sd"] for m in methods]
        x = np.arange(len(methods))
        ax.bar(x, means, yerr=sds, capsize=3, color=[f"C{i}" for i in range(len(methods))])
        pairs = summ["anova"].get(o, {}).get("pairs", [])
        for i, m in enumerate(methods):
            pair = next((p for p in pairs if {p["a"], p["b"]} == {m, REFERENCE}), None)
            mark = significance_mark(pair["p"]) if pair and m != REFERENCE else ""
            if mark and math.isfinite(means[i]):
                top = means[i] + (sds[i] if math.isfinite(sds[i]) else 0.0)
                ax.text(i, top, mark, ha="center", va="bottom")
        ax.set_xticks(x, [label(m) for m in methods], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{output_symbol(o)} RMSE ({output_unit(o)})", fontsize=9)
    fig.suptitle(f"{key}: {title} RMSE (mean ± SD; * vs PI-CNN, Tukey HSD)", fontsize=10)
    return fig


def _save(fig, path: Path, plt) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


# ---------------------------------------------------------------------------------------------- writer

def write_report(result: dict, out, *, command: str | None = None, figures: bool = True) -> list[Path]:
    """Write ``report.md``, ``report.json`` and the figures into the folder ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = _figures(result, out) if figures else {}
    doc = {k: v for k, v in result.items() if k not in ("traces", "histories")}
    doc["command"] = command
    doc["targets"] = {k: check_targets(j, quick=bool(result["config"].get("quick")))
                      for k, j in result["joints"].items()}
    doc["figures"] = made
    paths = [atomic_write_text(out / "report.json", json.dumps(finite_or_none(doc), indent=1) + "\n"),
             atomic_write_text(out / "report.md", render_markdown(result, figures=made, command=command))]
    return paths + [out / f for names in made.values() for f in names]


def rewrite_report(folder) -> list[Path]:
    """Re-render ``report.md`` and the targets in ``report.json`` from the folder's ``report.json``.

    For a change to the report's layout or targets: no fit runs, the figures are kept as they are.
    """
    folder = Path(folder)
    try:
        doc = json.loads((folder / "report.json").read_text())
        figures, command = doc.pop("figures"), doc.pop("command")
        doc.pop("targets", None)
        for joint in doc["joints"].values():  # JSON turned the size fractions into strings
            joint["size_curve"] = {m: {float(f): v for f, v in c.items()}
                                   for m, c in (joint.get("size_curve") or {}).items()}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{folder} does not hold a readable evaluation report.json: {e}") from e
    doc["targets"] = {k: check_targets(j, quick=bool(doc["config"].get("quick")))
                      for k, j in doc["joints"].items()}
    text = render_markdown(doc, figures=figures, command=command)
    doc["figures"], doc["command"] = figures, command
    return [atomic_write_text(folder / "report.json", json.dumps(finite_or_none(doc), indent=1) + "\n"),
            atomic_write_text(folder / "report.md", text)]


if __name__ == "__main__":  # python -m myoedge.train.report REPORTDIR
    import sys

    for path in rewrite_report(sys.argv[1]):
        print(f"wrote {path}")
