"""The MVC accuracy measurement: one real scripted session, and the summary arithmetic."""

from __future__ import annotations

import pytest

from myoedge.calibrate.mvc_accuracy import main, session_errors, summarise


def test_one_scripted_session_against_both_truths():
    s = session_errors("knee", 1, 0, hold_s=5.0, repetitions=3)
    assert s["muscles"] == ["BFSH", "RF"] and s["lost_frames"] == 0
    assert all(abs(e) < 0.03 for e in s["device"])
    # the ideal band passes 0.9 % more power than the device's filters, so it reads lower against it
    for device, ideal in zip(s["device"], s["ideal_band"], strict=True):
        assert ideal == pytest.approx((1 + device) * (1 - 0.0089) - 1, abs=0.001)


def test_summary_counts_channels_within_the_tolerance():
    r = summarise([0.01, -0.03, 0.019, -0.001])
    assert r["channels"] == 4 and r["within"] == 3 and r["worst"] == pytest.approx(0.03)
    assert r["mean"] == pytest.approx(-0.0005)


def test_bad_arguments_exit_with_usage():
    with pytest.raises(SystemExit) as e:
        main(["--hold", "x"])
    assert e.value.code == 2
