"""Recordings + a profile → a profile with re-fitted moment arms (and optionally segment terms).

The order of work: check the trials against the profile and fill in θ̇, θ̈ and τ
(:mod:`~myoedge.calibrate.trials`); take the muscle forces from the recordings or estimate them from
EMG (:mod:`~myoedge.calibrate.forces`); fit (:mod:`~myoedge.calibrate.moment_arms`). Forces estimated
from EMG depend on the moment arms through the Hill muscles' fibre lengths and velocities, so the
estimate and the fit alternate until the moment arms settle (at most ``iterations`` rounds). They also
carry the envelope's 6 Hz low-pass, which the measured torque does not: the torque is passed through
the same low-pass (advanced by the same delay) so both sides of the equation have one bandwidth —
otherwise the fit inflates the moment arms to make up for the envelope's flattened peaks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import Recording
from myoedge.calibrate.forces import envelope_config, estimate_forces, lowpass_delay_s
from myoedge.calibrate.moment_arms import FitConfig, MomentArmFit, fit_moment_arms
from myoedge.calibrate.segment_fit import SegmentFit, fit_segment
from myoedge.calibrate.trials import FitTrial, movement_cycles, prepare_trials, recorded_forces
from myoedge.ground.errors import InputError

FORCE_SOURCES = ("auto", "recording", "emg")
SETTLE_S = 0.5  # envelope start-up left out of EMG-driven fits


@dataclass(frozen=True, eq=False)
class MomentArmCalibration:
    """The re-fitted profile and what went into it."""

    profile: SubjectProfile
    fit: MomentArmFit
    segment: SegmentFit | None
    trials: list[FitTrial]
    force_source: str  # "recording" | "emg"
    iterations: int
    rmse_before: float  # N·m, the first round's (prior moment arms, forces of the prior model)

    def record(self) -> dict:
        """The provenance entry (also the ``--json`` summary)."""
        out = {"method": "constrained least squares on the equation of motion, Tikhonov toward the prior",
               "trials": [t.name for t in self.trials], "force_source": self.force_source,
               "torque_source": sorted({t.torque_source for t in self.trials}),
               "derivatives": sorted({t.derivatives for t in self.trials}), "iterations": self.iterations,
               **self.fit.summary(), "rmse_before_nm": self.rmse_before}
        if self.segment is not None:
            out["segment"] = self.segment.summary()
        return out


def _lowpass_like_envelope(x: np.ndarray, *, rate_hz: float, emg_fs: float) -> np.ndarray:
    """``x`` through the envelope's low-pass at ``rate_hz``, advanced by the envelope's delay."""
    cfg = envelope_config(emg_fs)
    sos = signal.butter(cfg.lowpass_order, cfg.lowpass_hz, fs=rate_hz, output="sos")
    y = signal.sosfilt(sos, x)
    t = np.arange(x.size) / rate_hz
    return np.interp(t, t - lowpass_delay_s(cfg), y)


def calibrate_moment_arms(recordings: Sequence[Recording], profile: SubjectProfile, *, forces: str = "auto",
                          torque: str = "auto", fit_segment_terms: bool = False,
                          config: FitConfig | None = None, iterations: int = 3) -> MomentArmCalibration:
    """Re-fit ``profile``'s moment arms to ``recordings`` (see the module docstring); nothing is written."""
    config = config or FitConfig()
    if forces not in FORCE_SOURCES:
        raise InputError(f"force source must be one of {FORCE_SOURCES}, got {forces!r}")
    prior = profile.model
    trials = prepare_trials(recordings, prior, torque=torque, segment=prior.segment)
    has_forces = all(t.recording.forces is not None for t in trials)
    source = ("recording" if has_forces else "emg") if forces == "auto" else forces
    if source == "recording":
        for t in trials:
            recorded_forces(t)  # a clear error for a trial without forces
    keep = [slice(None)] * len(trials)
    if source == "emg":
        keep = [slice(int(math.ceil(SETTLE_S * t.recording.rate)), None) for t in trials]
        if any(t.theta[k].size < 10 for t, k in zip(trials, keep)):
            raise InputError(f"EMG-driven calibration trials must be longer than {SETTLE_S:g} s")
    theta = np.concatenate([t.theta[k] for t, k in zip(trials, keep)])
    targets = [_lowpass_like_envelope(t.torque, rate_hz=t.recording.rate, emg_fs=t.recording.emg_fs)
               if source == "emg" else t.torque for t in trials]
    tau = np.concatenate([x[k] for x, k in zip(targets, keep)])
    lengths = [t.theta[k].size for t, k in zip(trials, keep)]
    cycles = sum(movement_cycles(t.theta[k]) for t, k in zip(trials, keep))
    model, rounds, first_rmse, fit = prior, 0, math.nan, None
    for rounds in range(1, (iterations if source == "emg" else 1) + 1):
        if source == "emg":
            f = np.concatenate([estimate_forces(t.recording, model, mvc_volts=profile.mvc, order=t.order,
                                                theta_dot=t.theta_dot)[k] for t, k in zip(trials, keep)])
        else:
            f = np.concatenate([recorded_forces(t) for t in trials])
        fit = fit_moment_arms(prior, theta, tau, f, config=config, trial_lengths=lengths, cycles=cycles)
        if rounds == 1:
            first_rmse = fit.rmse_before
        grid = np.linspace(*fit.theta_range, 50)
        change = np.abs(fit.model.moment_arms(grid) - model.moment_arms(grid)).max()
        model = fit.model
        if change < 1e-4 * np.abs(model.moment_arms(grid)).max():
            break
    seg_fit = None
    if fit_segment_terms:
        if any(t.torque_source != "recording" for t in trials):
            raise InputError("fitting the segment's inertia and gravity needs a measured joint torque in "
                             "every trial; these trials' torque would come from the segment itself")
        seg_fit = fit_segment(prior.segment, np.concatenate([t.theta for t in trials]),
                              np.concatenate([t.theta_dot for t in trials]),
                              np.concatenate([t.theta_ddot for t in trials]),
                              np.concatenate([t.torque for t in trials]), trial_lengths=[t.n for t in trials],
                              prior_scale=config.prior_scale)
        model = type(model)(joint=model.joint, segment=seg_fit.segment, muscles=model.muscles)
    new = profile.replace(model=model)
    return MomentArmCalibration(profile=new, fit=fit, segment=seg_fit, trials=trials, force_source=source,
                                iterations=rounds, rmse_before=first_rmse)
