"""Hill-type muscle mechanics with a rigid tendon (numpy).

Curves follow Thelen (2003), "Adjustment of muscle mechanics model parameters to simulate dynamic
contractions in older adults", J Biomech Eng 125:70–77 — the defaults of OpenSim's Thelen2003Muscle:
active force–length Gaussian with shape factor γ = 0.45, passive force–length with k_PE = 4 and
ε₀ = 0.6, activation/deactivation time constants 10 ms / 40 ms. The force–velocity curve is Hill's
hyperbola for shortening (curvature A = 0.25) and a saturating branch for lengthening reaching 1.8·F₀.
Fibres keep a constant thickness (the pennated fibre's height l_opt·sin α₀ is constant), as in OpenSim.

The curves, :func:`fiber_state_at` and :func:`hill_force` are *array-agnostic* like
:mod:`myoedge.body.dynamics`: numpy arrays in, numpy out; torch tensors in (a training loss that
personalises l_opt, l_ts, pennation and strength), torch out — one set of Hill curves for every caller.
"""

from __future__ import annotations

import numpy as np

from myoedge.body.dynamics import namespace
from myoedge.body.model import JointModel

FL_WIDTH = 0.45  # γ, active force–length shape factor
PE_K = 4.0  # passive force–length exponential shape factor
PE_STRAIN = 0.6  # passive muscle strain at one maximum isometric force
FV_A = 0.25  # Hill curvature (concentric)
FV_ECC_MAX = 1.8  # eccentric force plateau, in F₀
FV_ECC_SLOPE = 0.08  # eccentric half-saturation velocity (optimal fibre lengths/s / v_max)
TAU_ACT = 0.010  # s
TAU_DEACT = 0.040  # s
MIN_ACTIVATION = 0.01


def activation_rate(u: np.ndarray, a: np.ndarray, *, tau_act=TAU_ACT, tau_deact=TAU_DEACT) -> np.ndarray:
    """ȧ of first-order activation dynamics (Thelen 2003, eq. 1): faster up than down.

    ``tau_act`` / ``tau_deact`` (s) may be per-muscle arrays broadcasting against ``a``.
    """
    tau = np.where(u > a, tau_act * (0.5 + 1.5 * a), tau_deact / (0.5 + 1.5 * a))
    return (u - a) / tau


def force_length(l_norm):
    xp = namespace(l_norm)
    return xp.exp(-((l_norm - 1.0) ** 2) / FL_WIDTH)


def passive_force_length(l_norm):
    xp = namespace(l_norm)
    f = (xp.exp(PE_K * (l_norm - 1.0) / PE_STRAIN) - 1.0) / (np.exp(PE_K) - 1.0)
    return xp.clip(f, 0.0, None)


def force_velocity(v_norm):
    """f_V of the normalised fibre velocity ṽ = v / (v_max·l_opt); ṽ < 0 is shortening.

    Each branch sees only its own half of the axis, so neither produces inf (nor a NaN gradient)."""
    xp = namespace(v_norm)
    conc_v = xp.clip(v_norm, -1.0, 0.0)
    ecc_v = xp.clip(v_norm, 0.0, None)
    conc = (1.0 + conc_v) / (1.0 - conc_v / FV_A)
    ecc = 1.0 + (FV_ECC_MAX - 1.0) * ecc_v / (ecc_v + FV_ECC_SLOPE)
    return xp.where(v_norm <= 0.0, conc, ecc)


def fiber_state_at(l_mt, l_mt_dot, *, l_opt, l_ts, pennation, v_max):
    """Normalised fibre length l̃, velocity ṽ and cos(pennation) of a rigid-tendon muscle.

    ``l_mt`` / ``l_mt_dot``: muscle–tendon length (m) and its rate (m/s); ``l_opt`` (m), ``l_ts`` (m),
    ``pennation`` (rad, at optimal fibre length) and ``v_max`` (optimal fibre lengths per second)
    broadcast against them (per-muscle arrays, or tensors a fit personalises).
    """
    xp = namespace(l_mt)
    height = l_opt * xp.sin(pennation + 0.0 * l_opt)
    along = xp.clip(l_mt - l_ts, 1e-4, None)
    l_f = xp.sqrt(height**2 + along**2)
    cos_a = along / l_f
    return l_f / l_opt, l_mt_dot * cos_a / (v_max * l_opt), cos_a


def hill_force(activation, l_norm, v_norm, cos_a, *, max_force, damping=0.0):
    """F = F₀·[a·f_L(l̃)·f_V(ṽ) + f_PE(l̃) + d·ṽ]·cos φ (N, along the tendon)."""
    return max_force * (activation * force_length(l_norm) * force_velocity(v_norm)
                        + passive_force_length(l_norm) + damping * v_norm) * cos_a


class MuscleSet:
    """Vectorised mechanics of a joint's muscles: arrays of shape (..., n_muscles)."""

    def __init__(self, model: JointModel):
        ms = model.muscles
        self.model = model
        self.coeffs = model.coeffs
        self.f0 = np.array([m.max_force for m in ms])
        self.l_opt = np.array([m.optimal_fiber_length for m in ms])
        self.l_ts = np.array([m.tendon_slack_length for m in ms])
        self.pennation = np.array([m.pennation for m in ms])
        self.height = self.l_opt * np.sin(self.pennation)
        self.v_max = np.array([m.max_velocity for m in ms]) * self.l_opt
        theta_opt = np.array([m.optimal_angle for m in ms])
        self.l_mt_opt = self.l_opt * np.cos([m.pennation for m in ms]) + self.l_ts
        self._excursion_opt = np.diagonal(self._excursion(theta_opt)).copy()

    def _excursion(self, theta) -> np.ndarray:
        """∫₀^θ r_n(φ) dφ (m), shape θ.shape + (n_muscles,)."""
        powers = np.arange(1, self.coeffs.shape[1] + 1)
        th = np.asarray(theta, dtype=float)[..., None, None]
        return (self.coeffs * th**powers / powers).sum(-1)

    def mt_length(self, theta) -> np.ndarray:
        """Muscle–tendon lengths (m) at θ: l̇_MT = −r θ̇, with the fibre optimal and the tendon slack at
        each muscle's optimal angle. Shape θ.shape + (n_muscles,)."""
        return self.l_mt_opt - (self._excursion(theta) - self._excursion_opt)

    def fiber_state(self, theta, theta_dot):
        """Normalised fibre length, normalised velocity and cos(pennation) at joint state (θ, θ̇)."""
        theta = np.asarray(theta, dtype=float)
        l_mt_dot = -self.model.moment_arms(theta) * np.asarray(theta_dot, dtype=float)[..., None]
        return fiber_state_at(self.mt_length(theta), l_mt_dot, l_opt=self.l_opt, l_ts=self.l_ts,
                              pennation=self.pennation, v_max=self.v_max / self.l_opt)

    def forces(self, activation, theta, theta_dot) -> np.ndarray:
        """Muscle forces (N) along the tendon."""
        l, v, cos_a = self.fiber_state(theta, theta_dot)
        return hill_force(activation, l, v, cos_a, max_force=self.f0)

    def force_gains(self, theta, theta_dot):
        """(g, p) with forces = g·a + p: the affine dependence of force on activation at this state."""
        l, v, cos_a = self.fiber_state(theta, theta_dot)
        active = self.f0 * force_length(l) * force_velocity(v) * cos_a
        return active, self.f0 * passive_force_length(l) * cos_a
