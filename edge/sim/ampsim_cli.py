"""``myoedge amp-sim``: the amplifier simulator on the command line (see ``docs/amp-sim.md``)."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading

from myoedge.edge.dsp.adc import ADC_SCALE_HELP, choose_adc
from myoedge.ground.errors import InputError


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "amp-sim", _amp_sim, help="stream EMG as amplifier frames over a pty or TCP, or as LSL",
                 description="Stream a synthetic subject, a recording or a guided MVC session as real "
                             "serial frames at real-time pace over a pseudo-terminal (prints its path) or a "
                             "TCP server on 127.0.0.1, or as an LSL EMG outlet (--lsl NAME), optionally "
                             "injecting faults. Stops on Ctrl-C or "
                             "SIGTERM with a final statistics line.")
    src = p.add_argument_group("what to stream (default: a synthetic subject's session)")
    src.add_argument("--recording", metavar="DIR", help="replay the EMG of a recording folder")
    src.add_argument("--protocol", choices=["session", "mvc"], default="session",
                     help="synthetic 'session' (every pace of the joint) or a guided 'mvc' session: per "
                          "muscle, rest then a maximal contraction, repeated")
    src.add_argument("--joint", default="knee", help="joint of the synthetic subject (default knee)")
    src.add_argument("--subject", type=int, default=1, help="synthetic subject number (default 1)")
    src.add_argument("--seed", type=int, default=0, help="seed of the synthetic subject (default 0)")
    src.add_argument("--session", type=int, default=1, help="session number: electrode gains drift")
    src.add_argument("--duration", type=float, default=10.0, help="synthetic seconds per pace (default 10)")
    src.add_argument("--rate", type=float, default=2000.0, help="sample rate of synthetic EMG, Hz (default "
                     "2000; a recording streams at its own rate)")
    src.add_argument("--mvc-rest", type=float, default=3.0, help="MVC protocol: rest seconds (default 3)")
    src.add_argument("--mvc-contraction", type=float, default=5.0,
                     help="MVC protocol: seconds of each contraction, ramps included (default 5)")
    src.add_argument("--mvc-repetitions", type=int, default=3, help="MVC protocol: repetitions (default 3)")
    src.add_argument("--mvc-ramp", type=float, default=1.0,
                     help="MVC protocol: seconds of the ramp up and of the ramp down (default 1)")
    fmt = p.add_argument_group("frames and output")
    fmt.add_argument("--bits", type=int, choices=[16, 24], default=24, help="sample width (default 24)")
    fmt.add_argument("--adc-scale", type=float, metavar="VOLTS", help=ADC_SCALE_HELP)
    fmt.add_argument("--samples-per-frame", type=int, default=2, help="samples per channel per frame "
                     "(default 2: 1 ms frames at 2 kHz)")
    fmt.add_argument("--tcp", type=int, metavar="PORT", help="serve TCP on 127.0.0.1:PORT instead of a pty "
                     "(0 picks a free port); read it as socket://127.0.0.1:PORT")
    fmt.add_argument("--lsl", metavar="NAME", help="stream the EMG as an LSL outlet named NAME (type EMG, "
                     "float32 microvolts; needs pip install 'myoedge[lsl]') instead of a pty; read it with "
                     "`myoedge run --port lsl://NAME`")
    fmt.add_argument("--link", metavar="PATH", help="keep a symlink at PATH to the pty, so a reader can "
                     "reconnect after a disconnect fault brings up a new one")
    fmt.add_argument("--fast", action="store_true", help="as fast as the reader takes it, not real time")
    fmt.add_argument("--once", action="store_true", help="stream the data once instead of looping")
    fmt.add_argument("--stop-after", type=float, metavar="SECONDS", help="stop after this much stream time")
    fmt.add_argument("--info-interval", type=float, default=1.0, help="seconds between device-info frames")
    flt = p.add_argument_group("fault injection")
    flt.add_argument("--fault", action="append", default=[], metavar="SPEC",
                     help="bitflip:P, drop:P, garbage:P (per data frame), stall:SECONDS@Ts, "
                          "disconnect[:SECONDS]@Ts; repeatable or comma-separated")
    flt.add_argument("--fault-seed", type=int, default=0, help="seed of the fault generator (default 0)")


def _source(args: argparse.Namespace):
    from myoedge.edge.sim import ampsim_signals as s

    if args.recording is not None:
        if args.protocol != "session":
            raise InputError("--recording and --protocol mvc cannot be combined")
        return s.recording_signal(args.recording)
    common = {"joint": args.joint, "subject": args.subject, "seed": args.seed, "session": args.session,
              "fs": args.rate}
    if args.protocol == "mvc":
        return s.mvc_protocol_signal(**common, rest_s=args.mvc_rest, contraction_s=args.mvc_contraction,
                                     repetitions=args.mvc_repetitions, ramp_s=args.mvc_ramp)
    return s.synthetic_signal(**common, duration_s=args.duration)


def _check_link(link: str | None, *, recording: str | None) -> None:
    """--link (and ``<link>.tmp``, through which it is replaced) may replace an old symlink, never a file or
    a folder; its folder must be writable."""
    from pathlib import Path

    from myoedge.ground.fileio import check_output

    if link is None:
        return
    path = Path(link)
    for p in (path, path.with_name(path.name + ".tmp")):
        if p.exists() and not p.is_symlink():
            what = "a folder" if p.is_dir() else "a file"
            raise InputError(f"--link {path}: {p} is {what}; --link replaces only a symlink, so choose a new "
                             "path")
    check_output(path.with_name(f".{path.name}.new"), inputs=[recording, link], flag="--link")


def _say(text: str) -> None:
    print(f"amp-sim: {text}", flush=True)


def _amp_sim(args: argparse.Namespace) -> dict:
    from myoedge.body.catalog import JOINTS
    from myoedge.edge.sim.ampsim import AmplifierSimulator
    from myoedge.edge.sim.faults import FaultPlan

    if args.recording is None and args.joint not in JOINTS:
        raise InputError(f"unknown joint {args.joint!r}; expected one of {sorted(JOINTS)}")
    if not 100.0 <= args.rate <= 20000.0:
        raise InputError(f"--rate must be within 100 to 20000 Hz, got {args.rate:g}")
    if args.lsl is not None and (args.tcp is not None or args.link is not None):
        raise InputError("--lsl is an output of its own: it cannot be combined with --tcp or --link")
    _check_link(args.link, recording=args.recording)
    plan = FaultPlan.parse(args.fault, seed=args.fault_seed)
    sig = _source(args)
    adc = choose_adc(bits=args.bits, volts_per_count=args.adc_scale)
    sim = AmplifierSimulator(sig, bits=args.bits, adc=adc, samples_per_frame=args.samples_per_frame,
                             tcp_port=args.tcp, link_path=args.link, lsl_name=args.lsl, fast=args.fast,
                             loop=not args.once,
                             faults=plan, info_interval_s=args.info_interval, stop_after_s=args.stop_after,
                             on_address=lambda address: _say(f"streaming on {address}"))
    print(f"amp-sim: {sig.description}: {len(sig.labels)} channels ({', '.join(sig.labels)}) at "
          f"{sig.fs:g} Hz, {args.bits}-bit, {args.samples_per_frame} samples per frame"
          + (f"; faults {', '.join(plan.describe())}" if plan.active else ""), file=sys.stderr)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        previous = {n: signal.signal(n, lambda *_: stop.set()) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        sim.start()
        where = f" (link {args.link})" if args.link and args.tcp is None else ""
        _say(f"listening on {sim.address}" if args.tcp is not None
             else f"streaming on {sim.address}{where}" + (" (waits for the first inlet)" if args.lsl else ""))
        while sim.running and not stop.wait(0.2):
            pass
        stats = sim.stop()
    finally:
        for sig_no, handler in previous.items():
            signal.signal(sig_no, handler)
        if sim.running:
            sim.stop()
    faults = dataclasses.asdict(stats.faults)
    injected = ", ".join(f"{k} {v:g}" for k, v in faults.items() if v)
    print(f"amp-sim: stopped after {stats.stream_s:.1f} s of stream: {stats.frames_sent} frames and "
          f"{stats.info_sent} device-info frames sent, {stats.frames_unsent} unsent, "
          f"{stats.late_frames} late, {stats.connections} connections; injected: {injected or 'nothing'}; "
          f"a reader of the whole stream counts {stats.expected_lost} lost", file=sys.stderr)
    if stats.error:
        raise RuntimeError(f"the simulator failed: {stats.error}")
    summary = dataclasses.asdict(stats)
    summary.update(expected_lost=stats.expected_lost, source=sig.description, labels=list(sig.labels),
                   sample_rate_hz=sig.fs, bits=args.bits, samples_per_frame=args.samples_per_frame,
                   scale_v=float(sim.device_info.scale_v[0]), faults_requested=plan.describe())
    if sig.true_mvc_volts is not None:
        summary["true_mvc_volts"] = [float(v) for v in sig.true_mvc_volts]
    if sig.contractions:
        summary["contractions"] = [dataclasses.asdict(c) for c in sig.contractions]
    return summary
