"""The one predictor interface every inference backend implements, and the checks they share.

A predictor maps the last ``W`` normalised envelope frames (``(W, C)`` float32, oldest first) to the
bundle's outputs in physical units. The real-time loop calls it at the model rate, so the contract is
built for a steady state without allocation: inputs are copied into a buffer that was allocated once,
and the outputs come back in arrays that were allocated once as well. Those arrays are **overwritten by
the next call** — copy what you need to keep.

Shape and dtype checks live here, in a thin shell around each backend's ``_run``, so every backend
refuses a bad window with the same message saying what it expected and what it got.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from myoedge.body.catalog import MAX_HAND_LOAD_KG
from myoedge.edge.model.bundle import Bundle
from myoedge.ground.errors import InputError

__all__ = ["BackendUnavailable", "Predictor", "TensorSpec", "bundle_specs", "check_io_specs", "input_specs",
           "state_spec"]


class BackendUnavailable(InputError):
    """The runtime a backend needs (TensorRT, pycuda, ONNX Runtime) is not installed on this machine."""


def check_load(load_kg, load_index: int | None) -> float:
    """``load_kg`` as a float for a model whose state holds the load at ``load_index`` (a bundle's
    ``state.load_index``), if it is a mass a hand can hold (0 to ``MAX_HAND_LOAD_KG``); else InputError."""
    if load_index is None:
        raise InputError(f"a load in the hand ({load_kg!r} kg) was given, but the bundle's model does not "
                         "carry one (its state has no load_index: a window model, or a stateful model "
                         "without the observer's equation of motion); retrain with --preset edge")
    if isinstance(load_kg, bool) or not isinstance(load_kg, (int, float)) \
            or not 0.0 <= load_kg <= MAX_HAND_LOAD_KG:
        raise InputError(f"the load in the hand must be a mass from 0 to {MAX_HAND_LOAD_KG:g} kg, "
                         f"got {load_kg!r}")
    return float(load_kg)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one graph input or output (batch dimension included)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def describe(self) -> str:
        return f"{self.name} {self.dtype} {list(self.shape)}"


def bundle_specs(bundle: Bundle) -> tuple[TensorSpec, tuple[TensorSpec, ...]]:
    """The envelope input and the output specs a bundle's ``meta.json`` declares (validated by
    load_bundle); a stateful bundle's outputs end with ``state_next``."""
    inp = bundle.meta.input
    outputs = tuple(TensorSpec(o.name, o.shape, "float32") for o in bundle.meta.outputs)
    if bundle.stateful:
        outputs += (TensorSpec(bundle.state.output, (1, bundle.state.size)),)
    return TensorSpec(inp.name, inp.shape, inp.dtype), outputs


def state_spec(bundle: Bundle) -> TensorSpec | None:
    """The state input of a stateful bundle's graph, or None for a window model."""
    return TensorSpec(bundle.state.input, (1, bundle.state.size)) if bundle.stateful else None


def input_specs(bundle: Bundle) -> tuple[TensorSpec, ...]:
    """Every graph input: the envelope window, then the state of a stateful model."""
    state = state_spec(bundle)
    return (bundle_specs(bundle)[0], *(() if state is None else (state,)))


def check_io_specs(found: list[TensorSpec], expected: tuple[TensorSpec, ...], *, what: str,
                   where: str) -> None:
    """Refuse a model whose ``what`` (inputs/outputs) disagree with the bundle, naming every difference.

    A dimension of ``-1`` in ``found`` is a dynamic axis (ONNX's symbolic dims); it matches any size,
    since the predictor always feeds the bundle's fixed shape.
    """
    by_name = {s.name: s for s in found}
    problems = []
    missing = [e.name for e in expected if e.name not in by_name]
    extra = sorted(set(by_name) - {e.name for e in expected})
    if missing or extra:
        problems.append(f"names {sorted(by_name)} instead of {sorted(e.name for e in expected)}")
    for e in expected:
        f = by_name.get(e.name)
        if f is None:
            continue
        dims_ok = len(f.shape) == len(e.shape) \
            and all(a in (-1, b) for a, b in zip(f.shape, e.shape, strict=True))
        if not dims_ok or f.dtype != e.dtype:
            problems.append(f"{f.describe()} where the bundle declares {e.describe()}")
    if problems:
        raise InputError(f"{where}: {what} disagree with the bundle's meta.json: " + "; ".join(problems)
                         + " (rebuild the model or engine from this bundle)")


