"""The parts of the processing-path tests shared by the loop, safety, runtime and bench tests: a bundle,
profile and device info that fit together, EMG counts, their wire bytes, and a pipeline fed from them."""

from __future__ import annotations

import numpy as np
from onnx_models import make_bundle

from myoedge.body.catalog import generic_model
from myoedge.body.profile import SubjectProfile
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope import EnvelopeConfig, EnvelopeFilter, volts_to_counts
from myoedge.edge.dsp.envelope_report import emg_like
from myoedge.edge.loop.pipeline import Pipeline
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.loop.safety import SafetyConfig
from myoedge.edge.model import OnnxCpuPredictor
from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.model.bundle_meta import InputRangeMeta
from myoedge.edge.wire.protocol import DeviceInfo, Frame, FrameParser, encode_device_info, encode_frame

MUSCLES = ("FCR", "FCU", "ECRL", "ECRB", "ECU")  # the wrist model's channel order
FS, WINDOW, SPF, MVC = 1000.0, 8, 2, 2e-4
VPC = default_adc(24).volts_per_count  # the ADC the test bundles record


def setup_parts(tmp_path, *, window: int = WINDOW, input_range=None, channel_fill=None):
    """(bundle, profile, device info) that fit together: 5 wrist muscles, 1 kHz EMG, 100 Hz model.
    ``input_range``, ``channel_fill``: the bundle's (e.g. :func:`training_range`; default none, as an older
    bundle)."""
    path, _ = make_bundle(tmp_path / "bundle", window=window, muscles=MUSCLES, input_range=input_range,
                          channel_fill=channel_fill)
    profile = SubjectProfile(subject="s01", model=generic_model("wrist"), mvc_volts=(MVC,) * len(MUSCLES))
    info = DeviceInfo(sample_rate_hz=FS, scale_v=[VPC] * len(MUSCLES), labels=MUSCLES, sample_bits=24,
                      samples_per_frame=SPF, device_name="test amp")
    return load_bundle(path), profile, info


def training_range(*, seconds: float = 4.0, seed: int = 7) -> InputRangeMeta:
    """The input range of "training data": the normalised envelopes of ``emg`` at the profile's MVC."""
    return InputRangeMeta.of(training_envelopes(seconds=seconds, seed=seed))


def training_envelopes(*, seconds: float = 4.0, seed: int = 7, counts: np.ndarray | None = None):
    """The normalised envelopes (T, C) the runtime computes from ``counts`` (default: ``emg``)."""
    counts = emg(seconds, seed=seed) if counts is None else counts
    return EnvelopeFilter(EnvelopeConfig(fs_hz=FS, out_rate_hz=100.0, input_bits=24), n_channels=len(MUSCLES),
                          volts_per_count=VPC, mvc_volts=MVC).process(counts)


def emg(seconds: float, *, seed: int = 0) -> np.ndarray:
    volts = emg_like(fs_hz=FS, seconds=seconds, n_channels=len(MUSCLES), seed=seed)
    return volts_to_counts(volts, volts_per_count=VPC, input_bits=24)


def stream(counts: np.ndarray, info: DeviceInfo, *, spf: int = SPF, skip: tuple[int, ...] = ()) -> bytes:
    """The wire bytes of ``counts`` as a device-info frame then data frames; frames in ``skip`` are lost."""
    parts = [encode_device_info(info, seq=0)]
    for k in range(len(counts) // spf):
        if k not in skip:
            samples = counts[k * spf:(k + 1) * spf]
            frame = Frame(seq=k + 1, timestamp_us=k * 2000, samples=samples, sample_bits=24)
            parts.append(encode_frame(frame))
    return b"".join(parts)


def run_pipeline(parts, wire: bytes, *, chunk: int = 97, safety: SafetyConfig | None = None, latency=None):
    """Feed ``wire`` through a parser in ``chunk``-byte reads into a pipeline; (pipeline, estimates)."""
    bundle, profile, info = parts
    got = []
    parser = FrameParser()
    predictor = OnnxCpuPredictor(bundle)
    pipe = Pipeline(bundle=bundle, predictor=predictor, profile=profile, device_info=info, safety=safety,
                    publishers=[CallbackPublisher(got.append)], latency=latency, parser=parser)
    for start in range(0, len(wire), chunk):
        frames = parser.feed(wire[start:start + chunk])
        if frames:
            pipe.on_frames(frames, 0)
    return pipe, got
