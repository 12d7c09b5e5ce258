"""The typed ``meta.json`` of a model bundle: :class:`BundleMeta` and its nested records (docs/bundle.md).

:meth:`BundleMeta.from_dict` is the one reader: it validates a JSON object against the schema of its
version (1, 2 or 3; errors name the file and the field) and returns frozen records;
:meth:`BundleMeta.to_dict` is the one writer's form. Writers build a draft with
:meth:`BundleMeta.build` (the input, output and envelope blocks follow from the muscles, window and
envelope), and :func:`~.bundle.write_bundle` fills in the hashes and stamps and validates it exactly as
a reader would.

Versions: 1 is a window model; 2 adds the optional ``state`` block of a stateful model; 3 adds the
required ``adc`` block (sample width and volts per count the training data was quantised with).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

from myoedge.edge.dsp.adc import Adc
from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope, hash_coefficients
from myoedge.ground.errors import FormatError, InputError

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "INPUT_NAME", "OUTPUT_UNITS", "READABLE_VERSIONS",
           "STATE_NAMES", "BundleMeta", "EnvelopeMeta", "InputMeta", "OnnxMeta", "OutputMeta", "RangeMeta",
           "StateMeta", "VectorsMeta", "validate_meta"]

BUNDLE_FORMAT = "myoedge-bundle"
BUNDLE_VERSION = 3  # 2 adds the optional "state" block, 3 the required "adc" block; 1 and 2 still load
READABLE_VERSIONS = (1, 2, 3)
STATE_NAMES = ("state", "state_next")  # graph input and output of a stateful model
INPUT_NAME = "envelopes"
OUTPUT_UNITS = {"theta": "rad", "forces": "N"}  # output name -> unit, in graph order
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = ("format", "version", "created_utc", "myoedge_version", "name", "joint", "muscles", "input",
             "emg_rate_hz", "envelope", "outputs", "physiological_range", "training", "onnx", "test_vectors")
_record = dataclasses.dataclass(frozen=True, kw_only=True)


@_record
class InputMeta:
    """The graph's envelope input: (1, window, channels) float32 at ``rate_hz``."""

    shape: tuple[int, ...]
    window: int
    rate_hz: float
    name: str = INPUT_NAME
    dtype: str = "float32"


@_record
class EnvelopeMeta:
    """The envelope the model was trained on: its config, its CMSIS coefficients and their hash."""

    config: EnvelopeConfig
    coefficients: dict
    hash: str


@_record
class OutputMeta:
    name: str
    shape: tuple[int, ...]
    unit: str


@_record
class RangeMeta:
    """Physiological range: theta (rad) and one (lo, hi) per force (N)."""

    theta_rad: tuple[float, float]
    forces_n: tuple[tuple[float, float], ...]


@_record
class OnnxMeta:
    opset: int
    file: str = "model.onnx"
    sha256: str = ""  # filled in by write_bundle


@_record
class VectorsMeta:
    tolerance: float  # max abs deviation a predictor may show on any output (and state) element
    file: str = "test_vectors.npz"


@_record
class StateMeta:
    """A stateful model's state: graph input/output names, size, initial value, warm-up steps."""

    size: int
    initial: tuple[float, ...]
    warmup_steps: int
    input: str = STATE_NAMES[0]
    output: str = STATE_NAMES[1]


