"""The synergy prior alone: what a hidden envelope scores with no model at all.

Each hidden muscle's reconstruction is the mean of the measured envelopes of its own action (the NMM's
fixed synergy prior, :func:`myoedge.train.reconstruct.nmm.action_mix`), scored on a split's test trials
exactly as ``myoedge reconstruct`` scores a method. A method that does not beat it has learned nothing
about the hidden muscle that its synergists did not already say.

    python -m myoedge.train.reconstruct.prior DATA --hidden BRA TRImed [--split trial|load]

prints one line per subject and, last, ``{"method": "prior", "split": …, "hidden": {…: {"cc", "rmse"}},
"subjects": {…}}`` (means over subjects).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from myoedge.ground.errors import InputError
from myoedge.train.metrics import pearson_cc, rmse
from myoedge.train.reconstruct.data import SPLITS, SubjectData, load_dataset, split


def prior_mix(data: SubjectData) -> np.ndarray:
    """(measured, hidden) weights of the action mix; a hidden muscle with no measured synergist is an
    error (the prior has nothing to average)."""
    from myoedge.train.reconstruct.nmm import action_mix

    mix = action_mix(data)
    lonely = [data.muscles[h] for j, h in enumerate(data.hidden) if np.isnan(mix[:, j]).any()]
    if lonely:
        raise InputError(f"no measured muscle shares the action of {lonely}: the prior has nothing to "
                         "average")
    return mix


def score_prior(data: SubjectData, how: str) -> dict[str, dict[str, float]]:
    """Per hidden muscle, CC and RMSE of the prior against the hidden envelopes of the test trials."""
    _, test = split(data, how)
    mix = prior_mix(data)
    recon = np.vstack([t.measured @ mix for t in test])
    truth = np.vstack([t.truth for t in test])
    return {data.muscles[h]: {"cc": pearson_cc(truth[:, j], recon[:, j]),
                              "rmse": rmse(truth[:, j], recon[:, j])}
            for j, h in enumerate(data.hidden)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m myoedge.train.reconstruct.prior",
                                description=__doc__.split("\n")[0])
    p.add_argument("data")
    p.add_argument("--hidden", nargs="+", required=True, metavar="MUSCLE")
    p.add_argument("--split", choices=list(SPLITS), default="trial")
    args = p.parse_args(argv)
    try:
        dataset = load_dataset(args.data, hidden=args.hidden)
        subjects = {name: score_prior(data, args.split) for name, data in dataset.items()}
    except InputError as e:
        print(f"prior: {e}", file=sys.stderr)
        return 2
    for name, s in subjects.items():
        print(name, " ".join(f"{m} CC {v['cc']:.3f} RMSE {v['rmse']:.3f}" for m, v in s.items()))
    first = next(iter(subjects.values()))
    mean = {m: {k: float(np.mean([s[m][k] for s in subjects.values()])) for k in ("cc", "rmse")}
            for m in first}
    print(json.dumps({"method": "prior", "split": args.split, "hidden": mean, "subjects": subjects}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
