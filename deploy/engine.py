"""Build a bundle's TensorRT engine on the machine that will run it, and prove it agrees with ONNX Runtime.

Engines do not travel: a plan is compiled for one GPU architecture and one TensorRT version, so it is
built on the Jetson itself (``myoedge build-engine``), cached beside the bundle (:mod:`.cache`) and
rebuilt whenever the key changes. The build uses TensorRT's Python API as its samples do —
``Builder``, ``create_network``, ``OnnxParser``, ``create_builder_config``, ``set_memory_pool_limit``,
``build_serialized_network`` — with the precision recipe of :func:`.precision.build_plan` (a builder
flag on TensorRT 10, an fp16 graph on TensorRT 11). The network's input is pinned to the bundle's fixed
shape ``(1, W, C)``, so the engine needs no optimisation profile and the runtime's shape check holds.

After building, the engine (through the edge runtime's own :class:`TensorRTPredictor`) and ONNX Runtime
replay the bundle's test vectors (:func:`myoedge.edge.model.replay_test_vectors`; ONNX Runtime must
reproduce the bundle within its tolerance); an engine whose outputs stray from ONNX Runtime's beyond the
precision's tolerance is discarded, never cached. ``tensorrt`` and ``pycuda`` are imported only inside
:func:`build_engine`: without them it raises BackendUnavailable (exit status 2) saying what to install,
and the rest of myoedge is unaffected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from myoedge.deploy.cache import (
    EngineKey,
    GpuTarget,
    check_cached,
    engine_key,
    engine_path,
    sidecar_path,
    store_engine,
)
from myoedge.deploy.precision import BuildPlan, DeviationReport, build_plan, check_precision, compare_outputs
from myoedge.edge.model import OnnxCpuPredictor, TensorRTPredictor, replay_test_vectors
from myoedge.edge.model.bundle import Bundle, load_bundle
from myoedge.edge.model.tensorrt import import_tensorrt
from myoedge.ground.errors import InputError

__all__ = ["DEFAULT_WORKSPACE_MIB", "EngineBuild", "build_engine", "build_serialized_engine", "detect_target",
           "verify_engine"]

DEFAULT_WORKSPACE_MIB = 256  # scratch memory the builder may use; the bundle's networks need far less
logger = logging.getLogger("myoedge.deploy")


def detect_target(trt, cuda, *, device: int = 0) -> GpuTarget:
    """Compute capability and name of CUDA ``device`` (pycuda) and the TensorRT version in use."""
    cuda.init()
    if not 0 <= device < cuda.Device.count():
        raise InputError(f"CUDA device {device} does not exist (found {cuda.Device.count()} device(s))")
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    return GpuTarget(compute_capability=f"{major}.{minor}", tensorrt_version=str(trt.__version__),
                     device_name=str(dev.name()))


def build_serialized_engine(trt, onnx_bytes: bytes, *, plan: BuildPlan,
                            input_shapes: dict[str, tuple[int, ...]], workspace_bytes: int,
                            where: str) -> bytes:
    """Parse ``onnx_bytes`` (already converted when ``plan`` says so) and build a serialised engine."""
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    # TensorRT 10: networks are always explicit-batch (the EXPLICIT_BATCH flag is deprecated and ignored)
    # and weakly typed unless asked otherwise. TensorRT 11: always strongly typed (STRONGLY_TYPED is
    # deprecated and ignored). Either way no creation flag is needed.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no detail given"
        raise InputError(f"{where}: TensorRT's ONNX parser rejected the graph: {errors}")
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        want = input_shapes.get(tensor.name)
        have = tuple(int(d) for d in tensor.shape)
        if want is None:
            raise InputError(f"{where}: graph input '{tensor.name}' is not declared in meta.json "
                             f"(declared: {sorted(input_shapes)})")
        if len(have) != len(want) or any(h not in (-1, w) for h, w in zip(have, want, strict=True)):
            raise InputError(f"{where}: graph input '{tensor.name}' has shape {list(have)}, meta.json "
                             f"declares {list(want)}")
        tensor.shape = want  # pin dynamic axes: a fixed-shape engine needs no optimisation profile
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if plan.fp16_builder_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.disable_tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{where}: TensorRT could not build the engine (see the TensorRT log above)")
    return bytes(serialized)


def verify_engine(bundle: Bundle, engine: str | os.PathLike, *, precision: str,
                  rtol: float | None = None) -> DeviationReport:
    """Replay the bundle's test vectors through the engine and through ONNX Runtime (which must reproduce
    the bundle within its tolerance); compare the engine with ONNX Runtime by the precision's rule (the
    report is returned, not checked)."""
    # No sidecar check: a fresh engine is verified here *before* it gets one (the caller has keyed it).
    with TensorRTPredictor(bundle, engine, check_sidecar=False) as gpu, OnnxCpuPredictor(bundle) as cpu:
        got = replay_test_vectors(bundle, gpu).outputs
        want = replay_test_vectors(bundle, cpu).check().outputs
    return compare_outputs(got, want, precision=precision, rtol=rtol)


@dataclass(frozen=True)
class EngineBuild:
    """What ``build-engine`` did: the engine, its key, whether it was reused, and how close it is to ONNX."""

    engine_path: Path
    key: EngineKey
    target: GpuTarget
    plan: BuildPlan
    reused: bool
    reason: str  # why it was reused or (re)built
    build_seconds: float | None
    report: DeviationReport

    def to_dict(self) -> dict:
        return {"engine": str(self.engine_path), "sidecar": str(sidecar_path(self.engine_path)),
                "key": self.key.to_dict(), "device_name": self.target.device_name,
                "plan": self.plan.to_dict(),
                "reused": self.reused, "reason": self.reason, "build_seconds": self.build_seconds,
                "verification": self.report.to_dict()}


def build_engine(bundle_path: str | os.PathLike, *, precision: str = "fp32",
                 out_dir: str | os.PathLike | None = None, workspace_mib: int = DEFAULT_WORKSPACE_MIB,
                 force: bool = False, device: int = 0) -> EngineBuild:
    """Build (or reuse) the engine of the bundle at ``bundle_path`` for this GPU and verify it.

    The engine goes to ``<out_dir or the bundle folder>/model.engine`` with its sidecar. A cached engine
    whose key matches is reused unless ``force``; it is still verified against ONNX Runtime.
    """
    precision = check_precision(precision)
    if isinstance(workspace_mib, bool) or not isinstance(workspace_mib, int) \
            or not 16 <= workspace_mib <= 65536:
        raise InputError(f"workspace_mib must be an int in 16..65536, got {workspace_mib!r}")
    bundle = load_bundle(bundle_path)
    trt, cuda = import_tensorrt()  # BackendUnavailable (exit 2) with what to install
    target = detect_target(trt, cuda, device=device)
    plan = build_plan(precision=precision, tensorrt_version=target.tensorrt_version)
    key = engine_key(bundle, precision=precision, target=target)
    engine = engine_path(bundle, out_dir)
    what = f"engine for bundle {bundle.path} ({plan.describe()})"

    cached = check_cached(engine, key)
    if cached.usable and not force:
        report = verify_engine(bundle, engine, precision=precision).check(what=what)
        return EngineBuild(engine, key, target, plan, True, cached.reason, None, report)

    reason = "rebuild forced" if force else cached.reason
    logger.info("building %s on %s: %s", what, target.device_name or "GPU", reason)
    onnx_bytes = bundle.onnx_path.read_bytes()
    if plan.convert_graph_to_fp16:
        from myoedge.deploy.onnx_fp16 import convert_to_fp16

        onnx_bytes = convert_to_fp16(onnx_bytes, where=str(bundle.onnx_path))
    input_spec = bundle.meta.input
    started = time.perf_counter()
    blob = build_serialized_engine(trt, onnx_bytes, plan=plan,
                                   input_shapes={input_spec.name: input_spec.shape},
                                   workspace_bytes=workspace_mib << 20, where=str(bundle.onnx_path))
    seconds = time.perf_counter() - started
    # Verify from a file beside the target; only a verified engine is renamed into place and vouched for.
    engine.parent.mkdir(parents=True, exist_ok=True)
    pending = engine.with_name(f".{engine.name}.{os.getpid()}.pending")
    try:
        pending.write_bytes(blob)
        report = verify_engine(bundle, pending, precision=precision).check(what=what)
        store_engine(engine, pending, key=key, details={
            "device_name": target.device_name, "plan": plan.to_dict(), "build_seconds": round(seconds, 3),
            "bundle": bundle.meta.name, "verification": report.to_dict()})
    finally:
        with contextlib.suppress(FileNotFoundError):
            pending.unlink()
    return EngineBuild(engine, key, target, plan, False, reason, seconds, report)
