"""The channel fill: the conditional mean of the missing channels given the measured ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.model.channel_fill import ChannelFill, ChannelFillMeta, fill_quality
from myoedge.ground.errors import FormatError, InputError


def envelopes(n: int = 4000, seed: int = 0) -> np.ndarray:
    """Five channels: three independent drives, a fourth that is an exact mix of the first two, noise."""
    rng = np.random.default_rng(seed)
    base = np.abs(rng.normal(0.3, 0.1, (n, 3)))
    mix = 0.05 + 0.6 * base[:, 0] + 0.3 * base[:, 1]
    noise = np.abs(rng.normal(0.2, 0.05, n))
    return np.column_stack([base, mix, noise])


def test_a_channel_that_is_a_mix_of_others_is_recovered_exactly():
    x = envelopes()
    fill = ChannelFill(ChannelFillMeta.of(x, ridge=0.0))
    for t in (0, 17, 3999):
        row = x[t].astype(np.float32).copy()
        row[3] = 0.0  # what the envelope of a lifted electrode decays to
        assert fill.fill(row, 1 << 3)
        assert row[3] == pytest.approx(x[t, 3], abs=1e-5)
        np.testing.assert_array_equal(row[[0, 1, 2, 4]], x[t, [0, 1, 2, 4]].astype(np.float32))


def test_the_gain_is_the_least_squares_regression_of_the_missing_on_the_measured():
    """An independent reference: ordinary least squares of x_M on [1, x_A] over the same data."""
    x = envelopes(seed=3)
    x[:, 4] += 0.4 * x[:, 2]  # make the last channel depend on another
    fill = ChannelFill(ChannelFillMeta.of(x, ridge=0.0))
    missing, avail = [1, 4], [0, 2, 3]
    gain, offset, miss = fill.matrices((1 << 1) | (1 << 4))
    assert list(miss) == missing
    design = np.column_stack([np.ones(len(x)), x[:, avail]])
    coef, *_ = np.linalg.lstsq(design, x[:, missing], rcond=None)
    np.testing.assert_allclose(gain[np.ix_(missing, avail)], coef[1:].T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(offset[missing], coef[0], rtol=1e-7, atol=1e-9)
    assert not gain[:, missing].any() and not gain[avail].any()


def test_filled_values_stay_within_zero_and_the_training_max():
    x = envelopes()
    fill = ChannelFill(ChannelFillMeta.of(x))
    for value in (-5.0, 50.0):
        row = np.full(5, value, dtype=np.float32)
        assert fill.fill(row, 1 << 3)
        assert 0.0 <= row[3] <= x[:, 3].max() + 1e-6


def test_too_many_missing_channels_are_not_filled():
    fill = ChannelFill(ChannelFillMeta.of(envelopes()))
    assert fill.max_missing == 2
    row = np.arange(5, dtype=np.float32)
    for mask in (0, 0b10101, 1 << 5, 0b11111):
        assert not fill.fill(row, mask)
    np.testing.assert_array_equal(row, np.arange(5))
    two = ChannelFill(ChannelFillMeta.of(envelopes()[:, :2]))
    assert two.max_missing == 1 and two.can_fill(0b10) and not two.can_fill(0b11)


def test_quality_names_the_channels_the_others_explain():
    x = envelopes()
    quality = fill_quality(ChannelFill(ChannelFillMeta.of(x)), x)
    assert quality["cc"][3] > 0.999 and quality["rmse"][3] < 1e-3  # the exact mix
    assert abs(quality["cc"][4]) < 0.1  # independent noise: nothing to fill it from


def test_of_refuses_what_it_cannot_fit():
    with pytest.raises(InputError, match="2 channels"):
        ChannelFillMeta.of(np.ones((10, 1)))
    bad = envelopes()
    bad[5, 2] = np.nan
    with pytest.raises(InputError, match="finite"):
        ChannelFillMeta.of(bad)


@pytest.mark.parametrize("change, field", [
    (lambda b: b.update(cov=[[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (lambda b: b.update(mean=[0.1]), "mean"),
    (lambda b: b.update(ridge=2.0), "ridge"),
    (lambda b: b.update(max="x"), "max"),
    (lambda b: b["cov"][0].__setitem__(0, float("nan")), "cov"),
])
def test_a_bundle_with_a_bad_channel_fill_block_is_refused(tmp_path, change, field):
    from onnx_models import make_bundle
    x = envelopes()[:, :2]
    path, _ = make_bundle(tmp_path / "b", muscles=("FCR", "ECU"), channel_fill=ChannelFillMeta.of(x))
    bundle = load_bundle(path)
    assert bundle.meta.channel_fill == ChannelFillMeta.of(x)  # the block round-trips through meta.json
    meta_path = path / "meta.json"
    meta = json.loads(meta_path.read_text())
    change(meta["channel_fill"])
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=f"channel_fill.*{field}"):
        load_bundle(path)


def test_a_channel_that_never_moved_in_training_neither_breaks_the_fill_nor_meta_json():
    x = envelopes()
    x[:, 2] = 0.0  # a dead channel throughout the training data
    fill = ChannelFill(ChannelFillMeta.of(x, ridge=0.0))
    quality = fill_quality(fill, x)
    assert quality["cc"][2] is None and json.loads(json.dumps(quality, allow_nan=False)) == quality
    row = x[7].astype(np.float32).copy()
    assert fill.fill(row, 1 << 3) and np.isfinite(row).all()
    assert row[3] == pytest.approx(x[7, 3], abs=1e-5)  # still the exact mix of channels 0 and 1
