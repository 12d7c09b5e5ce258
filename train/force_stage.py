"""A Hill-type force stage on the observer's own kinematics: force-length, force-velocity, passive force.

A muscle's force is not its envelope alone. At one activation it varies with fibre length (the active
force-length curve) and with fibre velocity (force-velocity: a shortening muscle pulls less, a
lengthening one more), and a stretched muscle pulls with no activation at all (the passive curve).
Fibre length and velocity are functions of the joint angle and its rate. On an OpenSim elbow a linear
fit of the biceps force from its activation explains 26 % of its variance, 47 % with the angle added
and 79 % with the angular velocity too. The observer integrates θ and θ̇ at every step, so the force it
gives for muscle n is shaped by them, as in a Hill model with the lengths written as functions of θ:

    F_n = σ_n · [softplus(u_n) · exp(α_n · φ) + softplus(β_n0 + β_n · φ)],   φ = [θ̃, θ̃², s, s²]

with u_n = w_n + g_n e_n the drive of muscle n: the network's term w_n plus its own MVC-normalised
envelope e_n times a gain g_n ≥ 0 started at the training data's least-squares F_n/e_n (so the force
grows with the EMG past the levels seen in training instead of saturating with the network's tanh
layers: an OpenSim wrist's held-out part co-contracts harder than any training part),
θ̃ = (θ − θ_mean)/θ_std the standardised angle, ω̃ = θ̇ · VELOCITY_S / θ_std (a move across one
standard deviation of the angle in VELOCITY_S is 1), s = tanh(ω̃), and σ_n the training forces'
standard deviation. The logarithm of the active shape is quadratic in the angle (a Gaussian
force-length curve) and in s: Hill's force-velocity curve is not symmetric in its logarithm — a
shortening muscle loses force steeply, a lengthening one gains it and saturates at 1.5–1.8 times its
isometric force — which a term odd in the velocity alone cannot give and s² can (over three seeds on
the OpenSim elbow it raised the angle's CC by 0.006–0.023 and the brachialis' and long triceps' force
CC by about 0.01; docs/results/opensim). The forces then act back on the motion through the equation
of motion (force-velocity is the muscles' own damping), so the step is a small forward dynamic
simulation. At initialisation
α = β = 0 and β_n0 = PASSIVE_BIAS: ``σ · softplus(u)`` plus a small passive floor; training shapes the
curves, and the fit starts the gains g_n from the training data (10 numbers per muscle in all).
"""

from __future__ import annotations

import torch
from torch import nn

FEATURES = 4  # θ̃, θ̃², tanh(ω̃), tanh²(ω̃)
VELOCITY_S = 0.1  # s: the time scale that makes the angular velocity dimensionless
PASSIVE_BIAS = -4.0  # softplus(−4) ≈ 0.018 force standard deviations of passive force at the start
MAX_EXPONENT = 3.0  # the active shape stays within e^±3 of the drive's force
EMG_GAIN_INIT = -4.0  # softplus(−4) ≈ 0.018 until the fit sets the gains from the training data


class KinematicForceStage(nn.Module):
    """The stage's parameters: per muscle, the active shape's weights α, the passive curve's β and the
    gain of its own envelope in the drive."""

    def __init__(self, n_muscles: int):
        super().__init__()
        self.active = nn.Parameter(torch.zeros(n_muscles, FEATURES))
        passive = torch.zeros(n_muscles, 1 + FEATURES)
        passive[:, 0] = PASSIVE_BIAS
        self.passive = nn.Parameter(passive)
        self.emg_gain = nn.Parameter(torch.full((n_muscles,), EMG_GAIN_INIT))  # softplus⁻¹ of the gain

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A run saved with fewer features (before tanh²(ω̃)) loads with zero weights on the new ones."""
        for key, first in (("active", 0), ("passive", 1)):
            saved = state_dict.get(prefix + key)
            if saved is not None and saved.shape[1] < first + FEATURES:
                state_dict[prefix + key] = nn.functional.pad(saved, (0, first + FEATURES - saved.shape[1]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def drive(self, network: torch.Tensor, envelopes: torch.Tensor) -> torch.Tensor:
        """The drives u (…, M): the network's term plus g_n · e_n, muscle n's own MVC-normalised envelope
        e_n (…, M) times a gain g_n = softplus(·) ≥ 0 — the part that grows with the EMG however far
        past the training data's levels it goes (the network's term is bounded by its tanh layers)."""
        return network + nn.functional.softplus(self.emg_gain) * envelopes

    @torch.no_grad()
    def set_emg_gain(self, gain) -> None:
        """Start the envelope gains at ``gain`` (M,) force standard deviations per unit envelope."""
        g = torch.as_tensor(gain, dtype=torch.float32).clamp(min=1e-3, max=50.0)
        self.emg_gain.copy_(g + torch.log(-torch.expm1(-g)))  # softplus⁻¹

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(FEATURES, 2M) weights [α | β] applied to φ, and the passive biases β_0 (M,)."""
        return torch.cat([self.active, self.passive[:, 1:]]).T, self.passive[:, 0]


def staged_forces(drive_force: torch.Tensor, angle: torch.Tensor, velocity: torch.Tensor,
                  weights: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor,
                  limit: float = MAX_EXPONENT) -> torch.Tensor:
    """Forces (B, M) in N from ``drive_force`` = softplus(u) (B, M) and the standardised angle and
    velocity (B,), with :meth:`KinematicForceStage.weights`; ``scale`` σ (M,)."""
    m = bias.shape[0]
    speed = torch.tanh(velocity)
    phi = torch.stack([angle, angle * angle, speed, speed * speed], dim=-1)
    z = phi @ weights
    shape = torch.exp(torch.clamp(z[:, :m], -limit, limit))
    return scale * (drive_force * shape + nn.functional.softplus(bias + z[:, m:]))
