"""ONNX Runtime on the CPU: the portable predictor (workstations, and the Jetson without an engine).

The session runs single-threaded (one intra-op and one inter-op thread, sequential execution) with
spinning off: the model is small, a thread pool would cost more in wake-ups than it saves, and a
spinning worker would steal the core the serial reader thread needs. Graph optimisations stay on.

Input and outputs go through an ``IOBinding`` whose OrtValues wrap numpy arrays allocated once: each
call copies the window into the bound input buffer and ONNX Runtime writes the results straight into
the bound output arrays. Measured on the paper-size graph this is faster than ``session.run`` (which
allocates fresh output arrays every call) — see docs/bundle.md.

A stateful model's state lives in two buffers bound once, crosswise, in two bindings: binding 0 reads
the state from A and writes ``state_next`` into B, binding 1 reads B and writes A. Each call uses the
binding whose input holds the current state, so ``state_next`` becomes the next ``state`` with no copy.
A third binding on scratch buffers serves :meth:`warm`.
"""

from __future__ import annotations

import numpy as np

from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.predictor import (
    BackendUnavailable,
    Predictor,
    TensorSpec,
    bundle_specs,
    check_io_specs,
    input_specs,
)
from myoedge.ground.errors import InputError

__all__ = ["OnnxCpuPredictor", "session_options"]

_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16"}


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed; install it with `pip install onnxruntime` "
                                 "(the `edge` extra)") from None
    return onnxruntime


def session_options():
    """Session options for a real-time loop: one thread, sequential, no spinning, full optimisation."""
    ort = _import_ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only; warnings would print on every start
    return opts


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


class OnnxCpuPredictor(Predictor):
    """ONNX Runtime CPU predictor for a loaded bundle (graph I/O checked against ``meta.json``)."""

    name = "onnxruntime-cpu"

    def __init__(self, bundle: Bundle):
        ort = _import_ort()
        input_spec, output_specs = bundle_specs(bundle)
        super().__init__(input_spec, output_specs, state=bundle.state)
        try:
            self._session = ort.InferenceSession(str(bundle.onnx_path), sess_options=session_options(),
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for malformed graphs
            raise InputError(f"{bundle.onnx_path}: ONNX Runtime cannot load the graph: {exc}") from None
        where = str(bundle.onnx_path)
        check_io_specs([_spec(a) for a in self._session.get_inputs()], input_specs(bundle), what="inputs",
                       where=where)
        check_io_specs([_spec(a) for a in self._session.get_outputs()], output_specs, what="outputs",
                       where=where)
        self._input = np.zeros(input_spec.shape, dtype=np.float32)
        self._window_view = self._input[0]
        # On the CPU an OrtValue made from a numpy array wraps that array's memory: binding them once
        # makes ORT read the window from, and write results into, the arrays allocated above.
        value = ort.OrtValue.ortvalue_from_numpy
        state_in, state_out = (bundle.state.input, bundle.state.output) if self.stateful else ("", "")
        buffers = self._crosswise()
        self._bindings = []
        for k in range(len(buffers)):  # stateful: binding k reads buffers[k], writes buffers[1 - k]
            binding = self._session.io_binding()
            binding.bind_ortvalue_input(input_spec.name, value(self._input))
            for name, arr in self._outputs.items():
                if name != state_out:
                    binding.bind_ortvalue_output(name, value(arr))
            if self.stateful:
                binding.bind_ortvalue_input(state_in, value(buffers[k]))
                binding.bind_ortvalue_output(state_out, value(buffers[1 - k]))
            self._bindings.append(binding)
        self._scratch = {"in": np.zeros_like(self._input), "state": np.zeros_like(self._state)}
        self._warm_binding = self._session.io_binding()
        self._warm_binding.bind_ortvalue_input(input_spec.name, value(self._scratch["in"]))
        if self.stateful:
            self._warm_binding.bind_ortvalue_input(state_in, value(self._scratch["state"]))
        for name, arr in self._outputs.items():
            self._scratch[name] = np.zeros_like(arr)
            self._warm_binding.bind_ortvalue_output(name, value(self._scratch[name]))

    def _run(self, window: np.ndarray) -> None:
        np.copyto(self._window_view, window)
        self._session.run_with_iobinding(self._bindings[self._turn])

    def warm(self) -> None:
        if not self._closed:
            self._session.run_with_iobinding(self._warm_binding)

    def _release(self) -> None:
        self._bindings = []
        self._warm_binding = None
        self._session = None
