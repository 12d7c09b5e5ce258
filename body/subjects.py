"""Synthetic subjects: scaled body models, electrode set-ups, and simulated trials with ground truth.

A subject is the generic joint model of :mod:`myoedge.body.catalog` scaled to a random body mass and
height (segment mass ∝ body mass, lengths ∝ height, inertia ∝ mass·length²), with per-muscle moment-arm
scales (± 8 %) and strength scales (± 10 %, and ∝ mass^(2/3)), and per-channel electrode gains. Each
session draws a gain drift (± 10 %) as electrodes are re-applied. Everything is a function of the seed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from myoedge.body.catalog import BODY_MASS, HEIGHT, generic_model
from myoedge.body.emg_synth import ElectrodeSetup, mvc_envelope, synthesize
from myoedge.body.family import FAMILIES, HardTraits, draw_hard
from myoedge.body.model import JointModel
from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import Recording, RecordingMeta
from myoedge.body.simulate import simulate
from myoedge.body.trajectories import movement, paces, smooth_noise
from myoedge.ground.errors import InputError

EMG_FS = 2000.0
SIM_FS = 2000.0  # the simulator steps with the EMG clock
MOTION_RATE = 500.0  # rate the motion is written at (every 4th simulation step)


@dataclass(frozen=True)
class SyntheticSubject:
    name: str
    seed: int
    body_mass: float
    height: float
    model: JointModel
    gain_volts: np.ndarray  # EMG RMS at full excitation, per channel, first session
    crosstalk: np.ndarray
    family: str = "easy"
    traits: HardTraits | None = None  # hard family only


def scale_model(model: JointModel, *, mass_scale: float, length_scale: float,
                moment_arm_scale: np.ndarray, force_scale: np.ndarray) -> JointModel:
    s = model.segment
    seg = replace(s, mass=s.mass * mass_scale, com=s.com * length_scale,
                  inertia=s.inertia * mass_scale * length_scale**2)
    muscles = tuple(
        replace(m, moment_arm=tuple(c * ls for c in m.moment_arm), max_force=m.max_force * fs,
                optimal_fiber_length=m.optimal_fiber_length * length_scale,
                tendon_slack_length=m.tendon_slack_length * length_scale)
        for m, ls, fs in zip(model.muscles, length_scale * np.asarray(moment_arm_scale), force_scale)
    )
    return replace(model, segment=seg, muscles=muscles)


def make_subject(joint: str, index: int, *, seed: int = 0, family: str = "easy") -> SyntheticSubject:
    """Subject ``index`` of ``joint`` (deterministic in ``seed``, ``index`` and ``family``).

    A hard-family subject is the easy one with its segment, muscle dynamics and electrodes redrawn
    (:func:`myoedge.body.family.draw_hard`).
    """
    if family not in FAMILIES:
        raise InputError(f"unknown family {family!r}; choose one of {list(FAMILIES)}")
    rng = np.random.default_rng([seed, index, sum(map(ord, joint))])
    generic = generic_model(joint)
    n = len(generic.muscles)
    body_mass, height = rng.uniform(55.0, 95.0), rng.uniform(1.55, 1.95)
    mass_scale = body_mass / BODY_MASS
    model = scale_model(generic, mass_scale=mass_scale, length_scale=height / HEIGHT,
                        moment_arm_scale=rng.normal(1.0, 0.08, n).clip(0.8, 1.2),
                        force_scale=mass_scale ** (2 / 3) * rng.normal(1.0, 0.10, n).clip(0.75, 1.25))
    crosstalk = np.zeros((n, n))
    for i in range(n - 1):
        crosstalk[i, i + 1], crosstalk[i + 1, i] = rng.uniform(0.02, 0.10, 2)
    subject = SyntheticSubject(name=f"{joint}{index:02d}", seed=seed, body_mass=body_mass, height=height,
                               model=model, gain_volts=rng.uniform(0.3e-3, 1.2e-3, n), crosstalk=crosstalk)
    if family == "easy":
        return subject
    model, traits, crosstalk = draw_hard(model, seed=seed, index=index)
    return replace(subject, model=model, crosstalk=crosstalk, family=family, traits=traits)


def session_gains(subject: SyntheticSubject, session: int) -> np.ndarray:
    """Electrode gains of ``session`` (1-based): session 1 is the subject's, later ones drift."""
    if session == 1:
        return subject.gain_volts
    rng = np.random.default_rng([subject.seed, session, 7919])
    return subject.gain_volts * rng.normal(1.0, 0.10, len(subject.gain_volts)).clip(0.7, 1.3)


