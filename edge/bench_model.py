"""Synthetic models for ``myoedge bench`` when no trained bundle is given, and a profile to run them.

``paper``: the paper's size, a 128-filter temporal convolution (k = 3) over a 50-step window, two
dense layers of 128 and two heads. ``edge``: the shipped edge model's size, four dilated convolutions
(k = 3, dilations 1, 2, 4, 8) of 32 filters over a 31-step window (its receptive field), one dense
layer of 32 and two heads. Both are built with ``onnx.helper`` (imported only here, so the runtime
never needs it) with random He-scaled weights from a fixed seed: a real model's compute, meaningless
outputs. They take envelopes at ``MODEL_RATE_HZ`` and physical outputs like any bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from myoedge.body.catalog import JOINTS, generic_model
from myoedge.body.model import JointModel, Muscle
from myoedge.body.profile import SubjectProfile
from myoedge.edge.bundle import INPUT_NAME, Bundle, write_bundle
from myoedge.edge.envelope import EnvelopeConfig, design_envelope
from myoedge.errors import InputError

__all__ = ["MODEL_KINDS", "MODEL_RATE_HZ", "MVC_VOLTS", "bench_profile", "synthetic_bundle"]

MODEL_KINDS = ("paper", "edge")
MODEL_RATE_HZ = 100.0
MVC_VOLTS = 300e-6  # near the bench signal's contraction peaks: normalised envelopes of 0.1 to 1
_SIZES = {"paper": {"window": 50, "filters": 128, "hidden": (128, 128), "dilations": (1,)},
          "edge": {"window": 31, "filters": 32, "hidden": (32,), "dilations": (1, 2, 4, 8)}}


def _onnx_graph(kind: str, *, channels: int, seed: int) -> tuple[bytes, int]:
    """The synthetic network as ONNX bytes and its parameter count (random He-scaled fixed weights)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise InputError("building a synthetic model needs the onnx package (`pip install onnx`); or "
                         "pass --model BUNDLE") from None
    size, rng = _SIZES[kind], np.random.default_rng(seed)
    inits, nodes, n_params = [], [helper.make_node("Transpose", [INPUT_NAME], ["h_c0"], perm=[0, 2, 1])], 0

    def weight(name: str, shape: tuple[int, ...], fan_in: int, scale: float = 1.0) -> str:
        nonlocal n_params
        inits.append(numpy_helper.from_array(
            (rng.normal(0.0, np.sqrt(2.0 / fan_in), shape) * scale).astype(np.float32), name))
        n_params += int(np.prod(shape))
        return name

    width, length, h = channels, size["window"], "h_c0"
    for i, d in enumerate(size["dilations"], start=1):
        nodes += [helper.make_node("Conv", [h, weight(f"cw{i}", (size["filters"], width, 3), 3 * width),
                                            weight(f"cb{i}", (size["filters"],), 10, 0.1)],
                                   [f"c{i}"], kernel_shape=[3], dilations=[d]),
                  helper.make_node("Relu", [f"c{i}"], [f"h_c{i}"])]
        width, length, h = size["filters"], length - 2 * d, f"h_c{i}"
    inits.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "flat"))
    nodes.append(helper.make_node("Reshape", [h, "flat"], ["h0"]))
    h, width = "h0", width * length
    for i, n in enumerate(size["hidden"], start=1):
        nodes += [helper.make_node("Gemm", [h, weight(f"w{i}", (width, n), width),
                                            weight(f"b{i}", (n,), 10, 0.1)], [f"z{i}"]),
                  helper.make_node("Relu", [f"z{i}"], [f"h{i}"])]
        h, width = f"h{i}", n
    nodes += [helper.make_node("Gemm", [h, weight("tw", (width, 1), width, 0.3), weight("tb", (1,), 10, 0.1)],
                               ["theta"]),
              helper.make_node("Gemm", [h, weight("fw", (width, channels), width, 100.0),
                                        weight("fb", (channels,), 10, 0.1)], ["forces_lin"]),
              helper.make_node("Relu", ["forces_lin"], ["forces"])]
    graph = helper.make_graph(
        nodes, f"myoedge_bench_{kind}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, size["window"], channels])],
        [helper.make_tensor_value_info("theta", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("forces", TensorProto.FLOAT, [1, channels])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString(), n_params


def synthetic_bundle(path: str | os.PathLike, *, kind: str, muscles: tuple[str, ...], fs_hz: float,
                     input_bits: int, seed: int = 0) -> tuple[Path, int]:
    """Write a bundle around a synthetic ``kind`` graph; (its path, its parameter count).

    The test vectors are ONNX Runtime's own outputs: they prove nothing about training, only that the
    runtime loads what was written.
    """
    import onnxruntime as ort

    if kind not in MODEL_KINDS:
        raise InputError(f"synthetic model kind must be one of {list(MODEL_KINDS)}, got {kind!r}")
    m, window = len(muscles), _SIZES[kind]["window"]
    onnx_bytes, n_params = _onnx_graph(kind, channels=m, seed=seed)
    design = design_envelope(EnvelopeConfig(fs_hz=fs_hz, out_rate_hz=MODEL_RATE_HZ, input_bits=input_bits))
    inputs = np.random.default_rng(seed + 1).uniform(0.0, 1.0, (2, window, m)).astype(np.float32)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outs = [session.run(None, {INPUT_NAME: x[None]}) for x in inputs]
    meta = {
        "name": f"synthetic-{kind}", "joint": _joint_for(muscles), "muscles": list(muscles),
        "input": {"name": INPUT_NAME, "shape": [1, window, m], "dtype": "float32", "window": window,
                  "rate_hz": MODEL_RATE_HZ},
        "emg_rate_hz": fs_hz,
        "envelope": {"config": design.config.to_dict(), "coefficients": design.coefficients(),
                     "hash": design.coefficients_hash()},
        "outputs": [{"name": "theta", "shape": [1, 1], "unit": "rad"},
                    {"name": "forces", "shape": [1, m], "unit": "N"}],
        "physiological_range": {"theta_rad": [-3.2, 3.2], "forces_n": [[0.0, 5000.0]] * m},
        "training": {"model": f"synthetic {kind}-size graph, random fixed weights (seed {seed})"},
        "onnx": {"opset": 17}, "test_vectors": {"tolerance": 1e-4}}
    path = write_bundle(path, onnx_bytes=onnx_bytes, meta=meta, test_inputs=inputs, overwrite=True,
                        test_outputs={"theta": np.concatenate([o[0] for o in outs]),
                                      "forces": np.concatenate([o[1] for o in outs])})
    return path, n_params


def _joint_for(muscles: tuple[str, ...]) -> str:
    for joint in JOINTS:
        if generic_model(joint).muscle_names == tuple(muscles):
            return joint
    return "bench"


def bench_profile(bundle: Bundle) -> SubjectProfile:
    """A profile for ``bundle``: the generic model of its joint when the muscles are that joint's,
    otherwise alternating wrist-like flexors and extensors named as the bundle's muscles."""
    joint = bundle.meta["joint"]
    model = generic_model(joint) if joint in JOINTS else None
    if model is None or model.muscle_names != bundle.muscles:
        wrist = generic_model("wrist")
        muscles = tuple(Muscle(name=name, action="flexor" if i % 2 == 0 else "extensor", max_force=100.0,
                               optimal_fiber_length=0.06, tendon_slack_length=0.24, pennation=0.0,
                               optimal_angle=0.0,
                               moment_arm=(0.015, 0.002, -0.002) if i % 2 == 0 else (-0.008, 0.001))
                        for i, name in enumerate(bundle.muscles))
        model = JointModel(joint=joint, segment=wrist.segment, muscles=muscles)
    return SubjectProfile(subject="bench", model=model, mvc_volts=(MVC_VOLTS,) * len(bundle.muscles),
                          provenance={"method": "myoedge bench: fixed MVC for the synthetic signal"})
