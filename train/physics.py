"""The physics term of the loss: how far a predicted (θ, F) sequence is from obeying the joint's dynamics.

The equation itself lives in :mod:`myoedge.body.dynamics` (array-agnostic, written once); this module
only differentiates the predicted angle sequence and picks the form of the residual:

* ``mode="eom"`` — ``M θ̈ + C(θ, θ̇) + G(θ) + P(θ) − Σ r_n F_n`` with the segment of ``model``; needs
  segment parameters (a subject profile, or the generic model of the joint).
* ``mode="id"`` — ``Σ r_n F_n − P(θ, θ̇) − τ_ID`` against a recorded inverse-dynamics moment; for
  recordings that carry τ_ID but no trustworthy segment parameters. τ_ID is the *net* joint moment: the
  muscles' Σ r F less what the joint's passive structures take up, P(θ, θ̇)
  (:class:`myoedge.body.identify.PassiveMoment`, identified per subject from the training recordings
  by :func:`passive_moments`; on an OpenSim wrist with a joint spring and damper, Σ r F − τ_ID is as
  large as τ_ID's spread and P's fit leaves at most 0.3 % of its RMS). Without P (none identified) it
  is taken as 0.

θ̇ and θ̈ are central finite differences of the *predicted* sequence (step ``dt``), so the residual is
defined at the interior steps 1 … n−2 only; both modes return those steps so their shapes agree.
With ``smooth`` = k > 1 the residual is then averaged along time by a zero-phase Hann window of k
steps (:func:`zero_phase_hann`): it judges the equation of motion in the band the predictions resolve,
as a laboratory low-passes kinematics before differentiating them. Step-to-step jitter of a per-step
network's θ̂, which the second difference amplifies by 1/dt², averages out of it, while a residual
that persists over the window (a wrong force, a wrong acceleration) stays; the truth's residual, zero
at every step, stays zero.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from myoedge.body import dynamics
from myoedge.body.identify import PassiveMoment, identify_passive
from myoedge.body.model import JointModel
from myoedge.ground.errors import InputError

log = logging.getLogger(__name__)

MODES = ("eom", "id")


def central_differences(theta, *, dt: float):
    """(θ, θ̇, θ̈) at the interior steps of ``theta`` (..., n): second-order accurate, error O(dt²)."""
    if theta.shape[-1] < 3:
        raise InputError(f"finite differences need at least 3 steps, got {theta.shape[-1]}")
    before, mid, after = theta[..., :-2], theta[..., 1:-1], theta[..., 2:]
    return mid, (after - before) / (2.0 * dt), (after - 2.0 * mid + before) / (dt * dt)


def check_window(steps, name: str = "the smoothing window") -> int:
    """``steps`` if it is a valid averaging window (an odd int >= 1), else InputError naming ``name``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or steps % 2 == 0:
        raise InputError(f"{name} must be an odd number of steps >= 1, got {steps!r}")
    return steps


def zero_phase_hann(x, steps: int, *, axis: int = -1):
    """``x`` averaged along ``axis`` by a symmetric Hann window of ``steps`` (odd) nonzero taps, the ends
    mirrored (no phase shift, no edge droop); numpy arrays or torch tensors (differentiable). A window
    of 1 returns ``x`` unchanged."""
    check_window(steps)
    n, half = x.shape[axis], steps // 2
    if steps == 1:
        return x
    if n <= half:
        raise InputError(f"a {steps}-step smoothing window needs sequences of more than {half} steps, "
                         f"got {n}")
    taps = np.hanning(steps + 2)[1:-1]
    taps = taps / taps.sum()
    xp = dynamics.namespace(x)
    if xp is np:
        moved = np.moveaxis(np.asarray(x), axis, -1)
        padded = np.concatenate([moved[..., half:0:-1], moved, moved[..., -2:-half - 2:-1]], axis=-1)
        windows = np.lib.stride_tricks.sliding_window_view(padded, steps, axis=-1)
        return np.moveaxis(windows @ taps, -1, axis)
    moved = x.movedim(axis, -1)
    flat = moved.reshape(-1, 1, n)
    padded = xp.nn.functional.pad(flat, (half, half), mode="reflect")
    kernel = xp.as_tensor(taps, dtype=x.dtype, device=x.device).view(1, 1, -1)
    return xp.nn.functional.conv1d(padded, kernel).reshape(moved.shape).movedim(-1, axis)


def _as_namespace(value, like):
    """``value`` (numpy array) in the array library of ``like`` with its dtype."""
    xp = dynamics.namespace(like)
    if xp.__name__ == "torch":
        return xp.as_tensor(value, dtype=like.dtype, device=like.device)
    return xp.asarray(value, dtype=like.dtype)


