"""Predictors: ONNX Runtime against an independent numpy reference, the predictor contract, backend
selection, and TensorRT (its tests run only where tensorrt and pycuda are installed)."""

from __future__ import annotations

import logging
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from onnx_models import build_onnx, make_bundle, random_params, reference_outputs

from myoedge.edge.model import (
    BackendUnavailable,
    OnnxCpuPredictor,
    StaleEngine,
    TensorRTPredictor,
    default_engine_path,
    replay_test_vectors,
    select_predictor,
)
from myoedge.edge.model.bundle import load_bundle, write_bundle
from myoedge.edge.model.onnx_cpu import session_options
from myoedge.ground.errors import InputError

WINDOW, MUSCLES = 8, ("FCR", "ECRL", "ECU")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path, params = make_bundle(tmp_path_factory.mktemp("b") / "bundle", window=WINDOW, muscles=MUSCLES)
    return load_bundle(path), params


@pytest.fixture
def predictor(small):
    with OnnxCpuPredictor(small[0]) as p:
        yield p


def test_onnx_matches_numpy_reference(small, predictor):
    _, params = small
    windows = np.random.default_rng(7).uniform(0.0, 2.0, (20, WINDOW, len(MUSCLES))).astype(np.float32)
    ref = reference_outputs(params, windows)
    for k, window in enumerate(windows):
        out = predictor.predict(window)
        np.testing.assert_allclose(out["theta"][0], ref["theta"][k], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["forces"][0], ref["forces"][k], rtol=1e-5, atol=1e-3)
    assert predictor.input_spec.shape == (1, WINDOW, 3) and predictor.input_spec.name == "envelopes"
    assert [(s.name, s.shape) for s in predictor.output_specs] == [("theta", (1, 1)), ("forces", (1, 3))]


def test_outputs_are_preallocated_and_overwritten(small, predictor):
    bundle, _ = small
    first = predictor.predict(bundle.test_inputs[0])
    theta, forces = first["theta"], first["forces"]
    kept = forces.copy()
    second = predictor.predict(bundle.test_inputs[1])
    assert second is first and second["theta"] is theta and second["forces"] is forces
    assert not np.array_equal(forces, kept)  # the next call wrote into the same array
    np.testing.assert_allclose(forces[0], bundle.test_outputs["forces"][1], atol=1e-3)


def test_steady_state_retains_no_memory(small, predictor):
    window = np.array(small[0].test_inputs[0])
    for _ in range(50):
        predictor.predict(window)
    grown = []  # bytes still held after each round; ORT's bindings cache a little now and then
    tracemalloc.start()
    try:
        for _ in range(3):
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(1000):
                predictor.predict(window)
            grown.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    assert min(grown) < 1000, f"Python/numpy memory retained per 1000 calls: {grown} bytes"


@pytest.mark.parametrize("window, expected", [
    (np.zeros((WINDOW, 4), np.float32), "float32 (8, 4)"),
    (np.zeros((1, WINDOW, 3), np.float32), "float32 (1, 8, 3)"),
    (np.zeros((WINDOW, 3), np.float64), "float64 (8, 3)"),
    ([[0.0] * 3] * WINDOW, "list"),
])
def test_bad_window_says_expected_and_got(predictor, window, expected):
    with pytest.raises(InputError) as err:
        predictor.predict(window)
    assert "(8, 3)" in str(err.value) and expected in str(err.value)


def test_non_contiguous_window_is_accepted(small, predictor):
    bundle, _ = small
    strided = np.asfortranarray(bundle.test_inputs[2])
    assert not strided.flags.c_contiguous
    out = predictor.predict(strided)
    np.testing.assert_allclose(out["forces"][0], bundle.test_outputs["forces"][2], atol=1e-3)


def test_close_is_idempotent_and_final(small):
    p = OnnxCpuPredictor(small[0])
    p.close()
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.predict(small[0].test_inputs[0])


def test_session_is_single_threaded_without_spinning():
    opts = session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_replay_passes_and_fails(small, predictor, tmp_path):
    bundle, params = small
    assert replay_test_vectors(bundle, predictor).check().deviation < bundle.tolerance
    meta = bundle.meta.to_dict()
    wrong = {k: np.array(v) for k, v in bundle.test_outputs.items()}
    wrong["forces"][2, 1] += 0.5
    bad = load_bundle(write_bundle(tmp_path / "bad", onnx_bytes=bundle.onnx_path.read_bytes(), meta=meta,
                                   test_inputs=np.array(bundle.test_inputs), test_outputs=wrong))
    with pytest.raises(InputError, match=r"0\.5 on 'forces' \(test vector 2\)"):
        replay_test_vectors(bad, predictor).check()


