import math

import numpy as np
import pytest
import torch

from myoedge.body import dynamics, generic_model
from myoedge.body.muscle import MuscleSet, force_velocity


@pytest.mark.parametrize("joint", ["knee", "wrist", "elbow"])
def test_moment_arm_signs_follow_action(joint):
    model = generic_model(joint)
    th = np.linspace(model.segment.range_lo, model.segment.range_hi, 50)
    r = model.moment_arms(th)
    for i, m in enumerate(model.muscles):
        assert np.all(np.sign(r[:, i]) == m.sign), m.name
        assert np.all(np.abs(r[:, i]) < 0.08)  # centimetres, not metres


def test_moment_arms_horner_matches_polyval():
    coeffs = np.array([[0.01, 0.02, -0.003], [-0.04, 0.0, 0.01]])
    th = np.linspace(-1, 2, 11)
    expected = np.stack([np.polynomial.polynomial.polyval(th, c) for c in coeffs], axis=-1)
    np.testing.assert_allclose(dynamics.moment_arms(th, coeffs), expected, rtol=1e-12)


def test_equation_of_motion_matches_between_numpy_and_torch():
    model = generic_model("knee")
    rng = np.random.default_rng(1)
    th, om, acc = rng.uniform(0, 1.5, 20), rng.normal(0, 2, 20), rng.normal(0, 20, 20)
    forces = rng.uniform(0, 500, (20, 2))
    res_np = model.residual(th, om, acc, forces)
    t = [torch.tensor(x, requires_grad=True) for x in (th, om, acc, forces)]
    res_t = dynamics.residual(*t, seg=model.segment, coeffs=torch.tensor(model.coeffs))
    np.testing.assert_allclose(res_t.detach().numpy(), res_np, rtol=1e-12)
    res_t.sum().backward()  # differentiable end to end for the physics loss
    np.testing.assert_allclose(t[3].grad.numpy(), -model.moment_arms(th), rtol=1e-12)


def test_gravity_holds_a_static_pose():
    model = generic_model("elbow")
    seg = model.segment
    th = np.array([math.pi / 2])
    expected = seg.mass * dynamics.GRAVITY * seg.com  # forearm horizontal: full lever arm
    g = dynamics.gravity_torque(th, mass=seg.mass, com=seg.com, gravity_offset=seg.gravity_offset)
    assert g[0] == pytest.approx(expected)


def test_forward_and_inverse_dynamics_are_consistent():
    model = generic_model("wrist")
    th, om, tau = np.array([0.3, -0.5]), np.array([1.0, -2.0]), np.array([0.2, -0.1])
    acc = dynamics.acceleration(th, om, tau, seg=model.segment)
    np.testing.assert_allclose(model.required_torque(th, om, acc), tau, atol=1e-12)


def test_passive_torque_resists_beyond_the_range():
    seg = generic_model("knee").segment
    kw = dict(stiffness=0.0, rest_angle=0.0, limit_torque=seg.limit_torque, limit_rate=seg.limit_rate,
              range_lo=seg.range_lo, range_hi=seg.range_hi)
    inside = dynamics.passive_torque(np.array([0.5 * (seg.range_lo + seg.range_hi)]), **kw)
    beyond = dynamics.passive_torque(np.array([seg.range_hi + 0.2]), **kw)
    assert abs(inside[0]) < 1e-3 and beyond[0] > 10 * seg.limit_torque


def test_hill_force_is_monotone_in_activation_and_velocity():
    model = generic_model("elbow")
    ms = MuscleSet(model)
    th, om = np.full(3, 1.2), np.zeros(3)
    f_low = ms.forces(np.full(6, 0.2), th, om)
    f_high = ms.forces(np.full(6, 0.8), th, om)
    assert np.all(f_high > f_low)
    v = np.linspace(-1.2, 1.0, 200)
    fv = force_velocity(v)
    assert np.all(np.diff(fv) >= 0) and fv[0] == 0.0 and fv[-1] < 1.8
    assert force_velocity(np.array([0.0]))[0] == pytest.approx(1.0)


def test_isometric_force_at_optimal_angle_is_max_force_times_cos_pennation():
    model = generic_model("knee")
    ms = MuscleSet(model)
    for i, m in enumerate(model.muscles):
        f = ms.forces(np.ones(2), np.array([m.optimal_angle]), np.zeros(1))[0, i]
        passive = ms.forces(np.zeros(2), np.array([m.optimal_angle]), np.zeros(1))[0, i]
        assert f - passive == pytest.approx(m.max_force * math.cos(m.pennation), rel=1e-9)
