"""Engine building: the clear error without TensorRT, the builder's use of the TensorRT API (against a
recording stand-in), test-vector replay, and the real TensorRT path where TensorRT and pycuda exist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from myoedge.cli import main
from myoedge.deploy.cache import check_cached, engine_key, sidecar_path
from myoedge.deploy.engine import build_engine, build_serialized_engine
from myoedge.deploy.precision import build_plan
from myoedge.ground.errors import InputError


def test_without_tensorrt_build_engine_exits_2_with_what_to_install(bundle_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail on any machine
    assert main(["build-engine", str(bundle_dir), "--precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("myoedge build-engine:") and "python3-libnvinfer" in err
    assert "--system-site-packages" in err and "pycuda" in err
    assert not (bundle_dir / "model.engine").exists()


def test_the_rest_of_myoedge_does_not_import_tensorrt():
    code = ("import sys, myoedge.cli, myoedge.deploy.engine, myoedge.deploy.cli, myoedge.deploy.firmware\n"
            "myoedge.cli.build_parser()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'pycuda')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_input_is_reported_before_any_build(tmp_path, bundle_dir, capsys):
    assert main(["build-engine", str(tmp_path / "missing")]) == 2
    assert "not a bundle folder" in capsys.readouterr().err
    with pytest.raises(InputError, match="precision must be one of"):
        build_engine(bundle_dir, precision="int8")
    with pytest.raises(InputError, match="workspace_mib"):
        build_engine(bundle_dir, workspace_mib=4)


class FakeTensorRT:
    """Records how the builder drives TensorRT's Python API (names as in TensorRT 10)."""

    __version__ = "10.3.0.30"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    class BuilderFlag:
        FP16, TF32 = "FP16", "TF32"

    def __init__(self, *, input_shape=(-1, 8, 3), input_name="envelopes", parse_ok=True, result=b"plan"):
        self.calls: list[tuple] = []
        self.tensor = type("Tensor", (), {"name": input_name, "shape": input_shape})()
        fake = self

        class Network:
            num_inputs = 1

            def get_input(self, i):
                return fake.tensor

        class Parser:
            num_errors = 0 if parse_ok else 1

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                fake.calls.append(("parse", len(data)))
                return parse_ok

            def get_error(self, i):
                return "In node 3 (Conv): unsupported"

        class Config:
            def set_memory_pool_limit(self, pool, size):
                fake.calls.append(("pool", pool, size))

            def set_flag(self, flag):
                fake.calls.append(("set", flag))

            def clear_flag(self, flag):
                fake.calls.append(("clear", flag))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.calls.append(("network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def build_serialized_network(self, network, config):
                fake.calls.append(("build", tuple(fake.tensor.shape)))
                return result

        self.Builder, self.OnnxParser = Builder, Parser


def _build(trt, precision, version="10.3.0.30"):
    plan = build_plan(precision=precision, tensorrt_version=version)
    return build_serialized_engine(trt, b"onnx", plan=plan, input_shapes={"envelopes": (1, 8, 3)},
                                   workspace_bytes=1 << 28, where="m.onnx")


@pytest.mark.parametrize("precision, version, flags", [("fp16", "10.3.0.30", [("set", "FP16")]),
                                                       ("fp32", "10.3.0.30", [("clear", "TF32")]),
                                                       ("fp16", "11.0.0", [])])
def test_builder_pins_the_input_shape_and_sets_the_precision(precision, version, flags):
    trt = FakeTensorRT()
    assert _build(trt, precision, version) == b"plan"
    assert trt.calls[0] == ("network", 0) and ("pool", "WORKSPACE", 1 << 28) in trt.calls
    assert [c for c in trt.calls if c[0] in ("set", "clear")] == flags
    assert trt.calls[-1] == ("build", (1, 8, 3))  # the dynamic batch axis is pinned to the bundle's 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"input_shape": (1, 9, 3)}, InputError, r"shape \[1, 9, 3\], meta.json declares \[1, 8, 3\]"),
    ({"input_name": "x"}, InputError, "'x' is not declared"),
    ({"parse_ok": False}, InputError, "parser rejected the graph: In node 3"),
    ({"result": None}, RuntimeError, "could not build"),
])
def test_builder_failures_are_explained(kwargs, error, match):
    with pytest.raises(error, match=match):
        _build(FakeTensorRT(**kwargs), "fp32")


# --- the real thing: only where TensorRT (JetPack, or NVIDIA's wheels on a CUDA machine) is installed ---

@pytest.fixture
def real_tensorrt():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (JetPack provides it on the Jetson)")
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed (needed to run the engine)")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_engine_build_verify_and_cache(real_tensorrt, fresh_bundle, precision):
    first = build_engine(fresh_bundle.path, precision=precision)
    assert not first.reused and first.report.passed and first.engine_path.is_file()
    assert check_cached(first.engine_path, first.key).usable
    assert first.key == engine_key(fresh_bundle, precision=precision, target=first.target)
    again = build_engine(fresh_bundle.path, precision=precision)
    assert again.reused and again.report.passed
    other = "fp16" if precision == "fp32" else "fp32"
    switched = build_engine(fresh_bundle.path, precision=other)  # a key change rebuilds
    assert not switched.reused and "precision" in switched.reason
    sidecar_path(switched.engine_path).unlink()  # an engine of unknown origin is rebuilt, never loaded
    assert not build_engine(fresh_bundle.path, precision=other).reused
