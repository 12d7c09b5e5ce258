"""``myoedge run`` (the real-time loop) and ``myoedge bench`` (its latency benchmark); docs/runtime.md."""

from __future__ import annotations

import argparse
import shlex
import sys

from myoedge.errors import InputError


def register(sub) -> None:
    from myoedge.cli import add_verb

    p = add_verb(sub, "run", _run, help="run the real-time loop: amplifier frames in, estimates out",
                 description="Read amplifier frames from a port, compute envelopes, run the model, and "
                             "publish joint angle, muscle forces and torque with validity flags (UDP "
                             "datagrams, CSV log). Refuses a profile, bundle or amplifier that do not match. "
                             "Stops on Ctrl-C or SIGTERM (or after --duration) with a final statistics line.")
    p.add_argument("--port", required=True, metavar="URL",
                   help="the amplifier: /dev/ttyUSB0, a pty of `myoedge amp-sim`, socket://HOST:PORT")
    p.add_argument("--bundle", required=True, metavar="DIR", help="model bundle folder")
    p.add_argument("--profile", required=True, metavar="FILE", help="subject profile (MVC, moment arms)")
    p.add_argument("--udp", metavar="HOST:PORT", help="send every estimate as a datagram to HOST:PORT")
    p.add_argument("--csv", metavar="FILE", help="log every estimate to FILE (complete when the run ends)")
    p.add_argument("--backend", default="auto", metavar="auto|onnxruntime|tensorrt",
                   help="predictor backend (default auto: TensorRT when an engine is there)")
    p.add_argument("--engine", metavar="PATH", help="TensorRT engine (default: model.engine in the bundle)")
    p.add_argument("--watchdog-ms", type=float, default=50.0,
                   help="flag estimates stale after this long without a frame (default 50)")
    p.add_argument("--torque-limit", type=float, metavar="NM", help="clamp torque to +-NM newton-metres")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until "
                   "interrupted)")
    p.add_argument("--rt-priority", type=int, metavar="N", help="run the reader thread under SCHED_FIFO "
                   "priority N (1-99; needs CAP_SYS_NICE or `ulimit -r`): a busy machine no longer delays it")

    b = add_verb(sub, "bench", _bench, help="measure the loop's latency against the amplifier simulator",
                 description="Run the amplifier simulator and the real-time loop together and report "
                             "per-stage and end-to-end latency (p50/p99/p99.9/max), deadline misses, frames "
                             "lost, CPU use, envelope throughput, host and backend, as a table and (--json, "
                             "--out) JSON. Without a bundle the model is a synthetic graph of the paper's "
                             "(or the edge model's) size with random fixed weights.")
    b.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    b.add_argument("--channels", type=int, default=8, help="EMG channels (default 8; a bundle fixes it)")
    b.add_argument("--fs", type=float, default=2000.0, help="EMG sample rate, Hz (default 2000; a bundle "
                   "fixes it)")
    b.add_argument("--samples-per-frame", type=int, default=2, help="samples per channel per frame (default "
                   "2: 1 ms frames at 2 kHz)")
    b.add_argument("--model", default="paper", metavar="paper|edge|BUNDLE",
                   help="synthetic paper-size or edge-size model, or a bundle folder (default paper)")
    b.add_argument("--transport", choices=["pty", "tcp", "inproc"], default="pty",
                   help="pty (default), TCP on 127.0.0.1, or inproc (no OS link: the loop's own cost)")
    b.add_argument("--bits", type=int, choices=[16, 24], default=24, help="sample width (default 24)")
    b.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject faults as `myoedge amp-sim --fault` does (repeatable)")
    b.add_argument("--warmup", type=float, default=0.5, help="seconds left out of the latency (default 0.5)")
    b.add_argument("--envelope-seconds", type=float, default=10.0,
                   help="seconds of data for the envelope throughput measurement (default 10)")
    b.add_argument("--rt-priority", type=int, metavar="N", help="as `myoedge run --rt-priority`")
    b.add_argument("--out", metavar="DIR", help="also write DIR/bench-<UTC timestamp>.json")


def _run(args: argparse.Namespace) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.edge.backends import BACKENDS
    from myoedge.edge.bundle import load_bundle
    from myoedge.edge.pipeline import check_profile, envelope_config
    from myoedge.edge.publish import CsvPublisher, UdpPublisher
    from myoedge.edge.runtime import Runtime
    from myoedge.edge.safety import SafetyConfig
    from myoedge.edge.transport import SerialTransport

    if args.backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    bundle = load_bundle(args.bundle)
    profile = SubjectProfile.load(args.profile)
    check_profile(bundle, profile)  # before any output file is made
    envelope_config(bundle)
    safety = SafetyConfig.symmetric(args.torque_limit, watchdog_ms=args.watchdog_ms)
    publishers = []
    try:
        if args.udp:
            publishers.append(UdpPublisher(args.udp, n_muscles=len(bundle.muscles)))
        if args.csv:
            publishers.append(CsvPublisher(args.csv, muscles=bundle.muscles))
        runtime = Runtime(bundle=bundle, profile=profile, transport=SerialTransport(args.port), safety=safety,
                          publishers=publishers, backend=args.backend, engine_path=args.engine,
                          realtime_priority=args.rt_priority)
    except BaseException:
        for publisher in publishers:
            publisher.close()
        raise
    return runtime.run(duration_s=args.duration)


def _bench(args: argparse.Namespace) -> dict:
    from myoedge.edge.bench import BenchConfig, format_table, run_bench, write_result

    config = BenchConfig(seconds=args.seconds, channels=args.channels, fs_hz=args.fs,
                         samples_per_frame=args.samples_per_frame, model=args.model, transport=args.transport,
                         faults=tuple(args.fault), bits=args.bits, warmup_s=args.warmup,
                         envelope_seconds=args.envelope_seconds, realtime_priority=args.rt_priority)
    command = "myoedge " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "myoedge bench"
    result = run_bench(config, command=command)
    print(format_table(result), flush=True)
    if args.out:
        path = write_result(result, args.out)
        print(f"wrote {path}", flush=True)
        result["written_to"] = str(path)
    return result
