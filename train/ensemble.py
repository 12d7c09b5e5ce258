"""An ensemble of stateful edge networks: the mean of K networks of one shape, each fitted with its own seed.

Why: on recordings from an independent simulator the edge observer's held-out angle moves by about
±0.06 in CC with its training seed alone (docs/results/opensim). The mean of K fits keeps what they
share and averages out what is each fit's own. Measured there, the fits' angle errors are mostly
shared: over twelve data sets two members gave a held-out θ CC of 0.896 against one fit's 0.899 and
the same lowest force CC (0.929), so the shipped presets stay single fits and this is an option
(``myoedge train --members K``). The price is K times the arithmetic per step (the compiled CPU graph:
6.6 µs one member, 12.3 µs two), and the fits run side by side where the process may use more cores.

To everything downstream the ensemble is one stateful network (the state contract of
docs/training.md): its state is the members' states side by side, its ``forward`` and ``step`` the
mean of theirs, so the bundle, ONNX Runtime, the compiled CPU graph and TensorRT see one graph with one
state tensor, made of one member's operators. A load held in the hand is one element of that state
(``LOAD_INDEX``, the first member's own), which every step hands to the other members, so the runtime
sets it once (``myoedge run --load-kg``). The mean is written as sums and a product (no ReduceMean),
operators the compiled CPU graph reads.

Only networks fitted on the same training data are averaged: their normalisation (the training set's
means and spreads) is the same, so the mean of their normalised outputs is the mean of the physical
ones. :func:`assemble` checks that.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from myoedge.ground.errors import InputError
from myoedge.train.models import Normalised, build_model

NORMALISATION = ("env_mean", "env_std", "time_mean", "time_std", "theta_mean", "theta_std", "force_mean",
                 "force_std")


class EnsembleNet(Normalised):
    """The mean of ``config.members`` networks of the shape ``config`` gives with one member."""

    def __init__(self, cfg):
        super().__init__(cfg)
        single = dataclasses.replace(cfg, members=1)
        self.members = nn.ModuleList([build_model(single) for _ in range(cfg.members)])
        self.sizes = [m.state_size for m in self.members]
        index = getattr(self.members[0], "LOAD_INDEX", None)
        if index is not None:
            self.LOAD_INDEX = index  # the first member's; the others' copies follow it every step

    @property
    def state_size(self) -> int:
        return sum(self.sizes)

    def initial_state(self) -> torch.Tensor:
        return torch.cat([m.initial_state() for m in self.members], dim=-1)

    def _split(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Each member's part of ``state`` (B, S), the load in the hand (where carried) the first member's."""
        parts = list(torch.split(state, self.sizes, dim=-1))
        index = getattr(self, "LOAD_INDEX", None)
        if index is not None:
            load = parts[0][:, index:index + 1]
            parts[1:] = [torch.cat([p[:, :index], load, p[:, index + 1:]], dim=-1) for p in parts[1:]]
        return parts

    def _mean(self, values: list[torch.Tensor]) -> torch.Tensor:
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total * (1.0 / len(values))

    def forward(self, envelopes: torch.Tensor, state: torch.Tensor | None = None):
        """The members' mean normalised outputs for every step of ``envelopes`` (B, T, C), and the state
        after the last."""
        if state is None:
            state = self.initial_state().expand(envelopes.shape[0], -1)
        results = [m(envelopes, s) for m, s in zip(self.members, self._split(state), strict=True)]
        return self._mean([out for out, _ in results]), torch.cat([s for _, s in results], dim=-1)

    def step(self, envelopes: torch.Tensor, state: torch.Tensor):
        """One model step on the newest frame of ``envelopes`` (1, W, C): θ (1, 1), F (1, M), state_next."""
        results = [m.step(envelopes, s) for m, s in zip(self.members, self._split(state), strict=True)]
        return (self._mean([r[0] for r in results]), self._mean([r[1] for r in results]),
                torch.cat([r[2] for r in results], dim=-1))


def assemble(members: list, config) -> object:
    """One :class:`~myoedge.train.run.TrainedModel` whose network is the mean of the trained ``members``
    (fitted on the same data, with the same shape); ``config`` its training config. Its info is the first
    member's, with each member's seed, training time and final loss under ``members``; its history the
    members' mean loss per iteration."""
    from myoedge.train.run import TrainedModel  # run imports the models; imported late

    first = members[0]
    shapes = {dataclasses.replace(m.model_config, members=1) for m in members}
    if len(shapes) != 1:
        raise InputError("an ensemble's members must share one network shape")
    for name in NORMALISATION:
        values = [getattr(m.model, name) for m in members]
        if any(not torch.equal(values[0], v) for v in values[1:]):
            raise InputError(f"an ensemble's members must be fitted on the same data ({name} differs)")
    mcfg = dataclasses.replace(first.model_config, members=len(members))
    net = build_model(mcfg)
    with torch.no_grad():
        for name in NORMALISATION:
            getattr(net, name).copy_(getattr(first.model, name))
    for slot, member in zip(net.members, members, strict=True):
        slot.load_state_dict(member.model.state_dict())
    net.eval()
    info = {**first.info,
            "members": [{"seed": m.info["seed"], "train_seconds": m.info["train_seconds"],
                         "final_loss": m.history[-1] if m.history else None} for m in members]}
    return TrainedModel(model=net, config=config, model_config=mcfg, joint=first.joint, muscles=first.muscles,
                        rate_hz=first.rate_hz, envelope_config=first.envelope_config,
                        history=_mean_history([m.history for m in members]), info=info, samples=first.samples)


def _mean_history(histories: list[list[dict]]) -> list[dict]:
    """Per iteration, each loss term's mean over the members (their histories have one length)."""
    steps = min(len(h) for h in histories)
    return [{k: float(np.mean([h[i][k] for h in histories])) for k in histories[0][i]} for i in range(steps)]
