"""Calibration trials: recordings turned into the arrays the moment-arm fit needs, with every check.

A fit needs, per sample, the joint angle θ, its rate θ̇ and acceleration θ̈ (for the Hill muscles'
velocity and for inverse dynamics), the net joint moment τ and the muscle forces F. Recordings from a
lab may lack the derivatives (real motion capture gives angles only) or the torque. Derivatives are
then taken by Savitzky–Golay smoothing differentiation: a local cubic fitted by least squares over a
short window, which differentiates the fit instead of the noisy samples (plain finite differences
amplify noise by 1/Δt per derivative). A missing torque is computed from the equation of motion with
the profile's segment parameters, but only when the caller allows it, because the fitted moment arms
then inherit every error of those parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from myoedge.body.model import JointModel, Segment
from myoedge.body.recording import Recording
from myoedge.ground.errors import InputError

TORQUE_SOURCES = ("auto", "recording", "dynamics")


@dataclass(frozen=True, eq=False)
class FitTrial:
    """One trial ready for the fit; per-muscle arrays follow the *model's* muscle order."""

    name: str
    recording: Recording
    theta: np.ndarray  # (n,) rad
    theta_dot: np.ndarray  # (n,) rad/s
    theta_ddot: np.ndarray  # (n,) rad/s²
    torque: np.ndarray  # (n,) N·m, net muscle moment
    torque_source: str  # "recording" | "dynamics"
    derivatives: str  # "recording" | "savitzky-golay"
    order: tuple[int, ...]  # recording channel of each model muscle

    @property
    def n(self) -> int:
        return int(self.theta.shape[0])


def trial_name(rec: Recording) -> str:
    parts = [p for p in (rec.meta.subject, rec.meta.session, rec.meta.trial) if p]
    return "/".join(parts) or "trial"


def smooth_derivatives(theta: np.ndarray, *, rate_hz: float, window_s: float = 0.05,
                       polyorder: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(θ̇, θ̈) by Savitzky–Golay differentiation over ``window_s`` (rounded to an odd sample count)."""
    window = max(polyorder + 2, int(round(window_s * rate_hz)) | 1)
    if window % 2 == 0:
        window += 1
    if theta.shape[0] < window:
        raise InputError(f"a trial of {theta.shape[0]} samples is shorter than the {window}-sample "
                         f"Savitzky–Golay window ({window_s:g} s at {rate_hz:g} Hz) used to differentiate θ")
    dt = 1.0 / rate_hz
    d1 = savgol_filter(theta, window, polyorder, deriv=1, delta=dt, mode="interp")
    d2 = savgol_filter(theta, window, polyorder, deriv=2, delta=dt, mode="interp")
    return d1, d2


def channel_order(rec: Recording, model: JointModel, *, who: str) -> tuple[int, ...]:
    """Index in ``rec``'s channels of each model muscle; refuses a different joint or muscle set."""
    if rec.meta.joint != model.joint:
        raise InputError(f"{who} is a {rec.meta.joint} recording but the profile is for the {model.joint}")
    missing = [m for m in model.muscle_names if m not in rec.meta.muscles]
    extra = [m for m in rec.meta.muscles if m not in model.muscle_names]
    if missing or extra:
        raise InputError(f"{who} has muscles {list(rec.meta.muscles)} but the profile has "
                         f"{list(model.muscle_names)} (missing {missing}, unexpected {extra})")
    return tuple(rec.meta.muscles.index(m) for m in model.muscle_names)


def prepare_trials(recordings: Sequence[Recording], model: JointModel, *, torque: str = "auto",
                   segment: Segment | None = None, savgol_window_s: float = 0.05) -> list[FitTrial]:
    """Check recordings against ``model`` and fill in derivatives and torque.

    ``torque``: ``"recording"`` requires every trial to carry a joint torque; ``"dynamics"`` always
    computes it as M θ̈ + C + G + P from ``segment``; ``"auto"`` uses the recording's torque when present
    and otherwise ``segment`` — which must then be given, since without segment parameters a trial
    without torque carries no information about moment arms.
    """
    if torque not in TORQUE_SOURCES:
        raise InputError(f"torque source must be one of {TORQUE_SOURCES}, got {torque!r}")
    if not recordings:
        raise InputError("no calibration recordings given")
    trials = []
    for rec in recordings:
        who = f"recording {trial_name(rec)}"
        order = channel_order(rec, model, who=who)
        theta = np.asarray(rec.theta, dtype=float)
        arrays = {"theta": theta, "theta_dot": rec.theta_dot, "theta_ddot": rec.theta_ddot,
                  "torque": rec.torque, "forces": rec.forces}
        for name, a in arrays.items():
            if a is not None and not np.all(np.isfinite(a)):
                raise InputError(f"{who}: {name} holds NaN or infinite values")
        if rec.theta_dot is not None and rec.theta_ddot is not None:
            theta_dot, theta_ddot, how = np.asarray(rec.theta_dot), np.asarray(rec.theta_ddot), "recording"
        else:
            theta_dot, theta_ddot = smooth_derivatives(theta, rate_hz=rec.rate, window_s=savgol_window_s)
            how = "savitzky-golay"
        use_recorded = torque == "recording" or (torque == "auto" and rec.torque is not None)
        if use_recorded:
            if rec.torque is None:
                raise InputError(f"{who} has no joint torque; record one (inverse dynamics, a dynamometer or "
                                 "the exoskeleton's torque sensor) or let it be computed from the profile's "
                                 "segment parameters (torque source 'dynamics')")
            tau, source = np.asarray(rec.torque, dtype=float), "recording"
        else:
            if segment is None:
                raise InputError(f"{who} has no joint torque and no segment parameters were given to compute "
                                 "it from the equation of motion; the fit needs one or the other")
            tau = JointModel(joint=model.joint, segment=segment, muscles=model.muscles).required_torque(
                theta, theta_dot, theta_ddot)
            source = "dynamics"
        if not math.isfinite(float(np.ptp(theta))) or np.ptp(theta) < math.radians(2.0):
            raise InputError(f"{who}: the joint barely moves (θ spans {math.degrees(np.ptp(theta)):.2f}°); "
                             "calibration trials must sweep the range of motion")
        if np.sqrt(np.mean(tau**2)) < 1e-6:
            raise InputError(f"{who}: the joint torque is zero throughout; nothing to fit")
        trials.append(FitTrial(name=trial_name(rec), recording=rec, theta=theta, theta_dot=theta_dot,
                               theta_ddot=theta_ddot, torque=tau, torque_source=source, derivatives=how,
                               order=order))
    return trials


def movement_cycles(theta: np.ndarray) -> float:
    """How many flexion–extension cycles ``theta`` holds: half its crossings of the median, with a
    hysteresis of 10 % of its range so sensor noise near the median does not count."""
    x = np.asarray(theta, dtype=float) - np.median(theta)
    band = 0.1 * float(np.ptp(x))
    state, crossings = 0, 0
    for v in x[np.abs(x) > band]:
        s = 1 if v > 0 else -1
        crossings += state != 0 and s != state
        state = s
    return max(1.0, crossings / 2.0)


def recorded_forces(trial: FitTrial) -> np.ndarray:
    """The trial's measured forces in model order; a clear error when the recording has none."""
    rec = trial.recording
    if rec.forces is None:
        raise InputError(f"recording {trial.name} has no muscle forces; estimate them from EMG instead "
                         "(force source 'emg')")
    return np.asarray(rec.forces)[:, list(trial.order)]
