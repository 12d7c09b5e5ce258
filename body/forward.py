"""Forward dynamics from muscle excitations (the hard family): compliant tendons, no tracking.

Each step at ``fs`` (2 kHz): moment arms and muscle–tendon lengths at θ; the tendon forces from the
fibre lengths (:mod:`myoedge.body.tendon`); the net moment Σ r_n F_n, which is what enters the
equation of motion (:func:`myoedge.body.dynamics.acceleration`) and what is recorded; then excitation
→ activation (per-muscle time constants), semi-implicit Euler for the joint, and a backward-Euler step
of every fibre. As in the easy simulator the recorded θ̈_k equals (θ_{k+1} − 2θ_k + θ_{k−1}) / Δt² and
the recorded tendon forces satisfy the equation of motion to rounding.

Excitation = feedforward plan (:mod:`myoedge.body.drive`) + a light *stretch reflex*: each muscle is
excited in proportion to its stretch relative to the planned posture, seen through a 25–45 ms delay
(0.3–0.8 excitation per rad, plus 0.02–0.06 per rad/s of stretch velocity), + a *range guard* that
excites the muscles pulling away from a limit within 10° of it (3 per rad, delayed the same), + the
passive end-of-range moments of the segment. The reflex is too weak and too late to track: the plan's
errors stay in the motion, and the plan itself is aperiodic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from types import SimpleNamespace

import numpy as np

from myoedge.body import dynamics, tendon
from myoedge.body.model import JointModel, Segment
from myoedge.body.muscle import MIN_ACTIVATION, MuscleSet, activation_rate
from myoedge.body.simulate import Motion

GUARD_MARGIN = 10 * math.pi / 180
GUARD_GAIN = 3.0


@dataclass(frozen=True, kw_only=True)
class Reflex:
    gain: float  # excitation per rad of stretch from the plan
    velocity_gain: float  # excitation per rad/s
    delay_s: float


def stack_segments(segments: list[Segment]) -> SimpleNamespace:
    """Segments of a batch as one object with (batch,) arrays, for the array-agnostic dynamics."""
    return SimpleNamespace(**{f.name: np.array([getattr(s, f.name) for s in segments])
                              for f in fields(Segment)})


def simulate_open_loop(model: JointModel, segments: list[Segment], plan_theta: np.ndarray,
                       excitation: np.ndarray, *, fs: float, tau_act: np.ndarray, tau_deact: np.ndarray,
                       tendon_strain: np.ndarray, reflex: Reflex) -> Motion:
    """Simulate a batch: ``plan_theta`` (batch, n), ``excitation`` (batch, n, n_muscles) feedforward.

    ``segments`` gives each trial's segment (a load in the hand changes it); the muscles are shared.
    """
    batch, n = plan_theta.shape
    m = len(model.muscles)
    if excitation.shape != (batch, n, m) or len(segments) != batch:
        raise ValueError(f"excitation must be {(batch, n, m)} with {batch} segments, got {excitation.shape} "
                         f"and {len(segments)}")
    seg, ms, dt = stack_segments(segments), MuscleSet(model), 1.0 / fs
    f0, l_opt, l_ts, height = ms.f0, ms.l_opt, ms.l_ts, ms.height
    v_max = np.array([mu.max_velocity for mu in model.muscles])
    eps0 = np.asarray(tendon_strain, dtype=float)
    sign = np.array([mu.sign for mu in model.muscles], dtype=float)
    delay = max(1, int(round(reflex.delay_s * fs)))
    lo, hi = seg.range_lo[:, None], seg.range_hi[:, None]

    out = {k: np.empty((batch, n)) for k in ("theta", "theta_dot", "theta_ddot", "torque")}
    out.update({k: np.empty((batch, n, m)) for k in ("excitation", "activation", "forces", "moment_arms")})
    th, om = plan_theta[:, 0].copy(), np.zeros(batch)
    a = np.clip(excitation[:, 0], MIN_ACTIVATION, 1.0)
    lm = np.empty((batch, m))
    tendon.static_fibers(ms.mt_length(th), a, l_opt, height, l_ts, eps0, lm)
    forces = np.empty((batch, m))
    for k in range(n):
        r = model.moment_arms(th)
        tendon.tendon_forces(lm, ms.mt_length(th), f0, height, l_ts, eps0, forces)
        torque = (r * forces).sum(-1)
        acc = dynamics.acceleration(th, om, torque, seg=seg)
        kd = max(k - delay, 0)
        th_d, om_d = (out["theta"][:, kd], out["theta_dot"][:, kd]) if k > delay else (th, om)
        stretch = sign * (plan_theta[:, kd, None] - th_d[:, None])  # > 0: the muscle is longer than planned
        guard = np.where(sign > 0, np.maximum(lo + GUARD_MARGIN - th_d[:, None], 0.0),
                         np.maximum(th_d[:, None] - (hi - GUARD_MARGIN), 0.0))
        u = excitation[:, k] + reflex.gain * np.maximum(stretch, 0.0) + GUARD_GAIN * guard \
            + reflex.velocity_gain * np.maximum(-sign * om_d[:, None], 0.0)
        u = np.clip(u, 0.0, 1.0)
        out["theta"][:, k], out["theta_dot"][:, k], out["theta_ddot"][:, k] = th, om, acc
        out["torque"][:, k] = torque
        out["excitation"][:, k], out["activation"][:, k] = u, a
        out["forces"][:, k], out["moment_arms"][:, k] = forces, r
        a = np.clip(a + dt * activation_rate(u, a, tau_act=tau_act, tau_deact=tau_deact), MIN_ACTIVATION, 1.0)
        om = om + dt * acc
        th = th + dt * om
        tendon.fiber_step(lm, ms.mt_length(th), a, dt, l_opt, v_max, height, l_ts, eps0)
    return Motion(fs=fs, **out)
