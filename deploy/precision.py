"""Engine precisions: how each is built on each TensorRT generation, and how close it must stay to ONNX.

Two precisions, ``fp32`` and ``fp16``. How a precision is realised depends on the TensorRT major version:

* **TensorRT 10** (JetPack 6 ships 10.3) builds *weakly typed* networks by default: the graph stays
  float32 and ``BuilderFlag.FP16`` lets the builder pick half-precision kernels where it finds them
  faster. TF32 is on by default on Ampere-class GPUs (Jetson Orin included) and rounds float32 matrix
  products to a 10-bit mantissa, so ``fp32`` clears it: "fp32" then means IEEE float32 everywhere.
* **TensorRT 11** removed weak typing and the precision builder flags; every network is strongly typed
  and takes its types from the graph. ``fp16`` therefore converts the ONNX graph itself to float16
  (:mod:`myoedge.deploy.onnx_fp16`, inputs and outputs kept float32) before the parser sees it.

After a build the engine and ONNX Runtime run the bundle's test vectors and :func:`compare_outputs`
measures each output's largest deviation *relative to that output's peak magnitude* (at least one unit,
rad or N): forces reach hundreds of newtons while the angle stays near one radian, so one absolute
threshold would be either meaningless for the forces or impossible for the angle. The stated limits,
:data:`RELATIVE_TOLERANCE`: fp32 1e-4 (reordered float32 sums differ by ~1e-6 relative; 1e-4 still
catches any wrong layer), fp16 1e-2 (float16 has an 11-bit significand, ~5e-4 relative per operation,
accumulating over a few layers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from myoedge.edge.model.engine_cache import PRECISIONS, check_precision
from myoedge.ground.errors import InputError

__all__ = [
    "PRECISIONS", "RELATIVE_TOLERANCE", "BuildPlan", "DeviationReport", "OutputDeviation", "build_plan",
    "check_precision", "compare_outputs", "tensorrt_major",
]

# PRECISIONS and check_precision are defined in edge (a sidecar's key is validated there) and re-exported.
RELATIVE_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
#: Deviations are divided by max(peak |reference|, SCALE_FLOOR) in the output's unit (rad, N), so an
#: output that is all zeros on the test vectors (a silent muscle) is not judged relative to zero.
SCALE_FLOOR = 1.0


def tensorrt_major(version: str) -> int:
    """The major number of a TensorRT version string such as ``"10.3.0.30"``."""
    head = str(version).split(".", 1)[0]
    if not head.isdigit():
        raise InputError(f"cannot read a TensorRT version from {version!r} (expected e.g. '10.3.0')")
    return int(head)


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """What the engine builder does for one precision on one TensorRT version."""

    precision: str
    tensorrt_major: int
    strongly_typed: bool  # the network takes its types from the graph (always, from TensorRT 11)
    fp16_builder_flag: bool  # set BuilderFlag.FP16 (TensorRT 10 fp16)
    convert_graph_to_fp16: bool  # rewrite the ONNX graph to float16 first (TensorRT 11 fp16)
    disable_tf32: bool  # clear BuilderFlag.TF32 so fp32 means IEEE float32

    def describe(self) -> str:
        typing = "strongly typed" if self.strongly_typed else "weakly typed"
        how = ("graph converted to float16" if self.convert_graph_to_fp16
               else "BuilderFlag.FP16" if self.fp16_builder_flag else "float32 kernels, TF32 off")
        return f"{self.precision} on TensorRT {self.tensorrt_major} ({typing}, {how})"

    def to_dict(self) -> dict:
        return {"precision": self.precision, "tensorrt_major": self.tensorrt_major,
                "strongly_typed": self.strongly_typed, "fp16_builder_flag": self.fp16_builder_flag,
                "convert_graph_to_fp16": self.convert_graph_to_fp16, "disable_tf32": self.disable_tf32}


def build_plan(*, precision: str, tensorrt_version: str) -> BuildPlan:
    """The build recipe for ``precision`` with the installed TensorRT (10.x weakly, 11+ strongly typed)."""
    precision = check_precision(precision)
    major = tensorrt_major(tensorrt_version)
    if major < 10:
        raise InputError(f"engine builds need TensorRT 10 or newer (named-tensor API), found "
                         f"{tensorrt_version}; upgrade to JetPack 6 or newer")
    fp16 = precision == "fp16"
    strongly_typed = major >= 11
    return BuildPlan(precision=precision, tensorrt_major=major, strongly_typed=strongly_typed,
                     fp16_builder_flag=fp16 and not strongly_typed,
                     convert_graph_to_fp16=fp16 and strongly_typed, disable_tf32=not fp16)


@dataclass(frozen=True)
class OutputDeviation:
    """One output's largest absolute deviation, the scale it is judged against, and their ratio."""

    name: str
    max_abs: float
    scale: float

    @property
    def relative(self) -> float:
        return self.max_abs / self.scale

    def to_dict(self) -> dict:
        return {"name": self.name, "max_abs": self.max_abs, "scale": self.scale, "relative": self.relative}


