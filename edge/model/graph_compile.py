"""A bundle's ONNX graph compiled into one machine-code function (numba), for the CPU loop.

ONNX Runtime pays a dispatch per node. The edge observer's step is ~240 nodes, most of them scalar
plumbing from tracing (Split, Squeeze, Unsqueeze, Concat around a GRU cell and a dozen multiply-adds),
so in the loop its cost is the dispatch, not the arithmetic (docs/results/latency.md). Here the graph
becomes straight-line source that numba compiles with LLVM into one function:

* every shape is static (the bundle fixes the input shapes), so a tensor is held while writing as a
  numpy *object* array of the same shape whose elements are source expressions: ``"x1[0, 3]"`` for an
  input element, ``"t17"`` for a computed scalar. Reshape, Squeeze, Unsqueeze, Transpose, Slice, Split,
  Gather, Concat and Expand are numpy's own operations on those arrays and write no code at all;
* an elementwise operator writes one scalar statement per output element, from its one template
  (``TEMPLATES``), which numpy also evaluates on whole arrays for nodes whose inputs are all constants
  (initializers, Constant, Shape of a static tensor): those are folded while writing;
* MatMul, Gemm and GRU pack their runtime operands into small arrays and call the loop kernels of
  :mod:`.graph_kernels`.

Supported: the operators in ``TEMPLATES``, ``_LAYOUT`` and MatMul, Gemm, ReduceSum, GRU (opset 13 and
later, float32), with the attributes PyTorch's exporter writes for them. Anything else raises
:class:`UnsupportedGraph` naming it, and the caller keeps ONNX Runtime.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from myoedge.edge.model.graph_kernels import gru, matmul
from myoedge.edge.model.predictor import BackendUnavailable
from myoedge.ground.errors import InputError

__all__ = ["CompiledGraph", "UnsupportedGraph", "compile_graph"]

_COMPILED: dict[str, CompiledGraph] = {}  # per process: a graph compiles once however many predictors
_KEEP = 16
MAX_LINES = 20_000  # a graph that needs more scalar statements compiles too slowly: ONNX Runtime keeps it
FLOAT = 1  # onnx.TensorProto.FLOAT
MIN_OPSET = 13  # Squeeze, Unsqueeze, Split and ReduceSum take their axes as inputs from here on


class UnsupportedGraph(InputError):
    """The graph uses an operator, attribute or tensor type the compiler does not handle."""


# Elementwise operators: one template each, {0}, {1} the operands. Numpy evaluates it on whole arrays
# (folding constants); the compiled function evaluates it on float32 scalars.
TEMPLATES = {
    "Add": "({0} + {1})", "Sub": "({0} - {1})", "Mul": "({0} * {1})", "Div": "({0} / {1})",
    "Max": "np.maximum({0}, {1})", "Min": "np.minimum({0}, {1})",
    "Neg": "(-{0})", "Abs": "np.abs({0})", "Sqrt": "np.sqrt({0})", "Log": "np.log({0})",
    "Tanh": "np.tanh({0})", "Exp": "np.exp({0})", "Sin": "np.sin({0})", "Cos": "np.cos({0})",
    "Reciprocal": "(np.float32(1.0) / {0})",
    "Sigmoid": "(np.float32(1.0) / (np.float32(1.0) + np.exp(-{0})))",
    "Softplus": "(np.maximum({0}, np.float32(0.0)) + np.log1p(np.exp(-np.abs({0}))))",
    "Relu": "np.maximum({0}, np.float32(0.0))",
    "Clip": "np.minimum(np.maximum({0}, {1}), {2})",
}
# Operators that only move elements: numpy's own functions on the (object or number) arrays.
_LAYOUT = ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Slice", "Split",
           "Gather", "Concat", "Expand")


@dataclass(frozen=True)
class CompiledGraph:
    """``run(*inputs, *outputs)``: the inputs in graph order, the outputs preallocated, written in place.
    ``source`` is the function's text; ``folded`` counts the nodes computed while compiling."""

    run: object
    inputs: tuple[tuple[str, tuple[int, ...]], ...]
    outputs: tuple[tuple[str, tuple[int, ...]], ...]
    source: str
    folded: int


def _text(element) -> str:
    """Source text of one element: an expression already, or a number as a float32 literal."""
    if isinstance(element, str):
        return element
    v = float(element)
    if np.isfinite(v):
        return f"np.float32({v!r})"
    return "np.float32(np.nan)" if v != v else f"np.float32({'-' if v < 0 else ''}np.inf)"


