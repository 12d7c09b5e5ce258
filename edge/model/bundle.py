"""Model bundles: the only form in which a trained model leaves training (format in docs/bundle.md).

A bundle is a folder holding ``model.onnx``, ``meta.json`` and ``test_vectors.npz``. Every consumer
(the edge runtime, the engine builder, calibration) reads it through :func:`load_bundle`, which checks
the whole contract — schema, ONNX file hash, shapes against muscles and window, test vectors — so a
mismatch is refused with a message naming the file and field instead of producing wrong forces.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import io
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import myoedge
from myoedge.edge.dsp.envelope import EnvelopeConfig, hash_coefficients
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_directory

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_VERSION", "INPUT_NAME", "OUTPUT_UNITS", "Bundle", "check_compatible",
    "load_bundle", "write_bundle",
]

BUNDLE_FORMAT = "myoedge-bundle"
BUNDLE_VERSION = 2  # 2 adds the optional "state" block of a stateful model; 1 still loads
READABLE_VERSIONS = (1, 2)
STATE_NAMES = ("state", "state_next")  # graph input and output of a stateful model
META_FILE = "meta.json"
INPUT_NAME = "envelopes"
OUTPUT_UNITS = {"theta": "rad", "forces": "N"}  # output name -> unit, in graph order
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = ("format", "version", "created_utc", "myoedge_version", "name", "joint", "muscles", "input",
             "emg_rate_hz", "envelope", "outputs", "physiological_range", "training", "onnx", "test_vectors")


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded, validated bundle. ``test_outputs`` maps output name -> reference (K, *shape[1:])."""

    path: Path
    meta: dict
    onnx_path: Path
    window: int
    n_channels: int
    muscles: tuple[str, ...]
    input_rate_hz: float
    test_inputs: np.ndarray
    test_outputs: dict[str, np.ndarray]

    @property
    def tolerance(self) -> float:
        """Max abs deviation allowed between a predictor and the reference outputs."""
        return float(self.meta["test_vectors"]["tolerance"])

    @property
    def envelope_hash(self) -> str:
        return self.meta["envelope"]["hash"]

    @property
    def emg_rate_hz(self) -> float:
        return float(self.meta["emg_rate_hz"])

    @property
    def state(self) -> dict | None:
        """The ``state`` block of a stateful model (size, initial, warmup_steps), or None."""
        return self.meta.get("state")

    @property
    def stateful(self) -> bool:
        return "state" in self.meta

    @property
    def warmup_steps(self) -> int:
        """Model-rate steps after a state reset before estimates are trusted (0 for window models)."""
        return int(self.meta["state"]["warmup_steps"]) if self.stateful else 0


def _fail(where: Path, field: str, expected: str, got) -> FormatError:
    return FormatError(where, f"field '{field}': expected {expected}, got {got!r}")


def _number(meta: dict, keys: tuple[str, ...], where: Path, *, positive: bool = True) -> float:
    value = meta
    for k in keys:
        value = value[k]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        expected = "a positive finite number" if positive else "a finite number"
        raise _fail(where, ".".join(keys), expected, value)
    return float(value)


def _range(value, field: str, where: Path) -> None:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or not value[0] < value[1]:
        raise _fail(where, field, "[lo, hi] with finite lo < hi", value)


def _plain_file_name(value, field: str, where: Path) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        raise _fail(where, field, "a file name inside the bundle folder", value)
    return value


