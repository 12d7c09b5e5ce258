"""The typed ``meta.json`` of a model bundle: :class:`BundleMeta` and its nested records (docs/bundle.md).

:meth:`BundleMeta.from_dict` is the one reader: it validates a JSON object against the schema of its
version (1, 2 or 3, :mod:`.bundle_schema`; errors name the file and the field) and returns frozen records;
:meth:`BundleMeta.to_dict` is the one writer's form. Writers build a draft with
:meth:`BundleMeta.build` (the input, output and envelope blocks follow from the muscles, window and
envelope), and :func:`~.bundle.write_bundle` fills in the hashes and stamps and validates it exactly as
a reader would.

Versions: 1 is a window model; 2 adds the optional ``state`` block of a stateful model; 3 adds the
required ``adc`` block (sample width and volts per count the training data was quantised with). The
optional ``input_range`` block (the normalised envelopes the model was trained on, per channel) may be in
a bundle of any version; a bundle without it loads, and its estimates are never flagged
OUT_OF_DISTRIBUTION. Likewise the optional ``channel_fill`` block (moments of the training envelopes,
:mod:`.channel_fill`): without it, ``myoedge run --fill-off-channels`` is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from myoedge.edge.dsp.adc import Adc
from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope
from myoedge.edge.model.bundle_schema import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    INPUT_NAME,
    OUTPUT_UNITS,
    READABLE_VERSIONS,
    STATE_NAMES,
    validate_meta,
)
from myoedge.edge.model.channel_fill import ChannelFillMeta

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "INPUT_NAME", "OUTPUT_UNITS", "READABLE_VERSIONS",
           "STATE_NAMES", "BundleMeta", "EnvelopeMeta", "InputMeta", "OnnxMeta", "OutputMeta", "RangeMeta",
           "InputRangeMeta", "ChannelFillMeta",
           "StateMeta", "VectorsMeta", "validate_meta"]

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
class InputRangeMeta:
    """What the model was trained on, per channel: the min, ``percentiles`` (lo, hi) and max of the normalised
    envelopes (1 = MVC) over the training data. The runtime flags OUT_OF_DISTRIBUTION from min and max."""

    min: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    max: tuple[float, ...]
    percentiles: tuple[float, float] = (0.1, 99.9)

    @classmethod
    def of(cls, envelopes, *, percentiles: tuple[float, float] = (0.1, 99.9)) -> InputRangeMeta:
        """From training envelopes (..., C): every axis but the last is pooled."""
        x = np.asarray(envelopes, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        lo, hi = np.percentile(x, percentiles, axis=0)
        return cls(min=tuple(x.min(0).tolist()), lo=tuple(lo.tolist()), hi=tuple(hi.tolist()),
                   max=tuple(x.max(0).tolist()), percentiles=(float(percentiles[0]), float(percentiles[1])))

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: dict) -> InputRangeMeta:
        return cls(**{k: tuple(float(v) for v in d[k]) for k in ("min", "lo", "hi", "max", "percentiles")})


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
    """A stateful model's state: graph input/output names, size, initial value, warm-up steps, and the
    element that holds the load in the hand (kg) where the model carries one (the step passes it on
    unchanged; the runtime sets it: ``myoedge run --load-kg``)."""

    size: int
    initial: tuple[float, ...]
    warmup_steps: int
    input: str = STATE_NAMES[0]
    output: str = STATE_NAMES[1]
    load_index: int | None = None


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
    input_range: InputRangeMeta | None = None  # optional in every version: no OUT_OF_DISTRIBUTION without it
    channel_fill: ChannelFillMeta | None = None  # optional in every version: no filled channels without it
    format: str = BUNDLE_FORMAT
    version: int = BUNDLE_VERSION
    created_utc: str = ""  # filled in by write_bundle
    myoedge_version: str = ""  # filled in by write_bundle

    @classmethod
    def build(cls, *, name: str, joint: str, muscles, window: int, envelope: EnvelopeConfig, adc: Adc | None,
              physiological_range: dict, training: dict, opset: int, tolerance: float,
              state: StateMeta | None = None, input_range: InputRangeMeta | None = None,
              channel_fill: ChannelFillMeta | None = None) -> BundleMeta:
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
            adc=adc, state=state, input_range=input_range, channel_fill=channel_fill)

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
                initial=tuple(float(v) for v in state["initial"]), warmup_steps=state["warmup_steps"],
                load_index=state.get("load_index")),
            input_range=InputRangeMeta.from_dict(meta["input_range"]) if "input_range" in meta else None,
            channel_fill=ChannelFillMeta.from_dict(meta["channel_fill"]) if "channel_fill" in meta else None)

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
            d["state"] = {k: v for k, v in _plain(self.state).items() if v is not None}
        if self.input_range is not None:
            d["input_range"] = _plain(self.input_range)
        if self.channel_fill is not None:
            d["channel_fill"] = self.channel_fill.to_dict()
        return d


def _plain(record) -> dict:
    """A record as JSON-able dict: tuples become lists (recursively)."""
    def convert(value):
        return [convert(v) for v in value] if isinstance(value, (tuple, list)) else value
    return {f.name: convert(getattr(record, f.name)) for f in dataclasses.fields(record)}
