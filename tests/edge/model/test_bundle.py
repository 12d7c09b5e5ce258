"""Model bundles: round trip, every validation failure, atomic writes, compatibility checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
from onnx_models import make_bundle

import myoedge
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.model import bundle as bundle_mod
from myoedge.edge.model.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    check_compatible,
    load_bundle,
    write_bundle,
)
from myoedge.ground.errors import FormatError, InputError

MUSCLES = ("FCR", "ECRL", "ECU")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path, _ = make_bundle(tmp_path_factory.mktemp("b") / "bundle", window=8, muscles=MUSCLES)
    return path


@pytest.fixture
def bundle_dir(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "bundle")


def _edit_meta(path, change):
    meta = json.loads((path / "meta.json").read_text())
    change(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def _write_args(path):
    """write_bundle arguments that reproduce the bundle at ``path``."""
    b = load_bundle(path)
    return dict(onnx_bytes=b.onnx_path.read_bytes(), meta=b.meta.to_dict(),
                test_inputs=np.array(b.test_inputs),
                test_outputs={k: np.array(v) for k, v in b.test_outputs.items()})


def test_round_trip_fills_and_exposes_fields(bundle_dir):
    b = load_bundle(bundle_dir)
    assert (b.window, b.n_channels, b.muscles, b.input_rate_hz) == (8, 3, MUSCLES, 100.0)
    assert b.onnx_path == bundle_dir / "model.onnx"
    assert b.meta.format == BUNDLE_FORMAT and b.meta.version == BUNDLE_VERSION == 3
    assert b.meta.myoedge_version == myoedge.__version__
    assert b.meta.created_utc.endswith("Z")
    assert b.meta.onnx.sha256 == hashlib.sha256(b.onnx_path.read_bytes()).hexdigest()
    assert b.adc == default_adc(24) and b.meta.input.shape == (1, 8, 3)
    assert b.test_inputs.shape == (4, 8, 3) and b.test_inputs.dtype == np.float32
    assert {k: v.shape for k, v in b.test_outputs.items()} == {"theta": (4, 1), "forces": (4, 3)}
    assert not b.test_inputs.flags.writeable and not b.test_outputs["forces"].flags.writeable
    assert b.tolerance == 1e-4 and b.emg_rate_hz == 1000.0 and len(b.envelope_hash) == 64

    again = write_bundle(bundle_dir.parent / "copy", **_write_args(bundle_dir))
    b2 = load_bundle(again)
    np.testing.assert_array_equal(b2.test_inputs, b.test_inputs)
    np.testing.assert_array_equal(b2.test_outputs["forces"], b.test_outputs["forces"])
    assert b2.meta.training == b.meta.training and b2.meta.envelope == b.meta.envelope
    assert b2.meta == dataclasses.replace(b.meta, created_utc=b2.meta.created_utc)


@pytest.mark.parametrize("change, field", [
    (lambda m: m.update(version=0), "version"),
    (lambda m: m.update(format="something-else"), "format"),
    (lambda m: m.pop("joint"), "joint"),
    (lambda m: m.pop("physiological_range"), "physiological_range"),
    (lambda m: m["input"].pop("rate_hz"), "input.rate_hz"),
    (lambda m: m["input"].update(shape=[1, 8, 4]), "input.shape"),
    (lambda m: m["input"].update(window=9), "input.shape"),
    (lambda m: m["input"].update(dtype="float16"), "input.dtype"),
    (lambda m: m.update(muscles=["FCR", "ECRL"]), "input.shape"),
    (lambda m: m.update(muscles=["FCR", "FCR", "ECU"]), "muscles"),
    (lambda m: m["outputs"][1].update(shape=[1, 4]), "outputs[1].shape"),
    (lambda m: m["outputs"][0].update(unit="deg"), "outputs[0].unit"),
    (lambda m: m["outputs"].reverse(), "outputs"),
    (lambda m: m["physiological_range"].update(forces_n=[[0, 1]] * 2), "physiological_range.forces_n"),
    (lambda m: m["physiological_range"].update(theta_rad=[1.0, -1.0]), "physiological_range.theta_rad"),
    (lambda m: m["envelope"]["coefficients"].update(decimation=5), "envelope.hash"),
    (lambda m: m.update(emg_rate_hz=2000.0), "envelope.config"),
    (lambda m: m["onnx"].update(file="../model.onnx"), "onnx.file"),
    (lambda m: m["test_vectors"].update(tolerance=0), "test_vectors.tolerance"),
    (lambda m: m.pop("adc"), "adc"),
    (lambda m: m["adc"].update(bits=16), "adc"),
    (lambda m: m["adc"].update(volts_per_count=-1.0), "adc"),
    (lambda m: m.update(version=2), "adc"),
])
def test_meta_validation_names_file_and_field(bundle_dir, change, field):
    _edit_meta(bundle_dir, change)
    with pytest.raises(FormatError) as err:
        load_bundle(bundle_dir)
    assert err.value.path.endswith("meta.json")
    assert field in str(err.value)


def test_newer_version_says_upgrade(bundle_dir):
    _edit_meta(bundle_dir, lambda m: m.update(version=4))
    with pytest.raises(FormatError, match="newer myoedge"):
        load_bundle(bundle_dir)


def test_invalid_json_reports_line(bundle_dir):
    (bundle_dir / "meta.json").write_text('{\n  "format": "myoedge-bundle",\n  oops\n}')
    with pytest.raises(FormatError) as err:
        load_bundle(bundle_dir)
    assert err.value.line == 3


def test_onnx_sha_mismatch(bundle_dir):
    data = bytearray((bundle_dir / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (bundle_dir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(FormatError, match="sha256") as err:
        load_bundle(bundle_dir)
    assert err.value.path.endswith("model.onnx")


@pytest.mark.parametrize("name", ["model.onnx", "test_vectors.npz", "meta.json"])
def test_missing_file(bundle_dir, name):
    (bundle_dir / name).unlink()
    with pytest.raises(FormatError, match="missing") as err:
        load_bundle(bundle_dir)
    assert err.value.path.endswith(name)


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a bundle folder"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "single-array"])
def test_corrupted_npz(bundle_dir, damage):
    path = bundle_dir / "test_vectors.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 50)
    else:
        with open(path, "wb") as f:
            np.save(f, np.zeros((2, 8, 3), np.float32))
    with pytest.raises(FormatError, match="npz") as err:
        load_bundle(bundle_dir)
    assert err.value.path.endswith("test_vectors.npz")


@pytest.mark.parametrize("arrays, message", [
    (dict(envelopes=np.zeros((2, 8, 3), np.float64)), "envelopes"),
    (dict(envelopes=np.zeros((2, 7, 3), np.float32)), "envelopes"),
    (dict(envelopes=np.zeros((2, 8, 3), np.float32), theta=np.zeros((2, 1))), "forces"),
    (dict(envelopes=np.zeros((2, 8, 3), np.float32), theta=np.zeros((3, 1)), forces=np.zeros((2, 3))),
     "theta"),
    (dict(envelopes=np.full((2, 8, 3), np.nan, np.float32), theta=np.zeros((2, 1)),
          forces=np.zeros((2, 3))), "non-finite"),
])
def test_test_vectors_must_match_meta(bundle_dir, arrays, message):
    np.savez(bundle_dir / "test_vectors.npz", **arrays)
    with pytest.raises(FormatError, match=message):
        load_bundle(bundle_dir)


def test_write_refuses_invalid_meta_and_leaves_nothing(bundle_dir, tmp_path):
    args = _write_args(bundle_dir)
    args["meta"]["input"]["window"] = 9
    out = tmp_path / "out"
    with pytest.raises(FormatError, match="input.shape"):
        write_bundle(out / "b", **args)
    assert not out.exists() or list(out.iterdir()) == []


def test_write_failure_midway_leaves_nothing(bundle_dir, tmp_path, monkeypatch):
    args, out = _write_args(bundle_dir), tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(bundle_mod, "load_bundle", lambda p: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_bundle(out / "b", **args)
    assert list(out.iterdir()) == []


def test_overwrite_failure_keeps_old_bundle(bundle_dir, monkeypatch):
    args = _write_args(bundle_dir)
    before = (bundle_dir / "meta.json").read_text()
    with pytest.raises(InputError, match="already exists"):
        write_bundle(bundle_dir, **args)
    monkeypatch.setattr(bundle_mod, "load_bundle", lambda p: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_bundle(bundle_dir, overwrite=True, **args)
    assert (bundle_dir / "meta.json").read_text() == before
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["bundle"]


def test_write_rejects_mismatched_test_outputs(bundle_dir, tmp_path):
    args = _write_args(bundle_dir)
    args["test_outputs"]["forces"] = args["test_outputs"]["forces"][:, :2]
    with pytest.raises(FormatError, match="forces"):
        write_bundle(tmp_path / "b", **args)
    assert not (tmp_path / "b").exists()


def test_check_compatible(bundle_dir):
    b = load_bundle(bundle_dir)
    check_compatible(b, muscles=list(MUSCLES), envelope_hash=b.envelope_hash, emg_rate_hz=1000)
    with pytest.raises(InputError, match="different channel order"):
        check_compatible(b, muscles=("ECU", "ECRL", "FCR"))
    with pytest.raises(InputError, match="trained on muscles"):
        check_compatible(b, muscles=("FCR", "ECRL"))
    with pytest.raises(InputError, match="envelope hash"):
        check_compatible(b, envelope_hash="0" * 64)
    with pytest.raises(InputError, match="2000 Hz"):
        check_compatible(b, emg_rate_hz=2000.0)


_RANGE = {"min": [0.0] * 3, "lo": [0.01] * 3, "hi": [1.2] * 3, "max": [1.5] * 3, "percentiles": [0.1, 99.9]}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_input_range_is_optional_in_every_version(bundle_dir, version):
    def change(meta):
        meta["version"] = version
        if version < 3:
            meta.pop("adc")
    _edit_meta(bundle_dir, change)
    assert load_bundle(bundle_dir).meta.input_range is None
    _edit_meta(bundle_dir, lambda m: m.update(input_range=_RANGE))
    meta = load_bundle(bundle_dir).meta
    assert meta.input_range.max == (1.5,) * 3 and meta.input_range.percentiles == (0.1, 99.9)
    assert meta.to_dict()["input_range"] == _RANGE


@pytest.mark.parametrize("change, field", [
    (lambda r: r.update(max=[1.5, 1.5]), "input_range.max"),
    (lambda r: r.update(hi=[1.2, float("nan"), 1.2]), "input_range.hi"),
    (lambda r: r.pop("min"), "input_range.min"),
    (lambda r: r.update(percentiles=[99.9, 0.1]), "input_range.percentiles"),
    (lambda r: r.update(lo=[2.0] * 3), "input_range (channel 0)"),
])
def test_a_bad_input_range_is_refused_naming_the_field(bundle_dir, change, field):
    block = json.loads(json.dumps(_RANGE))
    change(block)
    _edit_meta(bundle_dir, lambda m: m.update(input_range=block))
    with pytest.raises(FormatError) as err:
        load_bundle(bundle_dir)
    assert field in str(err.value)