class Predictor(abc.ABC):
    """Runs one bundle's graph on one window at a time.

    Subclasses set ``name`` and fill ``input_spec``, ``output_specs`` and ``_outputs`` (one preallocated
    array per output, keyed by name, shaped like its spec) in ``__init__``, and implement ``_run`` and
    ``_release``. ``predict`` returns the same dict holding the same arrays on every call.

    A stateful model (``state`` given: the bundle's state block) carries its state here: the backend
    reads ``self._state`` as the graph's ``state`` input, and after each call :meth:`_advance_state` makes
    ``state_next`` the next ``state`` (a copy into the one array, or a switch between the two buffers of
    :meth:`_crosswise`, which ONNX Runtime and the compiled graph use). ``reset_state`` returns it to the
    bundle's initial state (the loop does so after lost frames, a reconnect or a device restart).

    :meth:`warm` runs the graph once on scratch buffers (state and outputs untouched), so that the code
    and weights of the next real call are in the caches: the loop calls it in the idle time before a
    model step. The default does nothing.
    """

    name: str = "abstract"

    def __init__(self, input_spec: TensorSpec, output_specs: tuple[TensorSpec, ...], *,
                 state: dict | None = None):
        self.input_spec = input_spec
        self.output_specs = output_specs
        self._window_shape = tuple(input_spec.shape[1:])
        self._outputs: dict[str, np.ndarray] = {
            s.name: np.zeros(s.shape, dtype=s.dtype) for s in output_specs
        }
        self._closed = False
        self.stateful = state is not None
        self.state_size = state.size if state else 0
        self._state_out = state.output if state else None
        self._initial = np.asarray(state.initial if state else (), dtype=np.float32).reshape(1, -1)
        self._state = self._initial.copy()
        self._load_index = state.load_index if state else None
        self._buffers: list[np.ndarray] | None = None  # see _crosswise
        self._turn = 0

    @property
    def state(self) -> np.ndarray:
        """A read-only view of the current state, shape (1, S); (1, 0) for a window model."""
        view = self._state.view()
        view.setflags(write=False)
        return view

    def reset_state(self) -> None:
        """Back to the bundle's initial state (a no-op for a window model)."""
        np.copyto(self._state, self._initial)

    def set_load(self, load_kg: float) -> None:
        """Hold ``load_kg`` in the hand from now on: the initial state's load element (the bundle's
        ``state.load_index``) is set, and the state reset to it (and kept there by later resets)."""
        self._initial[0, self._load_index] = check_load(load_kg, self._load_index)
        self.reset_state()

    def predict(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """``window`` float32 ``(W, C)`` -> ``{output name: array shaped like its spec}`` in physical units.

        The returned dict and its arrays are owned by the predictor and overwritten by the next call.
        """
        if self._closed:
            raise RuntimeError(f"{self.name} predictor is closed")
        if not isinstance(window, np.ndarray) or window.dtype != np.float32 \
                or window.shape != self._window_shape:
            got = (f"{window.dtype} {window.shape}" if isinstance(window, np.ndarray)
                   else type(window).__name__)
            raise InputError(f"window must be float32 of shape {self._window_shape} "
                             f"(window, channels), got {got}")
        self._run(window)
        if self._state_out is not None:
            self._advance_state()
        return self._outputs

    def _advance_state(self) -> None:
        """Make ``state_next`` the state the next call reads: a copy, or with :meth:`_crosswise` buffers
        a switch to the buffer just written."""
        if self._buffers is None:
            np.copyto(self._state, self._outputs[self._state_out])
            return
        turn = 1 - self._turn
        self._turn = turn
        self._state = self._buffers[turn]
        self._outputs[self._state_out] = self._state  # state_next as predict() returns it

    def _crosswise(self) -> list[np.ndarray]:
        """Two state buffers for a backend that writes ``state_next`` where it is told: call ``_turn`` reads
        buffer ``_turn`` and writes the other, and :meth:`_advance_state` switches without a copy. Returns
        ``[self._state]`` alone for a window model."""
        if not self.stateful:
            return [self._state]
        self._buffers, self._turn = [self._state, self._state.copy()], 0
        self._outputs[self._state_out] = self._buffers[1]
        return self._buffers

    def warm(self) -> None:  # noqa: B027 - optional: a backend without a cheap warm-up keeps this no-op
        """Run the graph on scratch buffers, changing nothing a caller sees (see the class doc)."""

    @abc.abstractmethod
    def _run(self, window: np.ndarray) -> None:
        """Run the graph on a validated window and write every output into ``self._outputs``."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Free the backend's session/engine/buffers (called once)."""

    def close(self) -> None:
        """Release the backend; later ``predict`` calls raise. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        outs = ", ".join(s.describe() for s in self.output_specs)
        return f"<{type(self).__name__} {self.name}: {self.input_spec.describe()} -> {outs}>"
