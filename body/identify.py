"""Identification of a joint's segment terms from a measured angle and the moment that drove it.

With θ, θ̇, θ̈ and the net joint moment τ known, the equation of motion (:mod:`myoedge.body.dynamics`)
is linear in the segment terms:

    τ − P_ends(θ) = M θ̈ + b θ̇ + G_s sin θ + G_c cos θ + k θ + c

where m g l_c sin(θ + φ) = G_s sin θ + G_c cos θ (G_s = m g l_c cos φ, G_c = m g l_c sin φ), the passive
stiffness is k (θ − θ_rest) = k θ + c with c = −k θ_rest, and P_ends, the end-of-range moments, is known
(or zero) because trials rarely reach the limits. With a known rest angle the constant column is dropped
and c = −k θ_rest is moved to the left-hand side.

:func:`solve_bounded` is the numeric core (bounded linear least squares, optionally pulled toward a
prior), shared by :func:`identify_joint` (train: the observer's equation of motion from the training
recordings) and :mod:`myoedge.calibrate.segment_fit` (a profile re-fit regularised toward the prior).
Bounds: M > 0, b ≥ 0, k ≥ 0; gravity and the constant free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear
from scipy.signal import savgol_filter

from myoedge.body.dynamics import namespace
from myoedge.ground.errors import InputError

TERMS = ("inertia", "damping", "gravity_sin", "gravity_cos", "stiffness", "offset")
MIN_SAMPLES = 20


def regressors(theta, theta_dot, theta_ddot, *, rest_angle: float | None = None) -> np.ndarray:
    """The columns of the linear equation of motion, (n, 5) with a known rest angle, else (n, 6)."""
    cols = [theta_ddot, theta_dot, np.sin(theta), np.cos(theta)]
    if rest_angle is None:
        return np.column_stack(cols + [theta, np.ones_like(theta)])
    return np.column_stack(cols + [theta - rest_angle])


def solve_bounded(a: np.ndarray, b: np.ndarray, *, lower, upper, prior: np.ndarray | None = None,
                  weight: float = 0.0) -> np.ndarray:
    """argmin ‖a x − b‖² + weight ‖x − prior‖² subject to lower ≤ x ≤ upper (BVLS)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    k = a.shape[1]
    if weight > 0:
        if prior is None or np.shape(prior) != (k,):
            raise InputError(f"a weighted solve needs a prior of {k} values, got {prior!r}")
        a = np.vstack([a, math.sqrt(weight) * np.eye(k)])
        b = np.concatenate([b, math.sqrt(weight) * np.asarray(prior, dtype=float)])
    return lsq_linear(a, b, bounds=(np.asarray(lower, float), np.asarray(upper, float)), method="bvls").x


def term_bounds(n_terms: int, *, min_inertia: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Bounds for :func:`regressors`' columns: M ≥ ``min_inertia``, b ≥ 0, k ≥ 0, the rest free."""
    lower = np.array([min_inertia, 0.0, -np.inf, -np.inf, 0.0, -np.inf][:n_terms])
    return lower, np.full(n_terms, np.inf)


def derivatives(theta: np.ndarray, *, dt: float, window_s: float = 0.07) -> tuple[np.ndarray, np.ndarray]:
    """θ̇ and θ̈ of a sampled angle: Savitzky–Golay (cubic) over ``window_s`` seconds, edges included."""
    theta = np.asarray(theta, dtype=float)
    if not dt > 0:
        raise InputError(f"dt must be > 0 s, got {dt!r}")
    w = max(5, int(round(window_s / dt)) | 1)
    if theta.size < w:
        raise InputError(f"differentiating θ needs at least {w} samples, got {theta.size}")
    return (savgol_filter(theta, w, 3, deriv=1, delta=dt, mode="interp"),
            savgol_filter(theta, w, 3, deriv=2, delta=dt, mode="interp"))


@dataclass(frozen=True, kw_only=True)
class JointTerms:
    """An identified equation of motion: τ = M θ̈ + b θ̇ + G_s sin θ + G_c cos θ + k θ + c."""

    inertia: float  # kg·m²
    damping: float  # N·m·s/rad
    gravity_sin: float  # N·m
    gravity_cos: float  # N·m
    stiffness: float  # N·m/rad
    offset: float  # N·m (−k θ_rest)
    rmse: float  # N·m, residual of the fit
    torque_rms: float  # N·m, of the fitted moment

    @property
    def gravity_moment(self) -> float:
        """m g l_c (N·m): the gravity moment's amplitude."""
        return math.hypot(self.gravity_sin, self.gravity_cos)

    @property
    def gravity_offset(self) -> float:
        """φ in m g l_c sin(θ + φ)."""
        return math.atan2(self.gravity_cos, self.gravity_sin)

    def static_torque(self, theta):
        """G(θ) + P(θ) without the end-of-range terms (array-agnostic: ``sin``/``cos`` of θ's namespace)."""
        xp = namespace(theta)
        return self.gravity_sin * xp.sin(theta) + self.gravity_cos * xp.cos(theta) + self.stiffness * theta \
            + self.offset

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in TERMS + ("rmse", "torque_rms")}


