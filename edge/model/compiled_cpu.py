"""The bundle's graph compiled to machine code (:mod:`.graph_compile`): the CPU predictor for the loop.

Same contract as ONNX Runtime's predictor (the window copied into a buffer allocated once, outputs
written into arrays allocated once, a stateful model's two state buffers used crosswise so that
``state_next`` becomes the next ``state`` with no copy), but one call of one compiled function instead
of a session run that dispatches every node: the shipped observer's step takes 5 µs back to back
against 55 µs (docs/bundle.md, "The compiled graph"). A graph the compiler does not handle raises
:class:`UnsupportedGraph` (an InputError); ``select_predictor`` then keeps ONNX Runtime.

Compiling takes seconds (numba, once per graph and process: a second predictor of the same model
reuses the function).
"""

from __future__ import annotations

import numpy as np
from numba.core.errors import NumbaError

from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.graph_compile import UnsupportedGraph, compile_graph
from myoedge.edge.model.predictor import (
    Predictor,
    TensorSpec,
    bundle_specs,
    check_io_specs,
    input_specs,
)

__all__ = ["CompiledCpuPredictor"]


class CompiledCpuPredictor(Predictor):
    """The bundle's graph as one compiled function (numba); graph I/O checked against ``meta.json``."""

    name = "numba-cpu"

    def __init__(self, bundle: Bundle):
        input_spec, output_specs = bundle_specs(bundle)
        super().__init__(input_spec, output_specs, state=bundle.state)
        graph = compile_graph(bundle.onnx_path, {s.name: s.shape for s in input_specs(bundle)})
        where = str(bundle.onnx_path)
        check_io_specs([TensorSpec(n, s) for n, s in graph.inputs], input_specs(bundle), what="inputs",
                       where=where)
        check_io_specs([TensorSpec(n, s) for n, s in graph.outputs], output_specs, what="outputs",
                       where=where)
        self.graph = graph
        self._input = np.zeros(input_spec.shape, dtype=np.float32)
        self._window_view = self._input[0]
        state_in, state_out = (bundle.state.input, bundle.state.output) if self.stateful else ("", "")
        buffers = self._crosswise()
        self._args = []
        for k in range(len(buffers)):  # stateful: call k reads buffers[k], writes buffers[1 - k]
            feed, sink = {input_spec.name: self._input}, dict(self._outputs)
            if self.stateful:
                feed[state_in], sink[state_out] = buffers[k], buffers[1 - k]
            self._args.append(tuple(feed[n] for n, _ in graph.inputs)
                              + tuple(sink[n] for n, _ in graph.outputs))
        scratch = {n: np.zeros(s, dtype=np.float32) for n, s in (*graph.inputs, *graph.outputs)}
        self._warm_args = tuple(scratch[n] for n, _ in (*graph.inputs, *graph.outputs))
        self._fn = graph.run
        try:
            self._fn(*self._warm_args)  # numba compiles on this first call
        except NumbaError as exc:
            first = str(exc).splitlines()[0]
            raise UnsupportedGraph(f"{where}: numba cannot compile the graph: {first}") from None

    def _run(self, window: np.ndarray) -> None:
        np.copyto(self._window_view, window)
        self._fn(*self._args[self._turn])

    def warm(self) -> None:
        if not self._closed:
            self._fn(*self._warm_args)

    def _release(self) -> None:
        self._args = []
        self._warm_args = ()
