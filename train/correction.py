"""The observer's correction time, chosen on held-out training data rather than assumed.

The observer integrates the joint's equation of motion driven by the net muscle moment its network
predicts, and pulls the integrated angle toward the network's direct angle estimate within a time T
(:mod:`myoedge.train.observer`). Which T is right depends on the data, not only on how well the
identified equation explains the recorded moment: where the predicted net moment is accurate, a slow
correction (T = 1 s) keeps the physics' angle (our hard wrist: θ CC 0.974 at 1 s, 0.907 at 20 ms);
where the net moment is a small difference of co-contracting forces, each predicted a little wrong,
the integration drifts and a fast correction wins (an OpenSim wrist: 0.26 at 1 s, 0.86 at 20 ms;
docs/results/opensim). So T is measured, the way a user would check it: the observer is fitted on the
first part of every training piece, each candidate T predicts the last ``fraction`` of every piece (its
state warmed up on the EMG before, as on a device), and the slowest T whose θ RMSE there is within
10 % of the lowest is the one the final model (fitted on all the training data) runs with. No
candidate is slower than the identified T, the time the physics holds when driven by the recorded
forces (:meth:`~myoedge.train.observer.ObserverNet.identify`): one held-out fifth can favour a slow
T that the rest of the trial then punishes (an OpenSim wrist: T = 1 s chosen against an identified
0.25 s, and θ CC 0.69 on the test part). The final model is trained at the chosen T
(``TrainConfig.correction_s``), the bound it runs with: the trial fit's candidates only rescale the
bound of gains trained at the identified T, which its network's forces and direct angle were fitted
under.

Costs one more fit on (1 − fraction) of the data. Pieces too short to hold out a part keep the
identified T, and the run says so. With a ``rival`` preset (``edge``: the GRU), the rival is fitted on the
same part and scored on the same held-out part; it is trained instead of the observer where its θ RMSE
there is more than 10 % below the observer's at the chosen T (on an OpenSim wrist the GRU predicts the
angle better; on the loaded OpenSim elbow and our own wrist the observer does: docs/results/opensim).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from myoedge.ground.errors import InputError
from myoedge.train.data import split_time

log = logging.getLogger(__name__)

CANDIDATES_S = (1.0, 0.5, 0.25, 0.12, 0.06, 0.03)  # up to the identified time; floor two model steps
TOLERANCE = 0.10  # a slower correction is kept when its held-out θ RMSE is within 10 % of the lowest


def candidate_times(rate_hz: float, *, up_to: float | None = None) -> list[float]:
    """The correction times (s) to weigh, slowest first: :data:`CANDIDATES_S` no shorter than two model
    steps and, with ``up_to``, none slower than it (``up_to`` itself included)."""
    floor = 2.0 / rate_hz
    times = {max(c, floor) for c in CANDIDATES_S if up_to is None or c <= up_to}
    return sorted(times | ({up_to} if up_to is not None else set()), reverse=True)


def choose_correction(seqs, config, *, seed: int, threads: int | None) -> dict:
    """Fit on all but the last ``config.correction_validation`` of every piece of ``seqs``; return the
    correction time (s) with the lowest θ RMSE on those last parts, and every candidate's RMSE."""
    from myoedge.train.fit import fit  # fit calls this module: imported late

    fraction = config.correction_validation
    try:
        parts = split_time(seqs, test_fraction=fraction)
    except InputError as exc:
        log.warning("the observer keeps its identified correction time: %s", exc)
        return {"chosen_s": None, "why": str(exc)}
    head = [s for tr, _ in parts.values() for s in tr]
    tail = [s for _, te in parts.values() for s in te]
    log.info("choosing the observer's correction time: a fit on the first %g of every training piece, "
             "scored on the last %g", 1.0 - fraction, fraction)
    plain = without_selection(config)
    trial = fit(head, plain, seed=seed, threads=threads)
    identified = float(trial.model.correction_s[0])
    # never slower than the identified T: the physics is not trusted longer than it holds when driven
    # by the recorded forces (ObserverNet.identify), however well a slow T scores on one held-out part
    candidates = candidate_times(seqs[0].rate_hz, up_to=identified)
    rmse = {}
    for t in candidates:
        trial.model.correction_s.fill_(t)
        rmse[t] = _theta_rmse(trial, tail)
    lowest = min(rmse.values())
    if not math.isfinite(lowest):
        return {"chosen_s": None, "why": "no candidate gave a finite angle on the held-out part"}
    # the slowest correction (the most physics) within TOLERANCE of the lowest error: a parsimony rule,
    # as the one-standard-error rule of cross-validation, since one held-out fifth is a noisy judge
    best = max(t for t in candidates if rmse[t] <= (1.0 + TOLERANCE) * lowest)
    choice = {"chosen_s": best, "identified_s": identified, "fraction": fraction,
              "validation_rmse_deg": {f"{t:.3g}": math.degrees(e) for t, e in rmse.items()},
              "validation_steps": int(sum(s.n for s in tail)), "fit_seconds": trial.info["train_seconds"],
              "winner": config.preset}
    if config.rival:  # the rival on the same split; it must beat the observer by more than TOLERANCE
        rival = fit(head, dataclasses.replace(plain, preset=config.rival), seed=seed, threads=threads)
        rival_rmse = _theta_rmse(rival, tail)
        choice["rival"] = {"preset": config.rival, "validation_rmse_deg": math.degrees(rival_rmse)}
        choice["fit_seconds"] += rival.info["train_seconds"]
        if rival_rmse * (1.0 + TOLERANCE) < rmse[best]:
            choice["winner"] = config.rival
        log.info("held-out θ RMSE: observer %.2f° (T %.3g s), %s %.2f°: training %s",
                 math.degrees(rmse[best]), best, config.rival, math.degrees(rival_rmse), choice["winner"])
    return choice


def without_selection(config):
    """``config`` as a single fit: no held-out choice of the correction time, no rival."""
    return dataclasses.replace(config, correction_validation=0.0, rival="", correction_s=0.0)


def _theta_rmse(trained, seqs) -> float:
    """θ RMSE (rad) of ``trained`` over ``seqs``, each predicted with its state warmed on its lead."""
    err = np.concatenate([trained.predict(s)[0] - s.theta for s in seqs])
    return float(np.sqrt(np.mean(err**2)))