def true_profile(subject: SyntheticSubject, *, session: int = 1) -> SubjectProfile:
    provenance = {"method": "synthetic ground truth", "session": session,
                  "body_mass_kg": subject.body_mass, "height_m": subject.height}
    if subject.traits is not None:
        t = subject.traits
        provenance.update(family=subject.family, truth={
            "tau_act_s": t.tau_act.tolist(), "tau_deact_s": t.tau_deact.tolist(),
            "tendon_strain": t.tendon_strain.tolist(), "drift_amplitude": t.drift_amplitude.tolist()})
    return SubjectProfile(subject=subject.name, model=subject.model,
                          mvc_volts=tuple(mvc_envelope(session_gains(subject, session), EMG_FS)),
                          provenance=provenance)


def simulate_session(subject: SyntheticSubject, *, session: int = 1, duration_s: float = 20.0,
                     trial_paces: tuple[str, ...] | None = None, loads: tuple[float, ...] = (0.0,)
                     ) -> list[Recording]:
    """One recording per pace (knee: walking speed), all simulated together.

    A hard-family subject gets :func:`myoedge.body.hard_session.simulate_hard_session` instead: open-
    loop trials (``trial_paces`` names them), each at every load in ``loads`` (kg, in the hand).
    """
    if subject.family == "hard":
        from myoedge.body.hard_session import simulate_hard_session

        return simulate_hard_session(subject, session=session, duration_s=duration_s, trials=trial_paces,
                                     loads=loads)
    if tuple(loads) != (0.0,):
        raise InputError("loads are simulated by the hard family only (--family hard)")
    joint, model = subject.model.joint, subject.model
    trial_paces = trial_paces or paces(joint)
    rng = np.random.default_rng([subject.seed, session, 104729, sum(map(ord, subject.name))])
    n, m, b = int(round(duration_s * SIM_FS)), len(model.muscles), len(trial_paces)
    t = np.arange(n) / SIM_FS
    desired = [np.stack(x) for x in zip(*(movement(joint, p, t, rng=rng, fs=SIM_FS) for p in trial_paces))]
    level = rng.uniform(0.02, 0.10, (b, 1, m))
    wander = smooth_noise(rng, n, fs=SIM_FS, cutoff_hz=0.4, shape=(b, m)).transpose(1, 0, 2)
    cocon = level * (1.0 + 0.5 * wander)
    synergy = np.exp(0.3 * smooth_noise(rng, n, fs=SIM_FS, cutoff_hz=0.3, shape=(b, m)).transpose(1, 0, 2))
    motion = simulate(model, desired, fs=SIM_FS, cocontraction=np.clip(cocon, 0.0, 0.5), synergy=synergy)

    gains = session_gains(subject, session)
    setup = ElectrodeSetup(gain_volts=gains, crosstalk=subject.crosstalk)
    step = int(SIM_FS / MOTION_RATE)
    recordings = []
    for i, pace in enumerate(trial_paces):
        emg = synthesize(motion.excitation[i], fs=EMG_FS, setup=setup, rng=rng,
                         theta_ddot=motion.theta_ddot[i])
        pick = slice(0, n, step)
        meta = RecordingMeta(
            joint=joint, muscles=model.muscle_names, subject=subject.name, session=f"s{session}",
            trial=pace, extra={"source": "myoedge synthetic subject", "seed": subject.seed,
                               "truth": {"mvc_volts": mvc_envelope(gains, EMG_FS).tolist(),
                                         "gain_volts": gains.tolist()}})
        recordings.append(Recording(
            meta=meta, emg_fs=EMG_FS, emg=emg, emg_t0=0.0, time=t[pick], rate=MOTION_RATE,
            theta=motion.theta[i, pick], theta_dot=motion.theta_dot[i, pick],
            theta_ddot=motion.theta_ddot[i, pick], torque=motion.torque[i, pick],
            forces=motion.forces[i, pick], moment_arms=motion.moment_arms[i, pick],
            activations=motion.activation[i, pick], excitations=motion.excitation[i, pick]))
    return recordings


