"""The paper's protocol data: trials cut into time-normalised movement cycles, and its splits.

Zhang et al. (IEEE TNSRE 2023) normalise every gait cycle to 100 frames (Section IV-A), fuse the
cycles of a subject across walking speeds and split them 80/20 at random for training and testing
(Section IV-C); across sessions they train on one session and test on another. Their PI-CNN's inputs
are the envelopes and the *time step*, which under this protocol is the frame's place in its cycle.

:func:`cycle_sequences` turns each trial (a :class:`~myoedge.train.data.Sequence` at the model rate) into
one sequence per cycle (:func:`myoedge.body.cycles.segment`): 100 frames of envelopes, θ, forces,
moment arms and torque, with ``t`` the phase 0 … 1 (frame i of 100 at i/99) — what every method gets as
its time input — ``cycle_s`` the cycle's duration and ``rate_hz`` = 99 / duration, the frames' real
spacing, so the physics residual differentiates θ in seconds. A device never knows the phase of a
movement while it happens: this protocol is for comparing with the paper, not for a controller.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from myoedge.body.cycles import FRAMES, segment
from myoedge.ground.errors import InputError
from myoedge.train.data import Sequence, _by_subject

log = logging.getLogger(__name__)


def trial_cycles(seq: Sequence, *, frames: int = FRAMES, k_mad: float = 3.0) -> tuple[list[Sequence], dict]:
    """One trial's cycles as sequences, and the segmentation counts (detected, rejected, kept)."""
    if seq.cycle_s is not None:
        raise InputError(f"{seq.name} is already a time-normalised cycle")
    channels = {"envelopes": seq.envelopes, "forces": seq.forces, "moment_arms": seq.moment_arms,
                "torque": seq.torque}
    cyc = segment(seq.t, seq.theta, channels, joint=seq.joint, source=seq.source or seq.name,
                  events=seq.events, frames=frames, k_mad=k_mad)
    if cyc.rejected:
        log.warning("%s: %d of %d cycles dropped for an outlier duration (%s s)", seq.source or seq.name,
                    cyc.rejected, cyc.detected, ", ".join(f"{d:.2f}" for d in cyc.rejected_durations))
    phase = np.linspace(0.0, 1.0, frames)
    out = []
    for i in range(cyc.n):
        c = {k: v[i] for k, v in cyc.channels.items()}
        dur = float(cyc.durations[i])
        out.append(replace(seq, name=f"{seq.name}#c{i:03d}", t=phase, rate_hz=(frames - 1) / dur,
                           envelopes=np.ascontiguousarray(c["envelopes"], dtype=np.float32),
                           theta=c["theta"], forces=c["forces"], moment_arms=c.get("moment_arms"),
                           torque=c.get("torque"), lead=None, cycle_s=dur))
    return out, {"trial": seq.name, **cyc.counts()}


def cycle_sequences(seqs, *, frames: int = FRAMES, k_mad: float = 3.0) -> tuple[list[Sequence], list[dict]]:
    """Every trial's cycles (in trial order) and one count record per trial."""
    cycles, counts = [], []
    for s in seqs:
        c, n = trial_cycles(s, frames=frames, k_mad=k_mad)
        cycles += c
        counts.append(n)
    return cycles, counts


def split_cycles(cycles, *, train_fraction: float = 0.8, seed: int = 0) -> dict:
    """The paper's split: per subject, its cycles of every trial fused and shuffled with ``seed``; the
    first ``train_fraction`` train, the rest test. Returns ``{subject: (train, test)}``."""
    if not 0.0 < train_fraction < 1.0:
        raise InputError(f"train_fraction must be in (0, 1), got {train_fraction}")
    result = {}
    for subject, group in sorted(_by_subject(cycles).items()):
        n_test = int(round((1.0 - train_fraction) * len(group)))
        if n_test < 1 or len(group) - n_test < 1:
            raise InputError(f"subject {subject}: {len(group)} cycles are too few to split "
                             f"{train_fraction:g}/{1 - train_fraction:g}")
        order = np.random.default_rng(seed).permutation(len(group))
        result[subject] = ([group[i] for i in sorted(order[n_test:])],
                           [group[i] for i in sorted(order[:n_test])])
    return result


def split_sessions(cycles) -> list[tuple[str, list[Sequence], list[Sequence]]]:
    """The paper's inter-session split: for a subject with two or more sessions, a model trained on the
    cycles of its first session (in name order) is tested on each later session's cycles. ``(tested
    session, train, test)`` per fold; empty when no subject has two sessions."""
    folds = []
    for _, group in sorted(_by_subject(cycles).items()):
        sessions = sorted({c.session for c in group})
        train = [c for c in group if c.session == sessions[0]]
        for held in sessions[1:]:
            folds.append((held, train, [c for c in group if c.session == held]))
    return folds


def cycle_folds(seqs, *, protocols, train_fraction: float, seed: int, frames: int = FRAMES,
                k_mad: float = 3.0) -> tuple[list[tuple], list[dict]]:
    """The ``(protocol, subject, fold name, train, test)`` tuples of the ``paper`` and ``sessions``
    protocols, and the segmentation counts of :func:`cycle_sequences`."""
    cycles, counts = cycle_sequences(seqs, frames=frames, k_mad=k_mad)
    folds = []
    if "paper" in protocols:
        tag = f"cycles {round(100 * train_fraction)}/{round(100 * (1 - train_fraction))}"
        for subject, (train, test) in split_cycles(cycles, train_fraction=train_fraction, seed=seed).items():
            folds.append(("paper", subject, tag, train, test))
    if "sessions" in protocols:
        inter = split_sessions(cycles)
        if not inter:
            log.warning("inter-session protocol skipped: no subject has two sessions")
        folds += [("sessions", test[0].subject, f"{train[0].session} → {held}", train, test)
                  for held, train, test in inter]
    return folds, counts
