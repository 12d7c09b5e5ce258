"""``myoedge bench``: the amplifier simulator and the real-time loop together, timed.

The simulator streams band-limited, amplitude-modulated EMG-like noise (``envelope_report.emg_like``)
as real frames at real-time pace over a pty (as a USB-serial amplifier appears), a TCP socket on
127.0.0.1, or ``inproc``: the reader's transport makes each frame itself at its due time, with no
operating-system link, which isolates the loop's own cost. The loop is the one ``myoedge run`` uses
(``Runtime``); it publishes every estimate as a UDP datagram to a socket on 127.0.0.1, so the publish
stage includes a real ``send``.

Without a bundle the model is a graph of the paper's size (``paper``: a 128-filter temporal convolution
over a 50-step window, two dense layers of 128, two heads) or of the shipped edge model's size (``edge``:
four dilated convolutions of 32 filters over a 31-step window), built with ``onnx.helper`` with random
fixed weights: the timing is that of a real model of that size; the outputs are meaningless (and may be
flagged out of range). The result says so.

Reported: per-stage latency (``myoedge.edge.loop.latency``) over all frames, frames with an inference and
frames without; ``end_to_end`` from the moment a frame was due at the simulator (its last sample
existed) to its estimate published (pty and tcp); deadline misses (deadline = frame period); frames lost
against what the fault injector says must be lost; CPU seconds per wall second (process, loop thread,
simulator process); the envelope's throughput
(``envelope_report.throughput_rows``, the same measurement as its report); host, Python, ONNX Runtime
and the predictor backend. The first ``warmup_s`` are left out of the latency figures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from myoedge.edge.model import CPU_BACKENDS
from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.sim.bench_model import BENCH_MODELS, MODEL_KINDS, PACKAGED, bench_profile, synthetic_bundle
from myoedge.edge.sim.bench_sim import SimProcess, sim_url
from myoedge.edge.sim.faults import FaultPlan
from myoedge.edge.wire.transport import check_spin_us
from myoedge.ground.errors import InputError
from myoedge.ground.fileio import atomic_write_text
from myoedge.ground.host import usable_cores

__all__ = ["TARGETS", "TRANSPORTS", "BenchConfig", "format_table", "host_info", "run_bench", "write_result"]

TRANSPORTS = ("pty", "tcp", "inproc")
# issue 13's latency targets (quiet machine, pty): processing p99 by model (the edge model, else the
# paper-size one's), end-to-end p99 and p99.9, frames lost; the envelope's throughput
TARGETS = {"processing_p99_us": {"edge": 150.0, "paper": 400.0}, "end_to_end_p99_us": 400.0,
           "end_to_end_p99.9_us": 1000.0, "frames_lost": 0, "envelope_x_real_time": 100.0}
RESULT_FORMAT = "myoedge-bench/1"


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to run. ``model`` is "edge" (the shipped model's bundle), "edge-rnn" or "paper" (synthetic graphs)
    or a bundle folder; a bundle fixes channels and rate."""

    seconds: float = 10.0
    channels: int = 8
    fs_hz: float = 2000.0
    samples_per_frame: int = 2
    model: str = "edge"
    transport: str = "pty"
    faults: tuple[str, ...] = ()
    bits: int = 24
    warmup_s: float = 0.5
    envelope_seconds: float = 10.0
    realtime_priority: int | None = None
    seed: int = 0
    prewarm: bool = True
    spin_us: float = 0.0  # busy-poll of the reader (pty and tcp; SerialTransport checks the value)
    backend: str = "auto"  # as `myoedge run --backend`, without an engine: the compiled graph or ONNX Runtime

    def __post_init__(self) -> None:
        if not 0.2 <= self.seconds <= 3600:
            raise InputError(f"seconds must be within 0.2 to 3600, got {self.seconds!r}")
        if not isinstance(self.channels, int) or not 1 <= self.channels <= 64:
            raise InputError(f"channels must be an integer in 1..64, got {self.channels!r}")
        if not isinstance(self.samples_per_frame, int) or not 1 <= self.samples_per_frame <= 64:
            raise InputError(f"samples_per_frame must be an integer in 1..64, got {self.samples_per_frame!r}")
        if self.transport not in TRANSPORTS:
            raise InputError(f"transport must be one of {list(TRANSPORTS)}, got {self.transport!r}")
        if self.bits not in (16, 24) or not 0 <= self.warmup_s < self.seconds:
            raise InputError(f"need bits 16 or 24 and 0 <= warmup_s < seconds, got {self.bits}, "
                             f"{self.warmup_s}")
        if self.model not in BENCH_MODELS and not Path(self.model).is_dir():
            raise InputError(f"model must be one of {list(BENCH_MODELS)} or a bundle folder, "
                             f"got {self.model!r}")
        if self.backend not in CPU_BACKENDS:
            raise InputError(f"backend must be one of {list(CPU_BACKENDS)}, got {self.backend!r}")
        plan = FaultPlan.parse(list(self.faults))  # refuses specs it does not understand
        if plan.disconnects and self.transport == "inproc":
            raise InputError("disconnect faults need transport pty or tcp (inproc has no port to lose)")
        check_spin_us(self.spin_us, realtime_priority=self.realtime_priority)  # before the simulator starts
        if self.spin_us and self.transport == "inproc":
            raise InputError("spin_us busy-polls a port: it needs transport pty or tcp")
        if not 0.1 <= self.envelope_seconds <= 600:
            raise InputError(f"envelope_seconds must be within 0.1 to 600, got {self.envelope_seconds!r}")