def write_dataset(out, *, joints: tuple[str, ...], n_subjects: int, sessions: int = 1,
                  duration_s: float = 20.0, seed: int = 0, overwrite: bool = False, progress=None,
                  family: str = "easy", loads: tuple[float, ...] = (0.0,)) -> dict:
    """Simulate and write ``out/<subject>/profile.json`` and ``out/<subject>/<session>_<trial>/``.

    Nothing is written unless the whole dataset was simulated: an existing subject folder is refused
    up front (``InputError``) unless ``overwrite``; everything is built in a hidden folder and moved into
    place at the end (a replaced profile is kept as ``profile.json.prev``; a replaced recording folder is
    removed once its new one is in place). Returns a summary: per subject its profile path, recordings
    and simulated seconds.
    """
    from myoedge.ground.fileio import atomic_directory, check_output

    out = check_output(out, folder=True, merge=True, overwrite=overwrite)
    names = [f"{joint}{index:02d}" for joint in joints for index in range(1, n_subjects + 1)]
    for name in names:
        if (out / name).exists() and not (out / name).is_dir():
            raise InputError(f"{out / name} is a file, where subject {name}'s folder goes; move it away")
        if (out / name).exists() and not overwrite:
            raise InputError(f"{out / name} already exists; pass --overwrite to replace it")
    if not out.exists():
        with atomic_directory(out) as tmp:
            summary = _simulate_into(tmp, joints=joints, n_subjects=n_subjects, sessions=sessions,
                                     duration_s=duration_s, seed=seed, progress=progress, family=family,
                                     loads=loads)
        return _relocate(summary, tmp, out)
    staged = out / f".simulate-{os.getpid()}"
    with atomic_directory(staged, overwrite=True) as tmp:
        summary = _simulate_into(tmp, joints=joints, n_subjects=n_subjects, sessions=sessions,
                                 duration_s=duration_s, seed=seed, progress=progress, family=family,
                                 loads=loads)
    summary = _relocate(summary, tmp, staged)
    try:
        for name in names:
            _merge_folder(staged / name, out / name)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return _relocate(summary, staged, out)


def _simulate_into(out, *, joints, n_subjects, sessions, duration_s, seed, progress, family, loads) -> dict:
    from myoedge.body.recording import save_recording

    summary = {"out": str(out), "subjects": []}
    for joint in joints:
        for index in range(1, n_subjects + 1):
            subject = make_subject(joint, index, seed=seed, family=family)
            folder = out / subject.name
            profile_path = true_profile(subject).save(folder / "profile.json")
            paths = []
            for session in range(1, sessions + 1):
                for rec in simulate_session(subject, session=session, duration_s=duration_s, loads=loads):
                    paths.append(str(save_recording(rec, folder / f"{rec.meta.session}_{rec.meta.trial}")))
                if progress is not None:
                    progress.update(1, subject.name)
            summary["subjects"].append({"subject": subject.name, "joint": joint, "family": family,
                                        "profile": str(profile_path),
                                        "recordings": paths, "body_mass_kg": round(subject.body_mass, 1),
                                        "height_m": round(subject.height, 3)})
    return summary


def _merge_folder(new, old) -> None:
    """Move ``new``'s entries into ``old`` (created if absent): a file replaces its namesake, which is kept
    as ``<name>.prev``; a folder replaces its namesake whole."""
    from myoedge.ground.fileio import replace_file, replace_folder

    if not old.exists():
        os.replace(new, old)
        return
    for entry in sorted(new.iterdir()):
        if entry.is_dir():
            replace_folder(entry, old / entry.name)
        else:
            replace_file(entry, old / entry.name, keep_previous=True)


def _relocate(summary: dict, staged, out) -> dict:
    """The summary with paths under the staging folder rewritten to their final place under ``out``."""
    def moved(path: str) -> str:
        return str(out / Path(path).relative_to(staged))

    summary["out"] = str(out)
    for s in summary["subjects"]:
        s["profile"] = moved(s["profile"])
        s["recordings"] = [moved(p) for p in s["recordings"]]
    return summary
