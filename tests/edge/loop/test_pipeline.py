"""The processing path: envelopes and predictions equal the reference components run on the whole
signal, torque from the profile's moment arms, set-up refusals, and a steady state that keeps no memory.

``setup_parts`` and ``stream`` are shared with the safety and runtime tests."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest
from loop_parts import FS, MUSCLES, MVC, SPF, VPC, WINDOW, emg, run_pipeline, setup_parts, stream  # noqa: F401

from myoedge.body.catalog import generic_model
from myoedge.body.profile import SubjectProfile
from myoedge.edge.dsp.envelope import EnvelopeFilter, design_envelope
from myoedge.edge.loop.estimate import Flags
from myoedge.edge.loop.latency import LatencyRecorder
from myoedge.edge.loop.pipeline import Pipeline
from myoedge.edge.loop.publish import CallbackPublisher
from myoedge.edge.loop.setup_checks import check_device, check_profile, envelope_config
from myoedge.edge.model import OnnxCpuPredictor
from myoedge.edge.wire.protocol import DeviceInfo, FrameParser
from myoedge.ground.errors import InputError


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return setup_parts(tmp_path_factory.mktemp("pipeline"))


def test_envelopes_and_outputs_equal_the_components_on_the_whole_signal(parts):
    bundle, profile, info = parts
    counts = emg(0.6)
    pipe, got = run_pipeline(parts, stream(counts, info))
    cfg = bundle.meta.envelope.config
    whole = EnvelopeFilter(cfg, n_channels=5, volts_per_count=info.scale_v, mvc_volts=MVC).process(counts)
    assert len(got) == len(whole) == 60 and pipe.model_samples == 60
    np.testing.assert_array_equal(pipe.current_window(), whole[-WINDOW:])
    with OnnxCpuPredictor(bundle) as reference:
        for k, estimate in enumerate(got):
            window = np.zeros((WINDOW, 5), dtype=np.float32)
            recent = whole[max(0, k + 1 - WINDOW):k + 1]
            window[WINDOW - len(recent):] = recent  # the ring starts out as zeros
            out = reference.predict(window)
            assert estimate.theta_rad == float(out["theta"][0, 0])  # deterministic: bit for bit
            assert estimate.forces_n == tuple(out["forces"][0].tolist())
    assert [e.index for e in got] == list(range(60))
    # the first model-rate sample is input sample 9: frame 4 (samples 8, 9), seq 5 after the device info
    assert got[0].seq == 5 and got[0].timestamp_us == 4 * 2000


def test_torque_is_the_sum_of_moment_arm_times_force(parts):
    _, profile, info = parts
    _, got = run_pipeline(parts, stream(emg(0.3), info))
    for e in got:
        r = [profile.moment_arm(m, e.theta_rad) for m in MUSCLES]
        expected = sum(ri * fi for ri, fi in zip(r, e.forces_n, strict=True))
        assert e.torque_requested_nm == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert e.torque_nm == e.torque_requested_nm and not e.clamped


def test_warmup_until_the_window_is_full_then_valid(parts):
    _, _, info = parts
    _, got = run_pipeline(parts, stream(emg(0.3), info))
    assert all(Flags.WARMUP in e.flags for e in got[:WINDOW - 1])
    assert all(e.flags == Flags(0) and e.valid for e in got[WINDOW:])


def test_chunking_does_not_change_the_estimates(parts):
    _, _, info = parts
    wire = stream(emg(0.3, seed=3), info)
    _, one = run_pipeline(parts, wire, chunk=len(wire))
    _, small = run_pipeline(parts, wire, chunk=13)
    def key(estimates):
        return [(e.theta_rad, e.forces_n, e.flags) for e in estimates]

    assert key(one) == key(small)


def test_latency_is_recorded_per_frame_with_and_without_inference(parts):
    _, _, info = parts
    rec = LatencyRecorder(capacity=1000, deadline_ns=2_000_000)
    _, got = run_pipeline(parts, stream(emg(0.2), info), latency=rec)
    summary = rec.summary()
    assert summary["frames"] == 100 and summary["frames_with_inference"] == len(got) == 20
    assert summary["with_inference"]["infer"]["n"] == 20 and summary["with_inference"]["infer"]["p50"] > 0
    assert "infer" not in summary["without_inference"]
    assert summary["all"]["processing"]["max"] >= summary["all"]["filter"]["max"]


def test_refuses_a_profile_of_other_muscles_or_order(parts, tmp_path):
    bundle, profile, _ = parts
    check_profile(bundle, profile)
    base = generic_model("wrist")
    swapped = dataclasses.replace(base, muscles=base.muscles[::-1])
    with pytest.raises(InputError, match="channel order"):
        check_profile(bundle, SubjectProfile(subject="x", model=swapped, mvc_volts=(MVC,) * 5))
    knee = generic_model("knee")
    with pytest.raises(InputError, match="muscles"):
        check_profile(bundle, SubjectProfile(subject="x", model=knee, mvc_volts=(MVC,) * len(knee.muscles)))


@pytest.mark.parametrize("change, message", [
    ({"sample_rate_hz": 2000.0}, "expects EMG at 1000 Hz"),
    ({"labels": MUSCLES[::-1]}, "other order"),
    ({"labels": MUSCLES[:4], "scale_v": [VPC] * 4}, "sends 4 channels"),
    ({"scale_v": [VPC] * 4 + [1e-7]}, r"scale 1e-07 V per count on channel\(s\) \['ECU'\] differs from the "
                                      r"2\.235174e-08 V per count"),
    ({"scale_v": [0.5e-6] * 5}, r"scale 5e-07 V per count .* 2\.235174e-08 V per count"),
    ({"sample_bits": 16}, r"sends 16-bit samples but bundle .* 24-bit ADC"),
])
def test_refuses_a_device_that_disagrees_with_the_bundle(parts, change, message):
    bundle, _, info = parts
    config = envelope_config(bundle)
    check_device(bundle, info, config)
    fields = {"sample_rate_hz": info.sample_rate_hz, "scale_v": info.scale_v, "labels": info.labels,
              "sample_bits": 24, "samples_per_frame": SPF, **change}
    with pytest.raises(InputError, match=message):
        check_device(bundle, DeviceInfo(**fields), config)


def test_a_bundle_without_an_adc_is_accepted_with_a_warning(parts, caplog):
    bundle, _, info = parts
    old = dataclasses.replace(bundle, meta=dataclasses.replace(bundle.meta, version=2, adc=None))
    other = DeviceInfo(sample_rate_hz=FS, scale_v=[1e-7] * 5, labels=MUSCLES, sample_bits=24,
                       samples_per_frame=SPF)
    with caplog.at_level("WARNING", logger="myoedge.edge"):
        check_device(old, other, envelope_config(old))
    assert "does not record the ADC" in caplog.text and "1e-07 V per count" in caplog.text


def test_refuses_a_bundle_whose_envelope_the_runtime_computes_differently(parts, tmp_path):
    bundle, _, _ = parts
    env = bundle.meta.envelope
    config = dataclasses.replace(env.config, notch_hz=60.0)
    meta = dataclasses.replace(bundle.meta, envelope=dataclasses.replace(env, config=config))
    other = dataclasses.replace(bundle, meta=meta)
    with pytest.raises(InputError, match="envelope hash") as err:
        envelope_config(other)
    runtime_hash = design_envelope(config).coefficients_hash()
    assert env.hash[:12] in str(err.value) and runtime_hash[:12] in str(err.value)


def test_steady_state_keeps_no_memory(parts):
    bundle, profile, info = parts
    counts = emg(3.0, seed=5)
    frames = FrameParser().feed(stream(counts, info))
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    publishers=[CallbackPublisher(lambda e: None)],
                    latency=LatencyRecorder(capacity=4096, deadline_ns=10**6))
    for frame in frames[:500]:
        pipe.process(frame, t_read_ns=0)
    grown = []
    tracemalloc.start()
    try:
        for part in (frames[500:1000], frames[1000:1500]):
            before = tracemalloc.get_traced_memory()[0]
            for frame in part:
                pipe.process(frame, t_read_ns=0)
            grown.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    assert min(grown) < 2000, f"bytes retained per 500 frames: {grown}"


def test_per_frame_path_peak_stays_small_after_warm_up(parts):
    """2000 frames (400 model-rate samples) after warm-up: the traced peak grows by under 4 KB, so the
    envelope writes into the pipeline's preallocated rows and nothing accumulates across frames."""
    bundle, profile, info = parts
    frames = FrameParser().feed(stream(emg(5.0, seed=6), info))
    warm, measured = frames[:500], frames[500:2500]  # slices made before tracing starts
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    publishers=[CallbackPublisher(lambda e: None)],
                    latency=LatencyRecorder(capacity=4096, deadline_ns=10**6))
    for frame in warm:
        pipe.process(frame, t_read_ns=0)
    env_out = pipe._env_out
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for frame in measured:
            pipe.process(frame, t_read_ns=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(measured) == 2000 and pipe.model_samples == 500
    assert pipe._env_out is env_out  # sized once for the device's frames, never regrown
    assert peak - before < 4096, f"traced peak grew by {peak - before} bytes over 2000 frames"


def _ring_pipeline(parts, wire: bytes, *, chunk: int = 97, prewarm: bool = True):
    """As ``run_pipeline`` but through the parser's fast path (``feed_into`` a ring, ``on_ring``)."""
    from myoedge.edge.wire.protocol import FrameRing

    bundle, profile, info = parts
    got, parser = [], FrameParser()
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    publishers=[CallbackPublisher(got.append)], parser=parser, prewarm=prewarm)
    ring = FrameRing(n_samples=SPF, n_channels=len(MUSCLES), sample_bits=24, capacity=64)
    for start in range(0, len(wire), chunk):
        n = parser.feed_into(wire[start:start + chunk], ring)
        if n:
            pipe.on_ring(ring, n, 0)
    return pipe, got


