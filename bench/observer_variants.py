"""The observer's force stage, part by part, over seeds: held-out θ and force CC on a time split.

    python bench/observer_variants.py DATA --seeds 0 1 2 [--variants stage emg-off plain]

Every variant is ``edge-observer`` (its correction time chosen on held-out training data) trained on the
first 80 % of every trial of DATA and scored on the last 20 %, as ``myoedge train --split time`` does:

* ``stage`` — as shipped: the Hill-type force stage with each muscle's own envelope in its drive;
* ``emg-off`` — the same stage with the envelope gains held at 0.001 (the drive is the network's alone);
* ``plain`` — no force stage (F = σ·softplus(u)), trained on the same schedule.

Prints one line per variant and seed and writes nothing. One torch thread per fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from myoedge.train import force_stage
from myoedge.train.cli import accuracy
from myoedge.train.data import load_sequences, split_time
from myoedge.train.fit import fit
from myoedge.train.run import TrainConfig

VARIANTS = ("stage", "emg-off", "plain")


def run(data: str, variant: str, seed: int) -> dict:
    seqs = load_sequences(data, rate_hz=100.0)
    parts = split_time(seqs, test_fraction=0.2)
    train = [s for tr, _ in parts.values() for s in tr]
    test = [s for _, te in parts.values() for s in te]
    config = TrainConfig.for_preset("edge-observer")
    if variant == "plain":
        config = dataclasses.replace(config, model={**config.model, "force_stage": False})
    original = force_stage.KinematicForceStage.set_emg_gain
    if variant == "emg-off":
        force_stage.KinematicForceStage.set_emg_gain = lambda self, gain: original(self, [1e-3] * len(gain))
    try:
        t0 = time.perf_counter()
        trained = fit(train, config, seed=seed, threads=1)
        seconds = time.perf_counter() - t0
    finally:
        force_stage.KinematicForceStage.set_emg_gain = original
    outputs = accuracy(trained.predict, test)["outputs"]
    forces = [v["cc"] for k, v in outputs.items() if k != "theta"]
    return {"variant": variant, "seed": seed, "theta_cc": round(outputs["theta"]["cc"], 3),
            "theta_nrmse": round(outputs["theta"]["nrmse"], 3), "force_cc_min": round(min(forces), 3),
            "force_cc_max": round(max(forces), 3),
            "correction_s": trained.info.get("selection", {}).get("chosen_s"), "seconds": round(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS[:2]))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for variant in args.variants:
        for seed in args.seeds:
            print(json.dumps(run(args.data, variant, seed)), flush=True)


if __name__ == "__main__":
    main()
