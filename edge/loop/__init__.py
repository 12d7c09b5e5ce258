"""The real-time loop: the per-frame pipeline, the runtime that owns the threads, the Estimate and its
validity flags, safety checks, publishers (UDP, LSL, CSV) and the per-stage latency record, and the LSL
EMG inlet that ``lsl://`` ports open.
"""

from __future__ import annotations

from myoedge.ground.lazy import lazy_exports

_HOMES = {
    "Pipeline": "pipeline", "Runtime": "runtime", "Estimate": "estimate", "Flags": "estimate",
    "EstimateEncoder": "estimate", "SafetyConfig": "safety", "SafetyMonitor": "safety",
    "PhysiologicalRange": "safety", "Publisher": "publish", "UdpPublisher": "publish",
    "CallbackPublisher": "publish", "CsvPublisher": "publish", "LatencyRecorder": "latency",
    "open_publisher": "publish", "LslPublisher": "lsl_publish", "LslInletTransport": "lsl_inlet",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
