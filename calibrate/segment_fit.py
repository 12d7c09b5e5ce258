"""Optional re-fit of the segment's inertia, damping, gravity and stiffness from a measured torque.

With θ, θ̇, θ̈ and the net joint moment τ known, the equation of motion is linear in the segment terms:

    τ − P_ends(θ) = M θ̈ + b θ̇ + G_s sin θ + G_c cos θ + k (θ − θ_rest)

where m g l_c sin(θ + φ) = G_s sin θ + G_c cos θ (G_s = m g l_c cos φ, G_c = m g l_c sin φ) and P_ends,
the end-of-range moments, stays as in the prior (it only acts at the limits the trials rarely reach).
The columns and the bounded solver are :mod:`myoedge.body.identify`'s (shared with training's
unregularised identification); here the fit is least squares regularised toward the prior's values,
each term relative to its prior size, with the same prior-scale rule as the moment arms
(λ = (σ_τ/τ_rms)² / (N_eff σ_p²)), and bounded: M > 0, b ≥ 0, k ≥ 0. Gravity gives only the
product m·l_c and φ: the mass stays as profiled (it is weighed) and l_c = (m g l_c) / (m g).

This needs a *measured* torque: when τ itself comes from the profile's segment, fitting the segment
to it would only return the prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from myoedge.body.dynamics import GRAVITY, passive_torque
from myoedge.body.identify import regressors, solve_bounded, term_bounds
from myoedge.body.model import Segment
from myoedge.calibrate.moment_arms import integrated_autocorrelation
from myoedge.ground.errors import InputError


@dataclass(frozen=True)
class SegmentFit:
    segment: Segment
    prior: Segment
    rmse_before: float  # N·m, residual of the equation of motion with the prior segment
    rmse_after: float
    regularisation: float

    def summary(self) -> dict:
        fields = ("mass", "com", "inertia", "gravity_offset", "damping", "stiffness")
        return {"rmse_before_nm": self.rmse_before, "rmse_after_nm": self.rmse_after,
                "regularisation": self.regularisation,
                "before": {f: getattr(self.prior, f) for f in fields},
                "after": {f: getattr(self.segment, f) for f in fields}}


def fit_segment(prior: Segment, theta: np.ndarray, theta_dot: np.ndarray, theta_ddot: np.ndarray,
                torque: np.ndarray, *, trial_lengths: Sequence[int] | None = None,
                prior_scale: float = 0.3) -> SegmentFit:
    """Fit M, b, m·l_c, φ and k of ``prior`` to a measured net joint moment (see the module docstring)."""
    theta, theta_dot, theta_ddot, torque = (np.asarray(a, dtype=float) for a in (theta, theta_dot, theta_ddot,
                                                                               torque))
    n = theta.size
    if not all(a.shape == (n,) for a in (theta_dot, theta_ddot, torque)) or n < 20:
        raise InputError("the segment fit needs θ, θ̇, θ̈ and τ of one equal length (at least 20 samples)")
    ends = passive_torque(theta, stiffness=0.0, rest_angle=prior.rest_angle, limit_torque=prior.limit_torque,
                          limit_rate=prior.limit_rate, range_lo=prior.range_lo, range_hi=prior.range_hi)
    amp = prior.mass * GRAVITY * prior.com
    p0 = np.array([prior.inertia, prior.damping, amp * math.cos(prior.gravity_offset),
                   amp * math.sin(prior.gravity_offset), prior.stiffness])
    scale = np.array([prior.inertia, max(prior.damping, 1e-3 * amp), amp, amp,
                      max(prior.stiffness, 1e-2 * amp)])
    tau_rms = float(np.sqrt(np.mean(torque**2)))
    if tau_rms <= 0:
        raise InputError("the torque is zero throughout; nothing to fit the segment to")
    x_cols = regressors(theta, theta_dot, theta_ddot, rest_angle=prior.rest_angle)
    a = x_cols * scale / (tau_rms * math.sqrt(n))  # unknowns: q = p / scale
    b = (torque - ends) / (tau_rms * math.sqrt(n))
    q0 = p0 / scale
    lengths = list(trial_lengths) if trial_lengths is not None else [n]
    lam = 1e-10
    for _ in range(4):  # the prior-scale rule, iterated to its fixed point
        q = np.linalg.solve(a.T @ a + lam * np.eye(5), a.T @ b + lam * q0)
        resid = b - a @ q
        t_int = np.average([integrated_autocorrelation(r) for r in np.split(resid, np.cumsum(lengths)[:-1])],
                           weights=lengths)
        lam = max(float(resid @ resid) / ((n / t_int) * prior_scale**2), 1e-12)
    lower, upper = term_bounds(5, min_inertia=1e-3 * q0[0])
    q = solve_bounded(a, b, lower=lower, upper=upper, prior=q0, weight=lam)
    inertia, damping, g_s, g_c, stiffness = q * scale
    mgl = math.hypot(g_s, g_c)
    if mgl <= 0:
        raise InputError("the fitted gravity moment vanished; the trials do not constrain the segment's "
                         "gravity")
    segment = replace(prior, inertia=float(inertia), damping=float(damping), stiffness=float(stiffness),
                      com=float(mgl / (prior.mass * GRAVITY)), gravity_offset=float(math.atan2(g_c, g_s)))

    def rmse(p: np.ndarray) -> float:
        return float(np.sqrt(np.mean((torque - ends - x_cols @ p) ** 2)))

    return SegmentFit(segment=segment, prior=prior, rmse_before=rmse(p0), rmse_after=rmse(q * scale),
                      regularisation=lam)