def validate_meta(meta, where: Path) -> dict:
    """Check ``meta`` against the schema of its version; return it. ``where`` names the file in errors."""
    if not isinstance(meta, dict):
        raise FormatError(where, f"expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != BUNDLE_FORMAT:
        raise _fail(where, "format", f"'{BUNDLE_FORMAT}' (is this a model bundle?)", meta.get("format"))
    version = meta.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        newer = isinstance(version, int) and version > BUNDLE_VERSION
        hint = " (written by a newer myoedge; upgrade to read it)" if newer else ""
        raise _fail(where, "version", f"one of {list(READABLE_VERSIONS)}{hint}", version)
    missing = [k for k in _TOP_KEYS if k not in meta]
    if missing:
        raise FormatError(where, f"missing field(s) {missing}")
    for key in ("created_utc", "myoedge_version", "name", "joint"):
        if not isinstance(meta[key], str) or not meta[key]:
            raise _fail(where, key, "a non-empty string", meta[key])
    muscles = meta["muscles"]
    if not isinstance(muscles, list) or not muscles or len(set(muscles)) != len(muscles) \
            or not all(isinstance(m, str) and m for m in muscles):
        raise _fail(where, "muscles", "a non-empty list of distinct names", muscles)
    m = len(muscles)

    inp = meta["input"]
    if not isinstance(inp, dict):
        raise _fail(where, "input", "an object", inp)
    for key in ("name", "shape", "dtype", "window", "rate_hz"):
        if key not in inp:
            raise FormatError(where, f"missing field 'input.{key}'")
    if inp["name"] != INPUT_NAME:
        raise _fail(where, "input.name", f"'{INPUT_NAME}'", inp["name"])
    if inp["dtype"] != "float32":
        raise _fail(where, "input.dtype", "'float32'", inp["dtype"])
    window = inp["window"]
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise _fail(where, "input.window", "a positive int", window)
    if inp["shape"] != [1, window, m]:
        raise _fail(where, "input.shape", f"[1, window={window}, channels={m} (one per muscle)]",
                    inp["shape"])
    rate = _number(meta, ("input", "rate_hz"), where)
    emg_rate = _number(meta, ("emg_rate_hz",), where)

    env = meta["envelope"]
    if not isinstance(env, dict) or not all(isinstance(env.get(k), dict) for k in ("config", "coefficients")):
        raise _fail(where, "envelope", "an object with 'config' and 'coefficients' objects and 'hash'", env)
    if not isinstance(env.get("hash"), str) or not _SHA256.fullmatch(env["hash"]):
        raise _fail(where, "envelope.hash", "a sha256 hex digest", env.get("hash"))
    if hash_coefficients(env["coefficients"]) != env["hash"]:
        raise FormatError(where, "field 'envelope.hash' does not match 'envelope.coefficients' "
                                 "(the coefficients were edited after export)")
    try:
        config = EnvelopeConfig.from_dict(env["config"])
    except InputError as exc:
        raise FormatError(where, f"field 'envelope.config': {exc}") from None
    if config.fs_hz != emg_rate or config.out_rate_hz != rate:
        raise FormatError(where, f"field 'envelope.config' runs at {config.fs_hz:g} Hz -> "
                                 f"{config.out_rate_hz:g} Hz but emg_rate_hz is {emg_rate:g} Hz and "
                                 f"input.rate_hz is {rate:g} Hz")

    outputs, names = meta["outputs"], list(OUTPUT_UNITS)
    if not isinstance(outputs, list) \
            or [o.get("name") if isinstance(o, dict) else o for o in outputs] != names:
        raise _fail(where, "outputs", f"outputs named {names} in that order", outputs)
    expected_shapes = {"theta": [1, 1], "forces": [1, m]}
    for i, out in enumerate(outputs):
        name = out["name"]
        if out.get("shape") != expected_shapes[name]:
            raise _fail(where, f"outputs[{i}].shape", f"{expected_shapes[name]} ({m} muscles)",
                        out.get("shape"))
        if out.get("unit") != OUTPUT_UNITS[name]:
            raise _fail(where, f"outputs[{i}].unit", f"'{OUTPUT_UNITS[name]}'", out.get("unit"))

    phys = meta["physiological_range"]
    if not isinstance(phys, dict) or "theta_rad" not in phys or "forces_n" not in phys:
        raise _fail(where, "physiological_range", "an object with 'theta_rad' and 'forces_n'", phys)
    _range(phys["theta_rad"], "physiological_range.theta_rad", where)
    if not isinstance(phys["forces_n"], list) or len(phys["forces_n"]) != m:
        raise _fail(where, "physiological_range.forces_n", f"{m} [lo, hi] pairs (one per muscle)",
                    phys["forces_n"])
    for i, pair in enumerate(phys["forces_n"]):
        _range(pair, f"physiological_range.forces_n[{i}]", where)
    if not isinstance(meta["training"], dict):
        raise _fail(where, "training", "an object", meta["training"])

    onnx_meta = meta["onnx"]
    if not isinstance(onnx_meta, dict):
        raise _fail(where, "onnx", "an object", onnx_meta)
    _plain_file_name(onnx_meta.get("file"), "onnx.file", where)
    opset = onnx_meta.get("opset")
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 1:
        raise _fail(where, "onnx.opset", "a positive int", opset)
    if not isinstance(onnx_meta.get("sha256"), str) or not _SHA256.fullmatch(onnx_meta["sha256"]):
        raise _fail(where, "onnx.sha256", "a sha256 hex digest", onnx_meta.get("sha256"))
    tv = meta["test_vectors"]
    if not isinstance(tv, dict):
        raise _fail(where, "test_vectors", "an object", tv)
    _plain_file_name(tv.get("file"), "test_vectors.file", where)
    if "tolerance" not in tv:
        raise FormatError(where, "missing field 'test_vectors.tolerance'")
    _number(meta, ("test_vectors", "tolerance"), where)
    if "state" in meta:
        if version < 2:
            raise FormatError(where, "field 'state' needs bundle version 2 or newer")
        _validate_state(meta["state"], where)
    return meta


def _validate_state(state, where: Path) -> None:
    """The ``state`` block of a stateful model (docs/bundle.md, "Model state")."""
    if not isinstance(state, dict):
        raise _fail(where, "state", "an object", state)
    for key, name in zip(("input", "output"), STATE_NAMES):
        if state.get(key) != name:
            raise _fail(where, f"state.{key}", f"'{name}'", state.get(key))
    size = state.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 65536:
        raise _fail(where, "state.size", "an int from 1 to 65536", size)
    initial = state.get("initial")
    if not isinstance(initial, list) or len(initial) != size \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in initial):
        raise _fail(where, "state.initial", f"{size} finite numbers", initial)
    steps = state.get("warmup_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise _fail(where, "state.warmup_steps", "an int >= 0", steps)


def _check_vectors(inputs, outputs: dict, meta: dict,
                   where: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Test vectors must match the declared shapes; returns read-only copies (inputs float32)."""
    window, m = meta["input"]["window"], len(meta["muscles"])
    inputs = np.asarray(inputs)
    if inputs.dtype != np.float32 or inputs.ndim != 3 or inputs.shape[1:] != (window, m) or len(inputs) < 1:
        raise FormatError(where, f"'envelopes' must be float32 (K>=1, {window}, {m}), "
                                 f"got {inputs.dtype} {inputs.shape}")
    k = inputs.shape[0]
    result = {}
    declared = [(o["name"], o["shape"]) for o in meta["outputs"]]
    if "state" in meta:  # the state after each step of the sequence
        declared.append((STATE_NAMES[1], [1, meta["state"]["size"]]))
    for name, declared_shape in declared:
        shape = (k, *declared_shape[1:])
        if name not in outputs:
            raise FormatError(where, f"missing reference output '{name}'")
        arr = np.asarray(outputs[name])
        if arr.dtype.kind != "f" or arr.shape != shape:
            raise FormatError(where, f"'{name}' must be floating {shape}, got {arr.dtype} {arr.shape}")
        result[name] = arr.copy()
    extra = sorted(set(outputs) - set(result))
    if extra:
        raise FormatError(where, f"unexpected reference output(s) {extra}")
    for name, arr in [("envelopes", inputs), *result.items()]:
        if not np.all(np.isfinite(arr)):
            raise FormatError(where, f"'{name}' holds non-finite values")
    inputs = inputs.copy()
    for arr in (inputs, *result.values()):
        arr.setflags(write=False)
    return inputs, result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate the bundle at ``path``; FormatError/InputError name the file and field."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a bundle folder (expected a folder holding {META_FILE}, model.onnx "
                         f"and test_vectors.npz)")
    meta_path = path / META_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(meta_path, "missing; every bundle folder holds one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(meta_path, f"unreadable: {exc}") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(meta_path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    validate_meta(meta, meta_path)

    onnx_path = path / meta["onnx"]["file"]
    try:
        digest = _sha256(onnx_path.read_bytes())
    except FileNotFoundError:
        raise FormatError(onnx_path, "missing (named by meta.json field 'onnx.file')") from None
    if digest != meta["onnx"]["sha256"]:
        raise FormatError(onnx_path, f"sha256 {digest[:12]}… differs from meta.json field 'onnx.sha256' "
                                     f"{meta['onnx']['sha256'][:12]}… (the file changed after export)")

    tv_path = path / meta["test_vectors"]["file"]
    try:
        npz = np.load(tv_path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise FormatError(tv_path, "missing (named by meta.json field 'test_vectors.file')") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(tv_path, f"not a readable .npz archive: {exc}") from None
    if "envelopes" not in arrays:
        raise FormatError(tv_path, f"missing array 'envelopes'; found {sorted(arrays)}")
    inputs, outputs = _check_vectors(arrays.pop("envelopes"), arrays, meta, tv_path)
    inp = meta["input"]
    return Bundle(path=path, meta=meta, onnx_path=onnx_path, window=inp["window"],
                  n_channels=inp["shape"][2], muscles=tuple(meta["muscles"]),
                  input_rate_hz=float(inp["rate_hz"]), test_inputs=inputs, test_outputs=outputs)


def write_bundle(path: str | os.PathLike, *, onnx_bytes: bytes, meta: dict, test_inputs: np.ndarray,
                 test_outputs: dict[str, np.ndarray], overwrite: bool = False) -> Path:
    """Write a bundle folder atomically: all of it appears at ``path`` or nothing does.

    Fills in ``format``, ``version``, ``created_utc``, ``myoedge_version``, ``onnx.sha256`` and the
    default file names, then validates exactly as :func:`load_bundle` does before anything is written.
    """
    path = Path(path)
    if not isinstance(onnx_bytes, (bytes, bytearray)) or not onnx_bytes:
        raise InputError(f"onnx_bytes must be the serialised ONNX model (non-empty bytes), "
                         f"got {type(onnx_bytes).__name__}")
    if not isinstance(meta, dict):
        raise InputError(f"meta must be a dict, got {type(meta).__name__}")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; pass overwrite=True to replace it")
    meta = copy.deepcopy(meta)
    meta.setdefault("format", BUNDLE_FORMAT)
    meta.setdefault("version", BUNDLE_VERSION)
    meta["created_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["myoedge_version"] = myoedge.__version__
    onnx_meta = meta.setdefault("onnx", {})
    if isinstance(onnx_meta, dict):
        onnx_meta.setdefault("file", "model.onnx")
        onnx_meta["sha256"] = _sha256(bytes(onnx_bytes))
    tv_meta = meta.setdefault("test_vectors", {})
    if isinstance(tv_meta, dict):
        tv_meta.setdefault("file", "test_vectors.npz")
    where = path / META_FILE
    validate_meta(meta, where)
    if not isinstance(test_outputs, dict):
        raise InputError(f"test_outputs must be a dict name -> array, got {type(test_outputs).__name__}")
    inputs, outputs = _check_vectors(test_inputs, test_outputs, meta, path / tv_meta["file"])
    if {onnx_meta["file"], tv_meta["file"]} & {META_FILE} or onnx_meta["file"] == tv_meta["file"]:
        raise InputError(f"onnx.file and test_vectors.file must differ from each other and from {META_FILE}")

    buf = io.BytesIO()
    np.savez(buf, envelopes=inputs, **outputs)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        (tmp / onnx_meta["file"]).write_bytes(bytes(onnx_bytes))
        (tmp / tv_meta["file"]).write_bytes(buf.getvalue())
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        load_bundle(tmp)  # read back what we wrote before it becomes visible
    return path


def check_compatible(bundle: Bundle, *, muscles=None, envelope_hash: str | None = None,
                     emg_rate_hz: float | None = None) -> None:
    """Refuse to run ``bundle`` against a subject profile / amplifier that does not match it.

    ``muscles`` is the profile's channel order, ``envelope_hash`` the hash of the envelope the runtime
    will compute, ``emg_rate_hz`` the amplifier's sample rate. Each check is skipped when None.
    """
    where = f"bundle {bundle.path}"
    if muscles is not None:
        muscles = tuple(muscles)
        if muscles != bundle.muscles:
            same_set = sorted(muscles) == sorted(bundle.muscles)
            hint = " (same muscles, different channel order)" if same_set else ""
            raise InputError(f"{where} was trained on muscles {list(bundle.muscles)} but the subject profile "
                             f"lists {list(muscles)}{hint}")
    if envelope_hash is not None and envelope_hash != bundle.envelope_hash:
        raise InputError(f"{where} expects envelope hash {bundle.envelope_hash[:12]}… but the runtime's "
                         f"envelope has {str(envelope_hash)[:12]}… (different filter config or coefficients)")
    if emg_rate_hz is not None and float(emg_rate_hz) != bundle.emg_rate_hz:
        raise InputError(f"{where} expects EMG at {bundle.emg_rate_hz:g} Hz but the amplifier reports "
                         f"{float(emg_rate_hz):g} Hz")
