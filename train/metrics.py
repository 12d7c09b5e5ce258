"""Accuracy and physical consistency of predictions: RMSE, normalised RMSE, Pearson CC, physics residual.

Conventions used in every table of the evaluation report:

- outputs are named ``theta`` (joint angle, scored in **degrees**) and ``F_<muscle>`` (newtons);
- metrics of a fold are computed over all of its test samples pooled (every held-out sequence
  concatenated), not averaged per sequence, so a short test piece does not weigh as much as a long one;
- normalised RMSE = RMSE ÷ (max − min) of the *true* signal over those samples (the range, as in
  Zhang et al. 2023), so it is comparable across outputs and units; it is a fraction (0.1 = 10 %);
- Pearson CC is undefined (NaN) when either signal is constant;
- the physics residual is the RMS over interior steps of the residual of
  :func:`myoedge.train.physics.sequence_residual` evaluated on the *predicted* θ and F (the same
  function as the training loss, in the sequence's own mode, "eom" or "id"), in N·m. The residual of
  the ground truth through the same finite differences is reported beside it: it is the floor that
  discretisation alone leaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as Seq

import numpy as np

from myoedge.ground.errors import InputError

THETA = "theta"


def output_names(muscles: Seq[str]) -> list[str]:
    """``["theta", "F_<m1>", ...]``: the order of every method's outputs."""
    return [THETA, *(f"F_{m}" for m in muscles)]


def output_unit(name: str) -> str:
    return "deg" if name == THETA else "N"


def output_symbol(name: str) -> str:
    """How tables write an output: θ for the angle, the name itself for a force."""
    return "θ" if name == THETA else name


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise InputError(f"true and predicted signals must be non-empty and the same length, got {a.size} "
                         f"and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError("true and predicted signals must be finite")
    return a, b


def rmse(y_true, y_pred) -> float:
    """√(mean((ŷ − y)²))."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((b - a) ** 2)))


def nrmse(y_true, y_pred) -> float:
    """RMSE ÷ (max − min) of ``y_true``; NaN when the true signal is constant."""
    a, b = _pair(y_true, y_pred)
    span = float(a.max() - a.min())
    return rmse(a, b) / span if span > 0 else math.nan


def pearson_cc(y_true, y_pred) -> float:
    """Pearson's correlation coefficient; NaN when either signal is constant."""
    a, b = _pair(y_true, y_pred)
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    return float(np.dot(da, db) / denom) if denom > 0 else math.nan


def score(y_true, y_pred) -> dict[str, float]:
    return {"rmse": rmse(y_true, y_pred), "nrmse": nrmse(y_true, y_pred), "cc": pearson_cc(y_true, y_pred)}


def score_outputs(seqs, predictions) -> dict[str, dict[str, float]]:
    """Per output, RMSE / nRMSE / CC over the pooled test samples of ``seqs``.

    ``predictions[i]`` is ``(theta (n_i,) rad, forces (n_i, M) N)`` for ``seqs[i]``. θ is scored in
    degrees.
    """
    if len(seqs) != len(predictions) or not seqs:
        raise InputError(f"need one prediction per test sequence, got {len(predictions)} for {len(seqs)}")
    muscles = tuple(seqs[0].muscles)
    true_cols, pred_cols = [], []
    for s, (theta, forces) in zip(seqs, predictions, strict=True):
        theta, forces = np.asarray(theta), np.asarray(forces)
        if tuple(s.muscles) != muscles or theta.shape != (s.n,) or forces.shape != (s.n, len(muscles)):
            raise InputError(f"{s.name}: prediction shapes {theta.shape}, {forces.shape} do not match "
                             f"({s.n},), ({s.n}, {len(muscles)}) for muscles {list(muscles)}")
        true_cols.append(np.column_stack([np.degrees(s.theta), s.forces]))
        pred_cols.append(np.column_stack([np.degrees(theta), forces]))
    truth, pred = np.vstack(true_cols), np.vstack(pred_cols)
    return {name: score(truth[:, j], pred[:, j]) for j, name in enumerate(output_names(muscles))}


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def residual_rms(seqs, predictions) -> dict[str, float | str | None]:
    """RMS physics residual (N·m) of the predictions and of the ground truth over ``seqs``.

    Also the RMS of the true net muscle moment Σ r F (or τ_ID), so the residual can be read relative
    to the moment it explains, and where it comes from: ``true_theta`` is the residual of the predicted
    forces with the true angle, ``true_forces`` that of the predicted angle with the true forces (the
    second difference makes small step-to-step jitter of θ̂ a large θ̈ error). ``None`` values where the
    sequences carry no physics ("none").
    """
    from myoedge.train.physics import sequence_residual

    sq = dict.fromkeys(("pred", "truth", "true_theta", "true_forces", "moment"), 0.0)
    count, modes = 0, set()
    for s, (theta, forces) in zip(seqs, predictions, strict=True):
        r_pred = sequence_residual(s, _f64(theta), _f64(forces))
        if r_pred is None:
            continue
        true_theta, true_forces = _f64(s.theta), _f64(s.forces)
        parts = {"pred": r_pred, "truth": sequence_residual(s, true_theta, true_forces),
                 "true_theta": sequence_residual(s, true_theta, _f64(forces)),
                 "true_forces": sequence_residual(s, _f64(theta), true_forces)}
        if s.physics == "id":
            moment = np.asarray(s.torque, dtype=np.float64)
        else:
            moment = _f64(s.muscle_moment())
        modes.add(s.physics)
        parts["moment"] = moment[1:-1]
        for key, values in parts.items():
            sq[key] += float(np.sum(np.square(values)))
        count += len(r_pred)
    if count == 0:
        return {"mode": "none", **dict.fromkeys(sq)}
    return {"mode": "/".join(sorted(modes)), **{k: math.sqrt(v / count) for k, v in sq.items()}}
