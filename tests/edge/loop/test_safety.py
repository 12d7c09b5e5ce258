"""Validity flags, each raised by its cause and cleared when the cause left the window; torque clamping."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from loop_parts import WINDOW, emg, run_pipeline, setup_parts, stream

from myoedge.edge.loop.estimate import INVALID, Flags
from myoedge.edge.loop.safety import PhysiologicalRange, SafetyConfig, SafetyMonitor
from myoedge.edge.model.bundle_meta import RangeMeta
from myoedge.ground.errors import InputError


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return setup_parts(tmp_path_factory.mktemp("safety"))


def flagged(estimates, flag):
    return [e.index for e in estimates if flag in e.flags]


def test_saturation_is_flagged_for_one_window_with_its_channel(parts):
    _, _, info = parts
    counts = emg(0.5)
    counts[300:303, 2] = 2**23 - 1  # input samples 300..302: model samples 30 (ends at 309) onwards
    _, got = run_pipeline(parts, stream(counts, info))
    assert flagged(got, Flags.SATURATED) == list(range(30, 30 + WINDOW))
    assert {e.bad_channels for e in got if Flags.SATURATED in e.flags} == {1 << 2}
    assert all(not e.valid for e in got[30:30 + WINDOW]) and Flags.SATURATED not in got[30 + WINDOW].flags


def test_negative_full_scale_counts_too(parts):
    _, _, info = parts
    counts = emg(0.3)
    counts[150, 4] = -(2**23)
    _, got = run_pipeline(parts, stream(counts, info))
    assert flagged(got, Flags.SATURATED)[0] == 15 and got[15].bad_channels == 1 << 4


def test_a_flat_channel_is_an_electrode_off(parts):
    _, _, info = parts
    counts = emg(0.6)
    counts[200:, 1] = 17  # lead off from input sample 200; flat_ms = 100 ms = 100 samples at 1 kHz
    _, got = run_pipeline(parts, stream(counts, info))
    # samples 201.. repeat sample 200; the 100th repeat (sample 300) is in model sample 30 (300..309)
    assert flagged(got, Flags.ELECTRODE_OFF) == list(range(30, 60))
    assert all(e.bad_channels == 1 << 1 for e in got[30:])


def test_slow_drift_within_the_span_is_flat_but_noise_is_not(parts):
    _, _, info = parts
    counts = emg(0.5)
    counts[:, 3] = np.arange(len(counts)) % 3 - 1  # wobbles by 2 counts: nothing recorded
    _, got = run_pipeline(parts, stream(counts, info))
    assert got[-1].bad_channels == 1 << 3
    _, clean = run_pipeline(parts, stream(emg(0.5), info))
    assert not flagged(clean, Flags.ELECTRODE_OFF)


def test_lost_frames_are_flagged_for_one_window(parts):
    _, _, info = parts
    _, got = run_pipeline(parts, stream(emg(0.6), info, skip=(150, 151)))  # frames of samples 300..303
    lost = flagged(got, Flags.LOST_FRAMES)
    assert lost == list(range(lost[0], lost[0] + WINDOW)) and 29 <= lost[0] <= 30
    assert len(got) == 59  # 4 samples fewer: one model-rate sample fewer


def test_out_of_physiological_range(parts):
    bundle, profile, info = parts
    meta = dataclasses.replace(bundle.meta, physiological_range=RangeMeta(theta_rad=(-1e-6, 1e-6),
                                                                          forces_n=((0, 2000),) * 5))
    narrow = (dataclasses.replace(bundle, meta=meta), profile, info)
    _, got = run_pipeline(narrow, stream(emg(0.2), info))
    assert all(Flags.OUT_OF_RANGE in e.flags for e in got if abs(e.theta_rad) > 1e-6)
    assert any(Flags.OUT_OF_RANGE in e.flags for e in got)


def test_range_check_unit():
    rng = PhysiologicalRange((-1.0, 1.0), ((0.0, 100.0), (0.0, 50.0)))
    assert rng.contains(0.5, (10.0, 20.0))
    assert not rng.contains(1.5, (10.0, 20.0))
    assert not rng.contains(0.0, (10.0, 60.0))
    assert not rng.contains(math.nan, (10.0, 20.0)) and not rng.contains(0.0, (math.nan, 1.0))


def test_torque_is_clamped_and_the_estimate_says_what_was_asked(parts):
    _, _, info = parts
    limit = 1e-3
    _, got = run_pipeline(parts, stream(emg(0.3), info), safety=SafetyConfig.symmetric(limit))
    clamped = [e for e in got if e.clamped]
    assert clamped, "the test signal should ask for more than 1 mN*m"
    for e in got:
        assert -limit <= e.torque_nm <= limit
        if e.clamped:
            assert abs(e.torque_requested_nm) > limit
            assert e.torque_nm == math.copysign(limit, e.torque_requested_nm)
            assert "torque clamped from" in e.describe()
        else:
            assert e.torque_nm == e.torque_requested_nm
    assert not (Flags.TORQUE_CLAMPED & INVALID)  # clamped output is still a valid estimate


def test_clamp_unit_and_non_finite_torque():
    monitor = SafetyMonitor(SafetyConfig(torque_limits_nm=(-2.0, 5.0)), n_channels=2, sample_bits=16,
                            fs_hz=1000.0, hold=4,
                            physiological_range=PhysiologicalRange((-1, 1), ((0, 1),) * 2))
    assert monitor.clamp(3.0) == (3.0, False)
    assert monitor.clamp(7.5) == (5.0, True) and monitor.clamp(-9.0) == (-2.0, True)
    assert monitor.clamp(math.nan) == (0.0, True) and monitor.clamp(math.inf) == (0.0, True)
    unlimited = SafetyMonitor(SafetyConfig(), n_channels=2, sample_bits=16, fs_hz=1000.0, hold=4,
                              physiological_range=PhysiologicalRange((-1, 1), ((0, 1),) * 2))
    assert unlimited.clamp(1e6) == (1e6, False)


def test_sixteen_bit_full_scale_and_margin():
    rng = PhysiologicalRange((-1, 1), ((0, 1),))
    monitor = SafetyMonitor(SafetyConfig(saturation_margin_counts=10), n_channels=1, sample_bits=16,
                            fs_hz=1000.0, hold=2, physiological_range=rng)
    monitor.scan(np.array([[32757]], dtype=np.int32))
    assert monitor.flags(0.0, (0.5,)) == (Flags.SATURATED, 1)
    assert monitor.flags(0.0, (0.5,)) == (Flags.SATURATED, 1)
    assert monitor.flags(0.0, (0.5,)) == (Flags(0), 0)
    monitor.scan(np.array([[32756]], dtype=np.int32))
    assert monitor.flags(0.0, (0.5,)) == (Flags(0), 0)


@pytest.mark.parametrize("kwargs", [{"watchdog_ms": 0}, {"flat_ms": -1}, {"flat_span_counts": 1.5},
                                    {"torque_limits_nm": (3, 1)}, {"torque_limits_nm": (0, math.inf)}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(InputError):
        SafetyConfig(**kwargs)


def test_the_loops_int_path_equals_flags():
    import numpy as np

    from myoedge.edge.loop.safety import PhysiologicalRange, SafetyConfig, SafetyMonitor

    rng = PhysiologicalRange((-1.0, 1.0), ((0.0, 10.0), (0.0, 5.0)))
    cases = [(0.0, (1.0, 1.0)), (2.0, (1.0, 1.0)), (0.0, (11.0, 1.0)), (0.0, (1.0, -0.1)),
             (float("nan"), (1.0, 1.0)), (0.0, (1.0, float("nan"))), (1.0, (10.0, 5.0))]
    for theta, forces in cases:
        a = SafetyMonitor(SafetyConfig(), n_channels=2, sample_bits=16, fs_hz=1000.0, hold=3,
                          physiological_range=rng)
        b = SafetyMonitor(SafetyConfig(), n_channels=2, sample_bits=16, fs_hz=1000.0, hold=3,
                          physiological_range=rng)
        for m in (a, b):
            m.scan(np.full((4, 2), 32767, dtype=np.int32))
            m.note_lost(1)
        flags, bad = a.flags(theta, forces)
        bits, bad_b = b.hold_bits()
        if b.out_of_range(theta, np.array(forces, dtype=np.float32)):
            bits |= int(Flags.OUT_OF_RANGE)
        assert (int(flags), bad) == (bits, bad_b) and bad == 3
