"""The hard synthetic family and the elbow6 joint with loads."""

import math

import numpy as np
import pytest

from myoedge.body import dynamics
from myoedge.body.catalog import loaded_segment
from myoedge.body.family import JOINT_RANGES
from myoedge.body.subjects import make_subject, simulate_session
from myoedge.ground.errors import InputError


def _residual(subject, rec):
    seg = loaded_segment(subject.model.segment, rec.meta.extra)
    res = dynamics.residual(rec.theta, rec.theta_dot, rec.theta_ddot, rec.forces, seg=seg,
                            coeffs=subject.model.coeffs)
    return np.sqrt(np.mean(res**2)) / np.sqrt(np.mean(rec.torque**2))


@pytest.mark.parametrize("joint", ["knee", "wrist", "elbow6"])
def test_hard_trials_obey_the_equation_of_motion_and_stay_in_range(joint):
    subject = make_subject(joint, 1, family="hard")
    loads = (0.0, 4.0) if joint == "elbow6" else (0.0,)
    recs = simulate_session(subject, duration_s=2.0, loads=loads)
    assert len(recs) == 3 * len(loads)
    seg = subject.model.segment
    for rec in recs:
        assert _residual(subject, rec) < 1e-6
        assert seg.range_lo - 0.2 < rec.theta.min() and rec.theta.max() < seg.range_hi + 0.2
        assert np.all(rec.forces >= 0) and rec.meta.extra["family"] == "hard"


def test_hard_family_is_deterministic_and_draws_inside_its_ranges():
    a = simulate_session(make_subject("wrist", 2, seed=4, family="hard"), duration_s=1.0)[0]
    b = simulate_session(make_subject("wrist", 2, seed=4, family="hard"), duration_s=1.0)[0]
    np.testing.assert_array_equal(a.emg, b.emg)
    np.testing.assert_array_equal(a.theta, b.theta)
    for joint in ("knee", "wrist", "elbow6"):
        r = JOINT_RANGES[joint]
        for i in range(1, 6):
            s = make_subject(joint, i, family="hard")
            assert r.damping[0] <= s.model.segment.damping <= r.damping[1]
            assert r.stiffness[0] <= s.model.segment.stiffness <= r.stiffness[1]
            assert np.all(s.traits.drift_amplitude <= 0.3)


def test_easy_family_is_unchanged():
    expected = {"knee": (0.5706784165717944, -8.270805275443023e-05),
                "wrist": (0.6076565559136955, -6.0392537556120025e-06),
                "elbow": (1.7090872823508558, 1.148347349803166e-05)}
    for joint, (theta, emg) in expected.items():
        rec = simulate_session(make_subject(joint, 1, seed=5), duration_s=1.0)[0]
        assert rec.theta[100] == pytest.approx(theta, rel=1e-12)
        assert rec.emg[1000, 0] == pytest.approx(emg, rel=1e-9)


def test_elbow6_load_enters_gravity_and_inertia():
    subject = make_subject("elbow6", 1, family="hard")
    recs = simulate_session(subject, duration_s=1.0, loads=(0.0, 4.0))
    light, heavy = recs[0], recs[1]
    assert light.meta.extra["load_kg"] == 0.0 and heavy.meta.extra["load_kg"] == 4.0
    seg0, seg4 = (loaded_segment(subject.model.segment, r.meta.extra) for r in (light, heavy))
    assert seg4.mass == pytest.approx(seg0.mass + 4.0) and seg4.inertia > seg0.inertia + 4.0 * 0.25**2
    flexors = [i for i, m in enumerate(subject.model.muscles) if m.sign > 0]
    assert heavy.forces[:, flexors].mean() > light.forces[:, flexors].mean()
    assert math.isclose(heavy.meta.extra["truth"]["segment"]["mass"], seg4.mass)


def test_bad_loads_are_refused():
    with pytest.raises(InputError, match="elbow6"):
        simulate_session(make_subject("wrist", 1, family="hard"), duration_s=1.0, loads=(0.0, 2.0))
    with pytest.raises(InputError, match="hard family"):
        simulate_session(make_subject("wrist", 1), duration_s=1.0, loads=(2.0,))
    with pytest.raises(InputError, match="family"):
        make_subject("wrist", 1, family="medium")
