"""ANOVA and Tukey HSD against the worked examples in SciPy's documentation, and the summaries."""

import math

import pytest

from myoedge.ground.errors import InputError
from myoedge.train import stats

# scipy.stats.tukey_hsd documentation: time to relief of three headache medicines (minutes)
HEADACHE = {"0": [24.5, 23.5, 26.4, 27.1, 29.9], "1": [28.4, 34.2, 29.5, 32.2, 30.1],
            "2": [26.1, 28.3, 24.3, 26.2, 27.8]}
# scipy.stats.f_oneway documentation: mussel shell measurements (McDonald et al. 1991)
MUSSELS = {
    "tillamook": [0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836],
    "newport": [0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725],
    "petersburg": [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105],
    "magadan": [0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689],
    "tvarminne": [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045],
}


def test_anova_matches_the_documented_example():
    c = stats.compare_groups(MUSSELS)
    assert c.f == pytest.approx(7.1210194716424473, rel=1e-9)
    assert c.p == pytest.approx(0.00028122423145345439, rel=1e-6)
    assert c.n == (10, 8, 7, 8, 6)


def test_tukey_matches_the_documented_example():
    c = stats.compare_groups(HEADACHE)
    p01, p02, p12 = c.pair("0", "1"), c.pair("0", "2"), c.pair("1", "2")
    assert (p01.diff, p02.diff, p12.diff) == pytest.approx((-4.6, -0.26, 4.34))
    assert (round(p01.p, 3), round(p02.p, 3), round(p12.p, 3)) == (0.014, 0.980, 0.020)
    assert (round(p01.ci_low, 3), round(p01.ci_high, 3)) == (-8.249, -0.951)
    assert (p01.significant, p02.significant, p12.significant) == (True, False, True)
    flipped = c.pair("1", "0")
    assert flipped.diff == pytest.approx(4.6)
    assert (flipped.ci_low, flipped.ci_high) == pytest.approx((0.951, 8.249), abs=1e-3)
    assert stats.compare_groups(HEADACHE, alpha=0.01).pair("0", "1").significant is False


def test_degenerate_inputs():
    few = stats.compare_groups({"a": [1.0], "b": [2.0, 3.0]})
    assert math.isnan(few.f) and few.pairs == () and "at least 2" in few.note
    flat = stats.compare_groups({"a": [1.0, 1.0], "b": [2.0, 2.0]})
    assert math.isnan(flat.p) and "variance" in flat.note
    assert stats.compare_groups({"a": [1.0, float("nan"), 2.0], "b": [3.0, 4.0]}).n == (2, 2)
    with pytest.raises(InputError, match="two groups"):
        stats.compare_groups({"a": [1.0, 2.0]})


def test_marks_and_describe():
    assert [stats.significance_mark(p) for p in (0.0005, 0.005, 0.03, 0.2, math.nan, None)] == \
        ["***", "**", "*", "", "", ""]
    assert stats.describe([1.0, 2.0, 3.0]) == {"mean": 2.0, "sd": 1.0, "n": 3}
    assert stats.describe([5.0]) == {"mean": 5.0, "sd": 0.0, "n": 1}
    assert stats.describe([])["n"] == 0


def _run(protocol, subject, method, rmse, *, fraction=1.0):
    outs = {o: {"rmse": rmse, "nrmse": rmse / 10.0, "cc": 0.9} for o in ("theta", "F_A")}
    return {"protocol": protocol, "subject": subject, "fold": "f", "fraction": fraction, "method": method,
            "outputs": outs, "residual": {"pred": rmse / 2.0, "truth": 0.01, "moment": 5.0}}


def test_summaries_over_folds():
    runs = [_run("intra", s, m, base + i) for i, s in enumerate(("s1", "s2", "s3"))
            for m, base in (("pi-cnn", 1.0), ("elm", 5.0))]
    runs += [_run("size", s, "pi-cnn", 3.0, fraction=0.5) for s in ("s1", "s2")]
    summ = stats.summarise(runs, protocol="intra", methods=["pi-cnn", "cnn", "elm"], outputs=["theta", "F_A"])
    assert summ["methods"] == ["pi-cnn", "elm"]  # cnn has no runs
    assert summ["table"]["elm"]["theta"]["rmse"] == {"mean": 6.0, "sd": 1.0, "n": 3}
    assert summ["residual"]["pi-cnn"]["mean"] == pytest.approx(1.0)
    assert summ["residual_relative"]["pi-cnn"]["mean"] == pytest.approx(0.2)
    assert summ["anova"]["theta"]["pairs"][0]["significant"] is True
    assert sum(summ["anova_nrmse_all"]["n"]) == 12
    per = stats.per_subject(runs, protocol="intra", method="elm", outputs=["theta", "F_A"])
    assert per["s2"]["theta"]["rmse"] == 6.0
    curve = stats.size_curve(runs, methods=["pi-cnn"], outputs=["theta", "F_A"])
    assert curve["pi-cnn"][0.5] == {"mean": pytest.approx(0.3), "sd": 0.0, "n": 2}
