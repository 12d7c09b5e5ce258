"""Choosing a bundle's predictor (:func:`select_predictor`) and proving it (:func:`verify_bundle`)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

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


def verify_bundle(predictor: Predictor, bundle: Bundle) -> float:
    """Run every test vector through ``predictor``; return the max abs deviation from the references.

    Raises InputError naming the output and vector when the deviation exceeds the bundle's tolerance
    (a NaN counts as infinitely far).
    The vectors are one sequence: a stateful predictor replays them in order from its initial state and
    its state after each step is checked too; the state is reset again afterwards.
    """
    worst, worst_at = -1.0, ("", -1)  # a bundle holds at least one vector and two outputs
    predictor.reset_state()
    for k, window in enumerate(bundle.test_inputs):
        outputs = predictor.predict(window)
        for name, reference in bundle.test_outputs.items():
            dev = float(np.max(np.abs(outputs[name][0] - reference[k])))
            if not math.isfinite(dev):
                dev = math.inf
            if dev > worst:
                worst, worst_at = dev, (name, k)
    predictor.reset_state()
    if worst > bundle.tolerance:
        name, k = worst_at
        raise InputError(f"{predictor.name} does not reproduce bundle {bundle.path}: max abs deviation "
                         f"{worst:.3g} on '{name}' (test vector {k}) exceeds the tolerance "
                         f"{bundle.tolerance:g}")
    return worst
