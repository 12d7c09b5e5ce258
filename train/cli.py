"""Verbs of the training layer: ``myoedge train`` and ``myoedge export`` (``evaluate`` lives beside them).

torch is imported inside the handlers only, so ``myoedge --help`` and the edge verbs never load it.
"""

from __future__ import annotations

import argparse
import logging

from myoedge.edge.dsp.adc import ADC_SCALE_HELP, choose_adc
from myoedge.ground.errors import InputError

log = logging.getLogger(__name__)


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb
    from myoedge.train.presets import PRESET_NAMES, PRESETS

    p = add_verb(sub, "train", _train, help="train a model (edge, pi-cnn or cnn) on recordings",
                 description="Load recordings through the edge envelope code, hold out a contiguous part of "
                             "every trial (intra-session protocol), train, save the run folder and print "
                             "RMSE and CC per output on the held-out part.")
    p.add_argument("data", help="folder of recordings (searched recursively for recording.json)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--preset", choices=list(PRESET_NAMES), default="edge",
                   help="; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values()) + " (default edge)")
    p.add_argument("--profiles", help="profile.json or a folder of them (default: profile.json beside the "
                                      "recordings or one folder up)")
    p.add_argument("--subject", action="append", help="train on this subject only (repeatable)")
    p.add_argument("--joint", help="train on recordings of this joint only")
    p.add_argument("--rate", type=float, default=100.0, help="model rate in Hz (default 100)")
    p.add_argument("--adc-bits", type=int, choices=[16, 24], default=24,
                   help="sample width of the amplifier the model will run on (default 24)")
    p.add_argument("--adc-scale", type=float, metavar="VOLTS", help=ADC_SCALE_HELP)
    p.add_argument("--split", choices=["time", "trial"], default="time",
                   help="time: hold out the last --test-fraction of every trial (default); trial: leave one "
                        "trial out per subject, one fit per fold, accuracy averaged over the folds (the run "
                        "folder then holds a model trained on every trial)")
    p.add_argument("--protocol", choices=["paper"],
                   help="paper = the paper's protocol for pi-cnn/cnn (instead of --split): trials cut into "
                        "movement cycles of 100 frames, the phase in the cycle as time input, a random 80/20 "
                        "split of the fused cycles (--test-fraction, --seed), paper hyper-parameters")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="--split time: fraction at the end of every trial held out (0: train on all)")
    p.add_argument("--iterations", type=int, help="training iterations (default: the preset's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    p.add_argument("--w-force", type=float, help="weight of L_F (default 1)")
    p.add_argument("--w-theta", type=float, help="weight of L_theta (default 1)")
    p.add_argument("--w-physics", type=float, help="weight of L_P (default 0.1; 0 for cnn)")
    p.add_argument("--physics-smooth", type=int, metavar="N",
                   help="L_P averages the physics residual by a zero-phase Hann window of N steps (odd; "
                        "default 1, none; 15 under --protocol paper)")
    p.add_argument("--smooth", type=int, metavar="N",
                   help="edge: θ is a causal Hann average of the network's last N outputs, which it learns "
                        "to lead (default 31; 1: none; the window grows by N - 1)")
    p.add_argument("--members", type=int, metavar="K",
                   help="stateful presets: average K networks fitted with seeds --seed … --seed + K − 1, "
                        "side by side where there are cores (default 1; docs/training.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads while training (default 1: the networks are small, and a second "
                        "thread contending with other work slows training down)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder (removed once the new one is complete)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add_verb(sub, "export", _export, help="export an edge run as a model bundle (ONNX, meta, vectors)",
                 description="Export a trained edge run to a bundle folder: ONNX (opset 17), meta.json and "
                             "test vectors, after checking ONNX Runtime against PyTorch on those vectors "
                             "(|onnx − torch| <= 1e-4 × the output's training std, else exit 1).")
    p.add_argument("run", help="run folder written by `myoedge train`")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--name", help="bundle name (default <joint>-<preset>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")



def _train(args: argparse.Namespace) -> dict:
    from myoedge.ground.fileio import check_output
    from myoedge.train.data import discover_profiles, load_sequences, split_leave_one_trial_out, split_time
    from myoedge.train.physics import attach_passive
    from myoedge.train.run import TrainConfig

    if not 0.0 <= args.test_fraction < 1.0:
        raise InputError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    given = {"iterations": args.iterations, "lr": args.lr, "w_force": args.w_force, "w_theta": args.w_theta,
             "w_physics": args.w_physics, "physics_smooth": args.physics_smooth, "members": args.members}
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.smooth is not None:
        from myoedge.train.presets import preset

        if preset(args.preset).kind != "window":
            raise InputError("--smooth applies to window presets (edge-window) only")
        overrides["model"] = {"smooth": args.smooth}
    if args.protocol == "paper":
        from myoedge.body.cycles import FRAMES
        from myoedge.train.evaluate import paper_options
        from myoedge.train.presets import preset

        if preset(args.preset).kind != "per-step":
            raise InputError("--protocol paper trains the paper's networks (pi-cnn, cnn), "
                             f"not {args.preset!r}")
        if not 0.0 < args.test_fraction < 1.0:
            raise InputError(f"--protocol paper needs --test-fraction in (0, 1), got {args.test_fraction}")
        overrides = {**paper_options(FRAMES), **overrides}
    config = TrainConfig.for_preset(args.preset, **overrides)
    check_output(args.out, folder=True, inputs=[args.data, args.profiles], overwrite=args.overwrite)
    profiles = discover_profiles(args.profiles) if args.profiles else None
    adc = choose_adc(bits=args.adc_bits, volts_per_count=args.adc_scale)
    seqs = load_sequences(args.data, rate_hz=args.rate, profiles=profiles, adc=adc)
    if args.subject:
        seqs = [s for s in seqs if s.subject in args.subject]
    if args.joint:
        seqs = [s for s in seqs if s.joint == args.joint]
    if not seqs:
        raise InputError(f"no recordings in {args.data} match --subject {args.subject} --joint {args.joint}")
    joints = sorted({s.joint for s in seqs})
    if len(joints) > 1:
        raise InputError(f"{args.data} holds recordings of several joints {joints}; pick one with --joint")
    fit_args = {"seed": args.seed, "threads": args.threads, "quiet": args.quiet}
    if args.protocol == "paper":
        from myoedge.train.cycles import cycle_sequences, split_cycles

        cycles, counts = cycle_sequences(seqs)
        print(f"{sum(c['kept'] for c in counts)} cycles of 100 frames from {len(seqs)} trials "
              f"({sum(c['rejected'] for c in counts)} dropped for an outlier duration)")
        splits = split_cycles(cycles, train_fraction=1.0 - args.test_fraction, seed=args.seed)
        train = [c for tr, _ in splits.values() for c in tr]
        test = [c for _, te in splits.values() for c in te]
        result = {"cycles": counts}
    elif args.split == "trial":
        folds = split_leave_one_trial_out(seqs)
        scores, seconds = [], 0.0
        for i, (held, train, test) in enumerate(folds, 1):
            print(f"fold {i}/{len(folds)}: {held} held out")
            train, test = attach_passive(train, test)
            fold = _fit(config, train, args.preset, args.rate, **fit_args)
            seconds += fold.info["train_seconds"]
            scores.append(accuracy(fold.predict, test))
        train, test = seqs, []
        result = {"test": mean_accuracy(scores), "fold_train_seconds": seconds,
                  "folds": [{"held_out": h, **a} for (h, _, _), a in zip(folds, scores)]}
    elif args.test_fraction > 0:
        splits = split_time(seqs, test_fraction=args.test_fraction)
        train = [s for tr, _ in splits.values() for s in tr]
        test = [s for _, te in splits.values() for s in te]
        result = {}
    else:
        train, test, result = seqs, [], {}
    train, test = attach_passive(train, test)  # the joint's passive moment, from the training part only
    trained = _fit(config, train, args.preset, args.rate, **fit_args)
    trained.save(args.out, overwrite=args.overwrite)
    final = trained.history[-1]
    print(f"trained in {trained.info['train_seconds']:.1f} s ({trained.info['parameters']} parameters); "
          "final " + ", ".join(f"{k} {v:.4g}" for k, v in final.items()) + f"; run saved to {args.out}")
    selection = trained.info.get("selection")
    if selection is not None:
        print(selection_line(trained.model_config.preset, selection))
    summary = {"run": str(args.out), "preset": args.preset, "model": trained.model_config.preset,
               "split": args.protocol or args.split,
               "train_seconds": trained.info["train_seconds"], "parameters": trained.info["parameters"],
               "final_loss": final, "train_sequences": len(train), "test_sequences": len(test), **result}
    if test:
        summary["test"] = accuracy(trained.predict, test)
        where = "a random {:g} of the cycles" if args.protocol else "last {:g} of every trial"
        print(f"held-out accuracy ({where.format(args.test_fraction)}):")
    elif "test" in result:
        print(f"held-out accuracy (leave one trial out, mean over {len(result['folds'])} folds):")
    if "test" in summary:
        print("\n".join(format_accuracy(summary["test"])))
    return summary


def _fit(config, train, preset, rate, *, seed, threads, quiet):
    from myoedge.ground.progress import Progress
    from myoedge.train.fit import fit

    print(f"training {preset} on {len(train)} sequences ({sum(s.n for s in train)} steps at "
          f"{rate:g} Hz) of {len({s.subject for s in train})} subject(s); physics: "
          f"{', '.join(sorted({s.physics for s in train}))}")
    with Progress(config.iterations, f"train {preset}", enabled=not quiet) as progress:
        return fit(train, config, seed=seed, progress=progress, threads=threads)


def selection_line(model: str, selection: dict) -> str:
    """What the held-out choice of the edge preset chose, in one line (a rival that could not be fitted
    says why)."""
    rival, text = selection.get("rival"), ""
    if rival and "validation_rmse_deg" in rival:
        text = f", {rival['preset']} {rival['validation_rmse_deg']:.2f}°"
    elif rival:
        text = f", {rival['preset']} not fitted ({rival.get('error', 'no score')})"
    return (f"model: {model} (held-out θ RMSE on the last {selection.get('fraction', 0):g} of the training "
            f"part: observer {_chosen_rmse(selection)}{text})")


def _chosen_rmse(selection: dict) -> str:
    chosen = selection.get("chosen_s")
    if chosen is None:
        return "not measured"
    return f"{selection['validation_rmse_deg'][f'{chosen:.3g}']:.2f}° at T {chosen:.3g} s"


def mean_accuracy(scores: list[dict]) -> dict:
    """The mean over folds of :func:`accuracy` results: every number of ``outputs`` and ``physics`` (the
    folds' ``steps`` summed)."""
    import numpy as np

    def mean(values):
        vals = [v for v in values if v is not None]
        return float(np.mean(vals)) if vals else None

    outputs = {name: {k: mean([sc["outputs"][name][k] for sc in scores]) for k in scores[0]["outputs"][name]}
               for name in scores[0]["outputs"]}
    physics = {k: (mean([sc["physics"][k] for sc in scores]) if k != "mode" else scores[0]["physics"][k])
               for k in scores[0]["physics"]}
    return {"outputs": outputs, "physics": physics, "steps": int(sum(sc["steps"] for sc in scores))}


def _export(args: argparse.Namespace) -> dict:
    from myoedge.ground.fileio import check_output
    from myoedge.train.export import export_bundle
    from myoedge.train.run import TrainedModel

    check_output(args.out, folder=True, inputs=[args.run], overwrite=args.overwrite)
    trained = TrainedModel.load(args.run)
    report = export_bundle(trained, args.out, name=args.name, overwrite=args.overwrite)
    errs = report["max_abs_error"]
    print(f"exported {args.run} -> {report['bundle']}: parity on {report['vectors']} test vectors, max abs "
          f"error theta {errs['theta']:.2g} rad, forces {errs['forces']:.2g} N "
          f"({report['max_scaled_error']:.2g} output stds; limit 1e-4)")
    return report


def accuracy(predict, seqs) -> dict:
    """Held-out accuracy of ``predict(seq) -> (θ (n,), F (n, M))`` over ``seqs``, with the evaluation's
    definitions (:mod:`myoedge.train.metrics`): per output RMSE, range-normalised RMSE and Pearson CC
    over the pooled samples (θ in degrees), and the RMS physics residual of the predictions (N·m)."""
    from myoedge.train.metrics import residual_rms, score_outputs

    seqs = list(seqs)
    if not seqs:
        raise InputError("no sequences to score")
    predictions = [predict(s) for s in seqs]
    return {"outputs": score_outputs(seqs, predictions), "physics": residual_rms(seqs, predictions),
            "steps": int(sum(s.n for s in seqs))}


def format_accuracy(acc: dict, *, indent: str = "      ") -> list[str]:
    """The table lines of an :func:`accuracy` result."""
    lines = [f"{indent}{'output':>10}  {'RMSE':>12}  {'nRMSE %':>7}  {'CC':>6}"]
    for name, o in acc["outputs"].items():
        unit = "deg" if name == "theta" else "N"
        nrmse = 100 * o["nrmse"]
        lines.append(f"{indent}{name:>10}  {o['rmse']:8.3g} {unit:<3}  {nrmse:7.1f}  {o['cc']:6.3f}")
    phys = acc["physics"]
    if phys["pred"] is not None:
        lines.append(f"{indent}physics residual RMS ({phys['mode']}) {phys['pred']:.3g} N·m; ground truth "
                     f"{phys['truth']:.3g} N·m; net muscle moment RMS {phys['moment']:.3g} N·m")
        lines.append(f"{indent}  from the forces alone (true θ) {phys['true_theta']:.3g} N·m, from the angle "
                     f"alone (true F) {phys['true_forces']:.3g} N·m")
    return lines
