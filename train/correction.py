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
candidate is slower than the identified T, the time the joint's equation holds when driven by the
recorded muscle moment (:meth:`~myoedge.train.observer.ObserverNet.identify`): past that time the
integration would carry a moment the equation itself cannot (our hard elbow6, its forearm above the
horizontal with little damping). The final model is trained at the chosen T
(``TrainConfig.correction_s``), the bound it runs with: the trial fit's candidates only rescale the
bound of gains trained at the identified T, which its network's forces and direct angle were fitted
under.

Costs one more fit on (1 − fraction) of the data. Pieces too short to hold out a part keep the
identified T, and the run says so. With a ``rival`` preset (``edge``: the GRU), the rival is fitted on the
same part and scored on the same held-out part; it is trained instead of the observer where its θ RMSE
there is more than 10 % below the observer's at the chosen T (on an OpenSim wrist the GRU predicts the
angle better; on the loaded OpenSim elbow and our own wrist the observer does: docs/results/opensim).
Where this process may use two cores (and is not itself a worker of an evaluation's pool) the rival
is fitted in a worker process while the observer fits here (each fit is one thread bound by per-step
dispatch); seeded, it scores the same either way. A rival that cannot be fitted (its worker lost) is
logged and recorded, and the observer is trained.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np

from myoedge.ground.errors import InputError
from myoedge.ground.host import side_by_side
from myoedge.train.data import split_time
from myoedge.train.executor import TaskFailed, open_executor

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
    plain = dataclasses.replace(without_selection(config), members=1)  # the choice weighs single fits
    # the rival fits beside the observer on a second core where there is one (a fit is one thread of
    # dispatch-bound steps); the same seed and threads give the same result either way
    started = time.perf_counter()
    jobs = side_by_side(2) if config.rival else 1
    with open_executor("process", jobs=jobs) as executor:
        pending = executor.submit(_fit_and_score, head, tail, dataclasses.replace(plain, preset=config.rival),
                                  seed, threads) if config.rival else None
        trial = fit(head, plain, seed=seed, threads=threads)
        choice, observer_rmse = _choose(trial, seqs, tail, config, fraction)
        if pending is not None:
            _weigh_rival(choice, observer_rmse, pending, config.rival)
    choice["fit_seconds"] = round(time.perf_counter() - started, 3)  # wall time, the fits side by side
    choice["parallel"] = jobs > 1
    return choice


def _choose(trial, seqs, tail, config, fraction: float) -> tuple[dict, float]:
    """The held-out choice of T for the observer ``trial`` fitted on the first part of ``seqs``, and the
    observer's held-out θ RMSE (rad) at that T (inf where no T gave a finite angle)."""
    identified = float(trial.model.correction_s[0])
    # never slower than the identified T: the physics is not trusted longer than it holds when driven
    # by the recorded moment (ObserverNet.identify), however well a slow T scores on one held-out part
    candidates = candidate_times(seqs[0].rate_hz, up_to=identified)
    rmse = {}
    for t in candidates:
        trial.model.correction_s.fill_(t)
        rmse[t] = _theta_rmse(trial, tail)
    lowest = min(rmse.values())
    if not math.isfinite(lowest):
        return {"chosen_s": None, "why": "no candidate gave a finite angle on the held-out part",
                "winner": config.preset}, math.inf
    # the slowest correction (the most physics) within TOLERANCE of the lowest error: a parsimony rule,
    # as the one-standard-error rule of cross-validation, since one held-out fifth is a noisy judge
    best = max(t for t in candidates if rmse[t] <= (1.0 + TOLERANCE) * lowest)
    choice = {"chosen_s": best, "identified_s": identified, "fraction": fraction,
              "validation_rmse_deg": {f"{t:.3g}": math.degrees(e) for t, e in rmse.items()},
              "validation_steps": int(sum(s.n for s in tail)),
              "observer_fit_seconds": trial.info["train_seconds"], "winner": config.preset}
    return choice, rmse[best]


def _fit_and_score(head, tail, config, seed: int, threads: int | None) -> tuple[float, float]:
    """The rival fitted on ``head``: its θ RMSE (rad) on ``tail`` and its training time (s)."""
    from myoedge.train.fit import fit  # fit calls this module: imported late

    rival = fit(head, config, seed=seed, threads=threads)
    return _theta_rmse(rival, tail), rival.info["train_seconds"]


def _weigh_rival(choice: dict, observer_rmse: float, pending, preset: str) -> None:
    """Enter the rival's held-out score in ``choice``; it wins where it beats the observer's
    ``observer_rmse`` by more than TOLERANCE. A rival that could not be fitted is logged and leaves the
    observer."""
    try:
        rival_rmse, seconds = pending.result()
    except TaskFailed as exc:
        log.warning("the rival %s could not be fitted (%s): training the observer", preset, exc)
        choice["rival"] = {"preset": preset, "error": str(exc)}
        return
    choice["rival"] = {"preset": preset, "validation_rmse_deg": math.degrees(rival_rmse),
                       "fit_seconds": seconds}
    if rival_rmse * (1.0 + TOLERANCE) < observer_rmse:
        choice["winner"] = preset
    log.info("held-out θ RMSE: observer %.2f° (T %s s), %s %.2f°: training %s", math.degrees(observer_rmse),
             choice["chosen_s"], preset, math.degrees(rival_rmse), choice["winner"])


def without_selection(config):
    """``config`` as a single fit: no held-out choice of the correction time, no rival."""
    return dataclasses.replace(config, correction_validation=0.0, rival="", correction_s=0.0)


def _theta_rmse(trained, seqs) -> float:
    """θ RMSE (rad) of ``trained`` over ``seqs``, each predicted with its state warmed on its lead."""
    err = np.concatenate([trained.predict(s)[0] - s.theta for s in seqs])
    return float(np.sqrt(np.mean(err**2)))
