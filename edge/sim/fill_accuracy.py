"""What an estimate loses when one electrode is off, and what filling the channel in wins back.

    python -m myoedge.edge.sim.fill_accuracy --bundle BUNDLE --profile PROFILE RECORDING... [--json]

Every recording's raw EMG is quantised with the bundle's ADC and streamed frame by frame through the
runtime's pipeline (the loop's code, not a copy) three ways for each channel c: intact; with channel c
flat from ``--off-fraction`` of the recording to its end (a lifted electrode), as a controller would
see it if it ignored ELECTRODE_OFF; and flat with ``fill_off_channels`` (RECONSTRUCTED). Scores are
θ CC and nRMSE (RMSE over the range of θ) and the mean force CC against the recordings, over the parts
where the electrode is off, pooled over the recordings as ``myoedge train`` pools its held-out parts.
The flags say whether the loop stood behind each estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import Recording, load_recording
from myoedge.edge.dsp.adc import volts_to_counts
from myoedge.edge.loop.estimate import INVALID, Flags
from myoedge.edge.loop.pipeline import Pipeline
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.loop.safety import SafetyConfig
from myoedge.edge.model import OnnxCpuPredictor
from myoedge.edge.model.bundle import Bundle, load_bundle
from myoedge.edge.wire.protocol import DeviceInfo, Frame
from myoedge.ground.errors import InputError

__all__ = ["replay", "score_channel_off"]

SAMPLES_PER_FRAME = 10


def replay(bundle: Bundle, profile: SubjectProfile, rec: Recording, *, flat: int | None = None,
           off_at_s: float = 0.0, fill: bool = False) -> dict[str, np.ndarray]:
    """The loop's estimates for ``rec`` (channel ``flat`` held at one count from ``off_at_s`` on):
    times (s, on the recording's clock), theta, forces and flags, one row per estimate."""
    adc = bundle.adc
    if adc is None:
        raise InputError(f"bundle {bundle.path} records no ADC; re-export it")
    counts = volts_to_counts(rec.emg, volts_per_count=adc.volts_per_count, input_bits=adc.bits)
    if flat is not None:
        counts[int(round(off_at_s * rec.emg_fs)):, flat] = 0
    info = DeviceInfo(sample_rate_hz=rec.emg_fs, scale_v=[adc.volts_per_count] * len(bundle.muscles),
                      labels=tuple(m[:16] for m in bundle.muscles), sample_bits=adc.bits,
                      samples_per_frame=SAMPLES_PER_FRAME, device_name="replay")
    got = []
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    safety=SafetyConfig(fill_off_channels=fill), publishers=[CallbackPublisher(got.append)],
                    prewarm=False)
    spf = SAMPLES_PER_FRAME
    for k in range(counts.shape[0] // spf):
        frame = Frame(seq=k + 1, timestamp_us=round(k * spf / rec.emg_fs * 1e6),
                      samples=counts[k * spf:(k + 1) * spf], sample_bits=adc.bits)
        pipe.process(frame, t_read_ns=0)
    step = pipe.envelope.config.decimation  # the envelope keeps input samples 0, k, 2k, ... (k: decimation)
    return {"t": rec.emg_t0 + np.arange(len(got)) * step / rec.emg_fs,
            "theta": np.array([e.theta_rad for e in got]),
            "forces": np.array([e.forces_n for e in got]), "flags": np.array([int(e.flags) for e in got])}


def _cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")


def _pooled(outs: list[dict], recs: list[Recording], since_s: list[float]) -> dict:
    """θ CC and nRMSE, mean force CC and the share of valid / RECONSTRUCTED estimates, every recording's
    part after its ``since_s`` pooled (as ``myoedge train`` pools its held-out parts)."""
    pred, truth, fpred, ftruth, flags = [], [], [], [], []
    for out, rec, since in zip(outs, recs, since_s, strict=True):
        keep = out["t"] >= since
        t = out["t"][keep]
        pred.append(out["theta"][keep])
        truth.append(np.interp(t, rec.time, rec.theta))
        flags.append(out["flags"][keep])
        if rec.forces is not None:
            fpred.append(out["forces"][keep])
            ftruth.append(np.column_stack([np.interp(t, rec.time, f) for f in rec.forces.T]))
    pred, truth, flags = np.concatenate(pred), np.concatenate(truth), np.concatenate(flags)
    span = float(np.ptp(truth)) or 1.0
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    scores = {"theta_cc": _cc(pred, truth), "theta_nrmse": rmse / span,
              "valid": float(np.mean((flags & int(INVALID)) == 0)),
              "reconstructed": float(np.mean((flags & int(Flags.RECONSTRUCTED)) != 0))}
    if fpred and len(fpred) == len(outs):
        fp, ft = np.concatenate(fpred), np.concatenate(ftruth)
        scores["force_cc"] = float(np.nanmean([_cc(fp[:, n], ft[:, n]) for n in range(ft.shape[1])]))
    return scores


def score_channel_off(bundle: Bundle, profile: SubjectProfile, recs: list[Recording], *,
                      off_fraction: float) -> dict:
    """Per channel: pooled scores intact, off, and off + filled. The electrode lifts at ``off_fraction``
    of each recording; scores start 0.5 s later (the fill is flagged from 0.1 s)."""
    off_at = [off_fraction * (r.time[-1] - r.time[0]) + r.time[0] - r.emg_t0 for r in recs]
    since = [r.emg_t0 + a + 0.5 for r, a in zip(recs, off_at, strict=True)]
    intact = _pooled([replay(bundle, profile, r) for r in recs], recs, since)
    rows = {}
    for c, muscle in enumerate(bundle.muscles):
        rows[muscle] = {fill: _pooled([replay(bundle, profile, r, flat=c, off_at_s=a, fill=fill == "filled")
                                       for r, a in zip(recs, off_at, strict=True)], recs, since)
                        for fill in ("off", "filled")}
    names = ["/".join(x for x in (r.meta.subject, r.meta.session, r.meta.trial) if x) for r in recs]
    return {"recordings": names, "off_fraction": off_fraction, "intact": intact, "channels": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m myoedge.edge.sim.fill_accuracy",
                                description=__doc__.split("\n")[0])
    p.add_argument("recordings", nargs="+", help="recording folders (with recording.json)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--off-fraction", type=float, default=0.8, help="where in each recording the electrode "
                   "lifts, as a fraction of its length (default 0.8: the part `myoedge train` holds out)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        bundle, profile = load_bundle(args.bundle), SubjectProfile.load(args.profile)
        if not 0.0 <= args.off_fraction < 1.0:
            raise InputError(f"--off-fraction must be in [0, 1), got {args.off_fraction}")
        result = score_channel_off(bundle, profile, [load_recording(Path(r)) for r in args.recordings],
                                   off_fraction=args.off_fraction)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    i = result["intact"]
    print(f"intact: theta CC {i['theta_cc']:.3f} nRMSE {100 * i['theta_nrmse']:.1f} %")
    for muscle, row in result["channels"].items():
        off, fill = row["off"], row["filled"]
        print(f"{muscle:>8} off: theta CC {off['theta_cc']:.3f} nRMSE {100 * off['theta_nrmse']:.1f} % "
              f"valid {100 * off['valid']:.0f} % | filled: CC {fill['theta_cc']:.3f} "
              f"nRMSE {100 * fill['theta_nrmse']:.1f} % valid {100 * fill['valid']:.0f} %")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
