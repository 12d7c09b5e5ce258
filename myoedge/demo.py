"""``myoedge demo``: the main job end to end on the built-in synthetic subject.

Simulate one knee subject, write its recordings and true profile, load them back through the recording
loader and print what they hold (including how well the loaded data obey the equation of motion); then
train the edge model briefly, export its bundle and print its accuracy on held-out data. Later stages
(the edge loop) join as they land.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def register(sub) -> None:
    from myoedge.cli import add_verb

    p = add_verb(sub, "demo", run_demo, help="run the main job end to end on a built-in synthetic subject")
    p.add_argument("--out", default="runs/demo", help="working folder (default runs/demo)")
    p.add_argument("--joint", choices=["knee", "wrist", "elbow"], default="knee")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per trial (default 20)")
    p.add_argument("--seed", type=int, default=0)


def run_demo(args) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.body.recording import find_recordings, load_recording
    from myoedge.body.subjects import write_dataset

    t0 = time.monotonic()
    out = Path(args.out)
    print(f"[1/4] simulating one synthetic {args.joint} subject into {out}/data ...")
    summary = write_dataset(out / "data", joints=(args.joint,), n_subjects=1, duration_s=args.duration,
                            seed=args.seed, overwrite=True)
    subject = summary["subjects"][0]
    profile = SubjectProfile.load(subject["profile"])
    print(f"      subject {profile.subject}: {subject['body_mass_kg']} kg, {subject['height_m']} m, "
          f"muscles {', '.join(profile.muscles)}")
    print("[2/4] loading the recordings back:")
    trials = []
    for path in find_recordings(out / "data"):
        rec = load_recording(path)
        res = profile.model.residual(rec.theta, rec.theta_dot, rec.theta_ddot, rec.forces)
        rel = float(np.sqrt(np.mean(res**2)) / np.sqrt(np.mean(rec.torque**2)))
        deg = np.degrees(rec.theta)
        rms_uv = 1e6 * np.sqrt(np.mean(rec.emg**2, axis=0))
        trials.append({"trial": rec.meta.trial, "seconds": float(rec.time[-1] - rec.time[0]),
                       "theta_range_deg": [float(deg.min()), float(deg.max())],
                       "peak_force_n": dict(zip(profile.muscles, rec.forces.max(0).round(1).tolist())),
                       "emg_rms_uv": dict(zip(profile.muscles, rms_uv.round(1).tolist())),
                       "eom_relative_residual": rel})
        print(f"      {rec.meta.trial:>7}: θ {deg.min():5.1f}…{deg.max():5.1f}°, peak |τ| "
              f"{np.abs(rec.torque).max():5.1f} N·m, peak F "
              + ", ".join(f"{m} {f:.0f} N" for m, f in zip(profile.muscles, rec.forces.max(0)))
              + "; EMG RMS " + ", ".join(f"{u:.0f} µV" for u in rms_uv)
              + f"; equation-of-motion residual {rel:.1e} (relative)")
    learned = _train_and_export(out, seed=args.seed)
    elapsed = time.monotonic() - t0
    print(f"done in {elapsed:.1f} s")
    return {"subject": profile.subject, "joint": profile.joint, "trials": trials, **learned,
            "seconds": elapsed}


DEMO_ITERATIONS = 300  # a short run: enough to show the pipeline, not a converged model


def _train_and_export(out: Path, *, seed: int) -> dict:
    """Stages 3–4: train the edge preset on 80 % of every trial, export its bundle, score the other 20 %."""
    from myoedge.train.cli import accuracy, format_accuracy
    from myoedge.train.data import load_sequences, split_intra_session
    from myoedge.train.export import export_bundle
    from myoedge.train.fit import TrainConfig, fit

    seqs = load_sequences(out / "data")
    train, test = (sum(part, []) for part in zip(*split_intra_session(seqs, seed=seed).values()))
    print(f"[3/4] training the edge model ({DEMO_ITERATIONS} iterations) on 80 % of every trial ...")
    trained = fit(train, TrainConfig.for_preset("edge", iterations=DEMO_ITERATIONS), seed=seed)
    trained.save(out / "run", overwrite=True)
    print(f"      {trained.info['parameters']} parameters, {trained.window}-step window, trained in "
          f"{trained.info['train_seconds']:.1f} s")
    report = export_bundle(trained, out / "bundle", overwrite=True)
    print(f"[4/4] exported {report['bundle']} (ONNX vs PyTorch max abs error: theta "
          f"{report['max_abs_error']['theta']:.1g} rad, forces {report['max_abs_error']['forces']:.1g} N); "
          "accuracy on the held-out 20 %:")
    acc = accuracy(trained.predict, test)
    print("\n".join(format_accuracy(acc)))
    return {"bundle": report["bundle"], "train_seconds": trained.info["train_seconds"], "held_out": acc}
