"""Convert an ONNX graph to float16 with float32 inputs and outputs, for strongly typed TensorRT builds.

TensorRT 11 dropped ``BuilderFlag.FP16``: a strongly typed network computes in the types its graph
declares, so an fp16 engine needs an fp16 graph. NVIDIA points to ModelOpt's AutoCast for this and
``onnxconverter_common`` has a converter too; neither ships with JetPack, and a bundle's network (Conv,
Gemm/MatMul, element-wise ops, activations, reshapes) needs only the plain rewrite below, so it lives
here (about a hundred lines, no new dependency):

* float32 initializers and ``Constant``/``ConstantOfShape`` values become float16 (a value beyond the
  float16 range, +-65504, is refused rather than turned into infinity);
* ``Cast(to=FLOAT)`` becomes ``Cast(to=FLOAT16)``;
* each float32 graph input gets a ``Cast`` to float16 in front of its consumers and each float32 graph
  output a ``Cast`` back to float32, so the engine's I/O stays float32 and the predictor, the bundle's
  ``meta.json`` and the test vectors do not change with the precision.

The result is type-checked by ONNX's strict shape inference and the full checker; a graph using an
operator whose float inputs cannot be float16 (``Resize`` scales, say) is refused with the checker's
reason, and ``--precision fp32`` still works for it.
"""

from __future__ import annotations

import numpy as np

from myoedge.ground.errors import InputError

__all__ = ["FP16_MAX", "convert_to_fp16"]

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
_SUFFIX = "__fp16"


def _fp16_tensor(tensor, where: str, what: str) -> None:
    """Rewrite a float32 TensorProto in place as float16."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_type != TensorProto.FLOAT:
        return
    if tensor.data_location == TensorProto.EXTERNAL:
        raise InputError(f"{where}: {what} '{tensor.name}' keeps its data in an external file; export the "
                         f"graph as one file to build an fp16 engine")
    values = numpy_helper.to_array(tensor)
    if values.size and not np.all(np.abs(values) <= FP16_MAX):
        worst = float(np.nanmax(np.abs(values))) if np.any(np.isfinite(values)) else float("nan")
        raise InputError(f"{where}: {what} '{tensor.name}' holds values beyond the float16 range "
                         f"(|x| up to {worst:g} > {FP16_MAX:g}); build this model with --precision fp32")
    tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float16), tensor.name))


def _rename_uses(nodes, old: str, new: str) -> None:
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def convert_to_fp16(onnx_bytes: bytes, *, where: str = "model.onnx") -> bytes:
    """The float16 version of a serialised ONNX model; graph inputs and outputs stay float32."""
    import onnx
    from onnx import AttributeProto, TensorProto, helper

    try:
        model = onnx.load_model_from_string(bytes(onnx_bytes))
    except Exception as exc:  # protobuf raises its own DecodeError
        raise InputError(f"{where}: not a readable ONNX model: {exc}") from None
    graph = model.graph
    for node in graph.node:
        if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            raise InputError(f"{where}: node '{node.name or node.op_type}' ({node.op_type}) has a subgraph; "
                             f"the fp16 conversion handles flat graphs only (build with --precision fp32)")

    for init in graph.initializer:
        _fp16_tensor(init, where, "initializer")
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            elif node.op_type in ("Constant", "ConstantOfShape") and attr.name == "value":
                _fp16_tensor(attr.t, where, f"{node.op_type} value of node")
            elif node.op_type == "Constant" and attr.name in ("value_float", "value_floats"):
                raise InputError(f"{where}: Constant node '{node.name}' uses {attr.name}, which is float32 "
                                 f"only; re-export it with a tensor 'value' or build with --precision fp32")
    for info in graph.value_info:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.FLOAT16

    initializers = {t.name for t in graph.initializer}
    front, back = [], []
    for inp in graph.input:
        if inp.name in initializers or inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        internal = inp.name + _SUFFIX
        _rename_uses(graph.node, inp.name, internal)
        front.append(helper.make_node("Cast", [inp.name], [internal], name=f"cast_{inp.name}_to_fp16",
                                      to=TensorProto.FLOAT16))
    input_names = {i.name for i in graph.input}
    for out in graph.output:
        if out.name in input_names or out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        internal = out.name + _SUFFIX
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == out.name:
                    node.output[i] = internal
        _rename_uses(graph.node, out.name, internal)
        back.append(helper.make_node("Cast", [internal], [out.name], name=f"cast_{out.name}_to_fp32",
                                     to=TensorProto.FLOAT))
    nodes = [*front, *graph.node, *back]
    del graph.node[:]
    graph.node.extend(nodes)

    try:
        checked = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        onnx.checker.check_model(checked, full_check=True)
    except Exception as exc:  # InferenceError / ValidationError carry the operator and the reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{where}: the float16 version of the graph does not type-check ({first}); "
                         f"build this model with --precision fp32") from None
    return model.SerializeToString()
