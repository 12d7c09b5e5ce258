"""The ``hard`` synthetic family: per-subject joint, muscle and electrode parameters drawn wide.

The ``easy`` family (today's) scales one generic model per subject and keeps the catalog's light joint
damping. The hard family starts from the same scaled subject and redraws what a window model could
otherwise learn as a constant (ranges per joint in :data:`JOINT_RANGES`):

- joint viscous damping, log-uniform. Wrist and elbow 0.02–0.5 N·m·s/rad: from our light synthetic
  wrist (0.03) to joints whose damping is as large as their muscle torque (0.25 measured in an
  independent wrist model). The knee's shank+foot has ~80× the hand's inertia about its joint, so its
  range is 5× higher, 0.1–2.5 N·m·s/rad, keeping the damping time constant I/b in the same band as
  pendulum-test values for the knee (order 0.5–2 N·m·s/rad);
- passive stiffness (log-uniform) and its rest angle;
- segment mass (× 0.85–1.2) and centre-of-mass distance (× 0.9–1.1), inertia following as m·l²;
- gravity posture φ: the angle of the proximal segment to vertical (G = m g l_c sin(θ + φ));
- per-muscle activation / deactivation time constants (8–20 ms / 30–60 ms; Thelen 2003: 10 / 40);
- per-muscle tendon strain at F₀ (0.025–0.06; OpenSim default 0.033, Thelen's older adults 0.05);
- electrode gain drift within a session (slow, smooth, up to ± 30 %), crosstalk to first and second
  neighbours, mains at 50 and 60 Hz with odd harmonics, baseline noise;
- the reflex (stretch reflex and range guard) gains and delay used by :mod:`myoedge.body.drive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from myoedge.body.model import JointModel

DEG = math.pi / 180.0
FAMILIES = ("easy", "hard")


@dataclass(frozen=True)
class JointRanges:
    damping: tuple[float, float]  # N·m·s/rad, log-uniform
    stiffness: tuple[float, float]  # N·m/rad, log-uniform
    rest_angle: tuple[float, float]  # rad, uniform
    gravity_offset: tuple[float, float]  # rad, uniform
    work: tuple[float, float]  # rad, where intended postures lie


JOINT_RANGES = {
    "wrist": JointRanges(damping=(0.02, 0.5), stiffness=(0.1, 1.5), rest_angle=(-15 * DEG, 15 * DEG),
                         gravity_offset=(-110 * DEG, -70 * DEG), work=(-50 * DEG, 55 * DEG)),
    "elbow": JointRanges(damping=(0.02, 0.5), stiffness=(0.2, 3.0), rest_angle=(20 * DEG, 70 * DEG),
                         gravity_offset=(0.0, 45 * DEG), work=(15 * DEG, 120 * DEG)),
    "knee": JointRanges(damping=(0.1, 2.5), stiffness=(1.0, 10.0), rest_angle=(10 * DEG, 40 * DEG),
                        gravity_offset=(-45 * DEG, 0.0), work=(5 * DEG, 100 * DEG)),
}
JOINT_RANGES["elbow6"] = JOINT_RANGES["elbow"]


@dataclass(frozen=True)
class HardTraits:
    """What the hard family adds to a subject (per-muscle arrays in channel order)."""

    tau_act: np.ndarray  # s
    tau_deact: np.ndarray  # s
    tendon_strain: np.ndarray  # ε₀, tendon strain at maximum isometric force
    drift_amplitude: np.ndarray  # maximum relative electrode gain drift in a session, ≤ 0.3
    mains_volts: np.ndarray  # (2, 3): 50 / 60 Hz × harmonics 1, 3, 5, amplitudes (V)
    noise_volts: float  # baseline RMS
    reflex_gain: float  # excitation per rad of stretch (stretch reflex)
    reflex_velocity_gain: float  # excitation per rad/s of stretch velocity
    reflex_delay_s: float


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def draw_hard(model: JointModel, *, seed: int, index: int) -> tuple[JointModel, HardTraits, np.ndarray]:
    """(model with a redrawn segment, traits, crosstalk matrix) of a hard-family subject."""
    rng = np.random.default_rng([seed, index, sum(map(ord, model.joint)), 31337])
    r = JOINT_RANGES[model.joint]
    s = model.segment
    mass_scale, com_scale = rng.uniform(0.85, 1.2), rng.uniform(0.9, 1.1)
    seg = replace(s, mass=s.mass * mass_scale, com=s.com * com_scale,
                  inertia=s.inertia * mass_scale * com_scale**2,
                  damping=float(_log_uniform(rng, *r.damping)),
                  stiffness=float(_log_uniform(rng, *r.stiffness)),
                  rest_angle=rng.uniform(*r.rest_angle), gravity_offset=rng.uniform(*r.gravity_offset))
    n = len(model.muscles)
    crosstalk = np.zeros((n, n))
    for i in range(n - 1):
        crosstalk[i, i + 1], crosstalk[i + 1, i] = rng.uniform(0.03, 0.15, 2)
    for i in range(n - 2):
        crosstalk[i, i + 2], crosstalk[i + 2, i] = rng.uniform(0.0, 0.05, 2)
    mains = rng.uniform(2e-6, 20e-6, (2, 1)) * np.array([[1.0, 0.3, 0.1]]) * rng.uniform(0.5, 1.5, (2, 3))
    traits = HardTraits(tau_act=rng.uniform(0.008, 0.020, n), tau_deact=rng.uniform(0.030, 0.060, n),
                        tendon_strain=rng.uniform(0.025, 0.06, n), drift_amplitude=rng.uniform(0.1, 0.3, n),
                        mains_volts=mains, noise_volts=float(rng.uniform(2e-6, 6e-6)),
                        reflex_gain=float(rng.uniform(0.3, 0.8)),
                        reflex_velocity_gain=float(rng.uniform(0.02, 0.06)),
                        reflex_delay_s=float(rng.uniform(0.025, 0.045)))
    return replace(model, segment=seg), traits, crosstalk
