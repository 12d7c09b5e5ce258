"""Moment arms fitted to recordings: the observer's cubics and the reconstruction's geometry."""

from types import SimpleNamespace

import numpy as np
import pytest

from myoedge.body.catalog import generic_model
from myoedge.body.muscle import MuscleSet
from myoedge.ground.errors import InputError
from myoedge.train.moment_arms import arm_polynomials, recorded_geometry


def _seq(theta, arms, muscles, *, subject="s01", model=None):
    return SimpleNamespace(theta=theta, moment_arms=arms, muscles=tuple(muscles), subject=subject,
                           name=f"{subject}/1_t", model=model, model_moment_arms=model is not None)


def _recorded(generic, theta, scale):
    """Moment arms of a subject whose arms are the generic ones times ``scale`` (per muscle)."""
    return generic.moment_arms(theta) * scale


def test_recorded_moment_arms_replace_the_generic_ones_and_the_lengths_follow_them():
    generic = generic_model("elbow6")
    scale = np.array([1.2, 0.9, 1.1, 0.8, 1.0, 1.3])
    theta = [np.linspace(0.3, 2.0, 400), np.linspace(1.8, 0.5, 300)]
    seqs = [_seq(t, _recorded(generic, t, scale), generic.muscle_names) for t in theta]
    model = recorded_geometry(seqs, generic)
    grid = np.linspace(0.3, 2.0, 50)
    np.testing.assert_allclose(model.moment_arms(grid), _recorded(generic, grid, scale), atol=2e-4)
    assert (model.segment.range_lo, model.segment.range_hi) == pytest.approx((0.3, 2.0))
    # l̇_MT = −r θ̇, with the generic anchor: the optimal length at each muscle's optimal angle
    lengths = MuscleSet(model).mt_length(grid)
    slope = np.gradient(lengths, grid, axis=0)
    np.testing.assert_allclose(slope[1:-1], -model.moment_arms(grid)[1:-1], atol=2e-5)
    assert [m.max_force for m in model.muscles] == [m.max_force for m in generic.muscles]


def test_recorded_geometry_keeps_the_recordings_channel_order():
    generic = generic_model("elbow6")
    order = list(reversed(generic.muscle_names))
    theta = np.linspace(0.3, 2.0, 200)
    arms = generic.moment_arms(theta)[:, ::-1]
    model = recorded_geometry([_seq(theta, arms, order)], generic)
    assert model.muscle_names == tuple(order)
    np.testing.assert_allclose(model.moment_arms(theta), arms, atol=2e-4)


def test_recorded_geometry_refuses_arms_that_change_sign_and_foreign_muscles():
    generic = generic_model("elbow6")
    theta = np.linspace(0.3, 2.0, 200)
    arms = generic.moment_arms(theta)
    arms[:, 0] = np.linspace(-0.01, 0.03, 200)  # a flexor whose arm crosses zero
    with pytest.raises(InputError, match="subject s01: the recorded moment arms"):
        recorded_geometry([_seq(theta, arms, generic.muscle_names)], generic)
    with pytest.raises(InputError, match="not the elbow6 model"):
        recorded_geometry([_seq(theta, arms[:, :2], ("A", "B"))], generic)


def test_arm_polynomials_take_recorded_arms_first_then_the_model_and_name_a_sequence_with_neither():
    generic = generic_model("elbow6")
    theta = np.linspace(0.3, 2.0, 200)
    recorded = _seq(theta, generic.moment_arms(theta) * 1.5, generic.muscle_names, model=generic)
    modelled = _seq(theta, None, generic.muscle_names, model=generic)
    fit = arm_polynomials([recorded])
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(theta, fit.T).T,
                               generic.moment_arms(theta) * 1.5, atol=3e-4)
    fit = arm_polynomials([modelled])
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(theta, fit.T).T,
                               generic.moment_arms(theta), atol=2e-4)
    with pytest.raises(InputError, match="s01/1_t: no moment arms.*try this"):
        arm_polynomials([_seq(theta, None, generic.muscle_names)], hint="; try this")
