"""Choosing a bundle's predictor (:func:`select_predictor`); :mod:`.replay` proves it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from myoedge.edge.model import BACKENDS
from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.compiled_cpu import CompiledCpuPredictor
from myoedge.edge.model.engine_cache import ENGINE_FILE
from myoedge.edge.model.onnx_cpu import OnnxCpuPredictor
from myoedge.edge.model.predictor import BackendUnavailable, Predictor
from myoedge.edge.model.replay import replay_test_vectors
from myoedge.edge.model.tensorrt import TensorRTPredictor
from myoedge.ground.errors import InputError

logger = logging.getLogger("myoedge.edge")


def default_engine_path(bundle: Bundle) -> Path:
    """The engine ``select_predictor`` looks for when none is given: ``<bundle>/model.engine``."""
    return bundle.path / ENGINE_FILE


def select_predictor(bundle: Bundle, *, backend: str = "auto",
                     engine_path: str | os.PathLike | None = None) -> Predictor:
    """Build the predictor for ``bundle``: ``backend`` is "auto", "numba", "onnxruntime" or "tensorrt".

    "auto" uses TensorRT when an engine is given (or found at :func:`default_engine_path`) and the
    TensorRT runtime imports; otherwise the CPU predictor of :func:`cpu_predictor`. A given engine that
    does not exist, or an engine that disagrees with the bundle, is an error rather than a silent
    fallback; so is a stale engine (no valid sidecar, or built for another GPU, TensorRT or model):
    :class:`StaleEngine`, an InputError. "numba" refuses a graph the compiler does not handle.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if engine_path is not None:
        engine = Path(engine_path)
        if not engine.is_file():
            raise InputError(f"TensorRT engine {engine} does not exist "
                             f"(build it with `myoedge build-engine`)")
        origin = "given"
    else:
        engine = default_engine_path(bundle)
        origin = "found in the bundle folder"
        if not engine.is_file():
            engine, origin = None, f"none given and none at {default_engine_path(bundle)}"

    if backend == "onnxruntime":
        predictor, reason, level = OnnxCpuPredictor(bundle), "requested", logging.INFO
    elif backend == "numba":
        predictor, reason, level = CompiledCpuPredictor(bundle), "requested", logging.INFO
    elif backend == "tensorrt":
        if engine is None:
            raise InputError(f"backend 'tensorrt' needs an engine ({origin}); pass engine_path or build one "
                             f"with `myoedge build-engine`")
        predictor = TensorRTPredictor(bundle, engine)
        reason, level = f"requested, engine {engine}", logging.INFO
    elif engine is None:
        predictor, why = cpu_predictor(bundle)
        reason, level = f"no TensorRT engine: {origin}; {why}", logging.INFO
    else:
        try:
            predictor = TensorRTPredictor(bundle, engine)
            reason, level = f"engine {engine} ({origin})", logging.INFO
        except BackendUnavailable as exc:
            predictor, why = cpu_predictor(bundle)
            reason = f"engine {engine} exists but TensorRT is unavailable: {exc}; {why}"
            level = logging.WARNING
    logger.log(level, "predictor backend: %s (%s)", predictor.name, reason)
    return predictor


def cpu_predictor(bundle: Bundle) -> tuple[Predictor, str]:
    """The CPU predictor "auto" picks, and why: the compiled graph when it compiles and replays the
    bundle's test vectors within their tolerance; ONNX Runtime otherwise (an operator the compiler does
    not handle, the onnx package missing, a replay that misses)."""
    try:
        compiled = CompiledCpuPredictor(bundle)
    except InputError as exc:  # UnsupportedGraph, BackendUnavailable
        return OnnxCpuPredictor(bundle), f"ONNX Runtime: the graph is not compiled ({exc})"
    replay = replay_test_vectors(bundle, compiled)
    if not replay.passed:
        compiled.close()
        logger.warning("the compiled graph misses the test vectors by %.3g (tolerance %g): ONNX Runtime "
                       "instead", replay.deviation, replay.tolerance)
        return OnnxCpuPredictor(bundle), "ONNX Runtime: the compiled graph failed the replay"
    return compiled, (f"the compiled graph (replayed within {replay.deviation:.2g} of tolerance "
                      f"{replay.tolerance:g})")
