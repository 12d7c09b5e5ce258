"""Compare reconstruction runs: a markdown table (mean ± SD over subjects) and ANOVA + Tukey HSD per metric.

    python -m myoedge.train.reconstruct.compare RUN_A RUN_B ... [--targets]

Runs are grouped by split; within a split every run (labelled by its folder name) is one group and each
subject one observation (:func:`myoedge.train.stats.compare_groups`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from myoedge.train.stats import compare_groups, describe, significance_mark

# metric -> (label, higher is better, target)
TARGETS = {"cc": (0.90, True), "rmse": (0.05, False), "r2": (0.95, True)}


def metrics(summary: dict) -> dict[str, list[float]]:
    """``{"BRA cc": [per subject], ..., "torque r2": [...], "torque rmse": [...], "fit s": [...]}``.

    Scores pool a subject's test trials; where they span several loads, the level changes between loads
    raise CC and R², so "within load" rows average the scores of each load's trials instead.
    """
    subs = list(summary["subjects"].values())
    out = {}

    def within(s, get):
        return float(np.mean([get(v) for v in s["by_load"].values()]))

    for h in summary["hidden_muscles"]:
        for k in ("cc", "rmse"):
            out[f"{h} {k}"] = [s["hidden"][h][k] for s in subs]
        out[f"{h} cc within load"] = [within(s, lambda v, h=h: v["hidden"][h]["cc"]) for s in subs]
    out["torque r2"] = [s["torque"]["r2"] for s in subs]
    out["torque r2 within load"] = [within(s, lambda v: v["torque"]["r2"]) for s in subs]
    out["torque rmse"] = [s["torque"]["rmse"] for s in subs]
    out["fit s"] = [s["seconds"] for s in subs]
    return out


def _fmt(d: dict, digits: int) -> str:
    return f"{d['mean']:.{digits}f} ± {d['sd']:.{digits}f}" if math.isfinite(d["mean"]) else "—"


def compare(runs: list[Path]) -> str:
    # each run is labelled by its folder name
    summaries = [(Path(r).name, json.loads((Path(r) / "summary.json").read_text())) for r in runs]
    lines = []
    for split in sorted({s["split"] for _, s in summaries}):
        group = {name: metrics(s) for name, s in summaries if s["split"] == split}
        names = list(next(iter(group.values())))
        n = len(next(iter(group.values()))["fit s"])
        lines += [f"### split {split} (mean ± SD over {n} subjects)", "",
                  "| metric | " + " | ".join(group) + " | ANOVA p | Tukey (pairs with p < 0.05) |",
                  "|---|" + "---|" * (len(group) + 2)]
        for m in names:
            cells = [_fmt(describe(v[m]), 1 if m == "fit s" else 3) for v in group.values()]
            anova, pairs = "", ""
            if len(group) >= 2 and m != "fit s":
                c = compare_groups({k: v[m] for k, v in group.items()})
                anova = f"{c.p:.3g}" if math.isfinite(c.p) else c.note
                pairs = "; ".join(f"{q.a} − {q.b} = {q.diff:+.3f} (p {q.p:.3g}){significance_mark(q.p)}"
                                  for q in c.pairs if q.significant)
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {anova} | {pairs} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders written by myoedge reconstruct")
    args = p.parse_args(argv)
    print(compare([Path(r) for r in args.runs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