def _symbolic(value: np.ndarray) -> bool:
    return value.dtype == object


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Writer:
    """Walks the graph once: folds constants, moves elements, writes scalar statements."""

    def __init__(self):
        self.values: dict[str, np.ndarray] = {}
        self.lines: list[str] = []
        self.env: dict = {"np": np, "matmul": matmul, "gru": gru}
        self.folded = 0

    def new(self, prefix: str = "t", *, lines: int = 1) -> str:
        """A fresh name for a statement (``lines`` of them about to be written)."""
        if len(self.lines) + lines > MAX_LINES:
            raise UnsupportedGraph(f"more than {MAX_LINES} scalar statements (a graph this wide is left to "
                                   "ONNX Runtime)")
        return f"{prefix}{len(self.lines) + len(self.env)}"

    def const(self, node, k: int, what: str):
        name = node.input[k] if k < len(node.input) else ""
        if not name:
            return None
        value = self.values[name]
        if _symbolic(value):
            raise UnsupportedGraph(f"{node.op_type} node {node.name!r}: its {what} must be a constant")
        return value

    def node(self, node) -> None:
        op, attrs = node.op_type, _attrs(node)
        ins = [self.values[i] if i else None for i in node.input]
        live = any(v is not None and _symbolic(v) for v in ins)
        if op == "Constant":
            outs = [self._constant(node, attrs)]
        elif op == "Shape":
            outs = [np.array(ins[0].shape, dtype=np.int64)]
        elif op in _LAYOUT:
            outs = self._layout(node, op, attrs, ins)
        elif op in TEMPLATES:
            if op == "Clip":
                lo, hi = self.const(node, 1, "min"), self.const(node, 2, "max")
                ins = [ins[0], np.float32(-np.inf if lo is None else lo),
                       np.float32(np.inf if hi is None else hi)]
            outs = [self._elementwise(TEMPLATES[op], ins, live)]
        elif op == "ReduceSum":
            outs = [self._reduce_sum(node, attrs, ins[0])]
        elif op == "MatMul":
            outs = [self._matmul(node, ins, live)]
        elif op == "Gemm":
            outs = [self._gemm(node, attrs, ins, live)]
        elif op == "GRU":
            outs = self._gru(node, attrs, ins)
        else:
            raise UnsupportedGraph(f"operator {op} (node {node.name!r}) is not compiled")
        if not any(_symbolic(v) for v in outs):
            self.folded += 1
        self.values.update(zip(node.output, outs, strict=False))

    def _constant(self, node, attrs) -> np.ndarray:
        from onnx import numpy_helper
        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"])
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                           ("value_ints", np.int64)):
            if key in attrs:
                return np.array(attrs[key], dtype=dtype)
        raise UnsupportedGraph(f"Constant node {node.name!r} with attributes {sorted(attrs)}")

    def _elementwise(self, template: str, ins: list, live: bool) -> np.ndarray:
        if not live:
            return np.asarray(eval(template.format(*(f"a{i}" for i in range(len(ins)))),  # noqa: S307
                                   {"np": np, **{f"a{i}": v for i, v in enumerate(ins)}}))
        arrays = np.broadcast_arrays(*[np.asarray(v, dtype=object) for v in ins])
        out = np.empty(arrays[0].shape, dtype=object)
        for index in np.ndindex(out.shape):
            name = self.new()
            self.lines.append(f"{name} = " + template.format(*(_text(a[index]) for a in arrays)))
            out[index] = name
        return out

    def _layout(self, node, op, attrs, ins) -> list[np.ndarray]:
        x = ins[0]
        if op == "Identity":
            return [x]
        if op == "Squeeze":
            axes = self.const(node, 1, "axes")
            axes = tuple(d for d in range(x.ndim) if x.shape[d] == 1) if axes is None else \
                tuple(int(a) % x.ndim for a in axes)
            return [np.squeeze(x, axis=axes)]
        if op == "Unsqueeze":
            return [np.expand_dims(x, tuple(int(a) for a in self.const(node, 1, "axes")))]
        if op == "Flatten":
            axis = attrs.get("axis", 1) % max(x.ndim, 1)
            return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
        if op == "Reshape":
            shape = [int(d) for d in self.const(node, 1, "shape")]
            if attrs.get("allowzero", 0) == 0:
                shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
            return [x.reshape(shape)]
        if op == "Transpose":
            return [np.transpose(x, attrs.get("perm"))]
        if op == "Slice":
            starts, ends = self.const(node, 1, "starts"), self.const(node, 2, "ends")
            axes, steps = self.const(node, 3, "axes"), self.const(node, 4, "steps")
            index = [slice(None)] * x.ndim
            axes = range(len(starts)) if axes is None else axes
            steps = [1] * len(starts) if steps is None else steps
            for axis, s, e, step in zip(axes, starts, ends, steps, strict=True):
                index[int(axis) % x.ndim] = slice(int(s), int(e), int(step))
            return [x[tuple(index)]]
        if op == "Split":
            axis = attrs.get("axis", 0) % x.ndim
            sizes = self.const(node, 1, "split")
            n = len(node.output)
            if sizes is None:
                sizes = [x.shape[axis] // n + (1 if i < x.shape[axis] % n else 0) for i in range(n)]
            return np.split(x, np.cumsum([int(s) for s in sizes])[:-1], axis=axis)
        if op == "Gather":
            return [np.take(x, self.const(node, 1, "indices"), axis=attrs.get("axis", 0))]
        if op == "Concat":
            mixed = any(_symbolic(u) for u in ins)
            parts = [v.astype(object) if mixed and not _symbolic(v) else v for v in ins]
            return [np.concatenate(parts, axis=attrs["axis"])]
        shape = tuple(int(d) for d in self.const(node, 1, "shape"))  # Expand
        return [np.broadcast_to(x, np.broadcast_shapes(x.shape, shape)).copy()]

    def _reduce_sum(self, node, attrs, x) -> np.ndarray:
        axes = self.const(node, 1, "axes")
        axes = tuple(range(x.ndim)) if axes is None else tuple(int(a) % x.ndim for a in axes)
        keep = bool(attrs.get("keepdims", 1))
        if not _symbolic(x):
            return np.sum(x, axis=axes, keepdims=keep)
        moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
        flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
        out = np.empty(flat.shape[:-1], dtype=object)
        for index in np.ndindex(out.shape):
            name = self.new()
            self.lines.append(f"{name} = " + " + ".join(_text(e) for e in flat[index]))
            out[index] = name
        return out.reshape(np.sum(np.zeros(x.shape), axis=axes, keepdims=keep).shape)

    def _array(self, value: np.ndarray) -> str:
        """A float32 array in the function holding ``value``: a constant, or packed from its elements."""
        if not _symbolic(value):
            name = self.new("c")
            self.env[name] = np.ascontiguousarray(value, dtype=np.float32)
            return name
        name = self.new("p", lines=value.size + 1)
        self.lines.append(f"{name} = np.empty({value.shape}, np.float32)")
        for index in np.ndindex(value.shape):
            self.lines.append(f"{name}[{', '.join(map(str, index))}] = {_text(value[index])}")
        return name

    def _elements(self, name: str, shape: tuple) -> np.ndarray:
        """Element expressions ``name[i, j, ...]`` of an array the function computed."""
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            out[index] = f"{name}[{', '.join(map(str, index))}]"
        return out

    def _matmul(self, node, ins, live) -> np.ndarray:
        a, b = ins
        if b.ndim != 2 or a.ndim < 2:
            raise UnsupportedGraph(f"MatMul node {node.name!r}: shapes {a.shape} @ {b.shape}; a 2-D right "
                                   "operand and a left operand of rank >= 2 are compiled")
        if not live:
            return np.matmul(a, b)
        lhs = self._array(a.reshape(-1, a.shape[-1]))
        name = self.new("m")
        self.lines.append(f"{name} = matmul({lhs}, {self._array(b)})")
        rows = int(np.prod(a.shape[:-1]))
        return self._elements(name, (rows, b.shape[1])).reshape(*a.shape[:-1], b.shape[1])

    def _gemm(self, node, attrs, ins, live) -> np.ndarray:
        """alpha · A' B' + beta · C, A' and B' transposed where transA, transB say."""
        a = ins[0].T if attrs.get("transA", 0) else ins[0]
        b = ins[1].T if attrs.get("transB", 0) else ins[1]
        y = self._matmul(node, [a, b], live)
        alpha, beta = np.float32(attrs.get("alpha", 1.0)), np.float32(attrs.get("beta", 1.0))
        if alpha != 1:
            y = self._elementwise(TEMPLATES["Mul"], [y, alpha], live)
        if len(ins) > 2 and ins[2] is not None:
            c = ins[2]
            if beta != 1:
                c = self._elementwise(TEMPLATES["Mul"], [c, beta], _symbolic(c))
            y = self._elementwise(TEMPLATES["Add"], [y, c], live)
        return y

    def _gru(self, node, attrs, ins) -> list[np.ndarray]:
        plain = attrs.get("direction", b"forward") in (b"forward", "forward") \
            and attrs.get("linear_before_reset", 0) == 1 and "activations" not in attrs \
            and "clip" not in attrs and attrs.get("layout", 0) == 0 and (len(ins) < 5 or ins[4] is None)
        if not plain:
            raise UnsupportedGraph(f"GRU node {node.name!r}: only forward, linear_before_reset=1, default "
                                   "activations, no clip or sequence_lens are compiled "
                                   f"(got {sorted(attrs)})")
        x = ins[0]
        hidden = int(attrs["hidden_size"])
        w, r = self.const(node, 1, "W"), self.const(node, 2, "R")
        bias = self.const(node, 3, "B")
        bias = np.zeros(6 * hidden, np.float32) if bias is None else bias[0]
        h0 = ins[5] if len(ins) > 5 and ins[5] is not None else np.zeros((1, x.shape[1], hidden), np.float32)
        y, y_h = self.new("y"), self.new("h")
        self.lines.append(f"{y}, {y_h} = gru({self._array(x)}, {self._array(w[0].T)}, {self._array(r[0].T)}, "
                          f"{self._array(bias)}, {self._array(h0.reshape(x.shape[1], hidden))})")
        return [self._elements(y, (x.shape[0], 1, x.shape[1], hidden)),
                self._elements(y_h, (1, x.shape[1], hidden))]


def compile_graph(path, input_shapes: dict[str, tuple[int, ...]]) -> CompiledGraph:
    """Compile the ONNX model at ``path`` for float32 inputs of ``input_shapes`` (name -> shape)."""
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailable(f"the compiled CPU backend needs the onnx package ({exc}); install it with "
                                 "`pip install onnx` (the `edge` extra)") from None

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the ONNX model: {exc}") from None
    shapes = repr(sorted((k, tuple(v)) for k, v in input_shapes.items()))
    key = hashlib.sha256(data + shapes.encode()).hexdigest()
    if key in _COMPILED:
        return _COMPILED[key]
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{path}: not a readable ONNX model: {exc}") from None
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise UnsupportedGraph(f"{path}: opset {opset}; the compiler reads opset {MIN_OPSET} and later")
    graph = model.graph
    writer = _Writer()
    writer.values.update({t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer})
    inputs = [i.name for i in graph.input if i.name not in writer.values]
    typed = [i.name for i in graph.input if i.name in inputs and i.type.tensor_type.elem_type != FLOAT]
    if typed:
        raise UnsupportedGraph(f"{path}: inputs {typed} are not float32")
    if sorted(inputs) != sorted(input_shapes):
        raise InputError(f"{path}: graph inputs {inputs}, shapes given for {sorted(input_shapes)}")
    params = []
    for k, name in enumerate(inputs):
        params.append(f"x{k}")
        writer.values[name] = writer._elements(f"x{k}", tuple(input_shapes[name]))
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedGraph(f"operator {node.domain}.{node.op_type} is not compiled")
        try:
            writer.node(node)
        except UnsupportedGraph as exc:
            raise UnsupportedGraph(f"{path}: {exc}") from None
        except (KeyError, ValueError, IndexError, TypeError) as exc:  # a malformed graph
            raise UnsupportedGraph(f"{path}: {node.op_type} node {node.name!r} cannot be compiled: "
                                   f"{type(exc).__name__}: {exc}") from None
    outputs = []
    for k, out in enumerate(graph.output):
        value = writer.values[out.name]
        outputs.append((out.name, tuple(value.shape)))
        for index in np.ndindex(value.shape):
            writer.lines.append(f"out{k}[{', '.join(map(str, index))}] = {_text(value[index])}")
    args = ", ".join(params + [f"out{k}" for k in range(len(outputs))])
    source = f"def step({args}):\n    " + "\n    ".join(writer.lines) + "\n"
    env = dict(writer.env)
    exec(compile(source, f"<compiled {path}>", "exec"), env)  # noqa: S102 - our own generated source
    compiled = CompiledGraph(run=njit(env["step"]), inputs=tuple((n, tuple(input_shapes[n])) for n in inputs),
                             outputs=tuple(outputs), source=source, folded=writer.folded)
    if len(_COMPILED) >= _KEEP:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = compiled
    return compiled
