"""The report's sections for the paper's protocol (``myoedge evaluate --protocol paper``).

Tables I and II in the layout of Zhang et al. (IEEE TNSRE 2023): Table I the PI-CNN per subject (RMSE
per muscle in N and of the angle in degrees, then CC), Table II the methods compared (mean ± SD over
subjects, one-way ANOVA and Tukey HSD against the PI-CNN with p-values). Where the same report holds
our time split (``intra`` with the last 20 % of every trial held out), each number stands beside it.
The cycle segmentation's counts (detected, dropped as outlier durations, kept) are listed per trial.
"""

from __future__ import annotations

import numpy as np

from myoedge.train.methods import label
from myoedge.train.metrics import output_symbol, output_unit
from myoedge.train.report import _pm, _table, _table2
from myoedge.train.targets import REFERENCE, fmt

TRUST = ("**Which protocol to trust for a controller.** The time split. Under the paper's protocol every "
         "method is given the frame's place in its movement cycle (0–99 of 100), which is known only once "
         "the cycle has ended: cutting a trial into cycles needs the next swing peak or heel strike, and "
         "normalising to 100 frames needs the cycle's duration. In a cycle the phase nearly fixes the angle, "
         "so the paper's numbers measure how well a method reads the phase, and test cycles are "
         "interleaved with training cycles of the same trials. A controller gets envelopes as they "
         "arrive and no phase; its estimate must hold later in a session than it was taught, which is "
         "what the time split (the last 20 % of every trial held out, the phase replaced by the elapsed "
         "time, which says nothing) measures. Use the paper's protocol to compare with the paper, and the "
         "time split (and the leave-one-trial-out protocol) to choose a model for the device.")


def _cell(per: dict, s: str, o: str, metric: str) -> str:
    if s not in per:
        return "–"
    return fmt(per[s][o][metric], 3 if metric == "cc" else 2)


def _table1(joint: dict, outputs: list[str], time_split: bool) -> list[str]:
    paper = (joint.get("per_subject_paper") or {}).get(REFERENCE) or {}
    split = (joint.get("per_subject") or {}).get(REFERENCE) or {} if time_split else {}
    if not paper:
        return []
    subjects = sorted(set(paper) | set(split))
    title = "### Table I — PI-CNN per subject, paper protocol" + (" beside our time split" if split else "")
    lines = [title, ""]
    for metric, title in (("rmse", "RMSE"), ("cc", "CC")):
        header = ["Subject"]
        for o in outputs:
            unit = f" ({output_unit(o)})" if metric == "rmse" else ""
            header += [f"{output_symbol(o)}{unit} paper"]
            header += [f"{output_symbol(o)} time split"] if split else []
        rows = []
        for s in subjects:
            row = [s]
            for o in outputs:
                row += [_cell(paper, s, o, metric)] + ([_cell(split, s, o, metric)] if split else [])
            rows.append(row)
        mean = ["**Mean**"]
        for o in outputs:
            for per in (paper, split) if split else (paper,):
                mean.append(fmt(float(np.mean([per[s][o][metric] for s in per])), 3 if metric == "cc" else 2))
        lines += [f"{title}:", "", *_table(header, rows + [mean]), ""]
    return lines


def _side_by_side(joint: dict, outputs: list[str]) -> list[str]:
    paper, split = joint["summary"].get("paper"), joint["summary"].get("intra")
    if not paper or not split:
        return []
    methods = [m for m in paper["methods"] if m in split["methods"]]
    header = ["Method"]
    for o in outputs:
        header += [f"{output_symbol(o)} RMSE paper", f"{output_symbol(o)} RMSE time split"]
    rows = [[label(m), *(c for o in outputs for c in (_pm(paper["table"][m][o]["rmse"]),
                                                     _pm(split["table"][m][o]["rmse"])))] for m in methods]
    cc = [[label(m), *(c for o in outputs for c in (_pm(paper["table"][m][o]["cc"], 1.0, 3),
                                                   _pm(split["table"][m][o]["cc"], 1.0, 3)))]
          for m in methods]
    return ["### Table II beside our time split (mean ± SD over subjects)", "",
            "RMSE (θ in degrees, forces in N):", "", *_table(header, rows), "",
            "CC:", "", *_table([h.replace("RMSE", "CC") for h in header], cc), ""]


