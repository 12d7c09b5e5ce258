"""``myoedge reconstruct``: deep-muscle EMG envelopes from kinematics, load and the surface channels.

torch and scikit-learn are imported inside the handler only.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from myoedge.ground.errors import InputError
from myoedge.train.reconstruct.config import ENCODERS, SYNERGY_MIXES, NmmConfig, SynxConfig

NMM_DEFAULTS = NmmConfig()


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "reconstruct", _reconstruct,
                 help="reconstruct hidden (deep) muscles' EMG envelopes: NMM or synergy extrapolation",
                 description=(
                     "Reconstruct the EMG envelopes of muscles surface electrodes cannot reach from the "
                     "joint kinematics, the load in the hand (load_kg in recording.json) and the surface "
                     "envelopes, with the torque from inverse dynamics as the only teacher of the hidden "
                     "channels. --method nmm: a causal encoder plus CEINMS activation, Hill muscles and "
                     "personalised parameters inside the loss; --method synx: NMF synergy extrapolation. "
                     "A hidden muscle's EMG column, if recorded, is kept out of every input and loss and "
                     "only scores the reconstruction. One fit per subject; scores are of the test trials."))
    p.add_argument("data", help="folder of recordings (searched recursively for recording.json)")
    p.add_argument("--hidden", nargs="+", required=True, metavar="MUSCLE",
                   help="muscles to reconstruct (e.g. BRA TRImed); at least one muscle must stay measured")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--method", choices=["nmm", "synx"], default="nmm", help="default nmm")
    p.add_argument("--split", choices=["trial", "load"], default="trial",
                   help="trial: hold out the last trial at every load (default); load: train on the lightest "
                        "and heaviest loads, test on those between")
    p.add_argument("--subject", action="append", help="this subject only (repeatable)")
    p.add_argument("--rate", type=float, default=100.0, help="model rate in Hz (default 100)")
    p.add_argument("--encoder", choices=list(ENCODERS), default=NMM_DEFAULTS.encoder,
                   help="NMM encoder (default gru)")
    p.add_argument("--iterations", type=int, default=1500, help="NMM training iterations (default 1500)")
    p.add_argument("--w-torque", type=float,
                   help="NMM: weight λ_p of the torque term against inverse dynamics (default "
                        f"{NMM_DEFAULTS.w_torque:g}; the envelopes' λ_d is {NMM_DEFAULTS.w_emg:g})")
    p.add_argument("--w-effort", type=float, help="NMM: weight of the hidden excitations' least-effort term "
                                                  f"(default {NMM_DEFAULTS.w_effort:g})")
    p.add_argument("--w-synergy", type=float,
                   help="NMM: weight of the synergy prior, hidden excitations near a non-negative mix of "
                        "the measured envelopes (--synergy-mix) "
                        f"(default {NMM_DEFAULTS.w_synergy:g}; 0: the paper's loss)")
    p.add_argument("--synergy-mix", choices=list(SYNERGY_MIXES), default=NMM_DEFAULTS.synergy_mix,
                   help="NMM: the synergy prior's mix: the mean of the measured muscles of the hidden one's "
                        "action (a learned mix where none is measured), or a mix learned with the rest "
                        f"(default {NMM_DEFAULTS.synergy_mix})")
    p.add_argument("--physics-lr-scale", type=float,
                   help="NMM: learning rate of the personalised parameters ÷ the network's "
                        f"(default {NMM_DEFAULTS.physics_lr_scale:g})")
    p.add_argument("--hidden-strength", choices=["personal", "generic"],
                   default=NMM_DEFAULTS.hidden_strength,
                   help="NMM: personalise the hidden muscles' F0 or hold it generic (the torque sees only "
                        f"F0·a of a hidden muscle; default {NMM_DEFAULTS.hidden_strength})")
    p.add_argument("--joint-passive", choices=["on", "off"],
                   default="on" if NMM_DEFAULTS.joint_passive else "off",
                   help="NMM: fit the joint's passive moment P(θ, θ̇) = kθ + c + bθ̇ with the rest, the torque "
                        "Σ r F − P (inverse dynamics carries the joint's own spring and damper; default "
                        f"{'on' if NMM_DEFAULTS.joint_passive else 'off'})")
    p.add_argument("--synergies", type=int, default=3, help="SynX synergies (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-figures", action="store_true", help="write the report without figures")
    p.add_argument("--overwrite", action="store_true", help="write into an existing run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _reconstruct(args) -> dict:
    from myoedge.ground.progress import Progress
    from myoedge.train.reconstruct.data import load_dataset
    from myoedge.train.reconstruct.run import RunConfig, reconstruct, write_run

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise InputError(f"{out} exists and is not empty; pass --overwrite to write into it")
    if args.threads < 1 or args.iterations < 1 or args.synergies < 1:
        raise InputError("--threads, --iterations and --synergies must be at least 1")
    if not args.rate > 0:
        raise InputError(f"--rate must be a positive number of Hz, got {args.rate}")
    import torch

    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data, hidden=args.hidden, rate_hz=args.rate, subjects=args.subject)
    cfg = RunConfig(method=args.method, split=args.split,
                    nmm=NmmConfig(encoder=args.encoder, iterations=args.iterations, seed=args.seed,
                                  hidden_strength=args.hidden_strength, synergy_mix=args.synergy_mix,
                                  joint_passive=args.joint_passive == "on",
                                  **{k: v for k, v in (("w_torque", args.w_torque),
                                                       ("w_effort", args.w_effort),
                                                       ("w_synergy", args.w_synergy),
                                                       ("physics_lr_scale", args.physics_lr_scale))
                                     if v is not None}),
                    synx=SynxConfig(synergies=args.synergies, seed=args.seed))
    total = len(dataset) * (args.iterations if args.method == "nmm" else 1)
    with Progress(total, f"reconstruct {args.method}", enabled=not args.quiet) as progress:
        result = reconstruct(dataset, cfg, progress=progress)
    command = "myoedge reconstruct " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == [
        "reconstruct"] else None
    write_run(result, out, command=command, figures=not args.no_figures)
    s = result["summary"]
    for h, v in s["hidden"].items():
        print(f"{h:>8}: CC {v['cc']:.3f}  RMSE {v['rmse']:.4f}")
    print(f"  torque: R² {s['torque']['r2']:.3f}  RMSE {s['torque']['rmse']:.3f} N·m  -> {out}")
    return {"method": s["method"], "hidden": s["hidden"], "torque": s["torque"]}