def _pieces(values: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    out = [np.asarray(v, dtype=float).ravel() for v in values]
    if not out:
        raise InputError(f"{name}: no trials given")
    return out


def identify_joint(thetas: Sequence[np.ndarray], torques: Sequence[np.ndarray], *, dt: float,
                   rest_angle: float | None = None, ends: Sequence[np.ndarray] | None = None,
                   window_s: float = 0.07) -> JointTerms:
    """Identify M, b, gravity, stiffness (and its rest offset) from trials of angle and driving moment.

    ``thetas`` and ``torques`` are one array per trial (rad, N·m, sampled every ``dt`` s); derivatives
    are taken per trial so no difference spans two trials. ``ends`` (per trial, N·m) are known moments
    subtracted from τ first (e.g. end-of-range terms). Without ``rest_angle`` the stiffness's rest
    offset is identified too (column of ones).
    """
    thetas, torques = _pieces(thetas, "thetas"), _pieces(torques, "torques")
    if len(thetas) != len(torques):
        raise InputError(f"identify_joint needs one torque per angle trial, got {len(thetas)} angle and "
                         f"{len(torques)} torque trials")
    known = [np.zeros_like(t) for t in thetas] if ends is None else _pieces(ends, "ends")
    rows, rhs = [], []
    for th, tau, e in zip(thetas, torques, known):
        if not th.shape == tau.shape == e.shape:
            raise InputError(f"each trial's θ, τ (and ends) need one length, got {th.size}, {tau.size}, "
                             f"{e.size}")
        if not (np.all(np.isfinite(th)) and np.all(np.isfinite(tau))):
            raise InputError("θ and τ must be finite")
        if th.size < MIN_SAMPLES:
            continue
        d1, d2 = derivatives(th, dt=dt, window_s=window_s)
        rows.append(regressors(th, d1, d2, rest_angle=rest_angle))
        rhs.append(tau - e)
    if not rows:
        raise InputError(f"identifying the joint needs a trial of at least {MIN_SAMPLES} samples")
    a, b = np.vstack(rows), np.concatenate(rhs)
    tau_rms = float(np.sqrt(np.mean(b**2)))
    if tau_rms <= 0:
        raise InputError("the torque is zero throughout; nothing to identify the joint from")
    scale = np.maximum(np.sqrt(np.mean(a**2, axis=0)), 1e-12)  # columns to unit RMS: a well-posed solve
    lower, upper = term_bounds(a.shape[1])
    x = solve_bounded(a / scale, b, lower=lower, upper=upper) / scale
    resid = b - a @ x
    terms = dict(zip(TERMS, (float(v) for v in x)))
    if rest_angle is not None:
        terms["offset"] = -terms["stiffness"] * rest_angle
    return JointTerms(**terms, rmse=float(np.sqrt(np.mean(resid**2))), torque_rms=tau_rms)
