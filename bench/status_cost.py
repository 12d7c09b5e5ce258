"""What one status datagram costs the status thread (docs/runtime.md), against a running loop.

    python bench/status_cost.py

Runs the loop on the in-process simulator (8 channels at 2 kHz, the synthetic ``edge`` bundle of
``myoedge bench``) with status datagrams on, then times, with the loop running: building a status
(counters and the newest envelope row), encoding it, and the once-a-second latency percentiles.
"""

from __future__ import annotations

import tempfile
import time
import timeit

from myoedge.edge.loop.publish import UdpPublisher
from myoedge.edge.loop.runtime import Runtime
from myoedge.edge.loop.status import encode_status
from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.sim.bench_model import bench_profile, synthetic_bundle
from myoedge.edge.wire.transport import open_transport

LABELS = ("TA", "SOL", "GASMED", "GASLAT", "VL", "VM", "RF", "BF")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = synthetic_bundle(f"{tmp}/b", kind="edge", muscles=LABELS, fs_hz=2000.0, input_bits=24)
        bundle = load_bundle(path)
        udp = UdpPublisher(("127.0.0.1", 9), n_muscles=len(LABELS))  # the discard port: nothing listens
        runtime = Runtime(bundle=bundle, profile=bench_profile(bundle), publishers=[udp],
                          transport=open_transport(f"sim://?labels={','.join(LABELS)}&fs=2000"),
                          status_interval_s=0.05).start()
        try:
            time.sleep(2.0)
            reporter = runtime.status_reporter
            status = reporter.status(uptime_s=1.0)

            def percentiles() -> None:
                reporter._latency_at = 0.0
                reporter._recent_latency()

            cases = (("status (counters, envelope row)", lambda: reporter.status(uptime_s=1.0), 2000),
                     ("encode_status", lambda: encode_status(status), 2000),
                     ("latency percentiles of the last second", percentiles, 200))
            for name, stmt, n in cases:
                best = min(timeit.repeat(stmt, number=n, repeat=5)) / n
                print(f"{name}: {best * 1e6:.1f} us")
        finally:
            runtime.stop()


if __name__ == "__main__":
    main()
