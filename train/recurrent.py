"""The recurrent edge model: a GRU stepped once per model step; its hidden vector is the model state.

Per step the current envelope frame (÷ MVC, standardised) enters a single-layer GRU of ``hidden`` units;
the head sees the new hidden vector and the frame itself (forces follow the envelope within tens of
milliseconds, the angle integrates the net moment over seconds, which only the state can carry) and gives
the normalised outputs (1 + M). The state contract's torch protocol (docs/training.md):

* ``state_size`` = ``hidden``; ``initial_state()`` zeros (1, S) — training starts every chunk from there
  after a burn-in, so the network learns to recover from it;
* ``step(envelopes (1, W, C), state (1, S)) -> θ (1, 1) rad, F (1, M) N, state_next (1, S)``: the last
  frame of the window, the function exported to ONNX;
* ``forward(envelopes (B, T, C), state (B, S) | None) -> (normalised outputs (B, T, 1 + M), state (B, S))``
  over a whole sequence, equal to stepping (the same ``nn.GRU`` does both).
"""

from __future__ import annotations

import torch
from torch import nn

from myoedge.train.models import ModelConfig, Normalised, SharedDropout


def tanh_head(width: int, *, hidden: int, blocks: int, n_out: int) -> nn.Sequential:
    """The recurrent models' output head: ``blocks`` Linear+Tanh layers of ``hidden``, then a linear layer."""
    layers = []
    for _ in range(blocks):
        layers += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class RecurrentNet(Normalised):
    """GRU over envelope frames; head on [hidden, frame]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        c, h = cfg.n_channels, cfg.hidden
        self.gru = nn.GRU(c, h, batch_first=True)
        self.drop = SharedDropout(cfg.dropout, time_dim=1)
        self.head = tanh_head(h + c, hidden=h, blocks=cfg.fc_blocks, n_out=1 + cfg.n_muscles)

    @property
    def state_size(self) -> int:
        return self.config.hidden

    def initial_state(self) -> torch.Tensor:
        return torch.zeros(1, self.state_size)

    def forward(self, envelopes: torch.Tensor, state: torch.Tensor | None = None):
        """Normalised outputs for every step of ``envelopes`` (B, T, C) and the state after the last."""
        x = (envelopes - self.env_mean) / self.env_std
        if state is None:
            state = self.initial_state().expand(x.shape[0], -1)
        h, last = self.gru(x, state.unsqueeze(0).contiguous())
        return self.head(torch.cat([self.drop(h), x], dim=-1)), last[0]

    def step(self, envelopes: torch.Tensor, state: torch.Tensor):
        """One model step on the newest frame of ``envelopes`` (1, W, C): θ (1, 1), F (1, M), state_next."""
        out, state_next = self(envelopes[:, -1:], state)
        theta, forces = self.to_physical(out[:, -1])
        return theta.unsqueeze(-1), forces, state_next
