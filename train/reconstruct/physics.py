"""The musculoskeletal half of the neural musculoskeletal model (torch): personalised parameters,
CEINMS activation, Hill forces and the muscle torque, all differentiable.

Every curve is :mod:`myoedge.body`'s (array-agnostic) — :func:`~myoedge.body.activation.shape_activation`,
:func:`~myoedge.body.muscle.fiber_state_at`, :func:`~myoedge.body.muscle.hill_force` — evaluated on
tensors. The activation recursion runs as a causal convolution with its impulse response
(:func:`~myoedge.body.activation.impulse_response`, truncated where it has decayed below 1e-6).

Personalised parameters (per subject, 5 per muscle + 2, + 3): strength F₀ (0.5–2.5 × generic), optimal
fibre length and tendon slack length (± 20 %), pennation at optimal length (generic ± 5°, ≥ 0), the
activation shape factor A ∈ (−3, −0.05), and the recursion's coefficients C1, C2 ∈ (−0.85, −0.05)
(poles at 0.05–0.85 per sample: time constants up to 60 ms at 100 Hz); with the joint's passive moment,
its stiffness, offset and damping (:data:`JOINT_PASSIVE`). Each is lo + (hi − lo)·sigmoid(p), so no
step of the optimiser can leave its bounds.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from myoedge.body.activation import impulse_response, shape_activation
from myoedge.body.identify import PassiveMoment
from myoedge.body.model import JointModel
from myoedge.body.muscle import fiber_state_at, hill_force
from myoedge.body.tendon import FIBER_DAMPING

DEG = math.pi / 180.0
KERNEL = 100  # taps of the activation impulse response: 0.85^100 < 1e-7
PER_MUSCLE = ("strength", "l_opt", "l_ts", "pennation", "shape")
SHARED = ("c1", "c2")
# The joint's own passive moment P(θ, θ̇) = k θ + c + b θ̇ (its capsule, ligaments and skin: a spring and a
# damper; myoedge.body.identify.PassiveMoment's law, linear here). Inverse dynamics of a model without
# them carries it in the net moment, τ_ID = Σ r F − P, so a muscle model fitted to τ_ID alone books it on
# the muscles. (lo, hi, start): N·m/rad, N·m, N·m·s/rad;
# started inside the bounds (at a bound the sigmoid's gradient vanishes and nothing is learned).
JOINT_PASSIVE = {"stiffness": (0.0, 5.0, 0.5), "offset": (-5.0, 5.0, 0.0), "damping": (0.0, 1.0, 0.1)}


def bounds(model: JointModel, *, fixed_strength=(), joint_passive: bool = False
           ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per parameter: (lo, hi, generic) arrays — per muscle, or one value for C1, C2 (and, with
    ``joint_passive``, the joint's passive stiffness, offset and damping, :data:`JOINT_PASSIVE`).

    Muscles in ``fixed_strength`` (indices) keep their generic F₀ (lo = hi)."""
    ms = model.muscles
    f0 = np.array([m.max_force for m in ms])
    l_opt = np.array([m.optimal_fiber_length for m in ms])
    l_ts = np.array([m.tendon_slack_length for m in ms])
    pen = np.array([m.pennation for m in ms])
    n = len(ms)
    free = np.ones(n, bool)
    free[list(fixed_strength)] = False
    out = {
        "strength": (np.where(free, 0.5, 1.0) * f0, np.where(free, 2.5, 1.0) * f0, f0),
        "l_opt": (0.8 * l_opt, 1.2 * l_opt, l_opt),
        "l_ts": (0.8 * l_ts, 1.2 * l_ts, l_ts),
        "pennation": (np.maximum(pen - 5 * DEG, 0.0), pen + 5 * DEG, pen),
        "shape": (np.full(n, -3.0), np.full(n, -0.05), np.full(n, -1.0)),
        "c1": (np.array([-0.85]), np.array([-0.05]), np.array([-0.6])),
        "c2": (np.array([-0.85]), np.array([-0.05]), np.array([-0.6])),
    }
    if joint_passive:
        out.update({k: tuple(np.array([v]) for v in b) for k, b in JOINT_PASSIVE.items()})
    return out


class Personal(nn.Module):
    """A subject's bounded parameters; ``values()`` gives them in physical units."""

    def __init__(self, model: JointModel, *, fixed_strength=(), joint_passive: bool = False):
        super().__init__()
        self._bounds = bounds(model, fixed_strength=fixed_strength, joint_passive=joint_passive)
        self.max_velocity = torch.tensor([m.max_velocity for m in model.muscles], dtype=torch.float32)
        self.raw = nn.ParameterDict()
        for name, (lo, hi, start) in self._bounds.items():
            frac = np.clip((start - lo) / np.where(hi > lo, hi - lo, 1.0), 1e-3, 1 - 1e-3)
            self.raw[name] = nn.Parameter(torch.tensor(np.log(frac / (1 - frac)), dtype=torch.float32))
            self.register_buffer(f"lo_{name}", torch.tensor(lo, dtype=torch.float32))
            self.register_buffer(f"hi_{name}", torch.tensor(hi, dtype=torch.float32))

    def values(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, p in self.raw.items():
            lo, hi = getattr(self, f"lo_{name}"), getattr(self, f"hi_{name}")
            out[name] = lo + (hi - lo) * torch.sigmoid(p)
        return out

    def report(self) -> dict[str, dict[str, list[float]]]:
        """Values, generic values and bounds of every parameter (JSON-able)."""
        with torch.no_grad():
            v = self.values()
        return {name: {"value": v[name].tolist(), "generic": g.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
                for name, (lo, hi, g) in self._bounds.items()}


def activation(e: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Muscle activation a (B, T, M) of excitations e (B, T, M), each sequence starting from rest."""
    h = impulse_response(p["c1"][0], p["c2"][0], KERNEL)  # (K,)
    b, t, m = e.shape
    x = torch.nn.functional.pad(e.transpose(1, 2).reshape(b * m, 1, t), (KERNEL - 1, 0))
    u = torch.nn.functional.conv1d(x, h.flip(0).view(1, 1, -1)).view(b, m, t).transpose(1, 2)
    return shape_activation(u.clamp(0.0, 1.0), p["shape"])


def forces(a: torch.Tensor, l_mt: torch.Tensor, l_mt_dot: torch.Tensor, p: dict[str, torch.Tensor],
           max_velocity: torch.Tensor) -> torch.Tensor:
    """Hill forces (N) along the tendons, rigid tendon, personalised parameters."""
    l, v, cos_a = fiber_state_at(l_mt, l_mt_dot, l_opt=p["l_opt"], l_ts=p["l_ts"], pennation=p["pennation"],
                                 v_max=max_velocity)
    return hill_force(a, l, v, cos_a, max_force=p["strength"], damping=FIBER_DAMPING)


def torque(e, l_mt, l_mt_dot, moment_arms, personal: Personal, kinematics=None):
    """(τ (B, T) N·m, activations (B, T, M)) from excitations e (B, T, M): τ = Σ r·F, less the joint's
    passive moment P(θ, θ̇) where ``personal`` has one (``kinematics`` (B, T, ≥ 2): θ, θ̇)."""
    p = personal.values()
    a = activation(e, p)
    tau = (moment_arms * forces(a, l_mt, l_mt_dot, p, personal.max_velocity)).sum(-1)
    if "stiffness" in p:
        law = PassiveMoment(elastic=(p["offset"][0], p["stiffness"][0]), damping=p["damping"][0],
                            rmse=math.nan, moment_rms=math.nan)
        tau = tau - law.moment(kinematics[..., 0], kinematics[..., 1])
    return tau, a
