"""The engine-cache checks as the edge runtime uses them: one definition shared with ``deploy``, no import
of ``deploy`` from ``edge``, and the load-time check that refuses every kind of stale engine.

Key validation, sidecar parsing and tampering are covered by tests/deploy/test_cache.py (through the
re-exports); here the runtime side is pinned, including the TensorRT predictor's wiring, with stand-in
``tensorrt`` and ``pycuda`` modules so it runs without a GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
from onnx_models import make_bundle

from myoedge.deploy import cache, precision
from myoedge.deploy.cache import store_engine
from myoedge.edge.model import ENGINE_FILE, TensorRTPredictor, default_engine_path, engine_cache
from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.model.engine_cache import EngineKey, StaleEngine, check_for_runtime, sidecar_path
from myoedge.ground.errors import InputError

TRT, CC = "10.3.0.30", "8.7"
BLOB = b"\x00plan\xff" * 16


@pytest.fixture
def bundle(tmp_path):
    return load_bundle(make_bundle(tmp_path / "bundle")[0])


def _vouched(bundle, precision="fp16", **change):
    fields = dict(compute_capability=CC, tensorrt_version=TRT, onnx_sha256=bundle.meta.onnx.sha256,
                  precision=precision) | change
    return store_engine(default_engine_path(bundle), BLOB, key=EngineKey(**fields))


def _check(bundle, engine, *, trt=TRT, cc=CC, sha=None):
    return check_for_runtime(engine, onnx_sha256=sha or bundle.meta.onnx.sha256, tensorrt_version=trt,
                             compute_capability=cc)


def test_one_definition_shared_with_deploy():
    for name in ("EngineKey", "GpuTarget", "CacheCheck", "StaleEngine", "check_cached", "read_sidecar",
                 "require_usable", "sidecar_path", "sha256_file", "SIDECAR_FORMAT", "ENGINE_FILE"):
        assert getattr(cache, name) is getattr(engine_cache, name), name
    assert precision.check_precision is engine_cache.check_precision
    assert precision.PRECISIONS == engine_cache.PRECISIONS == ("fp32", "fp16")
    assert ENGINE_FILE == "model.engine" and issubclass(StaleEngine, InputError)


def test_edge_backends_never_import_deploy():
    code = ("import sys, myoedge.edge.model, myoedge.edge.model.engine_cache\n"
            "print(sorted(m for m in sys.modules if m.startswith('myoedge.deploy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("recorded", ["fp16", "fp32"])
def test_runtime_accepts_a_vouched_engine_at_the_recorded_precision(bundle, recorded):
    engine = _vouched(bundle, recorded)
    key = _check(bundle, engine)
    assert key.precision == recorded and key.tensorrt_version == TRT and key.compute_capability == CC


@pytest.mark.parametrize("kwargs, field", [
    ({"trt": "10.4.0.26"}, "tensorrt_version"),
    ({"cc": "8.6"}, "compute_capability"),
    ({"sha": "0" * 64}, "onnx_sha256"),
])
def test_runtime_refuses_an_engine_for_another_configuration(bundle, kwargs, field):
    engine = _vouched(bundle)
    with pytest.raises(StaleEngine, match=f"another configuration: {field} .*myoedge build-engine"):
        _check(bundle, engine, **kwargs)


def test_runtime_refuses_unvouched_broken_or_changed_engines(bundle):
    engine = _vouched(bundle)
    engine.write_bytes(BLOB + b"x")  # swapped or truncated after the build
    with pytest.raises(StaleEngine, match="changed after it was built.*myoedge build-engine"):
        _check(bundle, engine)

    sidecar_path(engine).unlink()  # e.g. copied in by hand
    with pytest.raises(StaleEngine, match="has no sidecar model.engine.json.*myoedge build-engine"):
        _check(bundle, engine)

    sidecar_path(engine).write_text("{broken")
    with pytest.raises(StaleEngine, match="unusable sidecar.*not valid JSON"):
        _check(bundle, engine)

    record = {"format": "myoedge-engine", "version": 1, "engine_sha256": "0" * 64,
              "key": {"compute_capability": CC, "tensorrt_version": TRT, "precision": "int8",
                      "onnx_sha256": bundle.meta.onnx.sha256}}
    sidecar_path(engine).write_text(json.dumps(record))
    with pytest.raises(StaleEngine, match="unusable sidecar.*precision must be one of"):
        _check(bundle, engine)

    engine.unlink()
    with pytest.raises(StaleEngine, match="no engine at"):
        _check(bundle, engine)


# --- the predictor's wiring, with stand-ins for tensorrt and pycuda ---------------------------------------

@pytest.fixture
def fake_gpu(monkeypatch):
    """Install stand-in tensorrt/pycuda modules; ``calls`` records what the predictor did with them."""
    calls = []

    class Context:
        def push(self):
            calls.append("push")

        def pop(self):
            calls.append("pop")

        def detach(self):
            calls.append("detach")

    class Device:
        def __init__(self, index):
            self.index = index

        def compute_capability(self):
            return (8, 7)

        def retain_primary_context(self):
            calls.append("context")
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            calls.append(("deserialize", len(blob)))
            return None  # stop here: what follows needs a real GPU

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    trt = types.SimpleNamespace(__version__=TRT, Runtime=Runtime, Logger=Logger)
    driver = types.SimpleNamespace(init=lambda: calls.append("init"), Device=Device)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", types.SimpleNamespace(driver=driver))
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return calls


def test_predictor_checks_the_sidecar_before_deserialising(bundle, fake_gpu):
    engine = _vouched(bundle, tensorrt_version="10.2.0.19")
    with pytest.raises(StaleEngine, match="tensorrt_version '10.2.0.19' \\(wanted '10.3.0.30'\\)"):
        TensorRTPredictor(bundle, engine)
    assert "context" not in fake_gpu and not any(isinstance(c, tuple) for c in fake_gpu)

    engine = _vouched(bundle, compute_capability="7.2")  # a Xavier engine on an Orin
    with pytest.raises(StaleEngine, match="compute_capability '7.2' \\(wanted '8.7'\\)"):
        TensorRTPredictor(bundle, engine)

    engine = _vouched(bundle)  # matches: the check passes and TensorRT gets the bytes
    with pytest.raises(InputError, match="could not deserialise") as info:
        TensorRTPredictor(bundle, engine)
    assert not isinstance(info.value, StaleEngine)
    assert ("deserialize", len(BLOB)) in fake_gpu and fake_gpu[-2:] == ["pop", "detach"]


def test_predictor_without_sidecar_check_is_for_the_builder_only(bundle, fake_gpu):
    engine = default_engine_path(bundle)
    engine.write_bytes(BLOB)  # a fresh build, not yet vouched for
    with pytest.raises(StaleEngine, match="no sidecar"):
        TensorRTPredictor(bundle, engine)
    with pytest.raises(InputError, match="could not deserialise"):
        TensorRTPredictor(bundle, engine, check_sidecar=False)
