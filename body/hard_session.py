"""Trials of a hard-family subject: open-loop motor plans, compliant tendons, loads, drifting electrodes.

A session is ``trials`` × ``loads`` recordings simulated together (one batch): each trial name gets
its own motor plan (:mod:`myoedge.body.drive`), repeated at every load held in the hand (the plan's
internal model knows the load; the load enters the segment's mass, centre of mass and inertia,
:func:`myoedge.body.catalog.with_hand_load`). Electrode gains drift slowly over the session's
timeline (trials recorded one after another), up to the subject's ``drift_amplitude`` (≤ 30 %).
recording.json records ``family``, ``load_kg`` and, under ``truth``, the trial's true segment.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np

from myoedge.body.catalog import HAND_LOAD_FRACTION, with_hand_load
from myoedge.body.drive import make_plan
from myoedge.body.emg_synth import mvc_envelope, synthesize_drifting
from myoedge.body.family import JOINT_RANGES
from myoedge.body.forward import Reflex, simulate_open_loop
from myoedge.body.recording import Recording, RecordingMeta
from myoedge.body.trajectories import smooth_noise
from myoedge.ground.errors import InputError

TRIALS = ("mix1", "mix2", "mix3")
DRIFT_CUTOFF_HZ = 1.0 / 40.0  # electrode gain changes over tens of seconds


def trial_name(trial: str, load: float, loads: tuple[float, ...]) -> str:
    return trial if tuple(loads) == (0.0,) else f"{trial}_{load:g}kg"


def simulate_hard_session(subject, *, session: int = 1, duration_s: float = 20.0,
                          trials: tuple[str, ...] | None = None, loads: tuple[float, ...] = (0.0,)
                          ) -> list[Recording]:
    from myoedge.body.subjects import EMG_FS, MOTION_RATE, SIM_FS, session_gains

    loads = tuple(float(x) for x in loads)
    if not loads or any(not (0.0 <= x <= 20.0) for x in loads) or len(set(loads)) != len(loads):
        raise InputError(f"loads must be distinct masses between 0 and 20 kg, got {list(loads)}")
    if subject.model.joint != "elbow6" and loads != (0.0,):
        raise InputError(f"loads in the hand are simulated for the elbow6 joint only, not "
                         f"{subject.model.joint}")
    trials = tuple(trials or TRIALS)
    model, traits = subject.model, subject.traits
    rng = np.random.default_rng([subject.seed, session, 7477, sum(map(ord, subject.name))])
    n, m = int(round(duration_s * SIM_FS)), len(model.muscles)
    distance = HAND_LOAD_FRACTION * subject.height
    cases = [(trial, load) for trial in trials for load in loads]
    segments = [with_hand_load(model.segment, load_kg=load, distance=distance) for _, load in cases]
    work, lead = JOINT_RANGES[model.joint].work, float(traits.tau_act.mean())
    # one plan per trial name, the same task at every load (its internal model knows the load)
    made = [make_plan(replace(model, segment=seg),
                      np.random.default_rng([subject.seed, session, trials.index(trial), 271828]),
                      n, fs=SIM_FS, work=work, lead_s=lead)
            for (trial, _), seg in zip(cases, segments)]
    motion = simulate_open_loop(
        model, segments, np.stack([p.theta for p in made]), np.stack([p.excitation for p in made]),
        fs=SIM_FS, tau_act=traits.tau_act, tau_deact=traits.tau_deact, tendon_strain=traits.tendon_strain,
        reflex=Reflex(gain=traits.reflex_gain, velocity_gain=traits.reflex_velocity_gain,
                      delay_s=traits.reflex_delay_s))

    gains = session_gains(subject, session)
    total = n * len(cases)
    wander = smooth_noise(rng, total, fs=SIM_FS / 20, cutoff_hz=DRIFT_CUTOFF_HZ, shape=(m,)) if total >= 40 \
        else np.zeros((total, m))
    wander = wander / np.maximum(np.abs(wander).max(axis=0), 1.0)
    drift_all = 1.0 + traits.drift_amplitude * wander  # within ± drift_amplitude
    step, t = int(SIM_FS / MOTION_RATE), np.arange(n) / SIM_FS
    pick = slice(0, n, step)
    recordings = []
    for i, ((trial, load), seg, plan) in enumerate(zip(cases, segments, made)):
        drift = drift_all[i * n:(i + 1) * n]
        emg = synthesize_drifting(motion.excitation[i], fs=EMG_FS, gain_volts=gains,
                                  crosstalk=subject.crosstalk,
                                  drift=drift, mains_volts=traits.mains_volts, noise_volts=traits.noise_volts,
                                  rng=rng, theta_ddot=motion.theta_ddot[i])
        meta = RecordingMeta(
            joint=model.joint, muscles=model.muscle_names, subject=subject.name, session=f"s{session}",
            trial=trial_name(trial, load, loads),
            extra={"source": "myoedge synthetic subject", "family": "hard", "seed": subject.seed,
                   "load_kg": load, "load_distance_m": distance, "plan": list(plan.kinds),
                   "truth": {"mvc_volts": mvc_envelope(gains, EMG_FS).tolist(), "gain_volts": gains.tolist(),
                             "gain_drift_range": [float(drift.min()), float(drift.max())],
                             "segment": asdict(seg)}})
        recordings.append(Recording(
            meta=meta, emg_fs=EMG_FS, emg=emg, emg_t0=0.0, time=t[pick], rate=MOTION_RATE,
            theta=motion.theta[i, pick], theta_dot=motion.theta_dot[i, pick],
            theta_ddot=motion.theta_ddot[i, pick], torque=motion.torque[i, pick],
            forces=motion.forces[i, pick], moment_arms=motion.moment_arms[i, pick],
            activations=motion.activation[i, pick], excitations=motion.excitation[i, pick]))
    return recordings
