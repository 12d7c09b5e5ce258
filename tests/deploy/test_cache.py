"""Engine cache: keys, sidecar validation, and refusal of stale, foreign or tampered engines."""

from __future__ import annotations

import dataclasses
import json

import pytest
from onnx_models import make_bundle

from myoedge.deploy import cache
from myoedge.deploy.cache import (
    EngineKey,
    GpuTarget,
    StaleEngine,
    check_cached,
    engine_key,
    engine_path,
    read_sidecar,
    require_usable,
    sidecar_path,
    store_engine,
)
from myoedge.edge.model import default_engine_path
from myoedge.edge.model.bundle import load_bundle
from myoedge.ground.errors import FormatError, InputError

ORIN = GpuTarget(compute_capability="8.7", tensorrt_version="10.3.0.30", device_name="Orin")
BLOB = b"\x00engine bytes\xff" * 10


def _stored(bundle, precision="fp16", target=ORIN):
    key = engine_key(bundle, precision=precision, target=target)
    return store_engine(engine_path(bundle), BLOB, key=key, details={"build_seconds": 1.5}), key


def test_key_is_made_of_gpu_tensorrt_model_hash_and_precision(bundle):
    key = engine_key(bundle, precision="fp16", target=ORIN)
    assert key.to_dict() == {"compute_capability": "8.7", "tensorrt_version": "10.3.0.30",
                             "onnx_sha256": bundle.meta.onnx.sha256, "precision": "fp16"}
    assert EngineKey.from_dict(key.to_dict()) == key
    other = dataclasses.replace(key, precision="fp32", tensorrt_version="10.4.0")
    assert other.differences(key) == ["tensorrt_version '10.4.0' (wanted '10.3.0.30')",
                                      "precision 'fp32' (wanted 'fp16')"]
    assert key.differences(key) == []


@pytest.mark.parametrize("field, value", [("compute_capability", "sm87"), ("compute_capability", "8"),
                                          ("tensorrt_version", " "), ("onnx_sha256", "abc"),
                                          ("precision", "int8")])
def test_key_fields_are_validated(bundle, field, value):
    d = engine_key(bundle, precision="fp32", target=ORIN).to_dict() | {field: value}
    with pytest.raises(InputError, match=field if field != "precision" else "precision"):
        EngineKey.from_dict(d)
    with pytest.raises(InputError, match="exactly the fields"):
        EngineKey.from_dict({k: v for k, v in d.items() if k != field})


def test_engine_lives_where_the_edge_runtime_looks(bundle, tmp_path):
    assert engine_path(bundle) == default_engine_path(bundle)
    assert engine_path(bundle, tmp_path) == tmp_path / "model.engine"
    assert sidecar_path(tmp_path / "model.engine") == tmp_path / "model.engine.json"


def test_stored_engine_is_usable_for_its_own_key(fresh_bundle):
    path, key = _stored(fresh_bundle)
    assert path.read_bytes() == BLOB
    check = check_cached(path, key)
    assert check.usable, check.reason
    assert require_usable(path, key) == path
    side = read_sidecar(path)
    assert side["key"] == key and side["engine_bytes"] == len(BLOB) and side["build"]["build_seconds"] == 1.5


@pytest.mark.parametrize("change, field", [
    ({"tensorrt_version": "10.4.0.1"}, "tensorrt_version"),
    ({"compute_capability": "8.6"}, "compute_capability"),
    ({"precision": "fp32"}, "precision"),
])
def test_foreign_engine_is_refused(fresh_bundle, change, field):
    path, key = _stored(fresh_bundle)
    wanted = dataclasses.replace(key, **change)
    check = check_cached(path, wanted)
    assert not check.usable and field in check.reason
    with pytest.raises(StaleEngine, match=f"{field}.*myoedge build-engine"):
        require_usable(path, wanted)


def test_engine_of_a_reexported_model_is_stale(tmp_path):
    first = load_bundle(make_bundle(tmp_path / "a", seed=0)[0])
    second = load_bundle(make_bundle(tmp_path / "b", seed=1)[0])
    path, _ = _stored(first)
    check = check_cached(path, engine_key(second, precision="fp16", target=ORIN))
    assert not check.usable and "onnx_sha256" in check.reason


def test_tampered_or_orphaned_engines_are_refused(fresh_bundle):
    path, key = _stored(fresh_bundle)
    path.write_bytes(BLOB[:-1])  # truncated copy
    assert "changed after it was built" in check_cached(path, key).reason

    path, key = _stored(fresh_bundle)
    sidecar_path(path).unlink()
    assert "no sidecar" in check_cached(path, key).reason

    sidecar_path(path).write_text("{not json")
    assert "unusable sidecar" in check_cached(path, key).reason

    record = {"format": "myoedge-engine", "version": 1, "key": {"precision": "fp16"},
              "engine_sha256": "0" * 64}
    sidecar_path(path).write_text(json.dumps(record))
    assert "field 'key'" in check_cached(path, key).reason
    with pytest.raises(FormatError, match="field 'key'"):
        read_sidecar(path)

    path.unlink()
    assert not check_cached(path, key).usable and "no engine" in check_cached(path, key).reason


def test_store_moves_a_finished_file_into_place(fresh_bundle):
    key = engine_key(fresh_bundle, precision="fp32", target=ORIN)
    target = engine_path(fresh_bundle)
    pending = target.with_name(".model.engine.pending")
    pending.write_bytes(BLOB)
    store_engine(target, pending, key=key)
    assert not pending.exists() and target.read_bytes() == BLOB and check_cached(target, key).usable


def test_interrupted_replacement_leaves_no_vouched_engine(fresh_bundle, monkeypatch):
    path, key = _stored(fresh_bundle)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache, "atomic_write_bytes", crash)
    with pytest.raises(OSError):
        store_engine(path, b"new engine", key=key)
    assert path.read_bytes() == BLOB  # the old engine is still there ...
    assert not check_cached(path, key).usable  # ... but nothing vouches for it any more