def physics_residual(theta_seq, forces_seq, *, dt: float, model: JointModel | None = None, moment_arms=None,
                     torque=None, mode: str = "eom", passive: PassiveMoment | None = None, smooth: int = 1):
    """Residual (N·m) at the interior steps of a predicted sequence, shape (..., n − 2).

    ``theta_seq`` is (..., n) rad and ``forces_seq`` (..., n, M) N, as predicted. ``moment_arms``
    (..., n, M) m replaces the model's r(θ̂) when given; ``torque`` (..., n) N·m is required for "id".
    ``smooth`` (odd, steps): the zero-phase Hann window the residual is averaged by (1: none).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if not dt > 0:
        raise InputError(f"dt must be > 0 s, got {dt!r}")
    if forces_seq.shape[:-1] != theta_seq.shape:
        raise InputError(f"forces must have shape {tuple(theta_seq.shape)} + (M,), got "
                         f"{tuple(forces_seq.shape)}")
    th, th_dot, th_ddot = central_differences(theta_seq, dt=dt)
    forces = forces_seq[..., 1:-1, :]
    if moment_arms is not None:
        if moment_arms.shape != forces_seq.shape:
            raise InputError(f"moment_arms must have the shape of forces {tuple(forces_seq.shape)}, got "
                             f"{tuple(moment_arms.shape)}")
        r = _as_namespace(moment_arms, theta_seq)[..., 1:-1, :]
        applied = (r * forces).sum(-1)
    elif model is not None:
        if len(model.muscles) != forces_seq.shape[-1]:
            raise InputError(f"model has {len(model.muscles)} muscles {list(model.muscle_names)} but forces "
                             f"have {forces_seq.shape[-1]}")
        applied = dynamics.muscle_torque(th, forces, _as_namespace(model.coeffs, theta_seq))
    else:
        raise InputError("the physics residual needs moment arms: a model or recorded moment_arms")
    if mode == "id":
        if torque is None:
            raise InputError("mode 'id' needs the recorded inverse-dynamics torque")
        if tuple(torque.shape) != tuple(theta_seq.shape):
            raise InputError(f"torque must have the shape of theta {tuple(theta_seq.shape)}, got "
                             f"{tuple(torque.shape)}")
        if passive is not None:
            applied = applied - passive.moment(th, th_dot)
        return zero_phase_hann(applied - _as_namespace(torque, theta_seq)[..., 1:-1], smooth)
    if model is None:
        raise InputError("mode 'eom' needs a model with segment parameters (or use mode 'id' with a torque)")
    return zero_phase_hann(dynamics.required_torque(th, th_dot, th_ddot, seg=model.segment) - applied, smooth)


def sequence_residual(seq, theta, forces, *, smooth: int = 1):
    """The residual of predictions ``theta`` (n,), ``forces`` (n, M) for sequence ``seq`` in its own mode
    (``smooth``: as in :func:`physics_residual`).

    Returns None when the sequence has no physics ("none"). Chooses the model's r(θ) when the model
    names the sequence's muscles, else the recorded moment arms (see :class:`~myoedge.train.data.Sequence`).
    """
    if seq.physics == "none":
        return None
    arms = None if seq.model_moment_arms else seq.moment_arms
    return physics_residual(theta, forces, dt=1.0 / seq.rate_hz, model=seq.model, moment_arms=arms,
                            torque=seq.torque if seq.physics == "id" else None, mode=seq.physics,
                            passive=seq.passive, smooth=smooth)


def passive_moments(seqs) -> dict[str, PassiveMoment]:
    """Per subject, the passive moment P(θ, θ̇) identified from ``seqs``' "id" recordings: their recorded
    angle and Σ r F − τ_ID (recorded forces and moment arms). Call it on training data only: the forces
    are the labels. Subjects whose recordings cannot be identified (too short) are left out, and logged."""
    by_subject: dict[str, list] = {}
    for s in seqs:
        if s.physics == "id":
            by_subject.setdefault(s.subject, []).append(s)
    out = {}
    for subject, group in sorted(by_subject.items()):
        try:
            out[subject] = identify_passive([s.theta for s in group],
                                            [s.muscle_moment() - s.torque for s in group],
                                            dts=[1.0 / s.rate_hz for s in group])
        except InputError as e:
            log.warning("%s: no passive joint moment identified (%s); the physics term takes it as 0",
                        subject, e)
            continue
        p = out[subject]
        log.info("%s: passive joint moment identified, RMS %.3g N·m, %.1f %% of it left unexplained", subject,
                 p.moment_rms, 100.0 * (p.rmse / p.moment_rms) ** 2 if p.moment_rms > 0 else 0.0)
    return out


def with_passive(seqs, laws: dict[str, PassiveMoment]) -> list:
    """``seqs`` with each "id" sequence's passive moment set from ``laws`` (by subject) where it has none."""
    return [dataclasses.replace(s, passive=laws[s.subject])
            if s.physics == "id" and s.passive is None and s.subject in laws else s for s in seqs]


def attach_passive(train, *others) -> tuple[list, ...]:
    """``train`` and each of ``others`` with the passive moments identified on ``train`` (one split's parts:
    the test part is scored with the law of the data the model was trained on)."""
    laws = passive_moments(train)
    return tuple(with_passive(list(part), laws) for part in (train, *others))
