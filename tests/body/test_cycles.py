"""Movement cycles: boundaries (swing peaks, flexion maxima with hysteresis, heel-strike events), time
normalisation to 100 frames, outlier durations dropped and counted, and a clear error without a cycle."""

import numpy as np
import pytest

from myoedge.body.cycles import flexion_peaks, outlier_durations, segment
from myoedge.ground.errors import InputError

FS = 100.0


def gait_trial(periods, *, fs: float = FS, weak: int | None = None):
    """A knee-like trial whose swing peaks (phase 0.7 of each stride) bound ``len(periods)`` cycles.

    It starts 0.5 stride before the first swing peak and ends 0.5 stride after the last, so exactly
    ``len(periods)`` complete cycles lie between the first and the last peak. Returns t, θ (deg), two
    force channels and the true peak times. ``weak`` = index of a swing peak lowered below the
    hysteresis band (a missed boundary: two cycles merge into one of double length).
    """
    periods = np.asarray(periods, dtype=float)
    knots = np.concatenate([[0.0], np.cumsum(np.r_[0.5 * periods[0], periods, 0.5 * periods[-1]])])
    phase_knots = np.concatenate([[0.2], 0.7 + np.arange(len(periods) + 1), [len(periods) + 1.2]])
    t = np.arange(0.0, knots[-1], 1.0 / fs)
    phase = np.interp(t, knots, phase_knots)  # piecewise-linear phase: each stride its own period
    peaks = knots[1:-1]

    def bump(centre, width):
        d = (phase - centre + 0.5) % 1.0 - 0.5
        return np.exp(-0.5 * (d / width) ** 2)

    swing = 55.0 * np.ones_like(t)
    if weak is not None:
        near = np.abs(t - peaks[weak]) < 0.3 * periods.min()
        swing[near] = 15.0
    theta = 5.0 + 12.0 * bump(0.15, 0.06) + swing * bump(0.7, 0.16)
    forces = np.column_stack([300 + 200 * np.sin(2 * np.pi * phase), 150 + 100 * np.cos(2 * np.pi * phase)])
    return t, theta, forces, peaks


@pytest.mark.parametrize("k", [1, 4, 9])
def test_k_known_cycles_become_k_cycles_of_100_frames(k):
    periods = np.linspace(1.1, 1.5, k)
    t, theta, forces, peaks = gait_trial(periods)
    cyc = segment(t, theta, {"forces": forces, "torque": forces.sum(1)}, joint="knee", source="knee01/s1")
    assert cyc.method == "swing peak"
    assert (cyc.detected, cyc.rejected, cyc.n) == (k, 0, k)
    assert cyc.channels["theta"].shape == (k, 100)
    assert cyc.channels["forces"].shape == (k, 100, 2) and cyc.channels["torque"].shape == (k, 100)
    np.testing.assert_allclose(cyc.starts, peaks[:-1], atol=1.0 / FS)
    np.testing.assert_allclose(cyc.durations, periods, atol=2.0 / FS)


def test_time_normalisation_keeps_each_cycles_extrema_within_1_percent():
    t, theta, forces, peaks = gait_trial([1.2, 1.45, 1.7, 1.3])
    cyc = segment(t, theta, {"forces": forces}, joint="knee", source="knee01/s1")
    for i, (a, d) in enumerate(zip(cyc.starts, cyc.durations, strict=True)):
        inside = (t >= a - 1e-9) & (t <= a + d + 1e-9)
        for name, raw in (("theta", theta), ("forces", forces)):
            norm = cyc.channels[name][i]
            span = np.ptp(raw[inside], axis=0)
            assert np.all(np.abs(norm.max(0) - raw[inside].max(0)) <= 0.01 * span)
            assert np.all(np.abs(norm.min(0) - raw[inside].min(0)) <= 0.01 * span)


def test_flexion_cycles_with_hysteresis_ignore_a_tremor_at_the_peak():
    t = np.arange(0, 10.25, 1 / FS)
    theta = 40 * np.sin(2 * np.pi * t / 2.0) + 3 * np.sin(2 * np.pi * 9 * t)  # 9 Hz tremor on a 2 s cycle
    peaks = flexion_peaks(theta)
    assert len(peaks) == 5  # one per excursion, not one per tremor wiggle
    cyc = segment(t, theta, {}, joint="wrist", source="wrist01/s1_slow")
    assert cyc.method == "flexion peak" and cyc.n == 4
    np.testing.assert_allclose(cyc.durations, 2.0, atol=0.08)


def test_heel_strike_events_bound_knee_cycles_when_present():
    t, theta, forces, peaks = gait_trial([1.2, 1.3, 1.25])
    strikes = peaks - 0.55  # a heel strike 0.55 s before each swing peak
    cyc = segment(t, theta, {"forces": forces}, joint="knee", source="knee01/s1",
                  events={"Right Foot Strike": strikes, "Left Foot Strike": strikes + 0.6})
    assert cyc.method == "event: Right Foot Strike"
    np.testing.assert_allclose(cyc.starts, strikes[:-1])
    np.testing.assert_allclose(cyc.durations, np.diff(strikes))


def test_a_heel_strike_listed_twice_is_one_boundary():
    """recording.json and a C3D may both list the same event: no cycle of zero duration."""
    t, theta, forces, peaks = gait_trial([1.2, 1.3])
    strikes = peaks - 0.55
    cyc = segment(t, theta, {"forces": forces}, joint="knee", source="knee01/s1",
                  events={"Right Foot Strike": np.concatenate([strikes, strikes[:1]])})
    np.testing.assert_allclose(cyc.durations, np.diff(strikes))


def test_outlier_durations_are_dropped_and_counted():
    periods = [1.3] * 8
    t, theta, forces, _ = gait_trial(periods, weak=4)  # a missed swing peak: two cycles merge into one
    cyc = segment(t, theta, {"forces": forces}, joint="knee", source="knee01/s1")
    assert (cyc.detected, cyc.rejected, cyc.n) == (7, 1, 6)
    assert cyc.rejected_durations == pytest.approx((2.6,), abs=0.03)
    counts = cyc.counts()
    assert (counts["detected"], counts["rejected"], counts["kept"]) == (7, 1, 6)
    assert counts["median_duration_s"] == pytest.approx(1.3, abs=0.02)
    assert outlier_durations([1.0, 1.05, 0.97, 1.02, 2.1, 0.5]).tolist() == [False] * 4 + [True, True]
    assert not outlier_durations([1.0, 3.0]).any()  # too few cycles to call one an outlier


@pytest.mark.parametrize("theta", [np.full(500, 0.3), np.linspace(0.0, 1.0, 500),
                                   np.sin(np.linspace(0, 1.5 * np.pi, 500))])
def test_no_detectable_cycle_is_a_clear_error_naming_the_file(theta):
    t = np.arange(len(theta)) / FS
    with pytest.raises(InputError, match=r"data/knee01/s1_slow: no complete movement cycle found"):
        segment(t, theta, {}, joint="knee", source="data/knee01/s1_slow")
