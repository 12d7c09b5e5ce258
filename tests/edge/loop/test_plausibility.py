"""OUT_OF_DISTRIBUTION (envelopes far outside the bundle's input_range) and FLAT_OUTPUT (a model whose
outputs stopped moving while its inputs did): raised by their causes, never on normal data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from loop_parts import MUSCLES, MVC, WINDOW, emg, run_pipeline, setup_parts, stream, training_range

from myoedge.edge.loop.estimate import INVALID, Flags
from myoedge.edge.loop.plausibility import PlausibilityChecks
from myoedge.edge.loop.safety import SafetyConfig
from myoedge.edge.model.bundle_meta import InputRangeMeta
from myoedge.ground.errors import InputError


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return setup_parts(tmp_path_factory.mktemp("plausible"), input_range=training_range())


@pytest.fixture(scope="module")
def old_parts(tmp_path_factory):  # a bundle that records no input_range (older exports)
    return setup_parts(tmp_path_factory.mktemp("old"))


def with_mvc(parts, factor):
    bundle, profile, info = parts
    return bundle, dataclasses.replace(profile, mvc_volts=(MVC * factor,) * len(MUSCLES)), info


def test_invalid_includes_the_new_bits():
    assert Flags.OUT_OF_DISTRIBUTION & INVALID and Flags.FLAT_OUTPUT & INVALID
    assert len({int(f) for f in Flags}) == len(list(Flags))  # no bit shared with another flag


def test_normal_data_is_not_flagged(parts):
    _, got = run_pipeline(parts, stream(emg(2.0, seed=3), parts[2]))
    assert len(got) == 200
    assert not [e.index for e in got if e.flags & (Flags.OUT_OF_DISTRIBUTION | Flags.FLAT_OUTPUT)]
    assert all(e.valid for e in got[WINDOW:])


def test_mvc_ten_times_too_small_makes_estimates_out_of_distribution(parts):
    # the profile's MVC a tenth of the true one: every normalised envelope 10x what training saw
    pipe, got = run_pipeline(with_mvc(parts, 0.1), stream(emg(2.0, seed=3), parts[2]))
    ood = [e.index for e in got if Flags.OUT_OF_DISTRIBUTION in e.flags]
    assert ood == list(range(ood[0], 200)) and ood[0] <= 2 * pipe.checks.ood_after  # after the ramp-up
    assert not any(e.valid for e in got)


def test_the_same_profile_is_not_flagged_without_a_training_range(old_parts):
    _, got = run_pipeline(with_mvc(old_parts, 0.1), stream(emg(1.0, seed=3), old_parts[2]))
    assert not [e for e in got if Flags.OUT_OF_DISTRIBUTION in e.flags]


def test_a_short_excursion_is_not_flagged_a_sustained_one_is_then_cleared(parts):
    bundle, _, _ = parts
    config = SafetyConfig(ood_ms=50.0)
    checks = PlausibilityChecks(config, input_range=bundle.meta.input_range, n_channels=len(MUSCLES),
                                n_muscles=len(MUSCLES), rate_hz=100.0, hold=WINDOW)
    assert checks.ood_after == 5
    normal, high = np.full(len(MUSCLES), 0.5, np.float32), np.full(len(MUSCLES), 0.5, np.float32)
    high[2] = 3.5  # > 2 x the training max of about 1.49
    forces = np.ones(len(MUSCLES), np.float32)
    bits = [checks.step(row, float(k), forces) for k, row in enumerate([high] * 4 + [normal] * 3)]
    assert not any(b & Flags.OUT_OF_DISTRIBUTION for b in bits)
    bits = [checks.step(row, float(k), forces) for k, row in enumerate([high] * 5 + [normal] * (WINDOW + 1))]
    ood = [k for k, b in enumerate(bits) if b & Flags.OUT_OF_DISTRIBUTION]
    assert ood == list(range(4, 4 + WINDOW))  # from the 5th step, while those samples are in the window


@pytest.mark.parametrize("value", [np.nan, np.inf, -5.0])
def test_non_finite_or_negative_envelopes_are_flagged(parts, value):
    bundle, _, _ = parts
    checks = PlausibilityChecks(SafetyConfig(), input_range=bundle.meta.input_range, n_channels=len(MUSCLES),
                                n_muscles=len(MUSCLES), rate_hz=100.0, hold=WINDOW)
    row = np.full(len(MUSCLES), 0.5, np.float32)
    row[0] = value
    bits = [checks.step(row, float(k), np.ones(len(MUSCLES), np.float32)) for k in range(10)]
    first = 0 if not np.isfinite(value) else checks.ood_after - 1
    assert [bool(b & Flags.OUT_OF_DISTRIBUTION) for b in bits] == [k >= first for k in range(10)]


class Frozen:
    """A predictor whose outputs never move (a saturated model), over a real one's input spec."""

    name = "frozen"

    def __init__(self, inner):
        self.input_spec = inner.input_spec
        self._out = {"theta": np.full((1, 1), 0.3, np.float32),
                     "forces": np.full((1, len(MUSCLES)), 100.0, np.float32)}

    def predict(self, window):
        return self._out

    def warm(self):
        pass


