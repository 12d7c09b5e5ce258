"""A small synthetic network of the paper's shape, as ONNX bytes and as a float64 numpy reference.

The network: temporal convolutions (kernel 3, valid padding; the first undilated, any further ones
dilated) over the window of envelopes, each followed by ReLU, then flatten, dense layers with ReLU,
and two linear heads — ``theta`` (rad) and ``forces`` (N, kept non-negative by a ReLU) — with fixed
random He-scaled weights. It has a real model's compute and meaningless outputs: ``myoedge bench``
runs it when no trained bundle is given, and the tests use it as a model whose outputs
:func:`reference_outputs` computes independently of ONNX Runtime.

Torch-free; ``onnx`` is imported only by :func:`build_onnx`, so the runtime never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from myoedge.edge.model.bundle import INPUT_NAME
from myoedge.ground.errors import InputError

__all__ = ["OPSET", "NetParams", "build_onnx", "paper_size_params", "random_params", "reference_outputs"]

OPSET = 17
KERNEL = 3


@dataclass(frozen=True)
class NetParams:
    conv_w: np.ndarray  # (filters, channels, 3), the first convolution (dilation 1)
    conv_b: np.ndarray  # (filters,)
    dense: tuple[tuple[np.ndarray, np.ndarray], ...]  # (in, out) weight, (out,) bias
    theta: tuple[np.ndarray, np.ndarray]
    forces: tuple[np.ndarray, np.ndarray]
    # further convolutions after the first: (filters, filters, 3) weight, (filters,) bias, dilation
    dilated: tuple[tuple[np.ndarray, np.ndarray, int], ...] = ()

    @property
    def convs(self) -> tuple[tuple[np.ndarray, np.ndarray, int], ...]:
        """Every convolution as (weight, bias, dilation), in order."""
        return ((self.conv_w, self.conv_b, 1), *self.dilated)

    @property
    def n_params(self) -> int:
        arrays = [a for w, b, _ in self.convs for a in (w, b)]
        arrays += [a for layer in (*self.dense, self.theta, self.forces) for a in layer]
        return int(sum(a.size for a in arrays))


def random_params(*, window: int, channels: int, muscles: int, filters: int, hidden: tuple[int, ...],
                  dilations: tuple[int, ...] = (1,), seed: int = 0, bias_std: float = 0.1,
                  theta_scale: float = 0.5, forces_scale: float = 100.0,
                  forces_bias: float = 50.0) -> NetParams:
    """He-scaled random weights (float32), so activations stay O(1) through the layers.

    Biases are N(0, ``bias_std``); the theta head's weights are scaled by ``theta_scale`` (radians),
    the forces head's by ``forces_scale`` with ``forces_bias`` added to its bias (newtons).
    """
    if not dilations or dilations[0] != 1:
        raise ValueError(f"the first convolution is undilated: dilations must start with 1, got {dilations}")
    length = window - (KERNEL - 1) * sum(dilations)
    if length < 1:
        raise ValueError(f"window {window} is shorter than the receptive field of dilations {dilations}")
    rng = np.random.default_rng(seed)

    def layer(n_in: int, n_out: int):
        w = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out)).astype(np.float32)
        return w, rng.normal(0.0, bias_std, n_out).astype(np.float32)

    def conv(n_in: int):
        w = rng.normal(0.0, np.sqrt(2.0 / (KERNEL * n_in)), (filters, n_in, KERNEL)).astype(np.float32)
        return w, rng.normal(0.0, bias_std, filters).astype(np.float32)

    conv_w, conv_b = conv(channels)
    dilated = tuple((*conv(filters), int(d)) for d in dilations[1:])
    sizes = (filters * length, *hidden)
    dense = tuple(layer(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    theta_w, theta_b = layer(sizes[-1], 1)
    forces_w, forces_b = layer(sizes[-1], muscles)
    return NetParams(conv_w, conv_b, dense, (theta_w * np.float32(theta_scale), theta_b),
                     (forces_w * np.float32(forces_scale), forces_b + np.float32(forces_bias)), dilated)


def paper_size_params(*, window: int = 50, muscles: int = 5, seed: int = 0, **scales) -> NetParams:
    """The paper's size: conv k=3 with 128 filters over the window, two dense layers of 128, two heads."""
    return random_params(window=window, channels=muscles, muscles=muscles, filters=128, hidden=(128, 128),
                         seed=seed, **scales)


