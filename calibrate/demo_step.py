"""A scripted calibration of a synthetic subject, end to end, for ``myoedge demo`` (or a quick check).

1. ``myoedge amp-sim --protocol mvc`` runs in-process (fast) for the subject; the MVC session measures it
   through the real reader, parser and fixed-point envelope (``--auto``) and starts a profile from the
   generic model of the joint;
2. the subject's recordings re-fit that profile's moment arms (recorded forces and torque);
3. both are scored against the subject's true profile, which the simulator knows.

Takes a few seconds for the knee; nothing here is needed by the calibration tool itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def run_calibration_step(data_dir: str | Path, profile_path: str | Path, *, joint: str = "knee",
                         subject_index: int = 1, seed: int = 0, say: Callable[[str], None] = print) -> dict:
    """Calibrate synthetic subject ``subject_index`` of ``joint`` (the one ``write_dataset`` made with
    ``seed`` under ``data_dir``) and write its profile to ``profile_path``; returns a summary."""
    from myoedge.body.recording import find_recordings, load_recording
    from myoedge.body.subjects import make_subject, true_profile
    from myoedge.calibrate.moment_arms import relative_rms_error
    from myoedge.calibrate.mvc_session import run_mvc_session
    from myoedge.calibrate.profile_update import new_profile, with_moment_arms
    from myoedge.calibrate.refit import calibrate_moment_arms
    from myoedge.edge.sim.ampsim import AmplifierSimulator
    from myoedge.edge.sim.ampsim_signals import mvc_protocol_signal

    subject = make_subject(joint, subject_index, seed=seed)
    truth = true_profile(subject)
    protocol = mvc_protocol_signal(joint=joint, subject=subject_index, seed=seed)
    sim = AmplifierSimulator(protocol, samples_per_frame=20, fast=True, loop=False).start()
    try:
        mvc = run_mvc_session(sim.address, auto=True, timeout_s=120, say=lambda line: None)
    finally:
        sim.stop()
    profile = new_profile(subject=subject.name, joint=joint, result=mvc)
    mvc_error = profile.mvc / protocol.true_mvc_volts - 1  # the level the device's envelope reads at MVC
    say("      MVC session (amp-sim MVC protocol, scripted): "
        + ", ".join(f"{m} {1e6 * v:.0f} µV ({100 * e:+.1f}% vs true)"
                    for m, v, e in zip(profile.muscles, profile.mvc, mvc_error)))
    recordings = [load_recording(p) for p in find_recordings(data_dir)]
    recordings = [r for r in recordings if r.meta.subject == subject.name]
    cal = calibrate_moment_arms(recordings, profile)
    fitted = with_moment_arms(cal)
    fitted.save(profile_path)
    before = relative_rms_error(profile.model, truth.model, cal.fit.theta_range)
    after = relative_rms_error(fitted.model, truth.model, cal.fit.theta_range)
    say(f"      moment arms from the generic model: torque RMSE {cal.rmse_before:.2f} → "
        f"{cal.fit.rmse_after:.3f} N·m; error vs true " + ", ".join(f"{m} {100 * b:.0f}% → {100 * a:.1f}%"
                                          for m, b, a in zip(profile.muscles, before, after)))
    return {"profile": str(profile_path), "mvc_volts": mvc.mvc_volts,
            "mvc_error": dict(zip(profile.muscles, mvc_error.tolist())),
            "torque_rmse_nm": [cal.rmse_before, cal.fit.rmse_after],
            "moment_arm_error": {m: [float(b), float(a)] for m, b, a in zip(profile.muscles, before, after)},
            "max_moment_arm_error": float(np.max(after))}


def compare_profiles(calibrated, truth, *, angles_rad) -> dict:
    """How far ``calibrated`` is from ``truth`` (two SubjectProfiles of the same muscles), in percent of
    the true value: MVC per channel, and each moment arm at each of ``angles_rad``."""
    from myoedge.ground.errors import InputError

    if tuple(calibrated.muscles) != tuple(truth.muscles):
        raise InputError(f"profiles name different muscles: {list(calibrated.muscles)} and "
                         f"{list(truth.muscles)}")
    angles = [float(a) for a in angles_rad]
    mvc = 100.0 * (calibrated.mvc / truth.mvc - 1.0)
    arms = {}
    for m in truth.muscles:
        true_r = np.array([float(truth.moment_arm(m, a)) for a in angles])
        cal_r = np.array([float(calibrated.moment_arm(m, a)) for a in angles])
        arms[m] = (100.0 * (cal_r - true_r) / np.abs(true_r)).tolist()
    return {"angles_deg": np.degrees(angles).tolist(), "mvc_percent": dict(zip(truth.muscles, mvc.tolist())),
            "moment_arm_percent": arms}


def describe_comparison(comparison: dict) -> list[str]:
    """Lines for a person: the MVC and moment-arm differences of :func:`compare_profiles`."""
    mvc = comparison["mvc_percent"].items()
    lines = ["MVC vs the true profile's: " + ", ".join(f"{m} {e:+.1f}%" for m, e in mvc)]
    angles = ", ".join(f"{a:.0f}°" for a in comparison["angles_deg"])
    arms = comparison["moment_arm_percent"].items()
    lines.append(f"moment arms vs true at {angles}: "
                 + "; ".join(f"{m} " + " ".join(f"{e:+.1f}%" for e in errs) for m, errs in arms))
    return lines