def test_graph_disagreeing_with_meta_is_refused(small, tmp_path):
    bundle, _ = small
    other = random_params(window=WINDOW + 1, channels=3, muscles=3, filters=4, hidden=(8,))
    b = load_bundle(write_bundle(tmp_path / "b", onnx_bytes=build_onnx(other, window=WINDOW + 1),
                                 meta=bundle.meta.to_dict(),
                                 test_inputs=np.array(bundle.test_inputs),
                                 test_outputs={k: np.array(v) for k, v in bundle.test_outputs.items()}))
    with pytest.raises(InputError, match=r"envelopes float32 \[1, 9, 3\] where the bundle declares"):
        OnnxCpuPredictor(b)


def test_auto_without_engine_uses_onnx(small, caplog):
    with caplog.at_level(logging.INFO, logger="myoedge.edge"):
        p = select_predictor(small[0])
    assert isinstance(p, OnnxCpuPredictor)
    lines = [r.getMessage() for r in caplog.records if r.name == "myoedge.edge"]
    assert len(lines) == 1 and "onnxruntime-cpu" in lines[0] and "no TensorRT engine" in lines[0]


def test_auto_falls_back_when_tensorrt_is_absent(small, tmp_path, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not used")
    with caplog.at_level(logging.INFO, logger="myoedge.edge"):
        p = select_predictor(small[0], engine_path=engine)
    assert isinstance(p, OnnxCpuPredictor)
    records = [r for r in caplog.records if r.name == "myoedge.edge"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "onnxruntime-cpu" in records[0].getMessage() and "python3-libnvinfer" in records[0].getMessage()
    with pytest.raises(BackendUnavailable, match="python3-libnvinfer"):
        select_predictor(small[0], backend="tensorrt", engine_path=engine)


def test_selection_errors(small, tmp_path):
    bundle = small[0]
    assert default_engine_path(bundle) == bundle.path / "model.engine"
    with pytest.raises(InputError, match="backend must be one of"):
        select_predictor(bundle, backend="cuda")
    with pytest.raises(InputError, match="does not exist"):
        select_predictor(bundle, engine_path=tmp_path / "missing.engine")
    with pytest.raises(InputError, match="needs an engine"):
        select_predictor(bundle, backend="tensorrt")
    assert isinstance(select_predictor(bundle, backend="onnxruntime"), OnnxCpuPredictor)


def test_tensorrt_module_imports_without_tensorrt(small):
    code = ("import sys; sys.modules['tensorrt'] = None; sys.modules['pycuda'] = None\n"
            "import myoedge.edge.model.tensorrt as m\n"
            "from myoedge.edge.model.bundle import load_bundle\n"
            "try:\n    m.TensorRTPredictor(load_bundle(sys.argv[1]), 'x.engine')\n"
            "except m.BackendUnavailable as e:\n    print('unavailable:', e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(small[0].path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("unavailable:") and "pip install pycuda" in out.stdout


# --- TensorRT: only where it is installed (the Jetson, a CUDA workstation) --------------------------------

def _build_engine(onnx_path, engine_path, onnx_sha256):
    """Build an fp32 engine of ``onnx_path`` and vouch for it (as ``build-engine`` would) as a plan of the
    bundle whose ONNX hash is ``onnx_sha256``."""
    from myoedge.deploy.cache import EngineKey, store_engine  # the test plays the builder's part

    trt = pytest.importorskip("tensorrt")
    cuda = pytest.importorskip("pycuda.driver")
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    blob = builder.build_serialized_network(network, builder.create_builder_config())
    cuda.init()
    major, minor = cuda.Device(0).compute_capability()
    key = EngineKey(compute_capability=f"{major}.{minor}", tensorrt_version=str(trt.__version__),
                    onnx_sha256=onnx_sha256, precision="fp32")
    return store_engine(engine_path, bytes(blob), key=key)


def test_tensorrt_reproduces_test_vectors(small, tmp_path):
    bundle, _ = small
    engine = _build_engine(bundle.onnx_path, tmp_path / "model.engine", bundle.meta.onnx.sha256)
    with TensorRTPredictor(bundle, engine) as p:
        assert p.name == "tensorrt-fp32" and p.precision == "fp32"
        assert replay_test_vectors(bundle, p).check().deviation < bundle.tolerance
        first = p.predict(bundle.test_inputs[0])
        assert p.predict(bundle.test_inputs[1])["forces"] is first["forces"]
    with select_predictor(bundle, engine_path=engine) as p:
        assert p.name == "tensorrt-fp32"
    engine.with_name(engine.name + ".json").unlink()  # an engine nothing vouches for is never loaded
    with pytest.raises(StaleEngine, match="no sidecar"):
        select_predictor(bundle, engine_path=engine)


def test_tensorrt_refuses_engine_of_another_graph(small, tmp_path):
    bundle, _ = small
    other = random_params(window=WINDOW + 1, channels=3, muscles=3, filters=4, hidden=(8,))
    onnx_path = tmp_path / "other.onnx"
    onnx_path.write_bytes(build_onnx(other, window=WINDOW + 1))
    engine = _build_engine(onnx_path, tmp_path / "other.engine", bundle.meta.onnx.sha256)  # lies
    with pytest.raises(InputError, match="engine inputs disagree"):
        TensorRTPredictor(bundle, engine)