def build_onnx(params: NetParams, *, window: int, name: str = "myoedge_test_net") -> bytes:
    """The network as ONNX bytes: ``envelopes`` (1, W, C) -> ``theta`` (1, 1), ``forces`` (1, M)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise InputError("building a synthetic ONNX model needs the onnx package "
                         "(`pip install onnx`)") from None
    channels = params.conv_w.shape[1]
    muscles = params.forces[0].shape[1]
    inits = [numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "flat_shape")]
    nodes = [helper.make_node("Transpose", [INPUT_NAME], ["x_cw"], perm=[0, 2, 1])]
    h = "x_cw"
    for i, (w, b, d) in enumerate(params.convs, start=1):
        sfx = "" if i == 1 else str(i)  # the first keeps its historical names conv_w, conv_b
        inits += [numpy_helper.from_array(w, f"conv_w{sfx}"), numpy_helper.from_array(b, f"conv_b{sfx}")]
        nodes += [helper.make_node("Conv", [h, f"conv_w{sfx}", f"conv_b{sfx}"], [f"conv{sfx}"],
                                   kernel_shape=[KERNEL], dilations=[d]),
                  helper.make_node("Relu", [f"conv{sfx}"], [f"conv_relu{sfx}"])]
        h = f"conv_relu{sfx}"
    nodes.append(helper.make_node("Reshape", [h, "flat_shape"], ["h0"]))
    h = "h0"
    for i, (w, b) in enumerate(params.dense, start=1):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("Gemm", [h, f"w{i}", f"b{i}"], [f"z{i}"]),
                  helper.make_node("Relu", [f"z{i}"], [f"h{i}"])]
        h = f"h{i}"
    for head, (w, b) in (("theta", params.theta), ("forces", params.forces)):
        inits += [numpy_helper.from_array(w, f"{head}_w"), numpy_helper.from_array(b, f"{head}_b")]
    nodes += [helper.make_node("Gemm", [h, "theta_w", "theta_b"], ["theta"]),
              helper.make_node("Gemm", [h, "forces_w", "forces_b"], ["forces_lin"]),
              helper.make_node("Relu", ["forces_lin"], ["forces"])]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, window, channels])],
        [helper.make_tensor_value_info("theta", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("forces", TensorProto.FLOAT, [1, muscles])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference_outputs(params: NetParams, envelopes: np.ndarray) -> dict[str, np.ndarray]:
    """The same network in float64 numpy for a batch ``envelopes`` (K, W, C)."""
    h = np.asarray(envelopes, dtype=np.float64)  # (K, T, C)
    for w, b, d in params.convs:
        t_out = h.shape[1] - (KERNEL - 1) * d
        patches = np.stack([h[:, j * d:j * d + t_out, :] for j in range(KERNEL)], axis=-1)  # (K, T', C, 3)
        conv = np.einsum("ktcj,fcj->ktf", patches, w.astype(np.float64)) + b.astype(np.float64)
        h = np.maximum(conv, 0.0)  # (K, T', F)
    h = h.transpose(0, 2, 1).reshape(len(h), -1)  # flatten filter-major, as Reshape on (1, F, T')
    for w, b in params.dense:
        h = np.maximum(h @ w + b, 0.0)
    theta = h @ params.theta[0] + params.theta[1]
    forces = np.maximum(h @ params.forces[0] + params.forces[1], 0.0)
    return {"theta": theta, "forces": forces}