@_record
class BundleMeta:
    """Everything ``meta.json`` says, typed. ``training`` is free-form (the run's config and report)."""

    name: str
    joint: str
    muscles: tuple[str, ...]
    input: InputMeta
    emg_rate_hz: float
    envelope: EnvelopeMeta
    outputs: tuple[OutputMeta, ...]
    physiological_range: RangeMeta
    training: dict
    onnx: OnnxMeta
    test_vectors: VectorsMeta
    adc: Adc | None = None  # None only in bundles of version 1 and 2
    state: StateMeta | None = None
    format: str = BUNDLE_FORMAT
    version: int = BUNDLE_VERSION
    created_utc: str = ""  # filled in by write_bundle
    myoedge_version: str = ""  # filled in by write_bundle

    @classmethod
    def build(cls, *, name: str, joint: str, muscles, window: int, envelope: EnvelopeConfig, adc: Adc | None,
              physiological_range: dict, training: dict, opset: int, tolerance: float,
              state: StateMeta | None = None) -> BundleMeta:
        """A draft for write_bundle: the input and output specs and the envelope block follow from the
        muscles, ``window`` and ``envelope`` (its ``out_rate_hz`` is the model rate)."""
        m, design = len(muscles), design_envelope(envelope)
        return cls(
            name=name, joint=joint, muscles=tuple(muscles),
            input=InputMeta(shape=(1, window, m), window=window, rate_hz=envelope.out_rate_hz),
            emg_rate_hz=envelope.fs_hz,
            envelope=EnvelopeMeta(config=envelope, coefficients=design.coefficients(),
                                  hash=design.coefficients_hash()),
            outputs=(OutputMeta(name="theta", shape=(1, 1), unit="rad"),
                     OutputMeta(name="forces", shape=(1, m), unit="N")),
            physiological_range=RangeMeta(
                theta_rad=tuple(physiological_range["theta_rad"]),
                forces_n=tuple(tuple(p) for p in physiological_range["forces_n"])),
            training=training, onnx=OnnxMeta(opset=opset), test_vectors=VectorsMeta(tolerance=tolerance),
            adc=adc, state=state)

    @classmethod
    def from_dict(cls, meta, where: Path) -> BundleMeta:
        """Validate ``meta`` (a parsed meta.json) and type it; FormatError names ``where`` and the field."""
        meta = validate_meta(meta, where)
        inp, env, phys = meta["input"], meta["envelope"], meta["physiological_range"]
        state = meta.get("state")
        return cls(
            format=meta["format"], version=meta["version"], created_utc=meta["created_utc"],
            myoedge_version=meta["myoedge_version"], name=meta["name"], joint=meta["joint"],
            muscles=tuple(meta["muscles"]),
            input=InputMeta(name=inp["name"], shape=tuple(inp["shape"]), dtype=inp["dtype"],
                            window=inp["window"], rate_hz=float(inp["rate_hz"])),
            emg_rate_hz=float(meta["emg_rate_hz"]),
            envelope=EnvelopeMeta(config=EnvelopeConfig.from_dict(env["config"]),
                                  coefficients=env["coefficients"], hash=env["hash"]),
            outputs=tuple(OutputMeta(name=o["name"], shape=tuple(o["shape"]), unit=o["unit"])
                          for o in meta["outputs"]),
            physiological_range=RangeMeta(
                theta_rad=tuple(float(v) for v in phys["theta_rad"]),
                forces_n=tuple((float(lo), float(hi)) for lo, hi in phys["forces_n"])),
            training=meta["training"],
            onnx=OnnxMeta(file=meta["onnx"]["file"], opset=meta["onnx"]["opset"],
                          sha256=meta["onnx"]["sha256"]),
            test_vectors=VectorsMeta(file=meta["test_vectors"]["file"],
                                         tolerance=float(meta["test_vectors"]["tolerance"])),
            adc=Adc.from_dict(meta["adc"]) if "adc" in meta else None,
            state=None if state is None else StateMeta(
                input=state["input"], output=state["output"], size=state["size"],
                initial=tuple(float(v) for v in state["initial"]), warmup_steps=state["warmup_steps"]))

    def to_dict(self) -> dict:
        """The JSON form of meta.json (what :meth:`from_dict` reads back)."""
        d = {"format": self.format, "version": self.version, "created_utc": self.created_utc,
             "myoedge_version": self.myoedge_version, "name": self.name, "joint": self.joint,
             "muscles": list(self.muscles), "input": _plain(self.input), "emg_rate_hz": self.emg_rate_hz,
             "envelope": {"config": self.envelope.config.to_dict(),
                          "coefficients": self.envelope.coefficients, "hash": self.envelope.hash},
             "outputs": [_plain(o) for o in self.outputs],
             "physiological_range": _plain(self.physiological_range), "training": self.training,
             "onnx": _plain(self.onnx), "test_vectors": _plain(self.test_vectors)}
        if self.adc is not None:
            d["adc"] = self.adc.to_dict()
        if self.state is not None:
            d["state"] = _plain(self.state)
        return d


def _plain(record) -> dict:
    """A record as JSON-able dict: tuples become lists (recursively)."""
    def convert(value):
        return [convert(v) for v in value] if isinstance(value, (tuple, list)) else value
    return {f.name: convert(getattr(record, f.name)) for f in dataclasses.fields(record)}


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
