"""Open-loop muscle excitations for the hard family: a motor plan, not a tracked trajectory.

A trial is a random sequence of segments (1.5–4.5 s each) of four kinds, mixed: **holds**,
**point-to-point moves** (minimum-jerk, 0.3–1.2 s, to a random posture), **rhythmic phases**
(0.3–2 Hz, tapered in and out) and **co-contraction bursts** (a hold during which every muscle's
baseline rises by 0.1–0.35 for 0.3–1.5 s). The plan θ*(t) is turned into excitations *offline*, by the
subject's internal model: the moment the planned movement needs (the equation of motion of
:mod:`myoedge.body.dynamics` with a segment whose every parameter is misjudged by ~15 %, and
rigid-tendon muscle gains) is shared among the agonists with independently wandering weights on top
of a wandering co-contraction, led by the mean activation time constant. Independent band-limited
noise (1–4 Hz) is added to every muscle. Nothing here sees the simulated state: the joint moves by
forward dynamics from these excitations, plus the light delayed stretch reflex and range guard of
:mod:`myoedge.body.forward`, so the recorded motion departs from the plan by whatever the misjudged
model and the muscles' own dynamics make of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import signal

from myoedge.body import dynamics
from myoedge.body.model import JointModel, Segment
from myoedge.body.muscle import MIN_ACTIVATION, MuscleSet
from myoedge.body.trajectories import smooth_noise

KINDS = ("hold", "move", "rhythm", "cocontract")
KIND_WEIGHTS = (0.2, 0.35, 0.3, 0.15)


@dataclass(frozen=True)
class Plan:
    """One trial's motor plan at ``fs``: intended posture, co-contraction and feedforward excitation."""

    theta: np.ndarray  # (n,) rad, intended posture θ*
    excitation: np.ndarray  # (n, n_muscles), feedforward, in [0, 1]
    kinds: tuple[str, ...]  # segment kinds in order


def _min_jerk(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10 - 15 * x + 6 * x**2)


def plan_posture(rng: np.random.Generator, n: int, *, fs: float, work: tuple[float, float],
                 max_hz: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(θ*, co-contraction burst profile, kinds): the posture plan of one trial, low-passed at 4 Hz."""
    lo, hi = work
    span = hi - lo
    theta, burst, kinds = np.empty(n), np.zeros(n), []
    current, k = rng.uniform(lo + 0.2 * span, hi - 0.2 * span), 0
    while k < n:
        m = min(n - k, int(rng.uniform(1.5, 4.5) * fs))
        kind = KINDS[rng.choice(len(KINDS), p=KIND_WEIGHTS)]
        kinds.append(kind)
        t = np.arange(m) / fs
        seg = np.full(m, current)
        if kind == "move":
            target = rng.uniform(lo, hi)
            seg = current + (target - current) * _min_jerk(t / rng.uniform(0.3, 1.2))
            current = target
        elif kind == "rhythm":
            amp = rng.uniform(0.1, 0.35) * span
            amp = min(amp, current - lo, hi - current)
            taper = signal.windows.tukey(m, alpha=min(1.0, 2 * 0.3 * fs / m))
            seg = current + amp * taper * np.sin(2 * math.pi * rng.uniform(0.3, max_hz) * t)
        elif kind == "cocontract":
            width = min(m, int(rng.uniform(0.3, 1.5) * fs))
            start = int(rng.integers(0, m - width + 1))
            burst[k + start:k + start + width] = rng.uniform(0.1, 0.35) * signal.windows.tukey(width, 0.5)
        theta[k:k + m] = seg
        k += m
    sos = signal.butter(2, 4.0, fs=fs, output="sos")
    return signal.sosfiltfilt(sos, theta), burst, tuple(kinds)


def misjudged(segment: Segment, rng: np.random.Generator, *, error: float = 0.15) -> Segment:
    """The subject's internal model of its own segment: inertia, mass, damping, stiffness misjudged."""
    scale = np.exp(rng.normal(0.0, error, 5))
    return replace(segment, inertia=segment.inertia * scale[0], mass=segment.mass * scale[1],
                   damping=segment.damping * scale[2], stiffness=segment.stiffness * scale[3],
                   rest_angle=segment.rest_angle + 0.1 * rng.normal())


def feedforward(model: JointModel, theta_star: np.ndarray, burst: np.ndarray, *, fs: float,
                rng: np.random.Generator, segment: Segment, lead_s: float) -> np.ndarray:
    """Excitations (n, n_muscles) that the internal model expects to realise ``theta_star``."""
    n, m = len(theta_star), len(model.muscles)
    dth = np.gradient(theta_star, 1.0 / fs)
    ddth = np.gradient(dth, 1.0 / fs)
    gain, passive = MuscleSet(model).force_gains(theta_star, dth)
    r = model.moment_arms(theta_star)
    flexor = np.array([mu.sign > 0 for mu in model.muscles])
    base = rng.uniform(0.01, 0.06, m) * (1.0 + 0.5 * smooth_noise(rng, n, fs=fs, cutoff_hz=0.3, shape=(m,)))
    base = np.clip(base, 0.0, 0.3) + burst[:, None]
    demand = dynamics.required_torque(theta_star, dth, ddth, seg=segment)
    deficit = demand - (r * (gain * base + passive)).sum(-1)
    weights = np.exp(0.4 * smooth_noise(rng, n, fs=fs, cutoff_hz=0.5, shape=(m,)))
    weights = weights * np.where(deficit[:, None] > 0, flexor, ~flexor)
    denom = (weights * r * gain).sum(-1)
    lam = deficit / np.where(np.abs(denom) < 1e-9, np.copysign(1e-9, deficit), denom)
    target = np.clip(base + lam[:, None] * weights, MIN_ACTIVATION, 1.0)
    u = target + lead_s * np.gradient(target, 1.0 / fs, axis=0)
    cut = rng.uniform(1.0, 4.0)
    u = u * (1.0 + 0.15 * smooth_noise(rng, n, fs=fs, cutoff_hz=cut, shape=(m,)))
    u = u + rng.uniform(0.005, 0.03, m) * smooth_noise(rng, n, fs=fs, cutoff_hz=cut, shape=(m,))
    return np.clip(u, 0.0, 1.0)


def make_plan(model: JointModel, rng: np.random.Generator, n: int, *, fs: float, work: tuple[float, float],
              lead_s: float) -> Plan:
    max_hz = 1.2 if model.joint == "knee" else 2.0
    theta, burst, kinds = plan_posture(rng, n, fs=fs, work=work, max_hz=max_hz)
    u = feedforward(model, theta, burst, fs=fs, rng=rng, segment=misjudged(model.segment, rng), lead_s=lead_s)
    return Plan(theta=theta, excitation=u, kinds=kinds)