def host_info() -> dict:
    """CPU model, cores, OS, Python and library versions, and the load when the benchmark ran."""
    import numba
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable_cores(), "os": platform.platform(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "numpy": np.__version__, "onnxruntime": onnxruntime.__version__, "numba": numba.__version__,
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def _thread_cpu_s(name: str) -> float | None:
    """CPU seconds used so far by the live thread called ``name`` (Linux), else None."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None and hasattr(time, "pthread_getcpuclockid"):
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:
                return None
    return None


def run_bench(config: BenchConfig, *, command: str = "", log=None) -> dict:
    """Run the simulator and the loop for ``config.seconds``; the result (see ``format_table``)."""
    from myoedge.edge.dsp.envelope_report import emg_like, throughput_rows
    from myoedge.edge.loop.publish import UdpPublisher
    from myoedge.edge.loop.runtime import Runtime
    from myoedge.edge.sim.ampsim_signals import AmpSignal
    from myoedge.edge.wire.transport import open_transport

    say = log or (lambda text: print(f"bench: {text}", file=sys.stderr, flush=True))
    plan = FaultPlan.parse(list(config.faults), seed=config.seed)
    host = host_info()
    with tempfile.TemporaryDirectory(prefix="myoedge-bench-") as tmp:
        if config.model in MODEL_KINDS:
            say(f"building a {config.model}-size model with random fixed weights")
            path, n_params = synthetic_bundle(Path(tmp) / "bundle", kind=config.model, seed=config.seed,
                                              muscles=tuple(f"M{i}" for i in range(config.channels)),
                                              fs_hz=config.fs_hz, input_bits=config.bits)
        else:
            path, n_params = PACKAGED.get(config.model, Path(config.model)), None
        bundle = load_bundle(path)
        fs, n_ch, spf = bundle.emg_rate_hz, bundle.n_channels, config.samples_per_frame
        bits = bundle.meta.envelope.config.input_bits
        say(f"envelope throughput, {config.envelope_seconds:g} s of {n_ch} channels at {fs:g} Hz")
        envelope = [{"samples_per_call": c, "x_real_time": round(x, 1), "us_per_call": round(u, 2)}
                    for c, x, u in throughput_rows(seconds=config.envelope_seconds, n_channels=n_ch, fs=fs)]
        signal_s = min(config.seconds, 10.0) + 1.0
        capacity = int((config.seconds + 5.0) * fs / spf * 1.01) + 1000  # sequence numbers to stamp
        sim = inproc = None
        if config.transport == "inproc":
            inproc = open_transport(sim_url(labels=bundle.muscles, fs_hz=fs, samples_per_frame=spf, bits=bits,
                                            seconds=signal_s, seed=config.seed, faults=config.faults,
                                            capacity=capacity))
            transport = inproc
        else:
            signal = AmpSignal(volts=emg_like(fs_hz=fs, seconds=signal_s, n_channels=n_ch, seed=config.seed),
                               fs=fs, labels=bundle.muscles,
                               description="band-limited amplitude-modulated noise "
                                           "(envelope_report.emg_like)")
            say(f"starting the amplifier simulator ({config.transport}) in a process of its own")
            sim = SimProcess(signal, capacity=capacity, bits=bits, samples_per_frame=spf, faults=plan,
                             tcp_port=0 if config.transport == "tcp" else None,
                             realtime_priority=config.realtime_priority)
            transport = open_transport(sim.address, spin_us=config.spin_us)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        received = 0
        runtime = Runtime(bundle=bundle, profile=bench_profile(bundle), transport=transport,
                          publishers=[UdpPublisher(sink.getsockname(), n_muscles=n_ch)],
                          backend=config.backend, realtime_priority=config.realtime_priority,
                          prewarm=config.prewarm)
        try:
            runtime.start()
            say(f"running {config.seconds:g} s over {transport.url} ({config.warmup_s:g} s warm-up)")
            t_start = time.monotonic()
            while time.monotonic() - t_start < config.warmup_s:
                received += _drain(sink)
            runtime.latency.reset()
            wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), _thread_cpu_s("myoedge-reader")
            sim0, _ = sim.poll() if sim is not None else (0.0, 0)
            while time.monotonic() - t_start < config.seconds:
                received += _drain(sink)
            wall, loop1 = time.perf_counter() - wall0, _thread_cpu_s("myoedge-reader")
            sim1, expected_lost = sim.poll() if sim is not None else (0.0, 0)
            cpu = {"process": time.process_time() - cpu0,
                   "loop_thread": None if loop0 is None or loop1 is None else loop1 - loop0,
                   "simulator_process": None if sim is None else sim1 - sim0}
        finally:
            stats = runtime.stop()  # the reader lets go of the port before the simulator closes it
            if sim is not None:
                sim.stop()
            received += _drain(sink, wait_s=0.05)
            sink.close()
    sent_ns = inproc.sent_ns if inproc is not None else sim.sent_ns
    end_to_end = runtime.latency.end_to_end_ns(sent_ns)
    summary = runtime.latency.summary(end_to_end_ns=end_to_end)
    if sim is not None:
        frames_sent, faults = sim.stats["frames_sent"], sim.stats["faults"]
    else:
        frames_sent, expected_lost = inproc.frames_sent, inproc.lost_before_last_sent
        faults = asdict(inproc.injector.stats)
    period_us = spf / fs * 1e6
    processing = summary["all"]["processing"]
    e2e = summary["all"].get("end_to_end", {})
    filter_mean_us = float(np.mean(runtime.latency.frames()["filter"])) / 1e3
    return {
        "format": RESULT_FORMAT, "command": command,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": host, "config": {**asdict(config), "faults": plan.describe()},
        "model": {"kind": config.model if config.model in BENCH_MODELS else "bundle",
                  "bundle": bundle.meta.name,
                  "synthetic": n_params is not None,
                  "parameters": n_params if n_params is not None else bundle.meta.training.get("parameters"),
                  "window": bundle.window, "stateful": bundle.stateful,
                  "channels": n_ch, "rate_hz": bundle.input_rate_hz, "emg_rate_hz": fs, "sample_bits": bits,
                  "note": ("random fixed weights: real compute, meaningless outputs" if n_params is not None
                           else "the shipped edge model, trained briefly on a built-in synthetic wrist"
                           if config.model in PACKAGED else "trained bundle")},
        "backend": stats.get("predictor"), "transport": config.transport, "realtime": stats["realtime"],
        "frame_period_us": round(period_us, 3),
        "measured_s": round(wall, 3), "warmup_s": config.warmup_s,
        "latency_us": summary,
        "deadline_misses": summary["deadline_misses"],
        "frames": {"sent": frames_sent, "processed": stats.get("frames", 0), "lost": stats["parser"]["lost"],
                   "expected_lost": expected_lost, "crc_errors": stats["parser"]["crc_errors"],
                   "resyncs": stats["parser"]["resyncs"], "reconnects": stats["transport"]["reconnects"],
                   "estimates": stats.get("estimates", 0),
                   "invalid_estimates": stats.get("invalid_estimates", 0),
                   "stale_estimates": stats["stale_estimates"], "udp_datagrams_received": received},
        "faults_injected": faults,
        "cpu_per_wall_second": {k: None if v is None else round(v / wall, 4) for k, v in cpu.items()},
        "envelope_throughput": envelope,
        "envelope_in_loop_x_real_time": round(period_us / filter_mean_us, 1) if filter_mean_us else None,
        "targets": {
            "processing_p99_us": _target(processing.get("p99"), TARGETS["processing_p99_us"][
                "edge" if config.model in ("edge", "edge-rnn") else "paper"], below=True),
            "end_to_end_p99_us": _target(e2e.get("p99") if config.transport != "inproc" else None,
                                         TARGETS["end_to_end_p99_us"], below=True),
            "end_to_end_p99.9_us": _target(e2e.get("p99.9") if config.transport != "inproc" else None,
                                           TARGETS["end_to_end_p99.9_us"], below=True),
            "frames_lost": _target(max(0, stats["parser"]["lost"] - expected_lost), TARGETS["frames_lost"],
                                   below=True),
            "envelope_x_real_time": _target(min(r["x_real_time"] for r in envelope),
                                            TARGETS["envelope_x_real_time"], below=False)},
    }


def _drain(sock: socket.socket, *, wait_s: float = 0.05) -> int:
    """Read every datagram waiting on ``sock`` (waiting up to ``wait_s`` for the first); their count."""
    n = 0
    if wait_s:
        time.sleep(wait_s)
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return n
        n += 1


def _target(measured: float | None, target: float, *, below: bool) -> dict:
    met = None if measured is None else (measured <= target if below else measured >= target)
    return {"target": target, "measured": measured, "met": met}


def format_table(result: dict) -> str:
    """The result as a readable table."""
    cfg, model, host, lat = result["config"], result["model"], result["host"], result["latency_us"]
    lines = [f"myoedge bench: {result['measured_s']:.1f} s measured after {result['warmup_s']:g} s warm-up, "
             f"{model['channels']} channels at {model['emg_rate_hz']:g} Hz, "
             f"{cfg['samples_per_frame']} samples per frame ({result['frame_period_us']:g} us frames), "
             f"transport {result['transport']}, reader thread scheduling: {result['realtime']}",
             f"model: {model['bundle']} ({model['note']}"
             + (f", {model['parameters']:,} parameters" if model["parameters"] else "")
             + f"), window {model['window']} at {model['rate_hz']:g} Hz; predictor {result['backend']}",
             f"host: {host['cpu']}, {host['cores']} cores ({host['usable_cores']} usable), {host['os']}, "
             f"{host['python']}, onnxruntime {host['onnxruntime']}, numba {host.get('numba')}, "
             f"load average {host['load_average']}",
             "", f"{'latency (us)':<28}{'n':>8}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"]
    for group, title in (("all", "all frames"), ("with_inference", "frames with inference"),
                         ("without_inference", "frames without inference")):
        lines.append(title)
        for stage, p in lat[group].items():
            if p["n"]:
                lines.append(f"  {stage:<26}{p['n']:>8}{p['p50']:>9.1f}{p['p99']:>9.1f}{p['p99.9']:>9.1f}"
                             f"{p['max']:>9.1f}")
    f, cpu = result["frames"], result["cpu_per_wall_second"]
    lines += ["", f"deadline misses: {lat['deadline_misses']} of {lat['frames']} frames "
                  f"(processing > {lat['deadline_us']:g} us)",
              f"frames: {f['sent']} sent, {f['processed']} processed, {f['lost']} lost (the injector expects "
              f"{f['expected_lost']}), {f['crc_errors']} CRC errors, {f['reconnects']} reconnects; "
              f"{f['estimates']} estimates ({f['invalid_estimates']} invalid), {f['udp_datagrams_received']} "
              "UDP datagrams received",
              "CPU seconds per second: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items() if v is not None),
              "envelope throughput (x real time): "
              + ", ".join(f"{r['x_real_time']:,.0f} at {r['samples_per_call']} samples per call"
                          for r in result["envelope_throughput"])
              + f"; in the loop {result['envelope_in_loop_x_real_time']}", "targets:"]
    for name, t in result["targets"].items():
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "MISSED")
        lines.append(f"  {name:<24} {'<=' if name != 'envelope_x_real_time' else '>='} {t['target']:g}: "
                     f"{t['measured']}  {verdict}")
    return "\n".join(lines)


def write_result(result: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``result`` atomically to ``out_dir/bench-<UTC timestamp>.json``; the path."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(out_dir) / f"bench-{stamp}.json"
    return atomic_write_text(path, json.dumps(result, indent=2) + "\n")
