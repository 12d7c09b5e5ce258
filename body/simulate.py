"""Forward simulation of a joint driven by Hill muscles that track a desired movement.

Each step (fixed step, default 2 kHz): a PD law on the tracking error gives the moment the motion
needs (through :func:`myoedge.body.dynamics.required_torque`); it is shared among the muscles on top of
a smoothly varying co-contraction, with smoothly varying synergy weights among agonists, giving each
muscle a target activation that becomes its neural excitation; activation dynamics, Hill mechanics
and the equation of motion then advance the state. Integration is semi-implicit Euler, so the
recorded θ̈_k equals (θ_{k+1} − 2θ_k + θ_{k−1}) / Δt² and satisfies the equation of motion with the
recorded forces exactly (to rounding): the ground truth obeys the physics the model is trained with.
Several trials of one model are simulated at once (leading batch axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from myoedge.body import dynamics
from myoedge.body.model import JointModel
from myoedge.body.muscle import MIN_ACTIVATION, MuscleSet, activation_rate


@dataclass(frozen=True, kw_only=True)
class Tracking:
    """Closed-loop bandwidth of the tracking controller and how excitation leads activation."""

    bandwidth_hz: float = 4.0
    damping_ratio: float = 1.0
    lead: float = 1.0  # excitation = target + lead·(target − activation), compensating activation lag


@dataclass(frozen=True)
class Motion:
    """Simulated trials, arrays of shape (batch, n_steps[, n_muscles]) at ``fs``."""

    fs: float
    theta: np.ndarray
    theta_dot: np.ndarray
    theta_ddot: np.ndarray
    excitation: np.ndarray
    activation: np.ndarray
    forces: np.ndarray
    moment_arms: np.ndarray
    torque: np.ndarray  # Σ r_n F_n, the net muscle moment (N·m)


def simulate(model: JointModel, desired, *, fs: float, cocontraction: np.ndarray, synergy: np.ndarray,
             tracking: Tracking = Tracking()) -> Motion:
    """Track ``desired`` = (θ_d, θ̇_d, θ̈_d), each (batch, n), with the muscles of ``model``.

    ``cocontraction`` (batch, n, n_muscles) is each muscle's baseline activation; ``synergy`` (same
    shape, positive) weights how extra activation is shared among agonists.
    """
    th_d, dth_d, ddth_d = (np.atleast_2d(np.asarray(x, dtype=float)) for x in desired)
    batch, n = th_d.shape
    n_m = len(model.muscles)
    if cocontraction.shape != (batch, n, n_m) or synergy.shape != (batch, n, n_m):
        raise ValueError(f"cocontraction/synergy must have shape {(batch, n, n_m)}, got "
                         f"{cocontraction.shape} and {synergy.shape}")
    seg, ms, dt = model.segment, MuscleSet(model), 1.0 / fs
    w = 2 * math.pi * tracking.bandwidth_hz
    kp, kd = w * w, 2 * tracking.damping_ratio * w
    flexor = np.array([m.sign > 0 for m in model.muscles])

    out = {k: np.empty((batch, n)) for k in ("theta", "theta_dot", "theta_ddot", "torque")}
    out.update({k: np.empty((batch, n, n_m)) for k in ("excitation", "activation", "forces", "moment_arms")})
    th, om = th_d[:, 0].copy(), dth_d[:, 0].copy()
    a = np.clip(cocontraction[:, 0], MIN_ACTIVATION, 1.0)
    for k in range(n):
        r = model.moment_arms(th)
        gain, passive = ms.force_gains(th, om)
        demand = seg.inertia * (ddth_d[:, k] + kp * (th_d[:, k] - th) + kd * (dth_d[:, k] - om)) \
            + dynamics.required_torque(th, om, 0.0 * th, seg=seg)
        base = cocontraction[:, k]
        deficit = demand - (r * (gain * base + passive)).sum(-1)
        agonist = np.where(deficit[:, None] > 0, flexor, ~flexor)
        wk = synergy[:, k] * agonist
        denom = (wk * r * gain).sum(-1)  # same sign as the deficit: agonists push the right way
        lam = deficit / np.where(np.abs(denom) < 1e-9, np.copysign(1e-9, deficit), denom)
        target = np.clip(base + lam[:, None] * wk, MIN_ACTIVATION, 1.0)
        u = np.clip(target + tracking.lead * (target - a), 0.0, 1.0)
        forces = gain * a + passive
        torque = (r * forces).sum(-1)
        acc = dynamics.acceleration(th, om, torque, seg=seg)
        out["theta"][:, k], out["theta_dot"][:, k], out["theta_ddot"][:, k] = th, om, acc
        out["torque"][:, k] = torque
        out["excitation"][:, k], out["activation"][:, k] = u, a
        out["forces"][:, k], out["moment_arms"][:, k] = forces, r
        a = np.clip(a + dt * activation_rate(u, a), MIN_ACTIVATION, 1.0)
        om = om + dt * acc
        th = th + dt * om
    return Motion(fs=fs, **out)
