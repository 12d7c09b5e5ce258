"""Small ONNX graphs for the bundle and predictor tests, built with ``onnx.helper`` (no torch on the edge).

The network has the shape of the paper's model: a temporal convolution (kernel 3, valid padding) over
the window, ReLU, flatten, two dense layers with ReLU, and two linear heads — ``theta`` (rad) and
``forces`` (N, kept non-negative by a ReLU) — with fixed random weights. :func:`reference_outputs`
computes the same function in float64 numpy, independently of ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from myoedge.edge.bundle import INPUT_NAME, write_bundle
from myoedge.edge.envelope import EnvelopeConfig, design_envelope

OPSET = 17


@dataclass(frozen=True)
class NetParams:
    conv_w: np.ndarray  # (filters, channels, 3)
    conv_b: np.ndarray  # (filters,)
    dense: tuple[tuple[np.ndarray, np.ndarray], ...]  # (in, out) weight, (out,) bias
    theta: tuple[np.ndarray, np.ndarray]
    forces: tuple[np.ndarray, np.ndarray]


def random_params(*, window: int, channels: int, muscles: int, filters: int, hidden: tuple[int, ...],
                  seed: int = 0) -> NetParams:
    """He-scaled random weights (float32), so activations stay O(1) through the layers."""
    rng = np.random.default_rng(seed)

    def layer(n_in: int, n_out: int):
        w = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out)).astype(np.float32)
        return w, rng.normal(0.0, 0.1, n_out).astype(np.float32)

    conv_w = rng.normal(0.0, np.sqrt(2.0 / (3 * channels)), (filters, channels, 3)).astype(np.float32)
    conv_b = rng.normal(0.0, 0.1, filters).astype(np.float32)
    sizes = (filters * (window - 2), *hidden)
    dense = tuple(layer(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    theta_w, theta_b = layer(sizes[-1], 1)
    forces_w, forces_b = layer(sizes[-1], muscles)
    return NetParams(conv_w, conv_b, dense, (theta_w * 0.5, theta_b), (forces_w * 100.0, forces_b + 50.0))


def build_onnx(params: NetParams, *, window: int) -> bytes:
    """The network as ONNX bytes: ``envelopes`` (1, W, C) -> ``theta`` (1, 1), ``forces`` (1, M)."""
    filters, channels, _ = params.conv_w.shape
    muscles = params.forces[0].shape[1]
    inits = [numpy_helper.from_array(params.conv_w, "conv_w"),
             numpy_helper.from_array(params.conv_b, "conv_b"),
             numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "flat_shape")]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["x_cw"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["x_cw", "conv_w", "conv_b"], ["conv"], kernel_shape=[3]),
        helper.make_node("Relu", ["conv"], ["conv_relu"]),
        helper.make_node("Reshape", ["conv_relu", "flat_shape"], ["h0"]),
    ]
    h = "h0"
    for i, (w, b) in enumerate(params.dense, start=1):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("Gemm", [h, f"w{i}", f"b{i}"], [f"z{i}"]),
                  helper.make_node("Relu", [f"z{i}"], [f"h{i}"])]
        h = f"h{i}"
    for name, (w, b) in (("theta", params.theta), ("forces", params.forces)):
        inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    nodes += [helper.make_node("Gemm", [h, "theta_w", "theta_b"], ["theta"]),
              helper.make_node("Gemm", [h, "forces_w", "forces_b"], ["forces_lin"]),
              helper.make_node("Relu", ["forces_lin"], ["forces"])]
    graph = helper.make_graph(
        nodes, "myoedge_test_net",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, window, channels])],
        [helper.make_tensor_value_info("theta", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("forces", TensorProto.FLOAT, [1, muscles])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference_outputs(params: NetParams, envelopes: np.ndarray) -> dict[str, np.ndarray]:
    """The same network in float64 numpy for a batch ``envelopes`` (K, W, C)."""
    x = np.asarray(envelopes, dtype=np.float64)
    patches = np.lib.stride_tricks.sliding_window_view(x, 3, axis=1)  # (K, W-2, C, 3)
    conv = np.einsum("ktcj,fcj->kft", patches, params.conv_w.astype(np.float64)) + params.conv_b[:, None]
    h = np.maximum(conv, 0.0).reshape(len(x), -1)  # flatten filter-major, as Reshape on (1, F, W-2)
    for w, b in params.dense:
        h = np.maximum(h @ w + b, 0.0)
    theta = h @ params.theta[0] + params.theta[1]
    forces = np.maximum(h @ params.forces[0] + params.forces[1], 0.0)
    return {"theta": theta, "forces": forces}


def bundle_meta(*, window: int, muscles: tuple[str, ...], rate_hz: float = 100.0, emg_rate_hz: float = 1000.0,
                tolerance: float = 1e-4) -> dict:
    """A complete version-1 ``meta`` for write_bundle (hashes and timestamps are filled in there)."""
    design = design_envelope(EnvelopeConfig(fs_hz=emg_rate_hz, out_rate_hz=rate_hz, input_bits=24))
    m = len(muscles)
    return {
        "name": "test-net", "joint": "wrist", "muscles": list(muscles),
        "input": {"name": INPUT_NAME, "shape": [1, window, m], "dtype": "float32", "window": window,
                  "rate_hz": rate_hz},
        "emg_rate_hz": emg_rate_hz,
        "envelope": {"config": design.config.to_dict(), "coefficients": design.coefficients(),
                     "hash": design.coefficients_hash()},
        "outputs": [{"name": "theta", "shape": [1, 1], "unit": "rad"},
                    {"name": "forces", "shape": [1, m], "unit": "N"}],
        "physiological_range": {"theta_rad": [-1.5, 1.5], "forces_n": [[0.0, 2000.0]] * m},
        "training": {"model": "onnx.helper test net", "seed": 0},
        "onnx": {"opset": OPSET},
        "test_vectors": {"tolerance": tolerance},
    }


def make_bundle(path, *, window: int = 8, muscles: tuple[str, ...] = ("FCR", "ECRL", "ECU"), filters: int = 6,
                hidden: tuple[int, ...] = (16, 16), n_vectors: int = 4, seed: int = 0):
    """Write a small bundle whose test vectors are the numpy reference; returns (path, params)."""
    params = random_params(window=window, channels=len(muscles), muscles=len(muscles), filters=filters,
                           hidden=hidden, seed=seed)
    rng = np.random.default_rng(seed + 1)
    inputs = rng.uniform(0.0, 1.0, (n_vectors, window, len(muscles))).astype(np.float32)
    ref = reference_outputs(params, inputs)
    write_bundle(path, onnx_bytes=build_onnx(params, window=window),
                 meta=bundle_meta(window=window, muscles=muscles), test_inputs=inputs,
                 test_outputs={k: v.astype(np.float32) for k, v in ref.items()})
    return path, params


def paper_size_params(*, window: int = 50, muscles: int = 5, seed: int = 0) -> NetParams:
    """The paper's size: conv k=3 with 128 filters over the window, two dense layers of 128, two heads."""
    return random_params(window=window, channels=muscles, muscles=muscles, filters=128, hidden=(128, 128),
                         seed=seed)
