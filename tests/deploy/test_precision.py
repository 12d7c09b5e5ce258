"""Precision handling: build recipes per TensorRT version, deviation checks, and the fp16 graph conversion."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx_models import build_onnx, random_params, reference_outputs

from myoedge.deploy.onnx_fp16 import convert_to_fp16
from myoedge.deploy.precision import RELATIVE_TOLERANCE, build_plan, compare_outputs
from myoedge.ground.errors import InputError


@pytest.mark.parametrize("version, precision, expected", [
    # (strongly_typed, fp16_builder_flag, convert_graph_to_fp16, disable_tf32)
    ("10.3.0.30", "fp32", (False, False, False, True)),  # JetPack 6
    ("10.3.0.30", "fp16", (False, True, False, False)),
    ("11.0.0", "fp32", (True, False, False, True)),  # strongly typed: no precision flags exist
    ("11.1.0", "fp16", (True, False, True, False)),
])
def test_build_plan_per_tensorrt_generation(version, precision, expected):
    plan = build_plan(precision=precision, tensorrt_version=version)
    got = (plan.strongly_typed, plan.fp16_builder_flag, plan.convert_graph_to_fp16, plan.disable_tf32)
    assert got == expected
    assert plan.tensorrt_major == int(version.split(".")[0]) and precision in plan.describe()


@pytest.mark.parametrize("version, precision, match", [("8.6.1", "fp32", "TensorRT 10 or newer"),
                                                       ("trt", "fp32", "TensorRT version"),
                                                       ("10.3.0", "int8", "precision must be one of")])
def test_build_plan_refuses(version, precision, match):
    with pytest.raises(InputError, match=match):
        build_plan(precision=precision, tensorrt_version=version)


def _outputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"theta": rng.uniform(-1.2, 1.2, (4, 1)), "forces": rng.uniform(0.0, 800.0, (4, 3))}


def test_deviation_is_judged_relative_to_each_outputs_peak():
    ref = _outputs()
    report = compare_outputs(ref, ref, precision="fp32")
    assert report.passed and report.worst.max_abs == 0.0
    peak = float(np.abs(ref["forces"]).max())
    for factor, passed in ((0.5, True), (2.0, False)):
        got = {k: v.copy() for k, v in ref.items()}
        got["forces"][2, 1] += factor * RELATIVE_TOLERANCE["fp16"] * peak
        report = compare_outputs(got, ref, precision="fp16")
        assert report.passed is passed and report.worst.name == "forces"
        assert report.worst.relative == pytest.approx(factor * RELATIVE_TOLERANCE["fp16"])
    # the same absolute error on the angle (peak ~1 rad) is far outside the tolerance
    got = {k: v.copy() for k, v in ref.items()}
    got["theta"][0, 0] += 0.5 * RELATIVE_TOLERANCE["fp16"] * peak
    with pytest.raises(InputError, match=r"theta.*EXCEEDS.*--precision fp32"):
        compare_outputs(got, ref, precision="fp16").check(what="engine")


def test_silent_outputs_and_non_finite_values():
    ref = {"theta": np.zeros((3, 1)), "forces": np.zeros((3, 2))}
    got = {"theta": np.full((3, 1), 5e-5), "forces": np.zeros((3, 2))}
    assert compare_outputs(got, ref, precision="fp32").passed  # judged against 1 rad, not against 0
    got["forces"][1, 0] = np.nan
    report = compare_outputs(got, ref, precision="fp32")
    assert not report.passed and math.isinf(report.worst.max_abs)
    assert report.to_dict()["passed"] is False


@pytest.mark.parametrize("candidate, match", [
    ({"theta": np.zeros((3, 1))}, "outputs differ"),
    ({"theta": np.zeros((3, 1)), "forces": np.zeros((2, 2))}, "shape"),
])
def test_mismatched_outputs_are_refused(candidate, match):
    ref = {"theta": np.zeros((3, 1)), "forces": np.zeros((3, 2))}
    with pytest.raises(InputError, match=match):
        compare_outputs(candidate, ref, precision="fp32")


@pytest.fixture(scope="module")
def net():
    params = random_params(window=8, channels=3, muscles=3, filters=6, hidden=(16, 16), seed=3)
    inputs = np.random.default_rng(4).uniform(0.0, 1.0, (6, 8, 3)).astype(np.float32)
    return params, build_onnx(params, window=8), inputs


def test_fp16_graph_keeps_float32_io_and_computes_in_float16(net):
    params, fp32_bytes, inputs = net
    model = onnx.load_model_from_string(convert_to_fp16(fp32_bytes))
    io = [*model.graph.input, *model.graph.output]
    assert [v.type.tensor_type.elem_type for v in io] == [TensorProto.FLOAT] * 3
    assert {t.data_type for t in model.graph.initializer} == {TensorProto.FLOAT16, TensorProto.INT64}
    assert model.graph.node[0].op_type == "Cast" and model.graph.node[-1].op_type == "Cast"

    reference = {k: v for k, v in reference_outputs(params, inputs).items()}
    evaluator = ReferenceEvaluator(model)  # numpy in float16, an independent runtime
    got = [evaluator.run(None, {"envelopes": x[None]}) for x in inputs]
    half = {"theta": np.concatenate([g[0] for g in got]), "forces": np.concatenate([g[1] for g in got])}
    assert all(v.dtype == np.float32 for v in half.values())
    assert compare_outputs(half, reference, precision="fp16").passed
    assert not compare_outputs(half, reference, precision="fp32").passed  # really float16 arithmetic

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    runs = [session.run(None, {"envelopes": x[None]}) for x in inputs]
    via_ort = {"theta": np.concatenate([r[0] for r in runs]), "forces": np.concatenate([r[1] for r in runs])}
    assert compare_outputs(via_ort, reference, precision="fp16").passed


def test_fp16_conversion_refuses_what_float16_cannot_hold(net):
    params, _, _ = net
    big = params.__class__(params.conv_w, params.conv_b, params.dense, params.theta,
                           (params.forces[0] * 1e4, params.forces[1]))
    with pytest.raises(InputError, match=r"'forces_w'.*float16 range.*--precision fp32"):
        convert_to_fp16(build_onnx(big, window=8))
    with pytest.raises(InputError, match="not a readable ONNX model"):
        convert_to_fp16(b"\x08\x01garbage")


def test_fp16_conversion_refuses_float32_only_constructs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Constant", [], ["c"], value_float=2.0),
             helper.make_node("Mul", ["x", "c"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InputError, match="value_float"):
        convert_to_fp16(model.SerializeToString())
    # Resize's scales input must stay float32: the type check reports it instead of emitting a bad graph
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    scales = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "scales")
    resize = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    model = helper.make_model(helper.make_graph([resize], "g", [x], [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, None)], [scales]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True),
                             full_check=True)  # valid as float32
    with pytest.raises(InputError, match="does not type-check"):
        convert_to_fp16(model.SerializeToString())
