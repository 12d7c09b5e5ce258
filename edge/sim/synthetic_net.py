"""Small synthetic networks of the paper's and the edge model's shape, as ONNX bytes and as float64 numpy
references.

The window network: temporal convolutions (kernel 3, valid padding; the first undilated, any further ones
dilated) over the window of envelopes, each followed by ReLU, then flatten, dense layers with ReLU,
and two linear heads — ``theta`` (rad) and ``forces`` (N, kept non-negative by a ReLU) — with fixed
random He-scaled weights. It has a real model's compute and meaningless outputs: ``myoedge bench``
runs it when no trained bundle is given, and the tests use it as a model whose outputs
:func:`reference_outputs` computes independently of ONNX Runtime.

The recurrent step (:func:`build_gru_onnx`, reference :func:`gru_reference_outputs`) has the shipped
``edge`` model's shape: a GRU (ONNX ``GRU`` op, PyTorch's gate layout) stepped once on the newest
envelope frame, ``state`` in and ``state_next`` out, and a head on [hidden, frame].

Torch-free; ``onnx`` is imported only by the builders, so the runtime never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from myoedge.edge.model.bundle import INPUT_NAME
from myoedge.ground.errors import InputError

__all__ = ["OPSET", "STATE_INPUT", "STATE_OUTPUT", "GruParams", "NetParams", "build_gru_onnx", "build_onnx",
           "gru_reference_outputs", "paper_size_params", "random_gru_params", "random_params",
           "reference_outputs"]

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


# --- the recurrent edge model's step: a GRU stepped once per model step, its hidden vector the state ---

STATE_INPUT, STATE_OUTPUT = "state", "state_next"


@dataclass(frozen=True)
class GruParams:
    """A single-layer GRU of ``hidden`` units and its head, laid out as the ONNX ``GRU`` op takes them.

    Gates in ONNX order (update z, reset r, candidate n), ``linear_before_reset`` as PyTorch's ``nn.GRU``.
    The head sees [hidden, frame]: one Linear+Tanh block of ``hidden``, then a linear layer to
    (1 + M) normalised outputs, de-normalised to theta (rad) and forces (N) by a scale and an offset.
    """

    env_mean: np.ndarray  # (C,) input standardisation
    env_std: np.ndarray  # (C,)
    w: np.ndarray  # (3H, C) input weights, rows z, r, n
    r: np.ndarray  # (3H, H) recurrent weights
    b: np.ndarray  # (6H,) input biases then recurrent biases
    head: tuple[tuple[np.ndarray, np.ndarray], ...]  # (in, out) weight, (out,) bias: Tanh after all but last
    out_scale: np.ndarray  # (1 + M,) normalised -> physical
    out_offset: np.ndarray  # (1 + M,)

    @property
    def hidden(self) -> int:
        return self.r.shape[1]

    @property
    def n_params(self) -> int:
        """Trainable parameters as PyTorch counts the recurrent edge model (normalisation excluded)."""
        return int(self.w.size + self.r.size + self.b.size + sum(w.size + b.size for w, b in self.head))


def random_gru_params(*, channels: int, muscles: int, hidden: int = 64, blocks: int = 1,
                      seed: int = 0) -> GruParams:
    """Random fixed weights of PyTorch's initial scale (U(+-1/sqrt(H)) for the GRU, He for the head)."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(hidden)

    def uniform(*shape):
        return rng.uniform(-k, k, shape).astype(np.float32)

    def layer(n_in: int, n_out: int):
        return (rng.normal(0.0, np.sqrt(1.0 / n_in), (n_in, n_out)).astype(np.float32),
                rng.normal(0.0, 0.1, n_out).astype(np.float32))

    sizes = (hidden + channels, *(hidden,) * blocks, 1 + muscles)
    head = tuple(layer(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    scale = np.concatenate([[0.3], np.full(muscles, 50.0)]).astype(np.float32)
    offset = np.concatenate([[0.0], np.full(muscles, 100.0)]).astype(np.float32)
    return GruParams(env_mean=np.full(channels, 0.3, np.float32), env_std=np.full(channels, 0.2, np.float32),
                     w=uniform(3 * hidden, channels), r=uniform(3 * hidden, hidden), b=uniform(6 * hidden),
                     head=head, out_scale=scale, out_offset=offset)


def build_gru_onnx(params: GruParams, *, window: int = 1, name: str = "myoedge_test_gru") -> bytes:
    """The step as ONNX bytes: ``envelopes`` (1, W, C), ``state`` (1, H) -> ``theta`` (1, 1), ``forces``
    (1, M), ``state_next`` (1, H); the step reads the newest frame of the window (W = 1 for the edge
    model)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise InputError("building a synthetic ONNX model needs the onnx package "
                         "(`pip install onnx`)") from None
    c, h = params.w.shape[1], params.hidden
    m = params.out_scale.shape[0] - 1
    arrays = {"env_mean": params.env_mean, "env_inv_std": (1.0 / params.env_std).astype(np.float32),
              "gru_w": params.w[None], "gru_r": params.r[None], "gru_b": params.b[None],
              "out_scale": params.out_scale, "out_offset": params.out_offset,
              "last": np.array([-1], np.int64), "end": np.array([np.iinfo(np.int64).max], np.int64),
              "axis1": np.array([1], np.int64), "axis0": np.array([0], np.int64),
              "flat": np.array([1, -1], np.int64), "zero": np.array([0], np.int64),
              "one": np.array([1], np.int64), "outs": np.array([1 + m], np.int64)}
    for i, (w, b) in enumerate(params.head, start=1):
        arrays[f"head_w{i}"], arrays[f"head_b{i}"] = w, b
    inits = [numpy_helper.from_array(a, k) for k, a in arrays.items()]
    node = helper.make_node
    nodes = [node("Slice", [INPUT_NAME, "last", "end", "axis1"], ["frame"]),  # (1, 1, C): the newest frame
             node("Sub", ["frame", "env_mean"], ["centred"]),
             node("Mul", ["centred", "env_inv_std"], ["x"]),  # (1, 1, C) = (seq 1, batch 1, C)
             node("Unsqueeze", [STATE_INPUT, "axis0"], ["h0"]),  # (1 direction, 1 batch, H)
             node("GRU", ["x", "gru_w", "gru_r", "gru_b", "", "h0"], ["", "h_last"], hidden_size=h,
                  linear_before_reset=1),
             node("Reshape", ["h_last", "flat"], [STATE_OUTPUT]),
             node("Reshape", ["x", "flat"], ["x_flat"]),
             node("Concat", [STATE_OUTPUT, "x_flat"], ["z0"], axis=1)]
    z = "z0"
    for i in range(1, len(params.head) + 1):
        nodes.append(node("Gemm", [z, f"head_w{i}", f"head_b{i}"], [f"a{i}"]))
        if i < len(params.head):
            nodes.append(node("Tanh", [f"a{i}"], [f"z{i}"]))
            z = f"z{i}"
    nodes += [node("Mul", [f"a{len(params.head)}", "out_scale"], ["scaled"]),
              node("Add", ["scaled", "out_offset"], ["physical"]),
              node("Slice", ["physical", "zero", "one", "axis1"], ["theta"]),
              node("Slice", ["physical", "one", "outs", "axis1"], ["forces"])]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, window, c]),
         helper.make_tensor_value_info(STATE_INPUT, TensorProto.FLOAT, [1, h])],
        [helper.make_tensor_value_info("theta", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("forces", TensorProto.FLOAT, [1, m]),
         helper.make_tensor_value_info(STATE_OUTPUT, TensorProto.FLOAT, [1, h])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def gru_reference_outputs(params: GruParams, envelopes: np.ndarray,
                          state: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The step in float64 numpy, replayed over ``envelopes`` (K, W, C) as one sequence from ``state``
    (1, H; zeros when None): per step theta (K, 1), forces (K, M) and state_next (K, H)."""
    f64 = np.float64
    hidden = params.hidden
    w, r, b = params.w.astype(f64), params.r.astype(f64), params.b.astype(f64)
    h = np.zeros(hidden) if state is None else np.asarray(state, f64).reshape(hidden)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    thetas, forces, states = [], [], []
    for window in np.asarray(envelopes, f64):
        x = (window[-1] - params.env_mean) / params.env_std.astype(f64)
        gx, gh = w @ x + b[:3 * hidden], r @ h + b[3 * hidden:]
        z = sig(gx[:hidden] + gh[:hidden])
        rr = sig(gx[hidden:2 * hidden] + gh[hidden:2 * hidden])
        n = np.tanh(gx[2 * hidden:] + rr * gh[2 * hidden:])
        h = (1.0 - z) * n + z * h
        a = np.concatenate([h, x])
        for i, (hw, hb) in enumerate(params.head):
            a = a @ hw.astype(f64) + hb
            if i < len(params.head) - 1:
                a = np.tanh(a)
        out = a * params.out_scale + params.out_offset
        thetas.append(out[:1])
        forces.append(out[1:])
        states.append(h.copy())
    return {"theta": np.array(thetas), "forces": np.array(forces), STATE_OUTPUT: np.array(states)}
