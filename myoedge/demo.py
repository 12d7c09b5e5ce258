"""``myoedge demo``: the main job end to end on the built-in synthetic subject.

Simulate one knee subject, write its recordings and true profile, load them back through the recording
loader and print what they hold (including how well the loaded data obey the equation of motion); then
calibrate the subject as a clinician would (a scripted MVC session against the amplifier simulator and a
moment-arm re-fit) and print how far the calibrated profile is from the true one; train the edge model
briefly on the *calibrated* profile (its MVC normalises the envelopes, its moment arms drive the physics
term), export its bundle and print its accuracy on held-out data; finally stream one trial's raw EMG
through the amplifier simulator and a pty into the real-time loop (`myoedge run`'s runtime, again with
the calibrated profile) and compare its estimates with the simulated truth. The true profile is used
only to score.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def register(sub) -> None:
    from myoedge.ground.verbs import add_verb

    p = add_verb(sub, "demo", run_demo, help="run the main job end to end on a built-in synthetic subject")
    p.add_argument("--out", default="runs/demo", help="working folder (default runs/demo)")
    p.add_argument("--joint", choices=["knee", "wrist", "elbow"], default="knee")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per trial (default 20)")
    p.add_argument("--seed", type=int, default=0)


def run_demo(args) -> dict:
    from myoedge.body.profile import SubjectProfile
    from myoedge.body.recording import find_recordings, load_recording
    from myoedge.body.subjects import write_dataset
    from myoedge.calibrate.demo_step import compare_profiles, describe_comparison
    from myoedge.ground.fileio import check_output

    t0 = time.monotonic()
    out = check_output(args.out, folder=True, merge=True)  # the demo's own working folder, renewed each run
    print(f"[1/6] simulating one synthetic {args.joint} subject into {out}/data ...")
    summary = write_dataset(out / "data", joints=(args.joint,), n_subjects=1, duration_s=args.duration,
                            seed=args.seed, overwrite=True)
    subject = summary["subjects"][0]
    profile = SubjectProfile.load(subject["profile"])
    print(f"      subject {profile.subject}: {subject['body_mass_kg']} kg, {subject['height_m']} m, "
          f"muscles {', '.join(profile.muscles)}")
    print("[2/6] loading the recordings back:")
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
    print("[3/6] calibrating the subject (scripted MVC session over the amplifier simulator, moment-arm "
          "re-fit):")
    from myoedge.calibrate.demo_step import run_calibration_step

    calibration = run_calibration_step(out / "data", out / "calibrated_profile.json", joint=args.joint,
                                       subject_index=1, seed=args.seed)
    calibrated = SubjectProfile.load(calibration["profile"])
    theta = np.concatenate([load_recording(p).theta for p in find_recordings(out / "data")])
    comparison = compare_profiles(calibrated, profile, angles_rad=np.percentile(theta, [10, 50, 90]))
    print("      calibrated profile vs the true one (the simulator's):")
    for line in describe_comparison(comparison):
        print(f"        {line}")
    calibration["vs_true"] = comparison
    learned = _train_and_export(out, calibrated, seed=args.seed)
    live = _run_edge_loop(out, Path(learned["bundle"]), calibrated)
    elapsed = time.monotonic() - t0
    print(f"done in {elapsed:.1f} s")
    return {"subject": profile.subject, "joint": profile.joint, "trials": trials, "calibration": calibration,
            **learned, "edge_loop": live, "seconds": elapsed}


DEMO_ITERATIONS = 300  # a short run: enough to show the pipeline, not a converged model


def _train_and_export(out: Path, profile, *, seed: int) -> dict:
    """Stages 4–5: train the edge preset on 80 % of every trial with the calibrated ``profile``, export its
    bundle, score the other 20 %."""
    from myoedge.train.cli import accuracy, format_accuracy
    from myoedge.train.data import load_sequences, split_intra_session
    from myoedge.train.export import export_bundle
    from myoedge.train.fit import fit
    from myoedge.train.run import TrainConfig

    seqs = load_sequences(out / "data", profiles={profile.subject: profile})
    train, test = (sum(part, []) for part in zip(*split_intra_session(seqs, seed=seed).values()))
    print(f"[4/6] training the edge model ({DEMO_ITERATIONS} iterations) on 80 % of every trial, with the "
          "calibrated profile ...")
    trained = fit(train, TrainConfig.for_preset("edge", iterations=DEMO_ITERATIONS), seed=seed)
    trained.save(out / "run", overwrite=True)
    print(f"      {trained.info['parameters']} parameters, {trained.window}-step window, trained in "
          f"{trained.info['train_seconds']:.1f} s")
    report = export_bundle(trained, out / "bundle", overwrite=True)
    print(f"[5/6] exported {report['bundle']} (ONNX vs PyTorch max abs error: theta "
          f"{report['max_abs_error']['theta']:.1g} rad, forces {report['max_abs_error']['forces']:.1g} N); "
          "accuracy on the held-out 20 %:")
    acc = accuracy(trained.predict, test)
    print("\n".join(format_accuracy(acc)))
    return {"bundle": report["bundle"], "train_seconds": trained.info["train_seconds"], "held_out": acc}


LIVE_SECONDS = 5.0


def _run_edge_loop(out: Path, bundle_path: Path, profile) -> dict:
    """Stage 6: the fastest trial's raw EMG → amplifier simulator → pty → reader → envelope → model."""
    from myoedge.body.recording import find_recordings, load_recording
    from myoedge.edge.loop.publish import CallbackPublisher
    from myoedge.edge.loop.runtime import Runtime
    from myoedge.edge.model.bundle import load_bundle
    from myoedge.edge.sim.ampsim import AmplifierSimulator
    from myoedge.edge.sim.ampsim_signals import recording_signal
    from myoedge.edge.wire.transport import open_transport

    trial = [p for p in find_recordings(out / "data") if p.name.endswith("_fast")][0]
    rec = load_recording(trial)
    estimates = []
    print(f"[6/6] streaming {trial.name} through the amplifier simulator and the real-time loop for "
          f"{LIVE_SECONDS:.0f} s ...")
    sim = AmplifierSimulator(recording_signal(trial), loop=False).start()
    try:
        runtime = Runtime(bundle=load_bundle(bundle_path), profile=profile,
                          transport=open_transport(sim.address),
                          publishers=[CallbackPublisher(estimates.append)])
        stats = runtime.run(duration_s=LIVE_SECONDS, say=lambda line: None)
    finally:
        sim.stop()
    valid = [e for e in estimates if e.valid]
    t = np.array([e.timestamp_us for e in valid]) / 1e6 + rec.emg_t0
    theta = np.array([e.theta_rad for e in valid])
    truth = np.interp(t, rec.time, rec.theta)
    cc = float(np.corrcoef(theta, truth)[0, 1]) if len(valid) > 2 else float("nan")
    rmse = float(np.degrees(np.sqrt(np.mean((theta - truth) ** 2)))) if len(valid) else float("nan")
    proc = stats["latency"]["all"]["processing"]
    print(f"      {len(estimates)} estimates ({len(valid)} valid), frames lost {stats['parser']['lost']}; "
          f"θ vs truth: CC {cc:.3f}, RMSE {rmse:.1f}°; processing latency p50 {proc['p50']:.0f} µs, "
          f"p99 {proc['p99']:.0f} µs ({stats['predictor']})")
    return {"estimates": len(estimates), "valid": len(valid), "theta_cc": cc, "theta_rmse_deg": rmse,
            "frames_lost": stats["parser"]["lost"], "processing_us": proc}
