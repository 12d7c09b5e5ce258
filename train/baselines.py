"""The non-convolutional baselines of Zhang et al. (2023): ELM, ML-ELM and SVR.

All three see the same per-time-step inputs as the PI-CNN — the time step (seconds since the trial
started) and the normalised envelopes at that step — so that differences in accuracy come from the
learner, not from what it is shown. ``Features(lags_s=...)`` optionally adds the envelopes some
seconds earlier (causal; the first sample is repeated before the start), which lets a memoryless
regressor see the electromechanical delay; the evaluation's default uses none, as in the paper.
They predict θ (rad) and every F_n (N) at that step. Inputs and targets are standardised with the
training statistics (as the networks do), so one regularisation constant suits outputs of very
different units.

Hyper-parameters are chosen on a validation split of the training data only: the last 20 % of every
training trial (contiguous, because neighbouring samples are nearly identical and a random split
would reward memorising them).

- ELM (Huang et al. 2006): one sigmoid hidden layer with random input weights; output weights by
  ridge regression. Hidden size and ridge constant by grid search.
- ML-ELM (Kasun et al. 2013): five hidden layers, each the transpose of the output weights of an ELM
  auto-encoder trained on the previous layer's output (H_i = g(H_{i-1} β_iᵀ)); output weights by
  ridge regression. Layer widths by grid search.
- SVR (scikit-learn ``SVR``, RBF kernel): one per output; C and ε by grid search on a subsample
  (kernel methods scale quadratically with samples, so the final fit also uses at most
  ``max_train`` evenly spaced samples).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg

from myoedge.ground.errors import InputError

DEFAULT_LAGS_S = (0.0,)
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True, kw_only=True)
class Features:
    """How one time step becomes an input row: [t, envelopes(t − lag) for each lag in ``lags_s``]."""

    lags_s: tuple[float, ...] = DEFAULT_LAGS_S

    def __post_init__(self):
        object.__setattr__(self, "lags_s", tuple(float(x) for x in self.lags_s))
        if not self.lags_s or any(not np.isfinite(x) or x < 0 for x in self.lags_s):
            raise InputError(f"lags_s must be one or more non-negative seconds, got {self.lags_s}")

    def inputs(self, seq) -> np.ndarray:
        env = np.asarray(seq.envelopes, dtype=np.float64)
        n = env.shape[0]
        if env.ndim != 2 or n < 1:
            raise InputError(f"{seq.name}: envelopes must be (n >= 1, channels), got shape {env.shape}")
        cols = [np.asarray(seq.t, dtype=np.float64)[:, None]]
        for lag in self.lags_s:
            idx = np.maximum(np.arange(n) - int(round(lag * seq.rate_hz)), 0)
            cols.append(env[idx])
        return np.hstack(cols)


def targets(seq) -> np.ndarray:
    """(n, 1 + M): θ (rad) then each muscle force (N), the order every method predicts in."""
    theta = np.asarray(seq.theta, dtype=np.float64)[:, None]
    return np.hstack([theta, np.asarray(seq.forces, dtype=np.float64)])


@dataclass(frozen=True)
class _Scaler:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> _Scaler:
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x), without overflow warnings


def ridge(h: np.ndarray, y: np.ndarray, *, alpha: float) -> np.ndarray:
    """β minimising ‖hβ − y‖² / n + alpha ‖β‖² (normal equations; h has few columns)."""
    n, k = h.shape
    gram = h.T @ h / n
    gram[np.diag_indices(k)] += alpha
    return linalg.solve(gram, h.T @ y / n, assume_a="pos")


def ridge_path(h: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> list[np.ndarray]:
    """:func:`ridge` for several ``alphas`` from one eigendecomposition of hᵀh (for the grid search)."""
    n = h.shape[0]
    lam, v = linalg.eigh(h.T @ h / n)
    proj = v.T @ (h.T @ y / n)
    return [v @ (proj / (np.maximum(lam, 0.0) + a)[:, None]) for a in alphas]


class _RidgeReadout:
    """A fixed (random or unsupervised) hidden representation followed by a ridge-regression readout."""

    alpha: float
    beta: np.ndarray

    def fit_hidden(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def hidden(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray):
        self.fit_hidden(x)
        self.beta = ridge(self.hidden(x), y, alpha=self.alpha)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.hidden(x) @ self.beta


class ELM(_RidgeReadout):
    """Single-hidden-layer extreme learning machine with sigmoid units."""

    def __init__(self, *, n_hidden: int, alpha: float, seed: int):
        self.n_hidden, self.alpha, self.seed = int(n_hidden), float(alpha), int(seed)

    def fit_hidden(self, x: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        d = x.shape[1]
        # uniform in ±√(3/d): unit-variance pre-activations for standardised inputs, so few units saturate
        self.w = rng.uniform(-1.0, 1.0, (d, self.n_hidden)) * np.sqrt(3.0 / d)
        self.b = rng.uniform(-1.0, 1.0, self.n_hidden)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(x @ self.w + self.b)


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Random matrix with orthonormal columns (rows >= cols) or rows (rows < cols)."""
    q, _ = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    return q if rows >= cols else q.T


