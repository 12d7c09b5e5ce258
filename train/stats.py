"""Statistics of an evaluation: descriptive tables over folds, one-way ANOVA and Tukey's HSD across methods.

The unit of observation is one *fold*: one subject's intra-session split, or one held-out trial of a
subject in the leave-one-trial-out protocol. For each output, the RMSE of each method over the folds
forms that method's group; ``scipy.stats.f_oneway`` tests whether any method differs and
``scipy.stats.tukey_hsd`` says which pairs do, with the family-wise error held at ``alpha``. The
observations are not independent across methods (every method sees the same folds), so the test is
conservative for paired differences; with three subjects it has little power, which is why the report
prints the p-values next to the marks rather than only the marks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from myoedge.ground.errors import InputError


@dataclass(frozen=True)
class Pair:
    """Tukey HSD of one pair: ``diff`` = mean(a) − mean(b), its simultaneous confidence interval."""

    a: str
    b: str
    diff: float
    p: float
    ci_low: float
    ci_high: float
    significant: bool


@dataclass(frozen=True)
class Comparison:
    """One-way ANOVA over the groups and the Tukey HSD of every pair (empty when a group has < 2)."""

    groups: tuple[str, ...]
    n: tuple[int, ...]
    means: tuple[float, ...]
    f: float
    p: float
    alpha: float
    pairs: tuple[Pair, ...]
    note: str = ""

    def pair(self, a: str, b: str) -> Pair | None:
        """The comparison of ``a`` with ``b`` in that orientation (diff = mean(a) − mean(b))."""
        for q in self.pairs:
            if (q.a, q.b) == (a, b):
                return q
            if (q.a, q.b) == (b, a):
                return Pair(a, b, -q.diff, q.p, -q.ci_high, -q.ci_low, q.significant)
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groups"], d["n"], d["means"] = list(self.groups), list(self.n), list(self.means)
        d["pairs"] = [asdict(q) for q in self.pairs]
        return d


def compare_groups(samples: Mapping[str, Iterable[float]], *, alpha: float = 0.05) -> Comparison:
    """ANOVA + Tukey HSD of ``{group name: observations}`` (two or more groups, NaNs dropped)."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    names = tuple(samples)
    if len(names) < 2:
        raise InputError(f"comparing methods needs at least two groups, got {list(names)}")
    data = [np.asarray([v for v in samples[k] if v is not None and math.isfinite(v)], dtype=np.float64)
            for k in names]
    n = tuple(len(x) for x in data)
    means = tuple(float(x.mean()) if len(x) else math.nan for x in data)
    if min(n) < 2:
        counts = dict(zip(names, n, strict=True))
        return Comparison(names, n, means, math.nan, math.nan, alpha, (),
                          note=f"no test: every group needs at least 2 observations (have {counts})")
    if all(np.ptp(x) == 0 for x in data):
        return Comparison(names, n, means, math.nan, math.nan, alpha, (),
                          note="no test: no variance within any group")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from scipy import stats  # here, not at import: SciPy's stats package takes ~0.4 s to load

        anova = stats.f_oneway(*data)
        hsd = stats.tukey_hsd(*data)
    ci = hsd.confidence_interval(confidence_level=1.0 - alpha)
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            p = float(hsd.pvalue[i, j])
            pairs.append(Pair(names[i], names[j], float(hsd.statistic[i, j]), p, float(ci.low[i, j]),
                              float(ci.high[i, j]), bool(p < alpha)))
    return Comparison(names, n, means, float(anova.statistic), float(anova.pvalue), alpha, tuple(pairs))


def significance_mark(p: float | None) -> str:
    """``***`` p < 0.001, ``**`` p < 0.01, ``*`` p < 0.05, else empty (also for NaN / None)."""
    if p is None or not math.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def describe(values: Iterable[float]) -> dict:
    """Mean, sample standard deviation (ddof 1; 0 for one value) and count, NaNs dropped."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": math.nan, "sd": math.nan, "n": 0}
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0, "n": int(x.size)}


METRICS = ("rmse", "nrmse", "cc")


def summarise(runs: list[dict], *, protocol: str, methods: list[str], outputs: list[str],
              alpha: float = 0.05) -> dict:
    """Tables for one protocol from fold records (see :mod:`myoedge.train.evaluate`).

    Returns ``{"table": {method: {output: {metric: describe(...)}}}, "residual": {method: describe},
    "residual_relative": (residual ÷ RMS of the true net muscle moment), "residual_truth": describe,
    "anova": {output: Comparison.to_dict()}, "anova_nrmse_all": ...}``: the ANOVA per output is on RMSE;
    ``anova_nrmse_all`` pools every output's normalised RMSE (one observation per fold and output).
    """
    mine = [r for r in runs if r["protocol"] == protocol]
    present = [m for m in methods if any(r["method"] == m for r in mine)]
    table = {m: {o: {k: describe(r["outputs"][o][k] for r in mine if r["method"] == m) for k in METRICS}
                 for o in outputs} for m in present}
    res = {m: [r["residual"] for r in mine if r["method"] == m] for m in present}
    residual = {m: describe(x["pred"] for x in res[m]) for m in present}
    relative = {m: describe(_ratio(x["pred"], x["moment"]) for x in res[m]) for m in present}
    truth = describe(x["truth"] for x in res[present[0]]) if present else describe([])
    out = {"methods": present, "table": table, "residual": residual, "residual_relative": relative,
           "residual_truth": truth,
           "anova": {}, "anova_nrmse_all": None}
    if len(present) >= 2:
        for o in outputs:
            groups = {m: [r["outputs"][o]["rmse"] for r in mine if r["method"] == m] for m in present}
            out["anova"][o] = compare_groups(groups, alpha=alpha).to_dict()
        pooled = {m: [r["outputs"][o]["nrmse"] for r in mine if r["method"] == m for o in outputs]
                  for m in present}
        out["anova_nrmse_all"] = compare_groups(pooled, alpha=alpha).to_dict()
    return out


def _ratio(a, b) -> float:
    return a / b if a is not None and b else math.nan


def per_subject(runs: list[dict], *, protocol: str, method: str, outputs: list[str]) -> dict:
    """``{subject: {output: {metric: mean over that subject's folds}}}`` for one method (Table I)."""
    mine = [r for r in runs if r["protocol"] == protocol and r["method"] == method]
    subjects = sorted({r["subject"] for r in mine})

    def mean(s: str, o: str, k: str) -> float:
        return describe(r["outputs"][o][k] for r in mine if r["subject"] == s)["mean"]

    return {s: {o: {k: mean(s, o, k) for k in METRICS} for o in outputs} for s in subjects}


def size_curve(runs: list[dict], *, methods: list[str], outputs: list[str]) -> dict:
    """``{method: {fraction: describe(nRMSE averaged over outputs, one value per subject)}}``."""
    mine = [r for r in runs if r["protocol"] == "size"]
    curve: dict = {}
    for m in methods:
        fracs = sorted({r["fraction"] for r in mine if r["method"] == m})
        if fracs:
            curve[m] = {f: describe(float(np.mean([r["outputs"][o]["nrmse"] for o in outputs]))
                                    for r in mine if r["method"] == m and r["fraction"] == f) for f in fracs}
    return curve
