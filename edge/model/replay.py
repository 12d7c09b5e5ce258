"""The one replay of a bundle's test vectors through a predictor (docs/bundle.md, "Test vectors").

The vectors are one sequence: the predictor starts from its initial state (``reset_state``), takes the
windows in order, and every output of every step is compared with the bundle's reference — the state
after each step too, for a stateful model. The predictor is reset again afterwards.

The tolerance is the bundle's ``test_vectors.tolerance``: the largest absolute deviation any output
(or state) element may show, in the output's unit. A NaN or inf counts as infinitely far. Export checks
the freshly written bundle with it on ONNX Runtime before the bundle becomes visible, ``myoedge run``
before it drives anything, and ``myoedge build-engine`` on ONNX Runtime beside the engine (the engine
itself is held to its precision's rule, :mod:`myoedge.deploy.precision`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.predictor import Predictor
from myoedge.ground.errors import InputError

__all__ = ["Replay", "replay_test_vectors"]


@dataclass(frozen=True, eq=False)
class Replay:
    """What a replay gave: the predictor's outputs stacked ``{name: (K, ...)}`` and how far they are from
    the references (``deviation``: the largest, on output ``worst_output`` at vector ``worst_vector``)."""

    predictor: str
    bundle: str
    outputs: dict[str, np.ndarray]
    max_abs: dict[str, float]
    deviation: float
    worst_output: str
    worst_vector: int
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.deviation <= self.tolerance

    def check(self) -> Replay:
        """Raise InputError naming the output and vector when the deviation exceeds the tolerance."""
        if not self.passed:
            raise InputError(f"{self.predictor} does not reproduce bundle {self.bundle}: max abs deviation "
                             f"{self.deviation:.3g} on '{self.worst_output}' (test vector "
                             f"{self.worst_vector}) exceeds the tolerance {self.tolerance:g}")
        return self


def replay_test_vectors(bundle: Bundle, predictor: Predictor, *, tolerance: float | None = None) -> Replay:
    """Replay ``bundle``'s test vectors through ``predictor`` as one sequence from its initial state.

    ``tolerance`` defaults to the bundle's; the result is not checked (call :meth:`Replay.check`).
    """
    tolerance = bundle.tolerance if tolerance is None else float(tolerance)
    if not tolerance > 0:
        raise InputError(f"tolerance must be > 0, got {tolerance!r}")
    missing = sorted(set(bundle.test_outputs) - {s.name for s in predictor.output_specs})
    if missing:
        raise InputError(f"{predictor.name} has no output(s) {missing}, which bundle {bundle.path} holds "
                         f"references for")
    rows: dict[str, list[np.ndarray]] = {name: [] for name in bundle.test_outputs}
    predictor.reset_state()
    try:
        for window in bundle.test_inputs:
            outputs = predictor.predict(window)
            for name, values in rows.items():
                values.append(np.array(outputs[name][0]))  # the predictor reuses its output arrays
    finally:
        predictor.reset_state()
    stacked = {name: np.stack(values) for name, values in rows.items()}
    max_abs, worst = {}, (-1.0, "", -1)
    for name, got in stacked.items():
        diff = np.abs(got.astype(np.float64) - bundle.test_outputs[name].astype(np.float64))
        diff = np.where(np.isfinite(diff), diff, math.inf).reshape(len(diff), -1).max(axis=1)
        k = int(np.argmax(diff))
        max_abs[name] = float(diff[k])
        if diff[k] > worst[0]:
            worst = (float(diff[k]), name, k)
    return Replay(predictor=predictor.name, bundle=str(bundle.path), outputs=stacked, max_abs=max_abs,
                  deviation=worst[0], worst_output=worst[1], worst_vector=worst[2], tolerance=tolerance)
