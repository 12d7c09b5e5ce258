"""The report of a reconstruction run: ``report.md`` with a table and four kinds of figure.

- ``envelopes_<subject>.png``: measured (hidden channel) vs reconstructed envelopes, one row per test load;
- ``heatmap_<muscle>.png``: CC per subject × test load (the paper's Fig. 5);
- ``torque_<subject>.png``: model torque vs inverse dynamics;
- ``parameters.png``: personalised parameters ÷ their generic values, per subject (NMM; SynX: strengths).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from myoedge.ground.fileio import atomic_write_text

SHOW_S = 8.0  # seconds of each test trial in the trace figures


def _save(fig, path: Path, plt) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _figures(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    summary, names = result["summary"], []
    hidden, muscles = summary["hidden_muscles"], summary["muscles"]
    for subject, o in result["outputs"].items():
        test, preds = o["test"], o["preds"]
        fig, axes = plt.subplots(len(test), len(hidden), figsize=(5 * len(hidden), 2.0 * len(test)),
                                 squeeze=False, sharex=True)
        for row, (t, p) in enumerate(zip(test, preds)):
            keep = t.t - t.t[0] <= SHOW_S
            for col, h in enumerate(hidden):
                ax = axes[row, col]
                ax.plot(t.t[keep], t.truth[keep, col], color="k", lw=1.5, label="measured (hidden)")
                ax.plot(t.t[keep], p["excitation"][keep, muscles.index(h)], color="C1", lw=1,
                        label="reconstructed")
                ax.set_title(f"{h}, {t.name} ({t.load_kg:g} kg)", fontsize=8)
        axes[0, 0].legend(fontsize=7)
        axes[-1, 0].set_xlabel("time (s)")
        names.append(_save(fig, out / f"envelopes_{subject}.png", plt))
        fig, ax = plt.subplots(figsize=(8, 2.6))
        t, p = test[0], preds[0]
        ax.plot(t.t, t.torque, color="k", lw=1.5, label="inverse dynamics")
        ax.plot(t.t, p["torque"], color="C1", lw=1, label=f"{summary['method']} Σ r·F")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("torque (N·m)")
        ax.set_title(f"{subject} {t.name}", fontsize=9)
        ax.legend(fontsize=7)
        names.append(_save(fig, out / f"torque_{subject}.png", plt))
    subjects = list(summary["subjects"])
    loads = sorted({ld for s in summary["subjects"].values() for ld in s["by_load"]}, key=float)
    for h in hidden:
        by = {s: summary["subjects"][s]["by_load"] for s in subjects}
        grid = np.array([[by[s][ld]["hidden"][h]["cc"] if ld in by[s] else np.nan for ld in loads]
                         for s in subjects])
        fig, ax = plt.subplots(figsize=(1.2 * len(loads) + 2, 0.45 * len(subjects) + 1.5))
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(len(subjects)):
            for j in range(len(loads)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8, color="w")
        ax.set_xticks(range(len(loads)), [f"{ld} kg" for ld in loads])
        ax.set_yticks(range(len(subjects)), subjects)
        ax.set_title(f"{h}: CC, {summary['method']}", fontsize=9)
        fig.colorbar(im, ax=ax)
        names.append(_save(fig, out / f"heatmap_{h}.png", plt))
    params = {s: o["parameters"] for s, o in result["outputs"].items()}
    first = next(iter(params.values()))
    keys = [k for k in ("strength", "l_opt", "l_ts", "pennation", "shape") if k in first]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for i, (s, p) in enumerate(params.items()):
            v, g = np.asarray(p[k]["value"]), np.asarray(p[k]["generic"])
            ratio = np.divide(v, g, out=np.full_like(v, np.nan), where=np.abs(g) > 1e-9)
            ax.plot(range(len(v)), ratio, "o", ms=4, label=s, color=f"C{i}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(muscles)), muscles, rotation=60, fontsize=7)
        ax.set_title(f"{k} ÷ generic", fontsize=9)
    axes[0, 0].legend(fontsize=6)
    names.append(_save(fig, out / "parameters.png", plt))
    return names


def render(summary: dict, *, figures: list[str], command: str | None) -> str:
    lines = [f"# Deep-muscle reconstruction: {summary['method']}, split {summary['split']}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += ["Test trials, per subject (CC and RMSE of the hidden envelopes ÷ MVC; torque against inverse "
              "dynamics).", ""]
    hidden = summary["hidden_muscles"]
    head = (["subject"] + [f"{h} {k}" for h in hidden for k in ("CC", "RMSE")]
            + ["τ R²", "τ RMSE (N·m)", "fit (s)"])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = list(summary["subjects"].items()) + [("**mean**", summary)]
    for name, s in rows:
        cells = [name] + [f"{s['hidden'][h][k]:.3f}" for h in hidden for k in ("cc", "rmse")]
        cells += [f"{s['torque']['r2']:.3f}", f"{s['torque']['rmse']:.2f}",
                  f"{s['seconds']:.0f}" if "seconds" in s else ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_report(result: dict, out, *, command: str | None = None, figures: bool = True) -> list[Path]:
    out = Path(out)
    made = _figures(result, out) if figures else []
    return [atomic_write_text(out / "report.md", render(result["summary"], figures=made, command=command))]