@pytest.mark.parametrize("skip", [(), (7, 8, 40)])
def test_ring_path_gives_the_frame_paths_estimates(parts, skip):
    wire = stream(emg(0.6, seed=2), parts[2], skip=skip)
    slow, want = run_pipeline(parts, wire)
    fast, got = _ring_pipeline(parts, wire)
    def key(e):
        return e.seq, e.timestamp_us, e.theta_rad, e.forces_n, int(e.flags), e.bad_channels

    assert [key(e) for e in got] == [key(e) for e in want] and len(want) > 50
    assert fast.resets == slow.resets and fast.stats()["frames"] == slow.stats()["frames"]
    assert (fast.resets["lost"] > 0) == bool(skip)


def test_prewarm_runs_once_before_each_model_step(parts):
    wire = stream(emg(0.6, seed=3), parts[2])
    pipe, got = _ring_pipeline(parts, wire, chunk=len(wire) // 300)  # about one frame per read
    steps = pipe.model_samples
    assert steps == len(got) == 60 and steps - 1 <= pipe.prewarms <= steps + 1
    off, cold = _ring_pipeline(parts, wire, prewarm=False)
    assert off.prewarms == 0
    # warming (predictor and estimate path on scratch) changes no estimate and no statistic
    assert [(e.theta_rad, e.forces_n, int(e.flags), e.torque_nm) for e in got] \
        == [(e.theta_rad, e.forces_n, int(e.flags), e.torque_nm) for e in cold]
    assert {k: v for k, v in pipe.stats().items() if k != "prewarms"} \
        == {k: v for k, v in off.stats().items() if k != "prewarms"}


def test_ring_path_keeps_no_memory(parts):
    """Frames through feed_into and on_ring after warm-up retain under 2 KB per 500 frames. (ONNX
    Runtime's own bindings keep about 120 B per call for their first few hundred calls: the warm-up
    covers them.)"""
    from myoedge.edge.wire.protocol import FrameRing, encode_device_info, frame_size

    bundle, profile, info = parts
    wire = stream(emg(6.0, seed=4), info)
    size = frame_size(n_channels=len(MUSCLES), n_samples=SPF, sample_bits=24)
    start = len(encode_device_info(info, seq=0))  # the stream: one device-info frame, then data frames
    parser = FrameParser()
    ring = FrameRing(n_samples=SPF, n_channels=len(MUSCLES), sample_bits=24, capacity=8)
    pipe = Pipeline(bundle=bundle, predictor=OnnxCpuPredictor(bundle), profile=profile, device_info=info,
                    publishers=[CallbackPublisher(lambda e: None)], parser=parser)

    def run(first: int, last: int) -> None:
        for k in range(first, last):
            n = parser.feed_into(wire[start + k * size:start + (k + 1) * size], ring)
            pipe.on_ring(ring, n, 0)

    parser.feed(wire[:start])
    run(0, 2000)
    grown = []
    tracemalloc.start()
    try:
        for first in (2000, 2500):
            before = tracemalloc.get_traced_memory()[0]
            run(first, first + 500)
            grown.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    assert pipe.frames == 3000 and min(grown) < 2000, f"bytes retained per 500 frames: {grown}"
