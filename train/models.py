"""The networks: the paper's PI-CNN, its plain-CNN baseline, and the causal edge model.

``build_model(ModelConfig)`` is the only constructor; the checkpoint carries the ``ModelConfig`` that
rebuilt it (nanoGPT style). Every network holds its input/output normalisation as buffers (set by
:mod:`myoedge.train.fit` from the training set) and returns *normalised* outputs, shape (..., 1 + M):
column 0 is (θ − θ_mean)/θ_std, columns 1… are (F − F_mean)/F_std; :meth:`Normalised.to_physical`
undoes that, and the exported graph includes it.

* ``pi-cnn`` (Zhang et al. 2023): per time step the vector [normalised time, envelopes(t)] is a
  1-channel signal over which Conv1d(k=3, 128 filters) slides, then ReLU, BatchNorm, dropout 0.3, two
  fully connected blocks of 128 (ReLU, BatchNorm, dropout 0.3) and a linear head. A training batch is
  one training piece (at most ``TrainConfig.max_steps`` steps of it), its time steps being the batch,
  or under the paper's protocol several whole cycles, each with its own dropout mask.
* ``cnn``: the same with 3 conv blocks and 3 FC blocks (the paper's baseline; trained without L_P).
* ``edge``: a causal temporal CNN — dilated convolutions (k=3, dilations 1 … 32, receptive field 127
  steps, 1.27 s at 100 Hz, about one gait cycle) with residual connections, a pointwise head, and a
  fixed causal Hann FIR over the last ``smooth`` = 31 θ outputs. The network learns to lead by the
  filter's delay (150 ms; the EMG leads the motion), and the angle it publishes has no step-to-step
  jitter for the second difference to turn into θ̈ (docs/training.md). W = 127 + 31 − 1 = 157 equals
  the receptive field, so an output depends on exactly the window the device buffers.

Dropout masks are shared along time (one mask per sequence, as in variational dropout): with
independent masks per step the predicted θ would carry white noise that the second difference in
the physics term amplifies by 1/dt², drowning L_P.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from myoedge.ground.errors import InputError
from myoedge.train.presets import KINDS, STATEFUL_KINDS
from myoedge.train.presets import preset as preset_record


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Everything that fixes a network's shape (the checkpoint stores it)."""

    preset: str
    n_channels: int
    n_muscles: int
    kind: str = ""  # per-step | window | recurrent (default: the preset's)
    filters: int = 128
    conv_blocks: int = 1
    hidden: int = 128
    fc_blocks: int = 2
    dropout: float = 0.3
    kernel: int = 3
    dilations: tuple[int, ...] = ()
    smooth: int = 1  # edge: causal Hann FIR over this many consecutive outputs (1: none)
    smooth_all: bool = False  # edge: smooth the forces too, not only θ
    force_stage: bool = False  # observer: forces shaped by its integrated angle and velocity
    # (force-length, force-velocity, passive force: myoedge.train.force_stage)
    members: int = 1  # stateful kinds: the mean of this many networks of this shape (myoedge.train.ensemble)

    def __post_init__(self):
        record = preset_record(self.preset)
        if not self.kind:
            object.__setattr__(self, "kind", record.kind)
        if self.kind not in KINDS:
            raise InputError(f"model kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("n_channels", "n_muscles", "filters", "conv_blocks", "hidden", "kernel", "smooth",
                     "members"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"model {name} must be a positive int, got {v!r}")
        if isinstance(self.fc_blocks, bool) or not isinstance(self.fc_blocks, int) or self.fc_blocks < 0:
            raise InputError(f"model fc_blocks must be an int >= 0, got {self.fc_blocks!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"model dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.force_stage, bool):
            raise InputError(f"model force_stage must be true or false, got {self.force_stage!r}")
        if self.force_stage and self.kind != "observer":
            raise InputError(f"model force_stage is for the observer kind, not {self.kind!r}")
        if self.force_stage and self.n_channels != self.n_muscles:
            raise InputError(f"model force_stage pairs every muscle with its own envelope channel; got "
                             f"{self.n_channels} channels for {self.n_muscles} muscles")
        if self.members > 1 and self.kind not in STATEFUL_KINDS:
            raise InputError(f"model members > 1 averages stateful networks, not the {self.kind!r} kind")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        if self.kind == "window" and (not self.dilations or min(self.dilations) < 1):
            raise InputError(f"the window model needs dilations >= 1, got {self.dilations}")

    @classmethod
    def for_preset(cls, preset: str, *, n_channels: int, n_muscles: int, **overrides) -> ModelConfig:
        """The preset's published (pi-cnn, cnn) or chosen (edge…) sizes, with ``overrides`` applied."""
        record = preset_record(preset)
        return cls(preset=preset, kind=record.kind, n_channels=n_channels, n_muscles=n_muscles,
                   **{**record.model, **overrides})

    @property
    def window(self) -> int:
        """Envelope steps one output depends on: the receptive field (1 for per-step and recurrent)."""
        if self.kind != "window":
            return 1
        return 1 + (self.kernel - 1) * sum(self.dilations) + self.smooth - 1

    @property
    def stateful(self) -> bool:
        return self.kind in STATEFUL_KINDS

    @property
    def uses_time(self) -> bool:
        """The paper's models take the normalised time step as an input; the edge models do not."""
        return self.kind == "per-step"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown model config keys {unknown}")
        if "kind" not in d and d.get("preset") == "edge":
            d = {**d, "kind": "window"}  # run folders from before the presets record: edge was the TCN
        return cls(**{**d, "dilations": tuple(d.get("dilations", ()))})