class MLELM(_RidgeReadout):
    """Multilayer ELM: stacked ELM auto-encoders (Kasun et al. 2013) and a ridge output layer."""

    def __init__(self, *, widths: Sequence[int], alpha: float, ae_alpha: float = 1e-3, seed: int):
        if len(widths) < 1:
            raise InputError("ML-ELM needs at least one hidden layer")
        self.widths = tuple(int(w) for w in widths)
        self.alpha, self.ae_alpha, self.seed = float(alpha), float(ae_alpha), int(seed)

    def fit_hidden(self, x: np.ndarray) -> None:
        """Each layer: an ELM auto-encoder (random orthonormal weights) learns β reconstructing its input;
        the layer then maps h -> g(h βᵀ)."""
        rng = np.random.default_rng(self.seed)
        self.layers: list[np.ndarray] = []
        h = x
        for w in self.widths:
            a = _orthonormal(rng, h.shape[1], w)
            b = _orthonormal(rng, w, 1)[:, 0]
            beta = ridge(_sigmoid(h @ a + b), h, alpha=self.ae_alpha)  # (w, d)
            self.layers.append(beta.T)
            h = _sigmoid(h @ beta.T)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        for weights in self.layers:
            x = _sigmoid(x @ weights)
        return x


class SVRSet:
    """One RBF support-vector regressor per output column, each with its own (C, ε)."""

    def __init__(self, *, params: Sequence[tuple[float, float]]):
        self.params = list(params)

    def fit(self, x: np.ndarray, y: np.ndarray) -> SVRSet:
        from sklearn.svm import SVR

        if y.shape[1] != len(self.params):
            raise InputError(f"SVRSet has {len(self.params)} (C, epsilon) pairs for {y.shape[1]} outputs")
        self.models = [SVR(kernel="rbf", C=c, epsilon=eps, gamma="scale", cache_size=500).fit(x, y[:, j])
                       for j, (c, eps) in enumerate(self.params)]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(x) for m in self.models], axis=1)


@dataclass
class BaselineModel:
    """A fitted baseline with the ``predict(seq) -> (theta, forces)`` shape every method shares."""

    method: str
    regressor: Any
    features: Features
    x_scaler: _Scaler
    y_scaler: _Scaler
    muscles: tuple[str, ...]
    chosen: dict = field(default_factory=dict)  # hyper-parameters picked on the validation split
    history: list = field(default_factory=list)  # no iterative training: kept empty for uniformity

    def predict(self, seq) -> tuple[np.ndarray, np.ndarray]:
        if tuple(seq.muscles) != self.muscles:
            raise InputError(f"{seq.name}: channels {list(seq.muscles)} differ from the training channels "
                             f"{list(self.muscles)}")
        y = self.y_scaler.inverse(self.regressor.predict(self.x_scaler.forward(self.features.inputs(seq))))
        return y[:, 0].copy(), y[:, 1:].copy()


