"""A subject's moment arms r_n(θ) as polynomials fitted to its recordings.

A lab's muscle analysis of its own model (OpenSim MuscleAnalysis ``MomentArm_<coordinate>.sto``) is that
subject's r(θ); a generic model's is an average adult's. Where recordings carry moment arms they come
first, else the sequence's model gives them. The observer integrates with these cubics
(:mod:`myoedge.train.observer`), and the reconstruction builds its muscle-tendon geometry on them
(:func:`recorded_geometry`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from myoedge.body.model import JointModel
from myoedge.ground.errors import InputError

ARM_DEGREE = 3  # moment arms as cubics in θ


def arm_polynomials(seqs, degree: int = ARM_DEGREE, *, hint: str = "") -> np.ndarray:
    """(M, degree + 1) coefficients, lowest power first, of r_n(θ) fitted over the steps of ``seqs``
    (:class:`myoedge.train.data.Sequence`); ``hint`` ends the error of a sequence with no moment arms."""
    arms = []
    for s in seqs:
        if s.moment_arms is not None:  # measured (e.g. a muscle analysis) before modelled
            arms.append(s.moment_arms)
        elif s.model_moment_arms:
            arms.append(s.model.moment_arms(s.theta))
        else:
            raise InputError(f"{s.name}: no moment arms (recorded, or a model that names the muscles "
                             f"{list(s.muscles)}){hint}")
    theta = np.concatenate([s.theta for s in seqs])
    return np.polynomial.polynomial.polyfit(theta, np.concatenate(arms), degree).T


def recorded_geometry(seqs, generic: JointModel) -> JointModel:
    """``generic`` with each muscle's r(θ) replaced by the cubic fitted to the recorded moment arms of
    ``seqs`` (one subject, channel order of the recordings) and the range of motion narrowed to the
    recorded angles, where the fit is known. Muscle-tendon lengths follow from r (l̇_MT = −r θ̇) with the
    generic anchor: fibre optimal and tendon slack at the muscle's optimal angle."""
    names = seqs[0].muscles
    if set(names) != set(generic.muscle_names):
        raise InputError(f"recorded muscles {list(names)} are not the {generic.joint} model's "
                         f"{list(generic.muscle_names)}")
    coeffs = arm_polynomials(seqs)
    theta = np.concatenate([s.theta for s in seqs])
    muscles = tuple(replace(generic.muscles[generic.index(n)], moment_arm=tuple(float(c) for c in coeffs[i]))
                    for i, n in enumerate(names))
    try:
        segment = replace(generic.segment, range_lo=float(theta.min()), range_hi=float(theta.max()))
        return JointModel(joint=generic.joint, segment=segment, muscles=muscles)
    except InputError as e:
        raise InputError(f"subject {seqs[0].subject}: the recorded moment arms do not make a joint model "
                         f"({e})") from e
