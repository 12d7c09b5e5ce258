"""Configurations of the two reconstruction methods (no torch here: the CLI reads the defaults)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from myoedge.ground.errors import InputError

ENCODERS = ("gru", "tcn", "transformer")
SYNERGY_MIXES = ("action", "learned")


@dataclass(frozen=True, kw_only=True)
class NmmConfig:
    encoder: str = "gru"
    hidden: int = 48
    iterations: int = 1500
    lr: float = 3e-3
    physics_lr_scale: float = 10.0  # the personalised parameters' learning rate ÷ the network's
    batch: int = 16
    window: int = 300  # steps per training window
    burn_in: int = 100  # leading steps of a window left out of the loss
    w_emg: float = 10.0  # λ_d
    w_torque: float = 1.0  # λ_p
    w_effort: float = 0.0  # λ_e, mean squared hidden excitation (least effort: no free co-contraction)
    w_synergy: float = 1.0  # λ_s, hidden excitations near a non-negative mix of the measured ones
    synergy_mix: str = "action"  # "action": the mean of the measured muscles of the hidden one's action
    # (a learned mix where none is measured) | "learned": a mix learned with the rest
    hidden_strength: str = "personal"  # "personal" | "generic": F₀ of the hidden muscles fit or held
    joint_passive: bool = True  # the joint's passive moment P(θ, θ̇) fitted with the rest: τ = Σ r F − P
    seed: int = 0

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise InputError(f"unknown encoder {self.encoder!r}; choose one of {list(ENCODERS)}")
        if self.hidden_strength not in ("personal", "generic"):
            raise InputError(f"hidden_strength must be personal or generic, got {self.hidden_strength!r}")
        if self.synergy_mix not in SYNERGY_MIXES:
            raise InputError(f"synergy_mix must be one of {list(SYNERGY_MIXES)}, got {self.synergy_mix!r}")
        if self.iterations < 1 or self.window <= self.burn_in:
            raise InputError("iterations must be >= 1 and the window longer than the burn-in")
        for name in ("lr", "physics_lr_scale", "w_emg", "w_torque", "w_effort", "w_synergy"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InputError(f"{name} must be a finite number >= 0, got {v!r}")



@dataclass(frozen=True, kw_only=True)
class SynxConfig:
    synergies: int = 3
    stride: int = 2  # every stride-th sample enters the torque fit
    fit_strength: bool = True  # the measured muscles' strengths; False: all generic, only the weights fit
    seed: int = 0

    def __post_init__(self):
        if self.synergies < 1 or self.stride < 1:
            raise InputError("synergies and stride must be at least 1")
