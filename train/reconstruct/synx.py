"""Synergy extrapolation (SynX, after Ao, Shourijeh, Patten & Fregly 2020): the baseline.

Non-negative matrix factorisation (scikit-learn's NMF) of the measured envelopes of the training trials
gives ``k`` synergies: E_measured ≈ H·W with activations H ≥ 0 (n, k) and weights W ≥ 0 (k, C). A hidden
channel is a non-negative weighted sum of the synergy activations, e_h = H·w_h. The weights w_h, with
the measured muscles' strengths (0.5–2.5 × generic, as the NMM's; a hidden muscle's strength stays
generic, since its weights already set its scale), are fit with ``scipy.optimize.least_squares``
(bounds ≥ 0) so that the muscle torque of all channels — the same CEINMS activation and Hill model, in
numpy (:mod:`myoedge.body`), with generic activation dynamics — tracks inverse dynamics. On a test trial,
H comes from the measured envelopes with W held fixed (non-negative least squares), and so do the
hidden channels.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares

from myoedge.body.activation import neural_activation, shape_activation
from myoedge.body.muscle import fiber_state_at, hill_force
from myoedge.body.tendon import FIBER_DAMPING
from myoedge.train.reconstruct.config import SynxConfig
from myoedge.train.reconstruct.data import SubjectData, Trial
from myoedge.train.reconstruct.physics import bounds


@dataclass
class SynxFit:
    nmf: object
    weights: np.ndarray  # (k, H) hidden weights
    strength: np.ndarray  # (M,) N
    generic: dict
    seconds: float
    config: dict
    data: SubjectData


def excitations(data: SubjectData, measured: np.ndarray, synergy_act: np.ndarray, weights) -> np.ndarray:
    """All channels (n, M): the measured ones as measured, the hidden ones H·w, clipped to [0, 1]."""
    e = np.zeros((len(measured), len(data.muscles)))
    e[:, list(data.measured)] = measured
    e[:, list(data.hidden)] = np.clip(synergy_act @ weights, 0.0, 1.0)
    return e


def muscle_torque(data: SubjectData, trial: Trial, e: np.ndarray, strength, generic: dict):
    """(τ (n,), activations (n, M)) from excitations ``e`` with generic dynamics and ``strength``."""
    u = np.clip(neural_activation(e, c1=float(generic["c1"][0]), c2=float(generic["c2"][0])), 0.0, 1.0)
    a = shape_activation(u, generic["shape"])
    l, v, cos_a = fiber_state_at(trial.l_mt, trial.l_mt_dot, l_opt=generic["l_opt"], l_ts=generic["l_ts"],
                                 pennation=generic["pennation"], v_max=generic["max_velocity"])
    f = hill_force(a, l, v, cos_a, max_force=strength, damping=FIBER_DAMPING)
    return (trial.moment_arms * f).sum(-1), a


def fit(data: SubjectData, train: list[Trial], cfg: SynxConfig) -> SynxFit:
    from sklearn.decomposition import NMF

    t0 = time.perf_counter()
    k = min(cfg.synergies, len(data.measured))
    nmf = NMF(n_components=k, init="nndsvda", max_iter=1000, random_state=cfg.seed)
    acts = [nmf.fit_transform(np.vstack([t.measured for t in train]))]
    acts = np.split(acts[0], np.cumsum([t.n for t in train])[:-1])
    generic = {name: g for name, (_, _, g) in bounds(data.model).items()}
    generic["max_velocity"] = np.array([m.max_velocity for m in data.model.muscles])
    n_h = len(data.hidden)
    tau_sd = float(np.std(np.concatenate([t.torque for t in train]))) or 1.0
    pick = slice(None, None, cfg.stride)

    f0 = generic["strength"]

    # a hidden muscle's weights and its F₀ are one scale: only the measured muscles' strengths are fit
    free = list(data.measured) if cfg.fit_strength else []

    def unpack(p):
        strength = f0.copy()
        strength[free] = p[k * n_h:]
        return p[:k * n_h].reshape(k, n_h), strength

    def residual(p):
        w, strength = unpack(p)
        out = []
        for t, h in zip(train, acts):
            tau, _ = muscle_torque(data, t, excitations(data, t.measured, h, w), strength, generic)
            out.append((tau[pick] - t.torque[pick]) / tau_sd)
        return np.concatenate(out)

    f_fit = f0[free]
    x0 = np.concatenate([np.full(k * n_h, 0.1), f_fit])
    lo = np.concatenate([np.zeros(k * n_h), 0.5 * f_fit])
    hi = np.concatenate([np.full(k * n_h, np.inf), 2.5 * f_fit])
    sol = least_squares(residual, x0, bounds=(lo, hi), x_scale=np.concatenate([np.full(k * n_h, 0.1), f_fit]),
                        max_nfev=200)
    w, strength = unpack(sol.x)
    return SynxFit(nmf=nmf, weights=w, strength=strength, generic=generic, seconds=time.perf_counter() - t0,
                   config={**asdict(cfg), "synergies_used": k, "cost": float(sol.cost)}, data=data)


def predict(fitted: SynxFit, trial: Trial) -> dict[str, np.ndarray]:
    data = fitted.data
    h = fitted.nmf.transform(trial.measured)
    e = excitations(data, trial.measured, h, fitted.weights)
    tau, a = muscle_torque(data, trial, e, fitted.strength, fitted.generic)
    return {"excitation": e, "activation": a, "torque": tau}


def parameters(fitted: SynxFit) -> dict:
    g = fitted.generic
    return {"strength": {"value": fitted.strength.tolist(), "generic": g["strength"].tolist(),
                         "lo": (0.5 * g["strength"]).tolist(), "hi": (2.5 * g["strength"]).tolist()},
            "synergy_weights": {"value": fitted.weights.tolist()},
            "synergies": {"value": fitted.nmf.components_.tolist()}}