def run_frozen(parts, counts, **safety):
    from myoedge.edge.loop.pipeline import Pipeline
    from myoedge.edge.loop.publish import CallbackPublisher
    from myoedge.edge.model import OnnxCpuPredictor
    from myoedge.edge.wire.protocol import FrameParser

    bundle, profile, info = parts
    got, parser = [], FrameParser()
    pipe = Pipeline(bundle=bundle, predictor=Frozen(OnnxCpuPredictor(bundle)), profile=profile,
                    device_info=info, safety=SafetyConfig(**safety),
                    publishers=[CallbackPublisher(got.append)], parser=parser)
    pipe.on_frames(parser.feed(stream(counts, info)), 0)
    return got


def test_a_flat_model_output_is_flagged_after_the_configured_time(parts):
    got = run_frozen(parts, emg(2.0, seed=3), flat_output_ms=500.0)
    flat = [e.index for e in got if Flags.FLAT_OUTPUT in e.flags]
    assert flat == list(range(50, 200))  # 100 Hz model: 50 steps without a move after the first
    assert not any(e.valid for e in got[50:])


def test_flat_output_time_is_configurable(parts):
    got = run_frozen(parts, emg(1.0, seed=3), flat_output_ms=200.0)
    assert [e.index for e in got if Flags.FLAT_OUTPUT in e.flags][:1] == [20]


def test_flat_output_with_flat_envelopes_is_not_flat_output(parts):
    # no EMG at all: the electrode check's business, not a model fault
    got = run_frozen(parts, np.zeros((1000, len(MUSCLES)), np.int32))
    assert not [e for e in got if Flags.FLAT_OUTPUT in e.flags]
    assert all(Flags.ELECTRODE_OFF in e.flags for e in got[20:])


@pytest.mark.parametrize("field, value", [
    ("ood_factor", 1.0), ("ood_factor", float("nan")), ("ood_factor", True), ("ood_ms", 0),
    ("flat_output_ms", -1.0), ("flat_output_ms", "500"), ("flat_output_tolerance", float("inf")),
])
def test_safety_config_refuses_bad_values(field, value):
    with pytest.raises(InputError, match=field):
        SafetyConfig(**{field: value})


def test_input_range_of_pools_all_but_the_channel_axis():
    env = np.stack([np.linspace(0.0, 1.0, 1001), np.linspace(2.0, 4.0, 1001)], axis=-1).reshape(7, 143, 2)
    r = InputRangeMeta.of(env)
    assert r.min == (0.0, 2.0) and r.max == (1.0, 4.0)
    assert r.lo[0] == pytest.approx(0.001) and r.hi[1] == pytest.approx(3.998)
