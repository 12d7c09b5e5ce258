"""``myoedge run``: the real-time loop on a live amplifier (docs/runtime.md)."""

from __future__ import annotations

import argparse
import os

from myoedge.ground.errors import DeliveryError, InputError
from myoedge.ground.fileio import check_output


def register(sub) -> None:
    from myoedge.edge.model import BACKENDS  # a light import: the package loads its modules on use
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "run", _run, help="run the real-time loop: amplifier frames in, estimates out",
                 description="Read amplifier frames from a port, compute envelopes, run the model, and "
                             "publish joint angle, muscle forces and torque with validity flags (UDP "
                             "datagrams, an LSL stream, a CSV log). Refuses a profile, bundle or amplifier "
                             "that do not match. Stops on Ctrl-C or SIGTERM (or after --duration) with a "
                             "final statistics line.")
    p.add_argument("--port", required=True, metavar="URL",
                   help="the amplifier: /dev/ttyUSB0, COM3, a pty of `myoedge amp-sim`, socket://HOST:PORT, "
                        "loop://, sim://?channels=8&fs=2000 (the simulator in-process), or lsl://NAME (an "
                        "LSL EMG stream, e.g. of `myoedge amp-sim --lsl NAME`; docs/runtime.md)")
    p.add_argument("--bundle", required=True, metavar="DIR", help="model bundle folder")
    p.add_argument("--profile", required=True, metavar="FILE", help="subject profile (MVC, moment arms)")
    p.add_argument("--publish", action="append", default=[], metavar="URL",
                   help="where every estimate goes (repeatable): udp://HOST:PORT (one datagram each) or "
                        "lsl://NAME (an LSL stream of one sample each; needs pip install 'myoedge[lsl]')")
    p.add_argument("--udp", metavar="HOST:PORT", help="the same as --publish udp://HOST:PORT")
    p.add_argument("--udp-key", metavar="FILE", help="append an HMAC-SHA256 tag (16 bytes) made with the "
                   "shared key in FILE (16 to 4096 bytes, not readable by every user) to every UDP "
                   "datagram, so the controller can reject forged or corrupted ones (docs/runtime.md)")
    p.add_argument("--status-hz", type=float, default=0.0, metavar="HZ",
                   help="also send a status datagram (counters, recent latency, envelopes; magic 'MYOS', "
                        "docs/runtime.md) HZ times a second to --udp, from a thread of its own, for "
                        "`myoedge monitor` (default 0: none; 20 suits the monitor)")
    p.add_argument("--csv", metavar="FILE", help="log every estimate to FILE (complete when the run ends); "
                   "never one of the inputs, and an existing FILE only with --overwrite (kept as FILE.prev)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv log")
    p.add_argument("--backend", default="auto", metavar="|".join(BACKENDS),
                   help="predictor backend (default auto: TensorRT when an engine is there, else the "
                        "compiled graph when it compiles and replays the test vectors, else ONNX Runtime)")
    p.add_argument("--engine", metavar="PATH", help="TensorRT engine (default: model.engine in the bundle)")
    p.add_argument("--watchdog-ms", type=float, default=50.0,
                   help="flag estimates stale after this long without a frame (default 50)")
    p.add_argument("--torque-limit", type=float, metavar="NM", help="clamp torque to +-NM newton-metres")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until "
                   "interrupted)")
    p.add_argument("--rt-priority", type=int, metavar="N", help="run the reader thread under SCHED_FIFO "
                   "priority N (1-99; needs CAP_SYS_NICE or `ulimit -r`): a busy machine no longer delays it")
    p.add_argument("--spin-us", type=float, default=0.0, metavar="US",
                   help="busy-poll the port for up to US microseconds after each read before blocking "
                        "(default 0: block): the loop stays on a warm core, at the cost of that core; for a "
                        "core kept for the loop, not with --rt-priority (docs/runtime.md)")
    p.add_argument("--fill-off-channels", action="store_true",
                   help="when an electrode is off (a flat channel), fill in its envelope from the other "
                   "channels and keep going, flagged RECONSTRUCTED instead of ELECTRODE_OFF (at most "
                   "(channels - 1) // 2 at once; docs/runtime.md)")
    p.add_argument("--load-kg", type=float, metavar="KG",
                   help="a mass held in the hand (kg) through the run: the observer's equation of motion "
                        "holds it (bundles of --preset edge; default: the bundle's, 0)")
    p.add_argument("--no-prewarm", action="store_true", help="do not run the model on scratch buffers in the "
                   "idle time before each model step (docs/runtime.md)")


