"""Recordings -> the inputs of deep-muscle reconstruction, the hidden channels kept aside, and the splits.

Envelopes come from :func:`myoedge.train.data.load_sequences` (the device's envelope chain, ÷ MVC), so a
hidden channel's EMG column, where a lab recorded one with fine wires, is scored after the same
envelope and normalisation as the surface channels. ``hidden`` muscles never reach an input or a loss:
:class:`Trial` keeps their envelopes only in ``truth``.

Each trial needs the load held in the hand (``load_kg`` in recording.json, 0 allowed) and the net joint
moment from inverse dynamics (the torque column). The muscle-tendon geometry (moment arms r(θ) and
lengths l_MT(θ)) comes from the subject's profile where there is one, else from the recorded moment arms
(a lab's muscle analysis), else from the generic joint model; the muscle parameters the reconstruction
personalises start from the generic catalog values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from myoedge.body.catalog import JOINTS, generic_model
from myoedge.body.model import JointModel
from myoedge.body.muscle import MuscleSet
from myoedge.body.recording import find_recordings, load_recording
from myoedge.ground.errors import InputError
from myoedge.train.moment_arms import recorded_geometry

SPLITS = ("trial", "load")
_LOAD_SUFFIX = re.compile(r"_\d+(\.\d+)?kg$")


@dataclass(frozen=True, eq=False)
class Trial:
    """One trial at the model rate. Measured arrays hold the surface channels only."""

    subject: str
    name: str  # session_trial as recorded
    task: str  # trial name without its load suffix (the same movement at every load)
    load_kg: float
    t: np.ndarray  # (n,) s
    kinematics: np.ndarray  # (n, 3) θ (rad), θ̇ (rad/s), θ̈ (rad/s²)
    measured: np.ndarray  # (n, C) envelopes ÷ MVC of the surface channels
    truth: np.ndarray | None  # (n, H) envelopes ÷ MVC of the hidden channels, scoring only
    torque: np.ndarray  # (n,) N·m, inverse dynamics
    moment_arms: np.ndarray  # (n, M) m, all muscles
    l_mt: np.ndarray  # (n, M) m
    l_mt_dot: np.ndarray  # (n, M) m/s

    @property
    def n(self) -> int:
        return len(self.t)


@dataclass(frozen=True, eq=False)
class SubjectData:
    subject: str
    muscles: tuple[str, ...]  # all muscles, channel order
    measured: tuple[int, ...]  # indices of the surface channels
    hidden: tuple[int, ...]  # indices of the hidden channels
    model: JointModel  # geometry of the subject, generic muscle parameters
    trials: tuple[Trial, ...]


def check_hidden(muscles, hidden) -> tuple[str, ...]:
    """``hidden`` as a tuple, or an InputError: unknown names, duplicates, or every muscle hidden."""
    hidden = tuple(hidden or ())
    if not hidden:
        raise InputError("name at least one hidden muscle (--hidden)")
    unknown = [h for h in hidden if h not in muscles]
    if unknown:
        raise InputError(f"unknown hidden muscle(s) {unknown}; the recordings have {list(muscles)}")
    if len(set(hidden)) != len(hidden):
        raise InputError(f"hidden muscles listed twice: {list(hidden)}")
    if set(hidden) == set(muscles):
        raise InputError(f"every muscle is hidden ({list(hidden)}); at least one must be measured")
    return hidden


def _geometry_model(seqs) -> JointModel:
    """One subject's geometry with generic muscle parameters: the profile's (or, with no recorded moment
    arms, the generic joint's) r(θ), else the generic joint's muscles on the recorded moment arms
    (:func:`~myoedge.train.moment_arms.recorded_geometry`: a lab's muscle analysis is that subject's)."""
    seq = seqs[0]
    generic = generic_model(seq.joint) if seq.joint in JOINTS else None
    if generic is not None and set(generic.muscle_names) != set(seq.muscles):
        generic = None
    if seq.model is not None and seq.model_moment_arms:
        model = seq.model
    elif generic is not None and all(s.moment_arms is not None for s in seqs):
        model = recorded_geometry(seqs, generic)
    else:
        raise InputError(f"{seq.name}: moment arms and muscle-tendon lengths need a profile, or a known "
                         f"joint ({sorted(JOINTS)}) naming the muscles {list(seq.muscles)}")
    if generic is not None:
        muscles = []
        for m in model.muscles:
            g = generic.muscles[generic.index(m.name)]
            muscles.append(replace(m, max_force=g.max_force, optimal_fiber_length=g.optimal_fiber_length,
                                   tendon_slack_length=g.tendon_slack_length, pennation=g.pennation))
        model = replace(model, muscles=tuple(muscles))
    return model


def load_dataset(root, *, hidden, rate_hz: float = 100.0, subjects=None) -> dict[str, SubjectData]:
    """Every subject's trials under ``root`` with the ``hidden`` channels kept aside."""
    from myoedge.train.data import load_sequences, recording_load

    paths = find_recordings(root)
    if not paths:
        raise InputError(f"no recordings (folders with recording.json) under {root}")
    recs, profiles_from = [], {}
    for path in paths:
        rec = load_recording(path)
        if subjects and rec.meta.subject not in subjects:
            continue
        recording_load(rec, required=True)
        if rec.torque is None:
            raise InputError(f"recording {rec.meta.subject} {rec.meta.trial} has no torque (inverse "
                             "dynamics); the physics of the reconstruction needs it")
        if rec.forces is None:  # the loader wants forces as targets; the reconstruction never reads them
            rec = replace(rec, forces=np.zeros((len(rec.time), rec.n_muscles)))
        recs.append(rec)
        profiles_from[rec.meta.subject] = Path(path)
    if not recs:
        raise InputError(f"no recordings of subjects {list(subjects)} under {root}")
    muscles = recs[0].meta.muscles
    if any(r.meta.muscles != muscles for r in recs):
        raise InputError("recordings list different muscles; reconstruction needs one channel order")
    hidden_names = check_hidden(muscles, hidden)
    loads = {(r.meta.subject, r.meta.session, r.meta.trial): recording_load(r, required=True) for r in recs}
    from myoedge.train.data import _profiles_beside

    profiles = {}
    for subject, folder in profiles_from.items():
        profiles.update({k: v for k, v in _profiles_beside(folder).items() if k == subject})
    seqs = load_sequences(recs, rate_hz=rate_hz, profiles=profiles)
    h_idx = tuple(muscles.index(h) for h in hidden_names)
    m_idx = tuple(i for i in range(len(muscles)) if i not in h_idx)
    out: dict[str, list] = {}
    models = {subject: _geometry_model([s for s in seqs if s.subject == subject])
              for subject in {s.subject for s in seqs}}
    for s in seqs:
        model = models[s.subject]
        theta = np.asarray(s.theta, float)
        dt = 1.0 / rate_hz
        theta_dot = np.gradient(theta, dt)
        theta_ddot = np.gradient(theta_dot, dt)
        r = model.moment_arms(theta)
        trial = Trial(subject=s.subject, name=f"{s.session}_{s.trial}", task=_LOAD_SUFFIX.sub("", s.trial),
                      load_kg=loads[(s.subject, s.session, s.trial)], t=np.asarray(s.t, float),
                      kinematics=np.column_stack([theta, theta_dot, theta_ddot]),
                      measured=np.asarray(s.envelopes[:, list(m_idx)], float),
                      truth=np.asarray(s.envelopes[:, list(h_idx)], float),
                      torque=np.asarray(s.torque, float), moment_arms=r,
                      l_mt=MuscleSet(model).mt_length(theta), l_mt_dot=-r * theta_dot[:, None])
        out.setdefault(s.subject, []).append(trial)
    return {subj: SubjectData(subject=subj, muscles=tuple(muscles), measured=m_idx, hidden=h_idx,
                              model=models[subj], trials=tuple(sorted(ts, key=lambda t: t.name)))
            for subj, ts in sorted(out.items())}


def split(data: SubjectData, how: str) -> tuple[list[Trial], list[Trial]]:
    """(train, test) trials of one subject.

    ``trial``: at every load with two or more tasks (movements), the last task in name order is held
    out and the others train (the same task at every load where the trials share task names, as
    ``mix1_0kg`` … ``mix3_4kg``). ``load``: the lightest and heaviest loads train, the loads between them
    are the test (0/4 kg train, 2 kg test).
    """
    if how not in SPLITS:
        raise InputError(f"unknown split {how!r}; choose one of {list(SPLITS)}")
    if how == "trial":
        test = []
        for load in sorted({t.load_kg for t in data.trials}):
            tasks = sorted({t.task for t in data.trials if t.load_kg == load})
            if len(tasks) >= 2:
                test += [t for t in data.trials if t.load_kg == load and t.task == tasks[-1]]
        if not test:
            raise InputError(f"subject {data.subject}: --split trial needs two or more trials at one load "
                             f"at least, found {sorted(t.name for t in data.trials)}")
    else:
        loads = sorted({t.load_kg for t in data.trials})
        if len(loads) < 3:
            raise InputError(f"subject {data.subject}: --split load needs at least three loads (train on the "
                             f"lightest and heaviest, test between), found {loads}")
        test = [t for t in data.trials if loads[0] < t.load_kg < loads[-1]]
    train = [t for t in data.trials if t not in test]
    return train, test