class SharedDropout(nn.Module):
    """Dropout whose mask is drawn once per call and shared by every row along ``time_dim``.

    ``lengths`` (``time_dim`` 0 only) splits the rows into consecutive sequences of those lengths, each
    with its own mask: a batch of several sequences (the paper protocol's cycles) drops units per
    sequence, as dropout per sample does, while each sequence stays smooth in time for the physics term.
    """

    def __init__(self, p: float, *, time_dim: int):
        super().__init__()
        self.p, self.time_dim = p, time_dim

    def forward(self, x: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if lengths is not None:
            if self.time_dim != 0 or sum(lengths) != x.shape[0]:
                raise InputError(f"dropout lengths {list(lengths)} must split the {x.shape[0]} rows of "
                                 f"dimension 0 (time_dim {self.time_dim})")
            mask = torch.empty((len(lengths), *x.shape[1:]), dtype=x.dtype, device=x.device)
            mask = mask.bernoulli_(1.0 - self.p) / (1.0 - self.p)
            return x * mask.repeat_interleave(torch.as_tensor(lengths, device=x.device), dim=0)
        shape = list(x.shape)
        shape[self.time_dim] = 1
        if self.time_dim != 0:
            shape[0] = x.shape[0]  # one mask per sequence of the batch
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask


class FeatureConv(nn.Conv1d):
    """``nn.Conv1d`` (same parameters, same state dict) computed as one matrix product over all windows.

    The per-step networks convolve along a very short axis (the C + 1 inputs of one time step) with
    thousands of time steps as the batch; there, unfolding the windows and multiplying once is 1.75×
    faster per forward + backward pass on one CPU thread than the convolution kernel (128 filters,
    length 3, 2000 steps), with the same result to float rounding. A whole ``cnn`` fit on two 1969-step
    knee trials went from 0.26 to 0.20 s per iteration.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, _ = x.shape
        k = self.kernel_size[0]
        pad = self.padding[0]
        windows = torch.nn.functional.pad(x, (pad, pad)).unfold(2, k, 1)  # (N, C_in, L_out, k)
        length = windows.shape[2]
        flat = windows.permute(0, 2, 1, 3).reshape(n * length, -1)
        out = flat @ self.weight.reshape(self.out_channels, -1).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(n, length, self.out_channels).transpose(1, 2)


class Normalised(nn.Module):
    """Holds the normalisation buffers shared by all presets."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        c, m = cfg.n_channels, cfg.n_muscles
        for name, size in (("env_mean", c), ("env_std", c), ("time_mean", 1), ("time_std", 1),
                           ("theta_mean", 1), ("theta_std", 1), ("force_mean", m), ("force_std", m)):
            self.register_buffer(name, torch.zeros(size) if name.endswith("mean") else torch.ones(size))

    def to_physical(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (..., 1 + M) -> θ (...) rad and F (..., M) N."""
        theta = out[..., 0] * self.theta_std[0] + self.theta_mean[0]
        return theta, out[..., 1:] * self.force_std + self.force_mean


def start_states(model: Normalised, loads) -> torch.Tensor:
    """(B, S) states that sequences start from, one per load in the hand ``loads`` (kg): the model's
    initial state, holding the load where the model carries one (the observer's ``LOAD_INDEX``)."""
    index = getattr(model, "LOAD_INDEX", None)
    state = model.initial_state().expand(len(loads), -1).clone()
    if index is not None:
        state[:, index] = torch.tensor([float(x) for x in loads])
    return state


class PerStepCNN(Normalised):
    """The paper's network (pi-cnn / cnn): input (N, C) envelopes and (N,) time, output (N, 1 + M)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        length, layers, width = cfg.n_channels + 1, [], 1
        for _ in range(cfg.conv_blocks):
            layers += [FeatureConv(width, cfg.filters, cfg.kernel, padding=cfg.kernel // 2), nn.ReLU(),
                       nn.BatchNorm1d(cfg.filters), SharedDropout(cfg.dropout, time_dim=0)]
            width = cfg.filters
            length = length + 2 * (cfg.kernel // 2) - cfg.kernel + 1
        layers.append(nn.Flatten())
        width = width * length
        for _ in range(cfg.fc_blocks):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.BatchNorm1d(cfg.hidden),
                       SharedDropout(cfg.dropout, time_dim=0)]
            width = cfg.hidden
        layers.append(nn.Linear(width, 1 + cfg.n_muscles))
        self.net = nn.Sequential(*layers)

    def forward(self, envelopes: torch.Tensor, time: torch.Tensor,
                lengths: list[int] | None = None) -> torch.Tensor:
        """``lengths``: the steps are consecutive sequences of these lengths, one dropout mask each
        (default: one sequence)."""
        x = (envelopes - self.env_mean) / self.env_std
        t = ((time - self.time_mean) / self.time_std).unsqueeze(-1)
        x = torch.cat([t, x], dim=-1).unsqueeze(1)
        for layer in self.net:
            x = layer(x, lengths) if isinstance(layer, SharedDropout) else layer(x)
        return x


class CausalTCN(Normalised):
    """The edge model: input (B, T, C) envelopes, output (B, T − W + 1, 1 + M), one per full window."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.convs = nn.ModuleList()
        width = cfg.n_channels
        for d in cfg.dilations:
            self.convs.append(nn.Conv1d(width, cfg.filters, cfg.kernel, dilation=d))
            width = cfg.filters
        self.drop = SharedDropout(cfg.dropout, time_dim=2)
        head = []
        for _ in range(cfg.fc_blocks):
            head += [nn.Conv1d(width, cfg.hidden, 1), nn.ReLU()]
            width = cfg.hidden
        head.append(nn.Conv1d(width, 1 + cfg.n_muscles, 1))
        self.head = nn.Sequential(*head)
        taps = torch.hann_window(cfg.smooth + 2, periodic=False, dtype=torch.float32)[1:-1]
        self.register_buffer("smoother", (taps / taps.sum()).view(1, 1, -1), persistent=False)

    def forward(self, envelopes: torch.Tensor) -> torch.Tensor:
        x = ((envelopes - self.env_mean) / self.env_std).transpose(1, 2)
        for i, conv in enumerate(self.convs):
            y = torch.relu(conv(x))
            x = y + x[..., x.shape[-1] - y.shape[-1]:] if i > 0 else y
        out = self.head(self.drop(x))
        if self.config.smooth > 1:
            n = out.shape[1] if self.config.smooth_all else 1
            kernel = self.smoother.expand(n, 1, -1)
            smoothed = torch.nn.functional.conv1d(out[:, :n], kernel, groups=n)
            out = torch.cat([smoothed, out[:, n:, self.config.smooth - 1:]], dim=1)
        return out.transpose(1, 2)


def build_model(config: ModelConfig) -> Normalised:
    """The network for ``config`` (weights from the current torch RNG state)."""
    if not isinstance(config, ModelConfig):
        raise InputError(f"build_model needs a ModelConfig, got {type(config).__name__}")
    if config.members > 1:
        from myoedge.train.ensemble import EnsembleNet

        return EnsembleNet(config)
    if config.kind == "recurrent":
        from myoedge.train.recurrent import RecurrentNet

        return RecurrentNet(config)
    if config.kind == "observer":
        from myoedge.train.observer import ObserverNet

        return ObserverNet(config)
    if config.kind == "state-space":
        from myoedge.train.ssm import StateSpaceNet

        return StateSpaceNet(config)
    return CausalTCN(config) if config.kind == "window" else PerStepCNN(config)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