def _run(args: argparse.Namespace) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.edge.loop.publish import CsvPublisher, open_publisher
    from myoedge.edge.loop.runtime import Runtime
    from myoedge.edge.loop.safety import SafetyConfig
    from myoedge.edge.loop.setup_checks import check_channel_fill, check_profile, envelope_config
    from myoedge.edge.model import BACKENDS
    from myoedge.edge.model.bundle import load_bundle
    from myoedge.edge.wire.transport import open_transport

    if args.backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    urls = [*args.publish, *([f"udp://{args.udp}"] if args.udp else [])]
    if len(set(urls)) != len(urls):
        raise InputError(f"a publisher is named twice: {sorted(u for u in set(urls) if urls.count(u) > 1)}")
    has_udp = any(u.lower().startswith("udp://") for u in urls)
    if args.status_hz and not (has_udp and 1 / 60 <= args.status_hz <= 100):
        raise InputError("--status-hz needs a UDP publisher (--udp or --publish udp://) and a rate within "
                         f"[1/60, 100] Hz, got {args.status_hz:g}" + ("" if has_udp else " without one"))
    key = None
    if args.udp_key is not None:
        from myoedge.edge.loop.link_auth import load_udp_key

        if not any(u.lower().startswith("udp://") for u in urls):
            raise InputError("--udp-key signs the UDP datagrams: give --publish udp://HOST:PORT or --udp "
                             "HOST:PORT too")
        key = load_udp_key(args.udp_key)
    if args.csv is not None:  # before anything is loaded or opened
        device = None if "://" in args.port else args.port
        check_output(args.csv, inputs=[args.bundle, args.profile, args.engine, device, args.udp_key],
                     overwrite=args.overwrite, flag="--csv")
        partial = f"{args.csv}.partial"
        if os.path.lexists(partial) and not args.overwrite:
            raise InputError(f"--csv: {partial} holds the rows of an interrupted run; move it away first "
                             "(or pass --overwrite to discard it)")
    bundle = load_bundle(args.bundle)
    profile = SubjectProfile.load(args.profile)
    check_profile(bundle, profile)  # before any output file is made
    envelope_config(bundle)
    safety = SafetyConfig.symmetric(args.torque_limit, watchdog_ms=args.watchdog_ms,
                                    fill_off_channels=args.fill_off_channels)
    if safety.fill_off_channels:
        check_channel_fill(bundle)
    # a URL that cannot work is refused before any output is made
    transport = open_transport(args.port, spin_us=args.spin_us)
    publishers = []
    try:
        for url in urls:
            publishers.append(open_publisher(url, muscles=bundle.muscles, rate_hz=bundle.input_rate_hz,
                                             key=key))
        if args.csv:
            publishers.append(CsvPublisher(args.csv, muscles=bundle.muscles, overwrite=args.overwrite))
        runtime = Runtime(bundle=bundle, profile=profile, transport=transport, safety=safety,
                          publishers=publishers, backend=args.backend, engine_path=args.engine,
                          realtime_priority=args.rt_priority, prewarm=not args.no_prewarm,
                          status_interval_s=1.0 / args.status_hz if args.status_hz else None,
                          load_kg=args.load_kg)
    except BaseException:
        for publisher in publishers:
            publisher.close()
        raise
    summary = runtime.run(duration_s=args.duration)
    for publisher in publishers:
        if isinstance(publisher, CsvPublisher) and not publisher.delivered:
            why = publisher.stats.last_error or "it could not be completed"
            raise DeliveryError(f"the CSV log {args.csv} was not delivered ({why}); the rows written are in "
                                f"{publisher.partial_path}")
    return summary
