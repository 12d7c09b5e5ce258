"""A diagonal linear state-space edge model: banks of leaky integrators with learned time constants.

The angle of a heavily damped joint is the net moment integrated over seconds; a bank of first-order
filters with time constants from tens of milliseconds to tens of seconds can hold exactly that, and a
linear recurrence trains in parallel over a chunk (a matrix product) instead of step by step.

Per step, with x the standardised envelope frame:

    u₁ = W_in x                      h₁ ← λ₁ ⊙ h₁ + (1 − λ₁) ⊙ u₁
    z  = tanh(W_z [h₁, x])           h₂ ← λ₂ ⊙ h₂ + (1 − λ₂) ⊙ z
    out = head([h₂, z, x])           (normalised θ and forces, as every preset)

λ = exp(−1/τ), τ in model steps, learned in log space and initialised log-spaced over 2 … 3000 steps
(20 ms … 30 s at 100 Hz). State = [h₁, h₂] (2 · ``hidden`` floats), initial state zeros. The state
contract's torch protocol: ``forward(envelopes (B, T, C), state (B, S) | None) -> (outputs, state)``
computes the recurrence in blocks of ``BLOCK`` steps (all blocks one matrix product, the state carried
from block to block), and ``step`` is the same recurrence for one step — the function exported to ONNX.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from myoedge.train.models import ModelConfig, Normalised
from myoedge.train.recurrent import tanh_head

BLOCK = 16  # steps per parallel block of the recurrence
TAU_STEPS = (2.0, 3000.0)  # initial range of the time constants, in model steps


class _Decay(nn.Module):
    """A bank of ``n`` first-order low-passes h ← λ h + (1 − λ) u with learned time constants."""

    def __init__(self, n: int):
        super().__init__()
        lo, hi = (math.log(v) for v in TAU_STEPS)
        self.log_tau = nn.Parameter(torch.linspace(lo, hi, n))

    def lam(self) -> torch.Tensor:
        return torch.exp(-torch.exp(-self.log_tau.clamp(min=0.0, max=12.0)))

    def scan(self, u: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All states (B, T, n) for inputs ``u`` (B, T, n) from ``h0`` (B, n), and the last state.

        Two levels: within blocks of ``BLOCK`` steps the states from rest are one matrix product with the
        (BLOCK, BLOCK) decay kernel; the state at each block's start is carried block to block."""
        lam = self.lam()
        log_lam = torch.log(lam)
        b, t_len, n = u.shape
        k = -(-t_len // BLOCK)
        v = torch.nn.functional.pad(u * (1.0 - lam), (0, 0, 0, k * BLOCK - t_len)).reshape(b, k, BLOCK, n)
        t = torch.arange(BLOCK, dtype=u.dtype)
        lag = t[:, None] - t[None, :]  # (t, s)
        kernel = torch.exp(lag.clamp(min=0)[..., None] * log_lam) * (lag >= 0)[..., None]  # (t, s, n)
        local = torch.einsum("tsn,bksn->bktn", kernel, v)  # states of each block from rest
        grow = torch.exp((t[:, None] + 1) * log_lam)  # (BLOCK, n): a start state's share at each step
        starts, h = [], h0
        for i in range(k):
            starts.append(h)
            h = grow[-1] * h + local[:, i, -1]
        states = local + grow * torch.stack(starts, dim=1)[:, :, None]
        states = states.reshape(b, k * BLOCK, n)[:, :t_len]
        return states, states[:, -1]

    def step(self, u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        lam = self.lam()
        return lam * h + (1.0 - lam) * u


class StateSpaceNet(Normalised):
    """Two diagonal linear recurrences with a tanh stage between; head on [h₂, z, x]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        c, d = cfg.n_channels, cfg.hidden
        self.inp = nn.Linear(c, d)
        self.decay1, self.decay2 = _Decay(d), _Decay(d)
        self.mix = nn.Linear(d + c, d)
        self.head = tanh_head(2 * d + c, hidden=d, blocks=cfg.fc_blocks, n_out=1 + cfg.n_muscles)

    @property
    def state_size(self) -> int:
        return 2 * self.config.hidden

    def initial_state(self) -> torch.Tensor:
        return torch.zeros(1, self.state_size)

    def forward(self, envelopes: torch.Tensor, state: torch.Tensor | None = None):
        x = (envelopes - self.env_mean) / self.env_std
        if state is None:
            state = self.initial_state().expand(x.shape[0], -1)
        d = self.config.hidden
        h1, last1 = self.decay1.scan(self.inp(x), state[:, :d])
        z = torch.tanh(self.mix(torch.cat([h1, x], dim=-1)))
        h2, last2 = self.decay2.scan(z, state[:, d:])
        return self.head(torch.cat([h2, z, x], dim=-1)), torch.cat([last1, last2], dim=-1)

    def step(self, envelopes: torch.Tensor, state: torch.Tensor):
        """One model step on the newest frame of ``envelopes`` (1, W, C): θ (1, 1), F (1, M), state_next."""
        x = (envelopes[:, -1] - self.env_mean) / self.env_std
        d = self.config.hidden
        h1 = self.decay1.step(self.inp(x), state[:, :d])
        z = torch.tanh(self.mix(torch.cat([h1, x], dim=-1)))
        h2 = self.decay2.step(z, state[:, d:])
        theta, forces = self.to_physical(self.head(torch.cat([h2, z, x], dim=-1)))
        return theta.unsqueeze(-1), forces, torch.cat([h1, h2], dim=-1)
