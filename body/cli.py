"""Verbs of the body layer: ``myoedge simulate``."""

from __future__ import annotations

from myoedge.body.catalog import JOINTS
from myoedge.ground.errors import InputError


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "simulate", _simulate, help="simulate synthetic subjects and write their recordings",
                 description="Forward-simulate synthetic subjects (Hill muscles tracking walking-like knee "
                             "or flexion/extension wrist/elbow movements) and write one recording folder "
                             "per trial plus each subject's true profile.")
    p.add_argument("--joint", choices=[*JOINTS, "all"], default="knee")
    p.add_argument("--subjects", type=int, default=3, help="number of subjects per joint (default 3)")
    p.add_argument("--sessions", type=int, default=1, help="sessions per subject (electrode gain drifts)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per trial (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing recordings")


def _simulate(args) -> dict:
    from myoedge.body.subjects import write_dataset
    from myoedge.ground.progress import Progress

    if args.subjects < 1 or args.sessions < 1:
        raise InputError("--subjects and --sessions must be at least 1")
    if not 1.0 <= args.duration <= 3600.0:
        raise InputError(f"--duration must be between 1 and 3600 s, got {args.duration}")
    joints = tuple(JOINTS) if args.joint == "all" else (args.joint,)
    try:
        with Progress(len(joints) * args.subjects * args.sessions, "simulate") as progress:
            summary = write_dataset(args.out, joints=joints, n_subjects=args.subjects, sessions=args.sessions,
                                    duration_s=args.duration, seed=args.seed, overwrite=args.overwrite,
                                    progress=progress)
    except FileExistsError as e:
        raise InputError(f"{e}; pass --overwrite to replace") from None
    n = sum(len(s["recordings"]) for s in summary["subjects"])
    print(f"wrote {n} recordings of {len(summary['subjects'])} subjects to {args.out}")
    return summary
