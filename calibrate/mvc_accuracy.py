"""How close a scripted MVC session gets to the true MVC of synthetic subjects.

    python -m myoedge.calibrate.mvc_accuracy [--hold S] [--repetitions N] [--seeds N] [--json]

Each session is the real path a clinician's session takes: ``myoedge amp-sim --protocol mvc`` (TCP,
20 samples per frame, as fast as the reader takes them) → reader → parser → fixed-point envelope →
:func:`myoedge.calibrate.mvc_session.run_mvc_session` with ``auto``. The truth is the level the
device's envelope settles at during a full contraction
(:func:`myoedge.edge.sim.ampsim_signals.device_mvc_volts`); the body model's ideal-band value
(``mvc_envelope``) is reported beside it. Subjects: knee 1–3, wrist
1–2, elbow 1–2, each with ``--seeds`` seeds (different electrodes, gains and noise).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

SUBJECTS = (("knee", 1), ("knee", 2), ("knee", 3), ("wrist", 1), ("wrist", 2), ("elbow", 1), ("elbow", 2))


def session_errors(joint: str, subject: int, seed: int, *, hold_s: float, repetitions: int) -> dict:
    """Relative MVC errors of one scripted session, per channel, against both truths."""
    from myoedge.body.emg_synth import mvc_envelope
    from myoedge.body.subjects import make_subject, session_gains
    from myoedge.calibrate.mvc import MvcConfig
    from myoedge.calibrate.mvc_session import run_mvc_session
    from myoedge.edge.sim.ampsim import AmplifierSimulator
    from myoedge.edge.sim.ampsim_signals import mvc_protocol_signal

    protocol = mvc_protocol_signal(joint=joint, subject=subject, seed=seed, contraction_s=hold_s,
                                   repetitions=repetitions)
    sim = AmplifierSimulator(protocol, samples_per_frame=20, fast=True, loop=False).start()
    try:
        result = run_mvc_session(sim.address, auto=True, timeout_s=300, say=lambda line: None,
                                 config=MvcConfig(repetitions=repetitions, max_attempts=2 * repetitions))
    finally:
        sim.stop()
    measured = np.array(list(result.mvc_volts.values()))
    ideal = mvc_envelope(session_gains(make_subject(joint, subject, seed=seed), 1), protocol.fs)
    return {"session": f"{joint}{subject:02d} seed {seed}", "muscles": list(result.mvc_volts),
            "device": (measured / protocol.true_mvc_volts - 1).tolist(),
            "ideal_band": (measured / ideal - 1).tolist(), "lost_frames": result.lost_frames}


def summarise(errors: list[float], tolerance: float = 0.02) -> dict:
    e = np.asarray(errors)
    sd = float(e.std(ddof=1)) if e.size > 1 else 0.0
    return {"channels": int(e.size), "mean": float(e.mean()), "sd": sd,
            "worst": float(np.abs(e).max()), "within": int((np.abs(e) <= tolerance).sum()),
            "tolerance": tolerance}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m myoedge.calibrate.mvc_accuracy",
                                description=__doc__.split("\n")[0])
    p.add_argument("--hold", type=float, default=5.0, help="contraction per repetition with ramps, s (5)")
    p.add_argument("--repetitions", type=int, default=3, help="repetitions per muscle (3)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per subject (2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    sessions = []
    for joint, subject in SUBJECTS:
        for seed in range(args.seeds):
            s = session_errors(joint, subject, seed, hold_s=args.hold, repetitions=args.repetitions)
            sessions.append(s)
            errs = ", ".join(f"{m} {100 * e:+.2f}%" for m, e in zip(s["muscles"], s["device"], strict=True))
            print(f"{s['session']}: {errs}", file=sys.stderr)
    out = {"hold_s": args.hold, "repetitions": args.repetitions, "sessions": sessions,
           "against_device": summarise([e for s in sessions for e in s["device"]]),
           "against_ideal_band": summarise([e for s in sessions for e in s["ideal_band"]]),
           "lost_frames": sum(s["lost_frames"] for s in sessions)}
    if args.json:
        print(json.dumps(out))
    else:
        for key in ("against_device", "against_ideal_band"):
            r = out[key]
            print(f"{key}: mean {100 * r['mean']:+.2f}%, SD {100 * r['sd']:.2f}%, "
                  f"worst {100 * r['worst']:.2f}%, {r['within']} of {r['channels']} within "
                  f"{100 * r['tolerance']:g}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
