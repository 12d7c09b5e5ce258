"""``myoedge calibrate mvc``, ``moment-arms`` and ``from-osim``: a new wearer's first session.

All write the profile only after the whole calibration succeeded, atomically, keeping the previous
file as ``<name>.prev``; a failed run leaves the existing profile byte for byte as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path

from myoedge.ground.errors import InputError
from myoedge.ground.fileio import check_output


def register(sub) -> None:
    from myoedge.edge.monitor.cli import add_server_options
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "calibrate", _no_subverb,
                 help="calibrate a subject: MVC session, moment-arm re-fit, profile from an OpenSim model",
                 description="Per-subject calibration: measure each muscle's maximum voluntary contraction "
                             "through the edge reader and envelope (mvc), and re-fit the moment arms to "
                             "calibration trials (moment-arms), or start from the subject's OpenSim "
                             "model (from-osim). All write a subject profile.")
    verbs = p.add_subparsers(dest="calibrate_verb", metavar="SUBVERB", required=True)

    m = verbs.add_parser("mvc", help="guided (or scripted) MVC session on a live amplifier",
                         description="For each muscle: a prompt, a countdown, a hold with a live bar of the "
                                     "envelope, rest; repeated until enough repetitions pass the checks "
                                     "(clipping, flat channel, too weak, lost frames).")
    m.add_argument("--port", required=True, help="amplifier URL: /dev/ttyUSB0, COM3, socket://HOST:PORT, a "
                   "pty, sim://?... (the simulator in-process)")
    m.add_argument("--muscles", nargs="+", help="muscles to measure (default: every channel of the device)")
    m.add_argument("--out", required=True, help="profile to write")
    m.add_argument("--profile", help="profile to start from (default: --out when it exists)")
    m.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out that is not the profile started from (kept as .prev)")
    m.add_argument("--joint", help="start a new profile from the generic model of this joint")
    m.add_argument("--subject", help="subject name of a new profile (default: the --out file's stem)")
    m.add_argument("--auto", action="store_true",
                   help="scripted session: no prompts, contractions are found in the stream "
                        "(e.g. myoedge amp-sim --protocol mvc)")
    m.add_argument("--repetitions", type=int, default=3, help="accepted repetitions per muscle (default 3)")
    m.add_argument("--window", type=float, default=0.5, help="moving-average window in s (default 0.5)")
    m.add_argument("--rest", type=float, default=3.0, help="guided: rest before a contraction, s (default 3)")
    m.add_argument("--hold", type=float, default=5.0, help="guided: contraction hold, s (default 5)")
    m.add_argument("--timeout", type=float, default=600.0, help="scripted: give up after this many s (600)")
    m.add_argument("--stall", type=float, default=3.0,
                   help="seconds without data that count as an unplugged port (default 3)")
    m.add_argument("--monitor", action="store_true",
                   help="show the session live in the browser: the muscle to contract, the countdown, the "
                        "envelope against its running maximum, each repetition's verdict (prints the URL)")
    add_server_options(m, prefix="monitor-")
    m.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    m.set_defaults(handler=_mvc, verb="calibrate mvc")

    a = verbs.add_parser("moment-arms", help="re-fit moment arms (and optionally segment terms) to trials",
                         description="Constrained, regularised least squares of the equation of motion over "
                                     "calibration trials (joint angle, joint torque, muscle forces or EMG).")
    a.add_argument("--data", required=True, help="folder of calibration recordings (recording.json each)")
    a.add_argument("--profile", required=True, help="profile to start from (its moment arms are the prior)")
    a.add_argument("--out", required=True,
                   help="profile to write (may equal --profile: updated in place, the previous kept as "
                        "<name>.prev)")
    a.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out that is not --profile (kept as .prev)")
    a.add_argument("--forces", choices=["auto", "recording", "emg"], default="auto",
                   help="muscle forces from the recordings or estimated from EMG (default: recordings if all "
                        "have them)")
    a.add_argument("--torque", choices=["auto", "recording", "dynamics"], default="auto",
                   help="joint torque from the recordings, or computed from the profile's segment (default: "
                        "recordings, else computed)")
    a.add_argument("--fit-segment", action="store_true",
                   help="also fit segment inertia, damping, gravity and stiffness (needs a measured torque)")
    a.add_argument("--degree", type=int, help="polynomial degree of each moment arm (default: the profile's)")
    a.add_argument("--prior-scale", type=float, default=0.3,
                   help="how far (relative RMS) the prior may be off; sets the regularisation (default 0.3)")
    a.add_argument("--regularisation", type=float, help="fixed regularisation weight instead of the rule")
    a.add_argument("--max-factor", type=float, default=2.0,
                   help="fitted moment arms stay within this factor of the prior's (default 2)")
    a.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    a.set_defaults(handler=_moment_arms, verb="calibrate moment-arms")

    o = verbs.add_parser("from-osim", help="a profile from a scaled OpenSim model (needs myoedge[opensim])",
                         description="Sample an OpenSim model over one coordinate's range: moment arms, "
                                     "muscle parameters, mass, centre of mass and inertia distal to the "
                                     "joint; fit the moment-arm polynomials and write a profile with "
                                     "provenance. A model holds no MVC: it comes from --mvc-from, --mvc, "
                                     "or the existing --out profile.")
    o.add_argument("model", help="the subject's OpenSim model (.osim)")
    o.add_argument("--coordinate", required=True, help="the joint's coordinate, e.g. knee_angle_r")
    o.add_argument("--muscles", required=True, help="comma-separated muscle names of the model, in channel "
                   "order")
    o.add_argument("--out", required=True, help="profile to write (an existing one is updated, its MVC kept)")
    o.add_argument("--mvc-from", help="profile whose MVC values (by muscle name) the new profile keeps")
    o.add_argument("--mvc", help="MVC envelope per muscle in volts: NAME=VOLTS,... (instead of --mvc-from)")
    o.add_argument("--joint", help="joint name of the profile, as in recording.json (default: the OpenSim "
                   "joint's name)")
    o.add_argument("--subject", help="subject name (default: from --mvc-from, else the model's name)")
    o.add_argument("--flexion-sign", type=int, choices=[1, -1], default=1,
                   help="-1 when the coordinate increases in extension (e.g. knee_angle_r); default 1")
    o.add_argument("--degree", type=int, default=4, help="moment-arm polynomial degree (default 4)")
    o.add_argument("--samples", type=int, default=101, help="samples across the range (default 101)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out (kept as .prev)")
    o.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    o.set_defaults(handler=_from_osim, verb="calibrate from-osim")


def _no_subverb(args: argparse.Namespace) -> dict:
    raise InputError("choose a sub-verb: calibrate mvc, calibrate moment-arms or calibrate from-osim")


def _positive(value: float, flag: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{flag} must be a positive number, got {value}")
    return value


def _device_path(port: str) -> str | None:
    """The file behind a port given as a path (a pty, /dev/ttyUSB0), so no output can be written over it."""
    return None if "://" in port else port


def _mvc(args: argparse.Namespace) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.calibrate import profile_update
    from myoedge.calibrate.mvc import MvcConfig
    from myoedge.calibrate.mvc_session import run_mvc_session
    from myoedge.edge.wire.transport import open_transport

    out = Path(args.out)
    base_path = Path(args.profile) if args.profile else (out if out.exists() else None)
    check_output(out, inputs=[base_path, _device_path(args.port)], update=base_path, overwrite=args.overwrite)
    if base_path is None and not args.joint:
        raise InputError(f"{out} does not exist yet: give --profile to start from, or --joint (and "
                         "--subject) to start a new profile from the generic model")
    base = SubjectProfile.load(base_path) if base_path is not None else None  # refuse a bad profile up front
    config = MvcConfig(repetitions=args.repetitions, max_attempts=2 * args.repetitions,
                       window_s=_positive(args.window, "--window"), rest_s=_positive(args.rest, "--rest"),
                       hold_s=_positive(args.hold, "--hold"), countdown_s=min(3.0, args.rest))
    muscles = args.muscles
    if base is not None:
        for name in muscles or ():
            base.model.index(name)  # a clear error for a muscle the profile does not have
    actions = {}
    model = base.model if base is not None else None
    if model is not None:
        actions = {mu.name: f"push into {model.joint} {'flexion' if mu.action == 'flexor' else 'extension'} "
                            f"({mu.name})" for mu in model.muscles}
        muscles = muscles or list(model.muscle_names)
    timeout_s, stall_s = _positive(args.timeout, "--timeout"), _positive(args.stall, "--stall")
    transport = open_transport(args.port)
    with _monitor(args) as on_event:
        result = run_mvc_session(args.port, transport=transport, muscles=muscles, config=config,
                                 auto=args.auto, actions=actions, timeout_s=timeout_s, stall_s=stall_s,
                                 on_event=on_event)
    if base is not None:
        profile = profile_update.with_mvc(base, result)
    else:
        profile = profile_update.new_profile(subject=args.subject or out.stem, joint=args.joint,
                                             result=result)
    profile.save(out)
    for name, value in result.mvc_volts.items():
        print(f"{name}: MVC {1e6 * value:.1f} µV")
    kept = out.with_name(out.name + ".prev")
    print(f"wrote {out}" + (f" (previous kept as {kept.name})" if kept.exists() else ""))
    return {"profile": str(out), "mvc_volts": result.mvc_volts, "lost_frames": result.lost_frames,
            "reconnects": result.reconnects, "mode": result.mode, "repetitions": result.session}


@contextlib.contextmanager
def _monitor(args: argparse.Namespace):
    """With ``--monitor``: the live page of the session (its event consumer); else no consumer."""
    if not args.monitor:
        yield None
        return
    from myoedge.edge.monitor.cli import check_port, require_server

    require_server()
    from myoedge.edge.monitor.mvc_feed import MvcFeed
    from myoedge.edge.monitor.server import ServerThread

    feed = MvcFeed(source=args.port)
    server = ServerThread(feed, host=args.monitor_host,
                          port=check_port(args.monitor_port, "--monitor-port")).start()
    print(f"monitor: open {server.url} to follow the session", flush=True)
    try:
        yield feed.event
        time.sleep(0.1)  # the last verdict and the result reach the page (3 ticks)
    except BaseException:
        time.sleep(0.1)  # the reason reaches the page too
        raise
    finally:
        server.stop()


def _moment_arms(args: argparse.Namespace) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.body.recording import find_recordings, load_recording
    from myoedge.calibrate import profile_update
    from myoedge.calibrate.moment_arms import FitConfig
    from myoedge.calibrate.refit import calibrate_moment_arms
    from myoedge.calibrate.report import format_report

    check_output(args.out, inputs=[args.data, args.profile], update=args.profile, overwrite=args.overwrite)
    profile = SubjectProfile.load(args.profile)
    paths = find_recordings(args.data)
    if not paths:
        raise InputError(f"no recordings (folders with recording.json) under {args.data}")
    recordings = [load_recording(p) for p in paths]
    config = FitConfig(degree=args.degree, prior_scale=_positive(args.prior_scale, "--prior-scale"),
                       regularisation=args.regularisation, max_factor=args.max_factor)
    calibration = calibrate_moment_arms(recordings, profile, forces=args.forces, torque=args.torque,
                                        fit_segment_terms=args.fit_segment, config=config)
    new = profile_update.with_moment_arms(calibration)
    out = Path(args.out)
    new.save(out)
    print(format_report(calibration))
    print(f"wrote {out}")
    return {"profile": str(out), **calibration.record()}


def _from_osim(args: argparse.Namespace) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.calibrate.from_osim import parse_mvc, profile_from_osim

    out = Path(args.out)
    if args.mvc and args.mvc_from:
        raise InputError("give the MVC one way: --mvc or --mvc-from")
    base_path = Path(args.mvc_from) if args.mvc_from else (out if out.exists() and not args.mvc else None)
    check_output(out, inputs=[args.model, base_path], update=base_path, overwrite=args.overwrite)
    muscles = [m.strip() for m in args.muscles.split(",") if m.strip()]
    if not muscles or len(set(muscles)) != len(muscles):
        raise InputError(f"--muscles must name at least one muscle, each once; got {args.muscles!r}")
    mvc = parse_mvc(args.mvc, muscles) if args.mvc else None
    base = SubjectProfile.load(base_path) if base_path is not None and mvc is None else None
    source = "--mvc on the command line" if mvc else f"profile {base_path}" if base else ""
    profile, record = profile_from_osim(
        args.model, coordinate=args.coordinate, muscles=muscles, mvc_volts=mvc, joint=args.joint,
        subject=args.subject, flexion_sign=args.flexion_sign, degree=args.degree, n_samples=args.samples,
        base=base, mvc_source=source)
    profile.save(out)
    sample = record.pop("sample")
    seg = profile.model.segment
    print(f"{record['file']}: {args.coordinate} over [{seg.range_lo:.3f}, {seg.range_hi:.3f}] rad, "
          f"{len(sample.bodies)} distal bodies, mass {seg.mass:.3f} kg, COM {seg.com:.4f} m, "
          f"inertia {seg.inertia:.4g} kg m^2")
    for name, fit in record["moment_arm_fit"].items():
        print(f"{name}: moment-arm fit (degree {args.degree}) max error "
              f"{1e3 * fit['max_abs_error_m']:.3f} mm ({100 * fit['max_rel_error']:.2f} %)")
    kept = out.with_name(out.name + ".prev")
    print(f"wrote {out}" + (f" (previous kept as {kept.name})" if kept.exists() else ""))
    return {"profile": str(out), "joint": profile.joint, "muscles": list(profile.muscles), **record,
            "segment": {k: getattr(seg, k) for k in ("mass", "com", "inertia", "gravity_offset", "range_lo",
                                                     "range_hi")}}
