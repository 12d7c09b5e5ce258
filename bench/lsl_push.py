"""What ``LslPublisher.publish`` costs the loop: p50/p99/max of 20 000 calls, with no inlet, with an inlet
that reads, and with one that never reads (its buffer full). Run: ``python bench/lsl_push.py``."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pylsl

from myoedge.edge.loop.estimate import Estimate, Flags
from myoedge.edge.loop.lsl_publish import LslPublisher

MUSCLES = ("FCR", "FCU", "ECRL", "ECRB", "ECU")
N = 20_000


def measure(kind: str) -> str:
    name = f"myoedge-bench-{uuid.uuid4().hex[:8]}"
    pub = LslPublisher(name, muscles=MUSCLES, rate_hz=100.0, linger_s=0.0)
    inlet, stop = None, threading.Event()
    if kind != "no inlet":
        inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", name, 1, 5.0)[0], max_buflen=1)
        inlet.open_stream(5.0)
        if kind == "inlet reading":
            threading.Thread(target=lambda: [inlet.pull_sample(0.1) for _ in iter(stop.is_set, True)],
                             daemon=True).start()
    took = np.empty(N)
    for i in range(N):
        e = Estimate(index=i, seq=i, timestamp_us=1000 * i, theta_rad=0.1, forces_n=(1.0,) * len(MUSCLES),
                     torque_nm=0.5, torque_requested_nm=0.5, flags=Flags(0))
        t0 = time.perf_counter_ns()
        pub.publish(e)
        took[i] = time.perf_counter_ns() - t0
        time.sleep(0.0001)
    stop.set()
    pub.close()
    p50, p99 = np.percentile(took, [50, 99]) / 1e3
    return f"{kind:>20}: p50 {p50:5.1f} us, p99 {p99:5.1f} us, max {took.max() / 1e3:7.1f} us ({N} calls)"


if __name__ == "__main__":
    for kind in ("no inlet", "inlet reading", "inlet not reading"):
        print(measure(kind), flush=True)
