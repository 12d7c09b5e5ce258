"""``myoedge bench``: the real-time loop's latency against the amplifier simulator (docs/runtime.md)."""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub) -> None:
    from myoedge.edge.model import CPU_BACKENDS  # a light import: the package loads its modules on use
    from myoedge.ground.verbs import add_verb

    b = add_verb(sub, "bench", _bench, help="measure the loop's latency against the amplifier simulator",
                 description="Run the amplifier simulator and the real-time loop together and report "
                             "per-stage and end-to-end latency (p50/p99/p99.9/max), deadline misses, frames "
                             "lost, CPU use, envelope throughput, host and backend, as a table and (--json, "
                             "--out) JSON. The default model is the shipped edge model's packaged bundle; "
                             "edge-rnn and paper are synthetic graphs with random fixed weights.")
    b.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    b.add_argument("--channels", type=int, default=8, help="EMG channels (default 8; a bundle fixes it)")
    b.add_argument("--fs", type=float, default=2000.0, help="EMG sample rate, Hz (default 2000; a bundle "
                   "fixes it)")
    b.add_argument("--samples-per-frame", type=int, default=2, help="samples per channel per frame (default "
                   "2: 1 ms frames at 2 kHz)")
    b.add_argument("--model", default="edge", metavar="edge|edge-rnn|paper|BUNDLE",
                   help="edge: the shipped edge model (a bundle of it trained on a built-in synthetic wrist; "
                        "the default); edge-rnn, paper: synthetic graphs of its GRU alone and of the paper's "
                        "network, for any channel count; or a bundle folder")
    b.add_argument("--transport", choices=["pty", "tcp", "inproc"], default="pty",
                   help="pty (default), TCP on 127.0.0.1, or inproc (no OS link: the loop's own cost)")
    b.add_argument("--bits", type=int, choices=[16, 24], default=24, help="sample width (default 24)")
    b.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject faults as `myoedge amp-sim --fault` does (repeatable)")
    b.add_argument("--warmup", type=float, default=0.5, help="seconds left out of the latency (default 0.5)")
    b.add_argument("--envelope-seconds", type=float, default=10.0,
                   help="seconds of data for the envelope throughput measurement (default 10)")
    b.add_argument("--rt-priority", type=int, metavar="N", help="as `myoedge run --rt-priority`")
    b.add_argument("--spin-us", type=float, default=0.0, metavar="US",
                   help="as `myoedge run --spin-us` (pty and tcp)")
    b.add_argument("--backend", default="auto", choices=CPU_BACKENDS,
                   help="predictor backend, as `myoedge run --backend` (default auto: the compiled graph "
                        "when it compiles and replays the test vectors, else ONNX Runtime)")
    b.add_argument("--no-prewarm", action="store_true", help="as `myoedge run --no-prewarm`")
    b.add_argument("--out", metavar="DIR", help="also write DIR/bench-<UTC timestamp>.json")


def _bench(args: argparse.Namespace) -> dict:
    from myoedge.edge.sim.bench import BenchConfig, format_table, run_bench, write_result
    from myoedge.edge.sim.bench_model import BENCH_MODELS
    from myoedge.ground.fileio import check_output

    if args.out is not None:  # before the benchmark runs, not after
        model = args.model if args.model not in BENCH_MODELS else None
        check_output(args.out, folder=True, merge=True, inputs=[model])

    config = BenchConfig(seconds=args.seconds, channels=args.channels, fs_hz=args.fs,
                         samples_per_frame=args.samples_per_frame, model=args.model, transport=args.transport,
                         faults=tuple(args.fault), bits=args.bits, warmup_s=args.warmup,
                         envelope_seconds=args.envelope_seconds, realtime_priority=args.rt_priority,
                         prewarm=not args.no_prewarm, spin_us=args.spin_us,
                         backend=args.backend)
    command = "myoedge " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "myoedge bench"
    result = run_bench(config, command=command)
    print(format_table(result), flush=True)
    if args.out:
        path = write_result(result, args.out)
        print(f"wrote {path}", flush=True)
        result["written_to"] = str(path)
    return result