@dataclass(frozen=True)
class _Data:
    """Standardised rows: the fit/validation split for the grid search, and all rows for the refit."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_all: np.ndarray
    y_all: np.ndarray
    x_scaler: _Scaler
    y_scaler: _Scaler
    muscles: tuple[str, ...]


def _prepare(train, features: Features) -> _Data:
    if not train:
        raise InputError("no training sequences")
    muscles = tuple(train[0].muscles)
    odd = [s.name for s in train if tuple(s.muscles) != muscles]
    if odd:
        raise InputError(f"training sequences mix channel sets: {odd} differ from {list(muscles)}")
    xs_, ys_ = [features.inputs(s) for s in train], [targets(s) for s in train]
    cuts = [int(round(len(x) * (1.0 - VALIDATION_FRACTION))) for x in xs_]
    fit_x = np.vstack([x[:c] for x, c in zip(xs_, cuts, strict=True)])
    fit_y = np.vstack([y[:c] for y, c in zip(ys_, cuts, strict=True)])
    val_x = np.vstack([x[c:] for x, c in zip(xs_, cuts, strict=True)])
    val_y = np.vstack([y[c:] for y, c in zip(ys_, cuts, strict=True)])
    fx, fy = _Scaler.of(fit_x), _Scaler.of(fit_y)
    all_x, all_y = np.vstack(xs_), np.vstack(ys_)
    ax, ay = _Scaler.of(all_x), _Scaler.of(all_y)  # the final model is refitted on every training row
    return _Data(fx.forward(fit_x), fy.forward(fit_y), fx.forward(val_x), fy.forward(val_y),
                 ax.forward(all_x), ay.forward(all_y), ax, ay, muscles)


def _model(method: str, reg, features: Features, data: _Data, chosen: dict) -> BaselineModel:
    return BaselineModel(method, reg, features, data.x_scaler, data.y_scaler, data.muscles, chosen=chosen)


def _grid_search(data: _Data, make: Callable[..., _RidgeReadout], shapes: dict[str, Sequence],
                 alphas: Sequence[float]) -> dict:
    """Best (shape, alpha) by validation MSE; the hidden layer is built once per shape."""
    best, best_err = {}, np.inf
    for values in itertools.product(*shapes.values()):
        params = dict(zip(shapes.keys(), values, strict=True))
        reg = make(**params, alpha=alphas[0])
        reg.fit_hidden(data.x)
        h_val = reg.hidden(data.x_val)
        for alpha, beta in zip(alphas, ridge_path(reg.hidden(data.x), data.y, alphas), strict=True):
            err = float(np.mean((h_val @ beta - data.y_val) ** 2))
            if err < best_err:
                best, best_err = {**params, "alpha": alpha}, err
    return {**best, "validation_mse": best_err}


def _one_blas_thread(fn):
    """Run ``fn`` with one BLAS thread: these matrices are small, and OpenBLAS's worker threads spinning
    against torch's (or another process's) on a 2-core machine made fits an order of magnitude slower."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@_one_blas_thread
def fit_elm(train, *, seed: int = 0, quick: bool = False, features: Features | None = None,
            progress=None) -> BaselineModel:
    features = features or Features()
    data = _prepare(train, features)
    shapes = {"n_hidden": (64, 256) if quick else (128, 256, 512, 1024)}
    chosen = _grid_search(data, lambda **p: ELM(**p, seed=seed), shapes, (1e-6, 1e-4, 1e-2))
    reg = ELM(n_hidden=chosen["n_hidden"], alpha=chosen["alpha"], seed=seed).fit(data.x_all, data.y_all)
    return _model("elm", reg, features, data, chosen)


ML_ELM_LAYERS = 5


@_one_blas_thread
def fit_ml_elm(train, *, seed: int = 0, quick: bool = False, features: Features | None = None,
               progress=None) -> BaselineModel:
    """Four auto-encoder layers of one width and a wider fifth, both widths by grid search."""
    features = features or Features()
    data = _prepare(train, features)
    inner = (32, 64) if quick else (32, 64, 128)
    last = (128, 256) if quick else (256, 512, 1024)
    shapes = {"widths": [(w,) * (ML_ELM_LAYERS - 1) + (v,) for w in inner for v in last]}
    chosen = _grid_search(data, lambda **p: MLELM(**p, seed=seed), shapes, (1e-6, 1e-4, 1e-2))
    reg = MLELM(widths=chosen["widths"], alpha=chosen["alpha"], seed=seed).fit(data.x_all, data.y_all)
    return _model("ml-elm", reg, features, data, {**chosen, "widths": list(chosen["widths"])})


def _strided(n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).round().astype(int)


@_one_blas_thread
def fit_svr(train, *, seed: int = 0, quick: bool = False, features: Features | None = None,
            max_train: int | None = None, progress=None) -> BaselineModel:
    """(C, ε) per output from {1, 10, 100} × {0.02, 0.1} (ε in standard deviations of the target)."""
    from sklearn.svm import SVR

    features = features or Features()
    data = _prepare(train, features)
    max_train = max_train or (600 if quick else 4000)
    pick, pick_val = _strided(len(data.x), max_train // 2), _strided(len(data.x_val), max_train // 2)
    cs, epss = ((1.0, 10.0), (0.1,)) if quick else ((1.0, 10.0, 100.0), (0.02, 0.1))
    params, val_mse = [], []
    for j in range(data.y.shape[1]):
        scored = []
        for c, eps in itertools.product(cs, epss):
            m = SVR(kernel="rbf", C=c, epsilon=eps, gamma="scale").fit(data.x[pick], data.y[pick, j])
            err = float(np.mean((m.predict(data.x_val[pick_val]) - data.y_val[pick_val, j]) ** 2))
            scored.append((err, c, eps))
        err, c, eps = min(scored)
        params.append((c, eps))
        val_mse.append(err)
    rows = _strided(len(data.x_all), max_train)
    reg = SVRSet(params=params).fit(data.x_all[rows], data.y_all[rows])
    return _model("svr", reg, features, data, {"C_epsilon": [list(p) for p in params],
                                               "validation_mse": float(np.mean(val_mse)),
                                               "train_rows": int(len(rows))})
