"""TensorRT on the Jetson: runs a serialised engine built from the bundle's ONNX graph (see ``deploy``).

TensorRT 10's named-tensor API: every I/O tensor is found by name (``num_io_tensors``,
``get_tensor_name``, ``get_tensor_mode``), its shape and dtype are checked against the bundle, and its
device address is set once with ``set_tensor_address``. Buffers — page-locked host arrays, device
allocations, one CUDA stream — are allocated once in ``__init__``; a call is copy-in, enqueue
(``execute_async_v3``), copy-out, synchronise, with nothing allocated.

Before the engine is deserialised its sidecar ``model.engine.json`` must vouch for it
(:func:`.engine_cache.check_for_runtime`): built by this TensorRT version, for this GPU's compute
capability, from this bundle's ONNX graph, and the file unchanged since. TensorRT may otherwise accept a
plan from another minor version or for another model and run it, so a stale engine raises
:class:`.engine_cache.StaleEngine` instead. The precision is whatever the sidecar records.

``tensorrt`` and ``pycuda`` exist only on the Jetson (JetPack), so they are imported when a predictor
is built, never at module import; without them :class:`BackendUnavailable` says what to install.

CUDA contexts are per thread. The predictor shares the device's *primary* context with TensorRT
(which uses the CUDA runtime and therefore that context) and pushes it around each call, so it may be
built in one thread and called from the real-time thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from myoedge.edge.model.bundle import Bundle
from myoedge.edge.model.engine_cache import check_for_runtime
from myoedge.edge.model.predictor import (
    BackendUnavailable,
    Predictor,
    TensorSpec,
    bundle_specs,
    check_io_specs,
    state_spec,
)
from myoedge.ground.errors import InputError

__all__ = ["TensorRTPredictor", "import_tensorrt"]

_INSTALL_HINT = ("on the Jetson install JetPack's TensorRT Python bindings (`sudo apt install "
                 "python3-libnvinfer`, and create the virtualenv with --system-site-packages) and "
                 "`pip install pycuda`")


def import_tensorrt():
    """Import and return ``(tensorrt, pycuda.driver)``, or raise BackendUnavailable saying what to install."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(f"the TensorRT backend needs the tensorrt module, which is not installed: "
                                 f"{_INSTALL_HINT}") from None
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise BackendUnavailable(f"the TensorRT backend needs pycuda, which is not installed: "
                                 f"{_INSTALL_HINT}") from None
    major = int(str(getattr(trt, "__version__", "0")).split(".")[0] or 0)
    if major < 10:
        raise BackendUnavailable(f"the TensorRT backend needs TensorRT 10 or newer (named-tensor API), found "
                                 f"{getattr(trt, '__version__', 'unknown')}; upgrade JetPack to 6 or newer")
    return trt, cuda


