"""Hill-type muscle mechanics with a rigid tendon (numpy).

Curves follow Thelen (2003), "Adjustment of muscle mechanics model parameters to simulate dynamic
contractions in older adults", J Biomech Eng 125:70–77 — the defaults of OpenSim's Thelen2003Muscle:
active force–length Gaussian with shape factor γ = 0.45, passive force–length with k_PE = 4 and
ε₀ = 0.6, activation/deactivation time constants 10 ms / 40 ms. The force–velocity curve is Hill's
hyperbola for shortening (curvature A = 0.25) and a saturating branch for lengthening reaching 1.8·F₀.
Fibres keep a constant thickness (the pennated fibre's height l_opt·sin α₀ is constant), as in OpenSim.
"""

from __future__ import annotations

import numpy as np

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


def force_length(l_norm: np.ndarray) -> np.ndarray:
    return np.exp(-((l_norm - 1.0) ** 2) / FL_WIDTH)


def passive_force_length(l_norm: np.ndarray) -> np.ndarray:
    f = (np.exp(PE_K * (l_norm - 1.0) / PE_STRAIN) - 1.0) / (np.exp(PE_K) - 1.0)
    return np.maximum(f, 0.0)


def force_velocity(v_norm: np.ndarray) -> np.ndarray:
    """f_V of the normalised fibre velocity ṽ = v / (v_max·l_opt); ṽ < 0 is shortening."""
    v = np.maximum(v_norm, -1.0)
    conc = (1.0 + v) / (1.0 - v / FV_A)
    ecc = 1.0 + (FV_ECC_MAX - 1.0) * v / (v + FV_ECC_SLOPE)
    return np.where(v <= 0.0, conc, ecc)


class MuscleSet:
    """Vectorised mechanics of a joint's muscles: arrays of shape (..., n_muscles)."""

    def __init__(self, model: JointModel):
        ms = model.muscles
        self.model = model
        self.coeffs = model.coeffs
        self.f0 = np.array([m.max_force for m in ms])
        self.l_opt = np.array([m.optimal_fiber_length for m in ms])
        self.l_ts = np.array([m.tendon_slack_length for m in ms])
        self.height = self.l_opt * np.sin([m.pennation for m in ms])
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
        r = self.model.moment_arms(theta)
        l_mt = self.mt_length(theta)
        along = np.maximum(l_mt - self.l_ts, 1e-4)
        l_f = np.sqrt(self.height**2 + along**2)
        cos_a = along / l_f
        v_f = -r * np.asarray(theta_dot, dtype=float)[..., None] * cos_a
        return l_f / self.l_opt, v_f / self.v_max, cos_a

    def forces(self, activation, theta, theta_dot) -> np.ndarray:
        """Muscle forces (N) along the tendon."""
        l, v, cos_a = self.fiber_state(theta, theta_dot)
        return self.f0 * (activation * force_length(l) * force_velocity(v) + passive_force_length(l)) * cos_a

    def force_gains(self, theta, theta_dot):
        """(g, p) with forces = g·a + p: the affine dependence of force on activation at this state."""
        l, v, cos_a = self.fiber_state(theta, theta_dot)
        active = self.f0 * force_length(l) * force_velocity(v) * cos_a
        return active, self.f0 * passive_force_length(l) * cos_a
