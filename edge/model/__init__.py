"""The model: the bundle (the only form a trained model takes on the device) and the inference backends
behind the one :class:`Predictor` interface.

``select_predictor`` picks TensorRT when an engine exists and TensorRT can be imported (the Jetson);
on the CPU, the graph compiled to one machine-code function (numba) when the compiler handles it and
it replays the test vectors, else ONNX Runtime; it logs one line saying which and why. An engine is
loaded only when its sidecar vouches for it on this GPU, this TensorRT and this bundle
(:mod:`.engine_cache`).
``replay_test_vectors`` replays the bundle's test vectors, so a runtime proves it reproduces the training
framework before it drives an exoskeleton.

The package itself imports nothing heavy: its names are loaded on first use (PEP 562), so importing
:mod:`.engine_cache` (the deploy tools, ``myoedge --help``) does not load ONNX Runtime or SciPy.
"""

from __future__ import annotations

from myoedge.ground.lazy import lazy_exports

BACKENDS = ("auto", "numba", "onnxruntime", "tensorrt")
CPU_BACKENDS = ("auto", "numba", "onnxruntime")  # what runs without an engine (the benchmark builds none)

_HOMES = {
    "BackendUnavailable": "predictor", "Predictor": "predictor", "TensorSpec": "predictor",
    "ENGINE_FILE": "engine_cache", "StaleEngine": "engine_cache",
    "OnnxCpuPredictor": "onnx_cpu", "TensorRTPredictor": "tensorrt", "CompiledCpuPredictor": "compiled_cpu",
    "UnsupportedGraph": "graph_compile",
    "Bundle": "bundle", "load_bundle": "bundle", "write_bundle": "bundle",
    "default_engine_path": "select", "select_predictor": "select",
    "Replay": "replay", "replay_test_vectors": "replay",
}
__all__ = ["BACKENDS", "CPU_BACKENDS", *sorted(_HOMES)]

__getattr__ = lazy_exports(__name__, _HOMES)
