"""The equation of motion of a one-degree-of-freedom joint, written once for every caller.

    M θ̈ + C(θ, θ̇) + G(θ) + P(θ) = Σ_n r_n(θ) F_n

θ is the joint angle (rad, positive in flexion), M the moment of inertia of the distal segment about
the joint axis, C the velocity-dependent term, G the gravity moment and P the passive elastic moment of
the structures we do not model as muscles (ligaments, capsule, the muscles left out). For a hinge with
a fixed axis the Coriolis/centrifugal part of C vanishes, so C is the joint's viscous damping b θ̇.
r_n(θ) are the moment arms (m, positive for flexors) and F_n the muscle forces (N).

Every function here is *array-agnostic*: it uses only arithmetic and ``sin``/``exp`` taken from the
namespace of its first array argument (numpy, or torch when handed tensors, without importing torch
here), so the simulator, the calibration fit and the training loss all evaluate the same expression.
Parameters may be Python floats or arrays/tensors broadcastable against θ.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

GRAVITY = 9.80665  # m/s², standard gravity


def namespace(x: Any):
    """The array module of ``x``: torch for tensors (already imported by whoever made them), else numpy."""
    if type(x).__module__.split(".")[0] == "torch":
        return sys.modules["torch"]
    return np


def moment_arms(theta, coeffs):
    """Moment arms r_n(θ) = Σ_k c[n, k] θ^k in metres, shape θ.shape + (n_muscles,).

    ``coeffs`` has shape (n_muscles, degree + 1), lowest power first. Horner's rule, arithmetic only.
    """
    xp = namespace(theta)
    c = coeffs if xp is not np else np.asarray(coeffs, dtype=float)
    th = theta[..., None]
    r = c[:, -1] + 0.0 * th
    for k in range(c.shape[1] - 2, -1, -1):
        r = r * th + c[:, k]
    return r


def muscle_torque(theta, forces, coeffs):
    """Σ_n r_n(θ) F_n (N·m); ``forces`` has shape θ.shape + (n_muscles,)."""
    return (moment_arms(theta, coeffs) * forces).sum(-1)


def gravity_torque(theta, *, mass, com, gravity_offset):
    """G(θ) = m g l_c sin(θ + φ): the moment muscles must supply to hold the segment against gravity."""
    xp = namespace(theta)
    return mass * GRAVITY * com * xp.sin(theta + gravity_offset)


def passive_torque(theta, *, stiffness, rest_angle, limit_torque, limit_rate, range_lo, range_hi):
    """P(θ): linear stiffness about a rest angle plus exponential end-of-range moments.

    The end-of-range terms (Riener & Edrich 1999 style) are ``limit_torque`` at each limit and grow by
    e every 1/``limit_rate`` rad beyond it; they are negligible in mid-range.
    """
    xp = namespace(theta)
    elastic = stiffness * (theta - rest_angle)
    ends = limit_torque * (xp.exp(limit_rate * (theta - range_hi)) - xp.exp(limit_rate * (range_lo - theta)))
    return elastic + ends


def required_torque(theta, theta_dot, theta_ddot, *, seg) -> Any:
    """M θ̈ + C(θ, θ̇) + G(θ) + P(θ): the net muscle moment the motion demands.

    ``seg`` is any object with the attributes of :class:`myoedge.body.model.Segment` (floats, or
    tensors when a caller fits or learns them).
    """
    return (
        seg.inertia * theta_ddot
        + seg.damping * theta_dot
        + gravity_torque(theta, mass=seg.mass, com=seg.com, gravity_offset=seg.gravity_offset)
        + passive_torque(
            theta,
            stiffness=seg.stiffness,
            rest_angle=seg.rest_angle,
            limit_torque=seg.limit_torque,
            limit_rate=seg.limit_rate,
            range_lo=seg.range_lo,
            range_hi=seg.range_hi,
        )
    )


def residual(theta, theta_dot, theta_ddot, forces, *, seg, coeffs):
    """M θ̈ + C + G + P − Σ r_n F_n (N·m): zero when forces and motion obey the equation of motion."""
    return required_torque(theta, theta_dot, theta_ddot, seg=seg) - muscle_torque(theta, forces, coeffs)


def acceleration(theta, theta_dot, torque, *, seg):
    """θ̈ from the equation of motion given the net muscle moment ``torque`` (forward dynamics)."""
    return (torque - required_torque(theta, theta_dot, 0.0 * theta, seg=seg)) / seg.inertia