@dataclass(frozen=True)
class DeviationReport:
    """How far a candidate (an engine) is from a reference (ONNX Runtime) over the test vectors."""

    precision: str
    rtol: float
    outputs: tuple[OutputDeviation, ...]

    @property
    def worst(self) -> OutputDeviation:
        return max(self.outputs, key=lambda d: d.relative)

    @property
    def passed(self) -> bool:
        return self.worst.relative <= self.rtol

    def summary(self) -> str:
        parts = ", ".join(f"{d.name} {d.max_abs:.3g} ({d.relative:.2g} of {d.scale:.3g})"
                          for d in self.outputs)
        verdict = "within" if self.passed else "EXCEEDS"
        return f"max deviation {parts}; worst {self.worst.relative:.2g} {verdict} the {self.precision} " \
               f"tolerance {self.rtol:g}"

    def check(self, *, what: str) -> DeviationReport:
        """Return self when within tolerance; otherwise raise InputError naming the worst output."""
        if not self.passed:
            hint = ""
            if self.precision == "fp16":
                hint = " (the model is not fp16-safe: build with --precision fp32)"
            raise InputError(f"{what}: {self.summary()}{hint}")
        return self

    def to_dict(self) -> dict:
        return {"precision": self.precision, "rtol": self.rtol, "passed": self.passed,
                "worst_relative": self.worst.relative, "outputs": [d.to_dict() for d in self.outputs]}


def compare_outputs(candidate: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
                    precision: str, rtol: float | None = None) -> DeviationReport:
    """Compare stacked outputs ``{name: (K, ...)}`` output by output; NaN or inf counts as infinitely far.

    ``rtol`` defaults to :data:`RELATIVE_TOLERANCE` for ``precision``.
    """
    precision = check_precision(precision)
    rtol = RELATIVE_TOLERANCE[precision] if rtol is None else float(rtol)
    if not rtol > 0:
        raise InputError(f"rtol must be > 0, got {rtol!r}")
    if set(candidate) != set(reference) or not reference:
        raise InputError(f"outputs differ: candidate has {sorted(candidate)}, "
                         f"reference has {sorted(reference)}")
    deviations = []
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        got = np.asarray(candidate[name], dtype=np.float64)
        if got.shape != ref.shape:
            raise InputError(f"output '{name}': candidate shape {got.shape} differs from the reference "
                             f"{ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise InputError(f"output '{name}': the reference holds non-finite values")
        diff = np.abs(got - ref)
        max_abs = float(diff.max()) if np.all(np.isfinite(diff)) else math.inf
        scale = max(float(np.abs(ref).max(initial=0.0)), SCALE_FLOOR)
        deviations.append(OutputDeviation(name, max_abs, scale))
    return DeviationReport(precision, rtol, tuple(deviations))
