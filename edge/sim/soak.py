"""Soak test: the real-time loop against the amplifier simulator, every fault kind, for a long time.

    python -m myoedge.edge.sim.soak --seconds 1800 --out docs/results/soak.json     (``make soak``)

The simulator runs in a process of its own (``SimProcess``, as in ``myoedge bench``) and serves TCP; the
loop (``Runtime``) reads it through ``socket://`` like any amplifier. The fault plan repeats over the
whole run: bit flips, drops and garbage at fixed rates, a link stall every ``stall_every_s`` and a
disconnect (the TCP server shut down and brought back on the same port) every ``disconnect_every_s``.

The result (JSON, :data:`RESULT_FORMAT`) counts frames sent, delivered and lost against the losses the
simulator injected; estimates valid and invalid by flag; each reconnect's time (from the port's return
to the next fresh estimate: the wall-clock gap between fresh estimates around a disconnect, less the
time the port was gone); the resident memory over time and its growth per hour (a line fitted to the second
half, after warm-up); deadline misses; and crashes (the reader thread gone, an exception, a publisher
error). ``targets`` says which of the issue's limits were met. Nothing is kept per estimate: the
counters are O(1) in memory, so the soak's own bookkeeping does not show up as growth.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from myoedge.edge.loop.estimate import INVALID, Flags
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.sim.bench_model import SYNTHETIC_WARMUP_STEPS
from myoedge.edge.sim.faults import FaultPlan
from myoedge.ground.errors import InputError

RESULT_FORMAT = "myoedge-soak"
TARGETS = {"max_reconnect_s": 1.0, "rss_growth_mb_per_h": 5.0}
_GAP_S = 0.1  # a wall-clock gap between fresh estimates longer than this is recorded as an outage


@dataclass(frozen=True, kw_only=True)
class SoakConfig:
    seconds: float = 1800.0
    channels: int = 8
    fs_hz: float = 2000.0
    samples_per_frame: int = 2
    model: str = "edge-rnn"  # a synthetic bundle of the edge model's network (bench_model)
    bitflip: float = 1e-4  # per data frame
    drop: float = 1e-3
    garbage: float = 1e-3
    stall_every_s: float = 45.0
    stall_s: float = 0.2
    disconnect_every_s: float = 60.0
    disconnect_s: float = 0.5
    sample_every_s: float = 2.0  # resident-memory samples
    warmup_steps: int = SYNTHETIC_WARMUP_STEPS  # the synthetic model's warm-up after each reset
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("seconds", "fs_hz", "stall_every_s", "stall_s", "disconnect_every_s", "disconnect_s",
                     "sample_every_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise InputError(f"soak {name} must be a positive number, got {value!r}")
        steps = self.warmup_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise InputError(f"soak warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if self.seconds < 5.0:
            raise InputError(f"a soak needs at least 5 s, got {self.seconds:g}")

    def plan(self) -> FaultPlan:
        """Rates for the whole run; a stall and a disconnect repeated over it (never at the very start)."""
        end = self.seconds - 2.0
        stalls = [(float(t), self.stall_s) for t in np.arange(self.stall_every_s / 2, end, self.stall_every_s)
                  ]
        disconnects = [(float(t), self.disconnect_s)
                       for t in np.arange(self.disconnect_every_s * 0.75, end, self.disconnect_every_s)]
        return FaultPlan(bitflip=self.bitflip, drop=self.drop, garbage=self.garbage, stalls=tuple(stalls),
                         disconnects=tuple(disconnects), seed=self.seed)


class EstimateCounter:
    """A publisher callback that counts estimates by flag combination and records outages (O(1) work)."""

    def __init__(self) -> None:
        self.by_flags: dict[int, int] = {}
        self.total = 0
        self.outages: list[tuple[float, float, float]] = []  # (device s before, wall gap s, device gap s)
        self._last_wall = self._last_device = None

    def __call__(self, estimate) -> None:
        self.total += 1
        flags = int(estimate.flags)
        self.by_flags[flags] = self.by_flags.get(flags, 0) + 1
        if flags & Flags.STALE:
            return
        wall, device = time.monotonic(), estimate.timestamp_us / 1e6
        if self._last_wall is not None and wall - self._last_wall > _GAP_S:
            self.outages.append((self._last_device, wall - self._last_wall, device - self._last_device))
        self._last_wall, self._last_device = wall, device

    def reasons(self) -> dict:
        valid = sum(n for f, n in self.by_flags.items() if not f & int(INVALID))
        by_reason = {flag.name.lower(): sum(n for f, n in self.by_flags.items() if f & int(flag))
                     for flag in Flags}
        return {"total": self.total, "valid": valid, "invalid": self.total - valid, "by_flag": by_reason}


def rss_mb() -> float | None:
    """Resident memory of this process (MB), from /proc; None where there is no /proc."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def growth_mb_per_h(samples: list[tuple[float, float]]) -> float | None:
    """Slope of a line fitted to the second half of (seconds, MB) samples, in MB per hour."""
    half = samples[len(samples) // 2:]
    if len(half) < 3:
        return None
    t, mb = np.array(half).T
    return float(np.polyfit(t, mb, 1)[0] * 3600.0)


def reconnect_delays(outages, disconnects) -> list[float]:
    """For each injected disconnect, the time from the port's return to the loop's next fresh estimate
    (s): the wall-clock gap between fresh estimates around it, less the time the port was gone."""
    delays = []
    for at, duration in disconnects:
        around = [o for o in outages if o[0] <= at + 0.05 and o[0] + o[2] >= at]
        if around:
            delays.append(round(max(0.0, around[0][1] - duration), 4))
    return delays


def run_soak(config: SoakConfig, *, say=None) -> dict:
    """Run the loop against the simulator for ``config.seconds``; the result dict (see the module doc)."""
    from myoedge.edge.dsp.envelope_report import emg_like
    from myoedge.edge.loop.runtime import Runtime
    from myoedge.edge.model.bundle import load_bundle
    from myoedge.edge.sim.ampsim_signals import AmpSignal
    from myoedge.edge.sim.bench import host_info
    from myoedge.edge.sim.bench_model import bench_profile, synthetic_bundle
    from myoedge.edge.sim.bench_sim import SimProcess
    from myoedge.edge.wire.transport import open_transport

    say = say or (lambda text: print(f"soak: {text}", file=sys.stderr, flush=True))
    plan = config.plan()
    counter, crashes, rss = EstimateCounter(), [], []
    with tempfile.TemporaryDirectory(prefix="myoedge-soak-") as tmp:
        muscles = tuple(f"M{i}" for i in range(config.channels))
        path, _ = synthetic_bundle(Path(tmp) / "bundle", kind=config.model, seed=config.seed, muscles=muscles,
                                   fs_hz=config.fs_hz, input_bits=24, warmup_steps=config.warmup_steps)
        bundle = load_bundle(path)
        signal = AmpSignal(volts=emg_like(fs_hz=config.fs_hz, seconds=11.0, n_channels=config.channels,
                                          seed=config.seed), fs=config.fs_hz, labels=bundle.muscles,
                           description="band-limited amplitude-modulated noise (envelope_report.emg_like)")
        frames = int(config.seconds * config.fs_hz / config.samples_per_frame)
        sim = SimProcess(signal, capacity=frames + 10_000, bits=24, faults=plan, tcp_port=0,
                         samples_per_frame=config.samples_per_frame)
        runtime = Runtime(bundle=bundle, profile=bench_profile(bundle), transport=open_transport(sim.address),
                          publishers=[CallbackPublisher(counter)], backend="onnxruntime")
        say(f"{config.seconds:g} s over {sim.address}; faults {', '.join(plan.describe()[:3])}, "
            f"{len(plan.stalls)} stalls, {len(plan.disconnects)} disconnects")
        t0 = time.monotonic()
        expected_lost = 0
        try:
            runtime.start()
            next_say = t0 + 60.0
            while (now := time.monotonic()) - t0 < config.seconds:
                if not runtime.reader.running:
                    crashes.append(f"reader thread stopped at {now - t0:.1f} s")
                    break
                mb = rss_mb()
                if mb is not None:
                    rss.append((round(now - t0, 2), round(mb, 3)))
                if now >= next_say:
                    say(f"{now - t0:.0f} s: {counter.total} estimates, {len(counter.outages)} outages, "
                        f"RSS {mb:.1f} MB")
                    next_say += 60.0
                time.sleep(min(config.sample_every_s, max(0.0, config.seconds - (now - t0))))
            _, expected_lost = sim.poll()
        except Exception as exc:  # a crash is a result here, reported with the rest
            crashes.append(f"{type(exc).__name__}: {exc}")
        finally:
            stats = runtime.stop()
            sim_stats = sim.stop()
    if stats.get("consumer_errors"):
        crashes.append(f"{stats['consumer_errors']} publisher errors")
    delays = reconnect_delays(counter.outages, plan.disconnects)
    growth = growth_mb_per_h(rss)
    parser = stats["parser"]
    lost = parser["lost"]
    result = {
        "format": RESULT_FORMAT, "version": 1,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": host_info(), "config": asdict(config), "faults": plan.describe()[:3],
        "crashes": crashes,
        "frames": {"sent": sim_stats.get("frames_sent"), "delivered": stats.get("frames", 0), "lost": lost,
                   "injected_lost": expected_lost, "lost_minus_injected": lost - expected_lost,
                   "crc_errors": parser["crc_errors"], "resyncs": parser["resyncs"],
                   "injected": sim_stats.get("faults")},
        "estimates": counter.reasons(),
        "reconnects": {"disconnects_injected": len(plan.disconnects),
                       "reconnects": stats["transport"]["reconnects"],
                       "delays_s": delays, "max_s": max(delays) if delays else None,
                       "stalls_injected": len(plan.stalls), "outages_seen": len(counter.outages)},
        "rss_mb": {"start": rss[0][1] if rss else None, "end": rss[-1][1] if rss else None,
                   "growth_mb_per_h": None if growth is None else round(growth, 3),
                   "samples": rss[:: max(1, len(rss) // 200)]},
        "deadline_misses": stats["latency"]["deadline_misses"],
        "latency_us": {k: stats["latency"]["all"]["processing"].get(k) for k in ("p50", "p99", "max")},
    }
    result["targets"] = {
        "no_crash": {"met": not crashes},
        "losses_equal_injected": {"measured": lost - expected_lost, "met": lost == expected_lost},
        "max_reconnect_s": {"target": TARGETS["max_reconnect_s"], "measured": result["reconnects"]["max_s"],
                            "met": bool(delays) and len(delays) == len(plan.disconnects)
                            and max(delays) <= TARGETS["max_reconnect_s"]},
        "rss_growth_mb_per_h": {"target": TARGETS["rss_growth_mb_per_h"], "measured": growth,
                                "met": growth is not None and growth <= TARGETS["rss_growth_mb_per_h"]},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    from myoedge.ground.fileio import atomic_write_text, check_output

    p = argparse.ArgumentParser(prog="python -m myoedge.edge.sim.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1800.0, help="how long (default 1800: 30 min)")
    p.add_argument("--out", help="write the JSON result here (a file; --overwrite to replace one)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        config = SoakConfig(seconds=args.seconds, seed=args.seed)
        if args.out:
            check_output(args.out, overwrite=args.overwrite)
    except InputError as e:
        print(f"soak: {e}", file=sys.stderr)
        return 2
    result = run_soak(config)
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        atomic_write_text(args.out, text, keep_previous=True)
    print(json.dumps({k: result[k] for k in ("crashes", "frames", "reconnects", "targets")}, default=str))
    return 0 if all(t["met"] for t in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
