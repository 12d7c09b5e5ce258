"""``myoedge evaluate``: score every method on recordings and write the report folder.

    myoedge evaluate --data DIR --out REPORTDIR [--methods pi-cnn,cnn,...] [--protocols intra,loto,size]
                     [--protocol paper] [--quick] [--seed N] [--rate HZ] [--jobs N]
                     [--executor process|ray [--address A]] [--json]

The report folder is written whole or not at all (built beside it and renamed when complete). Each
finished fit is kept in a cache folder beside it, so running the same command again after an
interruption resumes instead of starting over.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time

from myoedge.ground.errors import InputError


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in _names(text))
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers, got {text!r}") from None


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb
    from myoedge.train.evaluate import DEFAULT_PROTOCOLS, PAPER_METHODS, PROTOCOLS, SIZE_FRACTIONS
    from myoedge.train.executor import EXECUTORS
    from myoedge.train.methods import DEFAULT_METHODS, METHODS

    p = add_verb(sub, "evaluate", run_evaluate,
                 help="compare PI-CNN, CNN, ML-ELM, ELM, SVR and the edge model; write a report",
                 description="Train and score every method on every subject under the intra-session (80/20), "
                             "leave-one-trial-out and training-size protocols; write report.md (Tables I and "
                             "II), report.json and PNG figures into --out.")
    p.add_argument("--data", required=True, help="folder of recordings (each with recording.json; subject "
                                                 "profiles as <subject>/profile.json)")
    p.add_argument("--out", required=True, help="report folder to write")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated, from {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)}; "
                        f"with --protocol paper: {','.join(PAPER_METHODS)})")
    p.add_argument("--protocols", default=",".join(DEFAULT_PROTOCOLS),
                   help=f"comma-separated, from {', '.join(PROTOCOLS)} "
                        f"(default: {','.join(DEFAULT_PROTOCOLS)})")
    p.add_argument("--protocol", choices=["paper"],
                   help="paper = the paper's protocol (movement cycles of 100 frames, the phase as time "
                        "input, "
                        "80/20 of a subject's fused cycles; inter-session where a subject has two sessions) "
                        "beside our time split (the last 20 %% of every trial held out)")
    p.add_argument("--split", choices=["time", "trial"],
                   help="instead of --protocols: time = intra with the last 20 %% of every trial held out "
                        "(as `myoedge train`); trial = leave one trial out")
    p.add_argument("--size-methods", default="pi-cnn,cnn", help="methods run in the training-size sweep")
    p.add_argument("--fractions", default=",".join(f"{f:g}" for f in SIZE_FRACTIONS),
                   help="training fractions of the size sweep")
    p.add_argument("--baseline-lags", default="0",
                   help="envelope lags (s) given to ELM/ML-ELM/SVR, e.g. 0,0.03,0.06,0.1 (default 0: the "
                        "PI-CNN's inputs)")
    p.add_argument("--joint", default=None, help="only evaluate this joint")
    p.add_argument("--rate", type=float, default=100.0, help="model rate in Hz (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1,
                   help="fits run at once in worker processes, one thread each (default 1; 2 on a 2-core "
                        "machine halves the time; results are identical)")
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="where fits run: process (default; worker processes when --jobs > 1) or ray (Ray "
                        "tasks: a local Ray with --jobs CPUs, or the cluster at --address; needs "
                        "myoedge[ray]); results are identical")
    p.add_argument("--address", default=None,
                   help="with --executor ray: a running Ray cluster (HOST:PORT of its head, or auto); its "
                        "CPUs decide how many fits run at once")
    p.add_argument("--quick", action="store_true",
                   help="tiny training budgets (tests and demos; not results)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--cache", default=None,
                   help="folder of finished fits, so a killed run resumes when run again (default: "
                        ".<out name>.cache beside --out, removed once the report is written)")
    p.add_argument("--no-cache", action="store_true", help="keep no cache of finished fits")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")


def run_evaluate(args) -> dict:
    from pathlib import Path

    from myoedge.ground.fileio import atomic_directory, check_output, check_outputs_differ
    from myoedge.train.data import load_sequences
    from myoedge.train.evaluate import EvaluationConfig, FitCache, evaluate
    from myoedge.train.executor import import_ray
    from myoedge.train.report import finite_or_none, write_report
    from myoedge.train.targets import check_targets

    if args.cache and not args.no_cache:
        check_outputs_differ(("--out", args.out), ("--cache", args.cache))
    out = check_output(args.out, folder=True, inputs=[args.data], overwrite=args.overwrite)
    if args.cache and not args.no_cache:
        check_output(args.cache, folder=True, merge=True, inputs=[args.data], flag="--cache")
    from myoedge.train.evaluate import DEFAULT_PROTOCOLS, PAPER_METHODS, PAPER_PROTOCOLS
    from myoedge.train.methods import DEFAULT_METHODS

    if args.protocol and args.split:
        raise InputError("--protocol paper and --split are alternatives; give one")
    protocols = {"time": ("intra",), "trial": ("loto",), None: tuple(_names(args.protocols))}[args.split]
    methods = args.methods or ",".join(DEFAULT_METHODS)
    if args.protocol == "paper":
        protocols, methods = PAPER_PROTOCOLS, args.methods or ",".join(PAPER_METHODS)
        if args.protocols != ",".join(DEFAULT_PROTOCOLS):  # a subset of the paper's (e.g. no time split)
            protocols = tuple(_names(args.protocols))
            if not protocols or any(p not in PAPER_PROTOCOLS for p in protocols):
                raise InputError("with --protocol paper, --protocols must be some of "
                                 f"{', '.join(PAPER_PROTOCOLS)}, got {args.protocols!r}")
    config = EvaluationConfig(methods=tuple(_names(methods)), protocols=protocols,
                              held_out="end" if args.split == "time" or args.protocol else "block",
                              size_methods=tuple(_names(args.size_methods)),
                              size_fractions=_floats(args.fractions, "--fractions"),
                              baseline_lags_s=_floats(args.baseline_lags, "--baseline-lags"),
                              seed=args.seed, quick=args.quick)
    if args.address is not None and args.executor != "ray":
        raise InputError("--address is for --executor ray")
    if args.executor == "ray":
        import_ray()  # before any work: a missing extra is a one-line error naming it
    t0 = time.monotonic()
    seqs = load_sequences(args.data, rate_hz=args.rate)
    if args.joint:
        seqs = [s for s in seqs if s.joint == args.joint]
        if not seqs:
            raise InputError(f"no recordings of joint {args.joint!r} under {args.data}")
    print(f"evaluating {len(config.methods)} methods on {len({s.subject for s in seqs})} subjects "
          f"({len(seqs)} trials) under {', '.join(config.protocols)}", file=sys.stderr)
    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    cache_dir = None if args.no_cache else Path(args.cache or out.parent / f".{out.name}.cache")
    cache = FitCache(cache_dir) if cache_dir else None
    result = evaluate(seqs, config, show_progress=True, jobs=args.jobs, cache=cache, executor=args.executor,
                      address=args.address)
    if cache and cache.hits:
        print(f"resumed: {cache.hits} fits came from {cache_dir}", file=sys.stderr)
    command = "myoedge " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["evaluate"] else None
    with atomic_directory(out, overwrite=args.overwrite) as tmp:
        write_report(result, tmp, command=command, figures=not args.no_figures)
    if cache_dir is not None and args.cache is None:
        shutil.rmtree(cache_dir, ignore_errors=True)  # the default cache has served its purpose
    summary = {"out": str(out), "seconds": round(time.monotonic() - t0, 1), "joints": {}}
    for key, joint in result["joints"].items():
        means = {}
        for protocol in ("intra", "loto", "paper", "sessions"):
            table = joint["summary"].get(protocol, {}).get("table", {})
            means[protocol] = {m: {"outputs": {o: {k: v[o][k]["mean"] for k in ("rmse", "nrmse", "cc")}
                                               for o in joint["outputs"]}} for m, v in table.items()}
        summary["joints"][key] = {
            "subjects": joint["subjects"], "failures": len(joint["failures"]), **means,
            "targets": check_targets(joint, quick=args.quick)}
        for t in summary["joints"][key]["targets"]:
            state = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
            print(f"{key}: {t['target']}: {t['measured']} ({state})")
    print(f"wrote {out}/report.md in {summary['seconds']:.0f} s")
    return finite_or_none(summary)
