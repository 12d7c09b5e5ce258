"""Choosing a bundle's predictor (:func:`select_predictor`); :mod:`.replay` proves it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from myoedge.edge.model import BACKENDS
from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.engine_cache import ENGINE_FILE
from myoedge.edge.model.onnx_cpu import OnnxCpuPredictor
from myoedge.edge.model.predictor import BackendUnavailable, Predictor
from myoedge.edge.model.tensorrt import TensorRTPredictor
from myoedge.ground.errors import InputError

logger = logging.getLogger("myoedge.edge")


def default_engine_path(bundle: Bundle) -> Path:
    """The engine ``select_predictor`` looks for when none is given: ``<bundle>/model.engine``."""
    return bundle.path / ENGINE_FILE


def select_predictor(bundle: Bundle, *, backend: str = "auto",
                     engine_path: str | os.PathLike | None = None) -> Predictor:
    """Build the predictor for ``bundle``: ``backend`` is "auto", "onnxruntime" or "tensorrt".

    "auto" uses TensorRT when an engine is given (or found at :func:`default_engine_path`) and the
    TensorRT runtime imports; otherwise ONNX Runtime. A given engine that does not exist, or an engine
    that disagrees with the bundle, is an error rather than a silent fallback; so is a stale engine (no
    valid sidecar, or built for another GPU, TensorRT or model): :class:`StaleEngine`, an InputError.
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
    elif backend == "tensorrt":
        if engine is None:
            raise InputError(f"backend 'tensorrt' needs an engine ({origin}); pass engine_path or build one "
                             f"with `myoedge build-engine`")
        predictor = TensorRTPredictor(bundle, engine)
        reason, level = f"requested, engine {engine}", logging.INFO
    elif engine is None:
        predictor, reason, level = OnnxCpuPredictor(bundle), f"no TensorRT engine: {origin}", logging.INFO
    else:
        try:
            predictor = TensorRTPredictor(bundle, engine)
            reason, level = f"engine {engine} ({origin})", logging.INFO
        except BackendUnavailable as exc:
            predictor = OnnxCpuPredictor(bundle)
            reason, level = f"engine {engine} exists but TensorRT is unavailable: {exc}", logging.WARNING
    logger.log(level, "predictor backend: %s (%s)", predictor.name, reason)
    return predictor
