"""The neural musculoskeletal model (NMM) after Kumar, Tripura, Chakraborty & Roy (arXiv 2503.05201).

A causal encoder reads [θ, θ̇, θ̈, load, measured surface envelopes] and writes the excitations of all
muscles in [0, 1]; the physics (:mod:`.physics`) turns them into activations, Hill forces and the muscle
torque with the subject's personalised parameters. The loss

    λ_d · MSE(e_measured, measured envelopes) + λ_p · MSE(τ_model, τ_ID) / var(τ_ID) + λ_e · mean(e_hidden²)

has no EMG term for the hidden channels: the torque shapes them, and the small least-effort term λ_e
removes what the torque cannot see (a flexor and an extensor both hidden can co-contract freely
without changing τ; the paper's loss leaves that open). One model (encoder + parameters) per
subject. Encoders: ``gru`` (one GRU layer), ``tcn`` (dilated causal convolutions) and ``transformer``
(causal self-attention over the last ``ATTENTION_SPAN`` steps, after a causal convolution that gives it
local order).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from myoedge.ground.errors import InputError
from myoedge.train.reconstruct.config import NmmConfig
from myoedge.train.reconstruct.data import SubjectData, Trial
from myoedge.train.reconstruct.physics import Personal, torque

ATTENTION_SPAN = 64


class CausalConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, dilation=1):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)

    def forward(self, x):  # (B, C, T)
        return self.conv(nn.functional.pad(x, (self.pad, 0)))


class Tcn(nn.Module):
    def __init__(self, n_in, width):
        super().__init__()
        self.inp = CausalConv(n_in, width, 1)
        self.blocks = nn.ModuleList(CausalConv(width, width, 3, d) for d in (1, 2, 4, 8, 16))

    def forward(self, x):  # (B, T, F) -> (B, T, width)
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = h + torch.tanh(block(h))
        return h.transpose(1, 2)


class Gru(nn.Module):
    def __init__(self, n_in, width):
        super().__init__()
        self.gru = nn.GRU(n_in, width, batch_first=True)

    def forward(self, x):
        return self.gru(x)[0]


class Transformer(nn.Module):
    def __init__(self, n_in, width):
        super().__init__()
        self.local = CausalConv(n_in, width, 5)
        layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True)
        self.body = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, x):
        t = x.shape[1]
        h = self.local(x.transpose(1, 2)).transpose(1, 2)
        i = torch.arange(t)
        lag = i[:, None] - i[None, :]
        mask = (lag < 0) | (lag >= ATTENTION_SPAN)  # True: may not attend
        return self.body(h, mask=mask)


class Nmm(nn.Module):
    def __init__(self, data: SubjectData, cfg: NmmConfig, *, norm: tuple[np.ndarray, np.ndarray]):
        super().__init__()
        n_in = 4 + len(data.measured)
        self.encoder = {"gru": Gru, "tcn": Tcn, "transformer": Transformer}[cfg.encoder](n_in, cfg.hidden)
        self.head = nn.Linear(cfg.hidden, len(data.muscles))
        nn.init.constant_(self.head.bias, -3.0)  # start near rest, not at half excitation
        self.personal = Personal(data.model,
                                 fixed_strength=data.hidden if cfg.hidden_strength == "generic" else (),
                                 joint_passive=cfg.joint_passive)
        # the synergy prior's mix: hidden ≈ measured · mix, one column per hidden muscle
        self.mix = nn.Parameter(torch.full((len(data.measured), len(data.hidden)), -2.0))  # learned: softplus
        fixed = action_mix(data) if cfg.synergy_mix == "action" else np.full(self.mix.shape, np.nan)
        self.register_buffer("fixed_mix", torch.tensor(fixed, dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(norm[0], dtype=torch.float32))
        self.register_buffer("std", torch.tensor(norm[1], dtype=torch.float32))

    def synergy_mix(self) -> torch.Tensor:
        """(measured, hidden) weights of the synergy prior: the fixed column where there is one, else the
        learned softplus(mix)."""
        learned = nn.functional.softplus(self.mix)
        return torch.where(torch.isnan(self.fixed_mix), learned, self.fixed_mix)

    def forward(self, x, l_mt, l_mt_dot, r):
        """(excitations (B, T, M), activations (B, T, M), torque (B, T)) of inputs x (B, T, F)."""
        e = torch.sigmoid(self.head(self.encoder((x - self.mean) / self.std)))
        tau, a = torque(e, l_mt, l_mt_dot, r, self.personal, kinematics=x)
        return e, a, tau


def action_mix(data: SubjectData) -> np.ndarray:
    """(measured, hidden) weights: each hidden muscle's column averages the measured muscles of its own
    action (synergists reach comparable fractions of their MVC); NaN where none is measured."""
    actions = [m.action for m in data.model.muscles]
    mix = np.zeros((len(data.measured), len(data.hidden)))
    for j, h in enumerate(data.hidden):
        same = [i for i, m in enumerate(data.measured) if actions[m] == actions[h]]
        if same:
            mix[same, j] = 1.0 / len(same)
        else:
            mix[:, j] = np.nan
    return mix


def inputs(trial: Trial) -> np.ndarray:
    """(n, 4 + C): θ, θ̇, θ̈, load, measured envelopes."""
    return np.column_stack([trial.kinematics, np.full(trial.n, trial.load_kg), trial.measured])


def _tensors(trial: Trial):
    return [torch.tensor(np.asarray(v), dtype=torch.float32)
            for v in (inputs(trial), trial.measured, trial.torque, trial.l_mt, trial.l_mt_dot,
                      trial.moment_arms)]


@dataclass
class Fitted:
    model: Nmm
    seconds: float
    losses: list[float]
    config: dict


def fit(data: SubjectData, train: list[Trial], cfg: NmmConfig, *, progress=None) -> Fitted:
    """Train one subject's NMM on ``train`` trials (windows of ``cfg.window`` steps, Adam)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x_all = np.vstack([inputs(t) for t in train])
    norm = (x_all.mean(0), np.maximum(x_all.std(0), 1e-6))
    tau_var = float(np.var(np.concatenate([t.torque for t in train]))) or 1.0
    model = Nmm(data, cfg, norm=norm)
    tensors = [_tensors(t) for t in train]
    lengths = np.array([t.n for t in train])
    if lengths.max() < cfg.window:
        raise InputError(f"subject {data.subject}: trials of {lengths.max()} steps are shorter than the "
                         f"training window ({cfg.window})")
    usable = np.where(lengths >= cfg.window)[0]
    weights = (lengths[usable] - cfg.window + 1) / (lengths[usable] - cfg.window + 1).sum()
    physics = list(model.personal.parameters())
    others = [p for p in model.parameters() if all(p is not q for q in physics)]
    opt = torch.optim.Adam([{"params": others}, {"params": physics, "lr": cfg.lr * cfg.physics_lr_scale}],
                           lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iterations, eta_min=cfg.lr * 0.05)
    losses, t0, mse = [], time.perf_counter(), nn.functional.mse_loss
    for it in range(cfg.iterations):
        picks = rng.choice(usable, size=cfg.batch, p=weights)
        batch = []
        for k in picks:
            s = int(rng.integers(0, lengths[k] - cfg.window + 1))
            batch.append([v[s:s + cfg.window] for v in tensors[k]])
        x, env, tau_id, l_mt, l_dot, r = (torch.stack(c) for c in zip(*batch))
        e, _, tau = model(x, l_mt, l_dot, r)
        keep = slice(cfg.burn_in, None)
        e_hidden = e[:, keep][..., list(data.hidden)]
        loss = (cfg.w_emg * mse(e[:, keep][..., list(data.measured)], env[:, keep])
                + cfg.w_torque * mse(tau[:, keep], tau_id[:, keep]) / tau_var
                + cfg.w_effort * e_hidden.pow(2).mean())
        if cfg.w_synergy > 0:
            prior = env[:, keep] @ model.synergy_mix()
            loss = loss + cfg.w_synergy * mse(e_hidden, prior)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None and (it + 1) % 50 == 0:
            progress.update(50, f"{data.subject} loss {np.mean(losses[-50:]):.4f}")
    return Fitted(model=model, seconds=time.perf_counter() - t0, losses=losses, config=asdict(cfg))


@torch.no_grad()
def predict(fitted: Fitted, trial: Trial) -> dict[str, np.ndarray]:
    """Excitations, activations and torque of a whole trial, run causally from its first step."""
    x, _, _, l_mt, l_dot, r = (v[None] for v in _tensors(trial))
    e, a, tau = fitted.model(x, l_mt, l_dot, r)
    return {"excitation": e[0].numpy().astype(float), "activation": a[0].numpy().astype(float),
            "torque": tau[0].numpy().astype(float)}