def _segmentation(joint: dict) -> list[str]:
    seg = joint.get("segmentation") or []
    if not seg:
        return []
    rows = [[c["trial"], c["method"], str(c["detected"]), str(c["rejected"]), str(c["kept"]),
             fmt(c["median_duration_s"]), ", ".join(f"{d:.2f}" for d in c["rejected_durations_s"]) or "–"]
            for c in seg]
    total = [sum(c[k] for c in seg) for k in ("detected", "rejected", "kept")]
    rows.append(["**All**", "", *(str(x) for x in total), "", ""])
    return ["### Movement cycles (each time-normalised to 100 frames)", "",
            *_table(["Trial", "Boundaries", "Detected", "Dropped (outlier duration)", "Kept",
                     "Median duration (s)", "Dropped durations (s)"], rows), ""]


def _verdict(joint: dict, outputs: list[str]) -> list[str]:
    """Plain sentences: where the PI-CNN is not ahead under the paper's protocol, say so."""
    paper = joint["summary"].get("paper")
    if not paper or REFERENCE not in paper["table"]:
        return []
    ref = paper["table"][REFERENCE]
    behind = []
    for o in outputs:
        better = [label(m) for m in paper["methods"] if m != REFERENCE
                  and paper["table"][m][o]["rmse"]["mean"] <= ref[o]["rmse"]["mean"]]
        if better:
            behind.append(f"{output_symbol(o)} (lower or equal mean RMSE: {', '.join(better)})")
    if not behind:
        return ["Under the paper's protocol the PI-CNN has the lowest mean RMSE of every method on every "
                "output; the ANOVA rows above say which differences are significant.", ""]
    return [f"Under the paper's protocol the PI-CNN is **not** ahead on {'; '.join(behind)}.", ""]


def paper_sections(joint: dict, cfg: dict) -> list[str]:
    """The paper-protocol part of one joint's report (empty when the paper's protocols did not run)."""
    if not any(p in joint["summary"] for p in ("paper", "sessions")):
        return []
    outputs = joint["outputs"]
    time_split = "intra" in joint["summary"] and cfg.get("held_out") == "end"
    lines = ["### The paper's protocol", "",
             "Every trial cut into movement cycles (knee: swing peak to swing peak, or heel strike to heel "
             "strike where the recording has the events; wrist, elbow: flexion maximum to flexion maximum), "
             "each resampled to 100 frames; inputs = [frame's phase in its cycle (0–1), envelopes]; a "
             "subject's cycles of all trials and sessions fused and split "
             f"{round(100 * cfg['train_fraction'])}/{round(100 * (1 - cfg['train_fraction']))} at random "
             f"(seed {cfg['seed']}); inter-session: "
             "trained on the first session's cycles, tested on the second's. PI-CNN and CNN with the paper's "
             "hyper-parameters (SGD, momentum 0.9, learning rate 0.01, 1200 iterations, dropout 0.3), each "
             + (f"iteration a batch of {cfg['cycle_batch']} cycles, a dropout mask per cycle."
                if cfg.get("cycle_batch", 1) > 1 else "iteration one cycle.")
             + (f" The PI-CNN's physics residual is averaged by a zero-phase Hann window of "
                f"{cfg['physics_smooth']} frames before it enters the loss (ours, not the paper's: the "
                "equation of motion judged in the band a per-frame network resolves)."
                if cfg.get("physics_smooth", 1) > 1 else "")
             + (" The time split beside it: the last 20 % of every trial held out, the time input the "
                "elapsed time." if time_split else " This report holds no time split to set beside it."), ""]
    lines += _segmentation(joint)
    lines += _table1(joint, outputs, time_split)
    lines += _table2(joint, "paper", "Table II — methods compared, paper protocol (80/20 of cycles)")
    lines += _verdict(joint, outputs)
    if time_split:
        lines += _side_by_side(joint, outputs)
    lines += _table2(joint, "sessions", "Table II (b) — methods compared, paper protocol across sessions")
    lines += [TRUST, ""]
    return lines


