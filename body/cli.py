"""Verbs of the body layer: ``myoedge simulate``."""

from __future__ import annotations

from myoedge.body.catalog import JOINTS
from myoedge.body.family import FAMILIES
from myoedge.ground.errors import InputError


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "simulate", _simulate, help="simulate synthetic subjects and write their recordings",
                 description="Forward-simulate synthetic subjects and write one recording folder per trial "
                             "plus each subject's true profile. --family hard (the default): per-subject "
                             "joint damping, stiffness, segment and gravity posture, compliant tendons, "
                             "open-loop excitations (holds, point-to-point moves, rhythmic phases, "
                             "co-contraction bursts), drifting electrodes; --family easy: Hill muscles "
                             "tracking walking-like knee or flexion/extension wrist/elbow movements.")
    p.add_argument("--joint", choices=[*JOINTS, "all"], default="knee")
    p.add_argument("--subjects", type=int, default=3, help="number of subjects per joint (default 3)")
    p.add_argument("--sessions", type=int, default=1, help="sessions per subject (electrode gain drifts)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per trial (default 20)")
    p.add_argument("--family", choices=FAMILIES, default="hard",
                   help="synthetic family (default hard; easy = the earlier tracking family)")
    p.add_argument("--loads", type=float, nargs="+", default=None, metavar="KG",
                   help="loads held in the hand, one trial set per load (elbow6, hard family; default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing subjects (a replaced profile.json is kept as profile.json.prev)")


def _simulate(args) -> dict:
    from myoedge.body.subjects import write_dataset
    from myoedge.ground.progress import Progress

    if args.subjects < 1 or args.sessions < 1:
        raise InputError("--subjects and --sessions must be at least 1")
    if not 1.0 <= args.duration <= 3600.0:
        raise InputError(f"--duration must be between 1 and 3600 s, got {args.duration}")
    joints = tuple(JOINTS) if args.joint == "all" else (args.joint,)
    loads = tuple(args.loads) if args.loads else (0.0,)
    if loads != (0.0,) and (args.family != "hard" or joints != ("elbow6",)):
        raise InputError("--loads needs --joint elbow6 and --family hard")
    with Progress(len(joints) * args.subjects * args.sessions, "simulate") as progress:
        summary = write_dataset(args.out, joints=joints, n_subjects=args.subjects, sessions=args.sessions,
                                duration_s=args.duration, seed=args.seed, overwrite=args.overwrite,
                                progress=progress, family=args.family, loads=loads)
    n = sum(len(s["recordings"]) for s in summary["subjects"])
    print(f"wrote {n} recordings of {len(summary['subjects'])} subjects to {args.out}")
    return summary