class TensorRTPredictor(Predictor):
    """Runs ``engine_path`` (a serialised TensorRT engine of ``bundle``'s graph) on the GPU.

    ``name`` becomes ``tensorrt-<precision>`` from the sidecar, so the backend log line says which plan
    runs. ``check_sidecar=False`` is for the engine builder alone: it verifies a fresh engine against ONNX
    Runtime *before* giving it a sidecar, and only a verified engine is ever vouched for.
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, engine_path: str | os.PathLike, *, device: int = 0,
                 check_sidecar: bool = True):
        trt, cuda = import_tensorrt()
        input_spec, output_specs = bundle_specs(bundle)
        super().__init__(input_spec, output_specs, state=bundle.state)
        self._state_spec = state_spec(bundle)
        self._cuda = cuda
        engine_path = Path(engine_path)
        cuda.init()
        dev = cuda.Device(device)
        self.precision: str | None = None  # unknown for an engine loaded without its sidecar
        if check_sidecar:
            major, minor = dev.compute_capability()
            key = check_for_runtime(engine_path, onnx_sha256=bundle.meta.onnx.sha256,
                                    tensorrt_version=str(trt.__version__),
                                    compute_capability=f"{major}.{minor}")
            self.precision, self.name = key.precision, f"tensorrt-{key.precision}"
        try:
            blob = engine_path.read_bytes()
        except OSError as exc:
            raise InputError(f"{engine_path}: cannot read the TensorRT engine: "
                             f"{exc.strerror or exc}") from None

        self._ctx = dev.retain_primary_context()
        self._ctx.push()  # TensorRT (CUDA runtime) and pycuda (driver API) share the primary context
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(blob)
            if self._engine is None:
                raise InputError(f"{engine_path}: TensorRT could not deserialise the engine (built with "
                                 f"another TensorRT version or for another GPU?); rebuild it with "
                                 f"`myoedge build-engine`")
            self._check_engine(trt, engine_path, input_spec, output_specs)
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise InputError(f"{engine_path}: TensorRT could not create an execution context (out of "
                                 f"GPU memory?)")
            self._stream = cuda.Stream()
            # Page-locked host memory lets the async copies run as DMA on the stream.
            self._host_in = cuda.pagelocked_empty(input_spec.shape, np.float32)
            self._window_view = self._host_in[0]
            self._dev_in = cuda.mem_alloc(self._host_in.nbytes)
            self._context.set_tensor_address(input_spec.name, int(self._dev_in))
            self._host_state = self._dev_state = None
            if self._state_spec is not None:  # the state goes in as a second input, state_next comes back
                self._host_state = cuda.pagelocked_empty(self._state_spec.shape, np.float32)
                self._dev_state = cuda.mem_alloc(self._host_state.nbytes)
                self._context.set_tensor_address(self._state_spec.name, int(self._dev_state))
            self._host_out, self._dev_out = {}, {}
            for spec in output_specs:
                host = cuda.pagelocked_empty(spec.shape, np.float32)
                self._host_out[spec.name], self._dev_out[spec.name] = host, cuda.mem_alloc(host.nbytes)
                self._context.set_tensor_address(spec.name, int(self._dev_out[spec.name]))
                self._outputs[spec.name] = host  # predict() hands out the page-locked arrays directly
        except BaseException:
            self._engine = self._runtime = self._context = self._stream = None  # freed while current
            self._ctx.pop()
            self._ctx.detach()
            raise
        self._ctx.pop()

    def _check_engine(self, trt, engine_path: Path, input_spec: TensorSpec,
                      output_specs: tuple[TensorSpec, ...]) -> None:
        inputs, outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))).name
            spec = TensorSpec(name, tuple(int(d) for d in self._engine.get_tensor_shape(name)), dtype)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(spec)
        if any(d < 0 for s in inputs for d in s.shape):
            found = [s.describe() for s in inputs]
            raise InputError(f"{engine_path}: the engine has dynamic input shapes {found}; build it with "
                             f"the bundle's fixed shape {list(input_spec.shape)}")
        expected = (input_spec, *(() if self._state_spec is None else (self._state_spec,)))
        check_io_specs(inputs, expected, what="engine inputs", where=str(engine_path))
        check_io_specs(outputs, output_specs, what="engine outputs", where=str(engine_path))

    def _run(self, window: np.ndarray) -> None:
        cuda, stream = self._cuda, self._stream
        np.copyto(self._window_view, window)
        self._ctx.push()
        try:
            cuda.memcpy_htod_async(self._dev_in, self._host_in, stream)
            if self._dev_state is not None:
                np.copyto(self._host_state, self._state)
                cuda.memcpy_htod_async(self._dev_state, self._host_state, stream)
            if not self._context.execute_async_v3(stream_handle=stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
            for name, host in self._host_out.items():
                cuda.memcpy_dtoh_async(host, self._dev_out[name], stream)
            stream.synchronize()
        finally:
            self._ctx.pop()

    def _release(self) -> None:
        self._ctx.push()
        try:
            for mem in (self._dev_in, *(() if self._dev_state is None else (self._dev_state,)),
                        *self._dev_out.values()):
                mem.free()
            self._context = self._engine = self._runtime = None
            self._stream = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
