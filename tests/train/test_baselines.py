"""ELM, ML-ELM and SVR: they fit a known function, deterministically, and refuse mismatched data."""

import numpy as np
import pytest

from myoedge.ground.errors import InputError
from myoedge.train import baselines
from myoedge.train.data import Sequence

MUSCLES = ("A", "B")


def known_sequence(i: int, *, n: int = 600, rate: float = 100.0) -> Sequence:
    """Envelopes of two smooth cycles; θ and forces are fixed smooth functions of the current envelopes."""
    t = np.arange(n) / rate
    env = np.stack([0.5 + 0.4 * np.sin(0.9 * t + i), 0.5 + 0.4 * np.cos(0.6 * t + 2.0 * i)], 1)
    theta = 0.8 * np.tanh(env[:, 0] - env[:, 1])
    forces = np.stack([400.0 * env[:, 0] ** 2, 150.0 * env[:, 1] + 50.0 * env[:, 0]], 1)
    return Sequence(name=f"x/s1_t{i}", subject="x", session="s1", trial=f"t{i}", joint="knee",
                    muscles=MUSCLES, rate_hz=rate, t=t, envelopes=env.astype(np.float32), theta=theta,
                    forces=forces, moment_arms=None, torque=None, model=None, physics="none")


def nrmse(seq, model) -> np.ndarray:
    theta, forces = model.predict(seq)
    pred, true = np.column_stack([theta, forces]), baselines.targets(seq)
    return np.sqrt(np.mean((pred - true) ** 2, axis=0)) / np.ptp(true, axis=0)


TRAIN = [known_sequence(i) for i in range(3)]
TEST = known_sequence(7)


@pytest.mark.parametrize("fit, tol", [(baselines.fit_elm, 0.02), (baselines.fit_ml_elm, 0.04),
                                      (baselines.fit_svr, 0.08)])
def test_baselines_fit_a_known_function(fit, tol):
    model = fit(TRAIN, seed=0, quick=True)
    err = nrmse(TEST, model)
    assert err.shape == (3,)
    assert np.all(err < tol), err
    theta, forces = model.predict(TEST)
    assert theta.shape == (TEST.n,) and forces.shape == (TEST.n, 2)


def test_a_mean_predictor_would_fail_the_same_bar():
    # the tolerance above means something: predicting the training mean is far off it
    true = baselines.targets(TEST)
    mean = np.vstack([baselines.targets(s) for s in TRAIN]).mean(0)
    assert np.all(np.sqrt(np.mean((true - mean) ** 2, axis=0)) / np.ptp(true, axis=0) > 0.15)


def test_elm_is_deterministic_per_seed():
    a = baselines.fit_elm(TRAIN, seed=3, quick=True).predict(TEST)[1]
    b = baselines.fit_elm(TRAIN, seed=3, quick=True).predict(TEST)[1]
    c = baselines.fit_elm(TRAIN, seed=4, quick=True).predict(TEST)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ml_elm_has_five_hidden_layers_and_records_its_choice():
    model = baselines.fit_ml_elm(TRAIN, seed=0, quick=True)
    assert len(model.regressor.layers) == baselines.ML_ELM_LAYERS == 5
    assert len(model.chosen["widths"]) == 5 and model.chosen["alpha"] > 0
    assert model.history == []


def test_features_time_then_lagged_envelopes():
    seq = known_sequence(0, n=50)
    x = baselines.Features(lags_s=(0.0, 0.05)).inputs(seq)
    assert x.shape == (50, 1 + 2 * 2)
    np.testing.assert_array_equal(x[:, 0], seq.t)
    np.testing.assert_array_equal(x[:, 1:3], seq.envelopes)
    np.testing.assert_array_equal(x[10:, 3:5], seq.envelopes[5:45])  # 50 ms = 5 steps at 100 Hz
    np.testing.assert_array_equal(x[:5, 3:5], np.repeat(seq.envelopes[:1], 5, 0))  # causal: start repeated
    with pytest.raises(InputError, match="lags_s"):
        baselines.Features(lags_s=(-0.1,))


def test_ridge_path_matches_ridge():
    rng = np.random.default_rng(0)
    h, y = rng.normal(size=(200, 12)), rng.normal(size=(200, 3))
    for alpha, beta in zip((1e-4, 1e-1), baselines.ridge_path(h, y, (1e-4, 1e-1)), strict=True):
        np.testing.assert_allclose(beta, baselines.ridge(h, y, alpha=alpha), rtol=1e-8, atol=1e-10)


def test_refuses_mismatched_channels():
    other = known_sequence(1)
    other = Sequence(**{**other.__dict__, "muscles": ("A", "C"), "name": "y/s1_t1"})
    with pytest.raises(InputError, match="mix channel sets"):
        baselines.fit_elm([TRAIN[0], other], seed=0, quick=True)
    model = baselines.fit_elm(TRAIN, seed=0, quick=True)
    with pytest.raises(InputError, match="differ from the training channels"):
        model.predict(other)
    with pytest.raises(InputError, match="no training sequences"):
        baselines.fit_svr([], seed=0)
