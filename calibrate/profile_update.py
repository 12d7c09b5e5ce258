"""Putting calibration results into a subject profile, with provenance.

Each calibration writes its own entry under ``provenance`` (``"mvc"``, ``"moment_arms"``) — the date,
the method, the source (port and device, or the trials) and the fit statistics — and appends a line to
``provenance["history"]`` so earlier calibrations stay traceable. Writing is
:meth:`SubjectProfile.save`: a temporary file renamed over the target, the previous file kept as
``<name>.prev``. Nothing here writes before a calibration has fully succeeded.
"""

from __future__ import annotations

from datetime import datetime, timezone

from myoedge.body.catalog import generic_model
from myoedge.body.profile import SubjectProfile
from myoedge.calibrate.mvc_session import MvcResult
from myoedge.calibrate.refit import MomentArmCalibration
from myoedge.ground.errors import InputError


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _provenance(profile: SubjectProfile | None, key: str, entry: dict) -> dict:
    prov = dict(profile.provenance) if profile is not None else {}
    history = list(prov.get("history", []))
    history.append({"date": entry["date"], "calibration": key, "method": entry["method"]})
    prov[key] = entry
    prov["history"] = history
    return prov


def mvc_entry(result: MvcResult) -> dict:
    cfg = result.config
    return {"date": now_iso(),
            "method": ("scripted" if result.mode == "auto" else "guided") + " MVC session through the edge "
                      "reader and fixed-point envelope; per repetition the mean envelope over the sustained "
                      "plateau, repetitions within pool_within of the best averaged",
            "port": result.port, "device": result.device.device_name, "labels": list(result.device.labels),
            "sample_rate_hz": result.device.sample_rate_hz, "envelope": result.envelope,
            "window_s": cfg.window_s, "plateau_fraction": cfg.plateau_fraction,
            "pool_within": cfg.pool_within,
            "repetitions_wanted": cfg.repetitions, "lost_frames": result.lost_frames,
            "reconnects": result.reconnects, "stream_s": result.stream_s, "muscles": result.session}


def with_mvc(profile: SubjectProfile, result: MvcResult) -> SubjectProfile:
    """``profile`` with the measured muscles' MVC replaced (the others keep theirs)."""
    mvc = list(profile.mvc_volts)
    for muscle, value in result.mvc_volts.items():
        mvc[profile.model.index(muscle)] = value
    return profile.replace(mvc_volts=tuple(mvc), provenance=_provenance(profile, "mvc", mvc_entry(result)))


def new_profile(*, subject: str, joint: str, result: MvcResult) -> SubjectProfile:
    """A first profile: the generic model of ``joint`` and the measured MVC, which must cover every muscle."""
    model = generic_model(joint)
    missing = [m for m in model.muscle_names if m not in result.mvc_volts]
    if missing:
        raise InputError(f"a new {joint} profile needs the MVC of every muscle {list(model.muscle_names)}; "
                         f"not measured: {missing}")
    entry = mvc_entry(result)
    prov = _provenance(None, "mvc", entry)
    prov["model"] = f"generic {joint} model (myoedge.body.catalog), not yet fitted to this subject"
    return SubjectProfile(subject=subject, model=model,
                          mvc_volts=tuple(result.mvc_volts[m] for m in model.muscle_names), provenance=prov)


def with_moment_arms(calibration: MomentArmCalibration) -> SubjectProfile:
    entry = {"date": now_iso(), **calibration.record()}
    base = calibration.profile
    return base.replace(provenance=_provenance(base, "moment_arms", entry))

