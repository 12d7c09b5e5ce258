"""The schema of ``meta.json`` (docs/bundle.md): :func:`validate_meta` checks its JSON form against the
schema of its version and names the file and the field in every error. :class:`.bundle_meta.BundleMeta`
types what it accepted.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from myoedge.edge.dsp.adc import Adc
from myoedge.edge.dsp.envelope import EnvelopeConfig, hash_coefficients
from myoedge.edge.model.channel_fill import ChannelFillMeta
from myoedge.ground.errors import FormatError, InputError

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "INPUT_NAME", "OUTPUT_UNITS", "READABLE_VERSIONS",
           "STATE_NAMES", "validate_meta"]

BUNDLE_FORMAT = "myoedge-bundle"
BUNDLE_VERSION = 3  # 2 adds the optional "state" block, 3 the required "adc" block; 1 and 2 still load
READABLE_VERSIONS = (1, 2, 3)
STATE_NAMES = ("state", "state_next")  # graph input and output of a stateful model
INPUT_NAME = "envelopes"
OUTPUT_UNITS = {"theta": "rad", "forces": "N"}  # output name -> unit, in graph order
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = ("format", "version", "created_utc", "myoedge_version", "name", "joint", "muscles", "input",
             "emg_rate_hz", "envelope", "outputs", "physiological_range", "training", "onnx", "test_vectors")


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
    if "input_range" in meta:
        _validate_input_range(meta["input_range"], m, where)
    if "channel_fill" in meta:
        why = ChannelFillMeta.problems(meta["channel_fill"], m)
        if why is not None:
            raise FormatError(where, f"field 'channel_fill': expected {why}")
    if version >= 3 and "adc" not in meta:
        raise FormatError(where, "missing field 'adc' (required from bundle version 3)")
    if "adc" in meta:
        if version < 3:
            raise FormatError(where, "field 'adc' needs bundle version 3 or newer")
        try:
            adc = Adc.from_dict(meta["adc"])
        except InputError as exc:
            raise FormatError(where, f"field 'adc': {exc}") from None
        if adc.bits != config.input_bits:
            raise FormatError(where, f"field 'adc' is {adc.bits}-bit but 'envelope.config.input_bits' is "
                                     f"{config.input_bits}")
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
    if "load_index" in state:  # optional: the element holding the load in the hand
        index = state["load_index"]
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise _fail(where, "state.load_index", f"an int from 0 to {size - 1}", index)


def _validate_input_range(block, m: int, where: Path) -> None:
    """The optional ``input_range`` block: per channel min <= lo <= hi <= max, finite (docs/bundle.md)."""
    if not isinstance(block, dict):
        raise _fail(where, "input_range", "an object", block)
    cols = {}
    for key in ("min", "lo", "hi", "max"):
        value = block.get(key)
        if not isinstance(value, list) or len(value) != m or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise _fail(where, f"input_range.{key}", f"{m} finite numbers (one per channel)", value)
        cols[key] = value
    pct = block.get("percentiles")
    numbers = isinstance(pct, list) and len(pct) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in pct)
    if not numbers or not 0 <= pct[0] <= pct[1] <= 100:
        raise _fail(where, "input_range.percentiles", "[lo, hi] with 0 <= lo <= hi <= 100", pct)
    for c, (a, b, d, e) in enumerate(zip(cols["min"], cols["lo"], cols["hi"], cols["max"])):
        if not a <= b <= d <= e:
            raise _fail(where, f"input_range (channel {c})", "min <= lo <= hi <= max", [a, b, d, e])
