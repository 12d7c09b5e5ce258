"""What drives the loop without hardware: the amplifier simulator (signals, links, injected faults) and
the latency benchmark with its models (the shipped edge model's bundle, synthetic graphs), and the
link's own latency floor (``link_floor``).
"""

from __future__ import annotations

from myoedge.ground.lazy import lazy_exports

_HOMES = {
    "AmplifierSimulator": "ampsim", "AmpSignal": "ampsim_signals", "FaultPlan": "faults",
    "FaultInjector": "faults", "BenchConfig": "bench", "run_bench": "bench", "SimProcess": "bench_sim",
    "InprocTransport": "bench_sim", "measure_link_floor": "link_floor",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
