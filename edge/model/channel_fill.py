"""Filling in the envelope of a channel whose electrode fell off, from the channels still on the skin.

The bundle's ``channel_fill`` block holds the mean ``mu`` and covariance ``S`` of the normalised training
envelopes (one row per model step, every training sequence pooled). For a set M of missing channels and
the set A of those still measured, the runtime fills in the best linear estimate of x_M from x_A, the
conditional mean of a Gaussian with those moments:

    x_M = mu_M + S_MA (S_AA + lambda I)^-1 (x_A - mu_A),   clipped to [0, the training max of the channel]

(lambda = ``ridge`` x the mean of diag S_AA keeps the solve well posed when synergists move together).
Muscles that work together make their envelopes co-vary, which is what synergy extrapolation uses
(Ao et al., and the NMF baseline in :mod:`myoedge.train.reconstruct`); the conditional mean is the
least-squares optimum among all linear maps from the measured channels, works for any subset M without
refitting, and needs only C + C² numbers in meta.json and no dependency beyond numpy.

At most :attr:`ChannelFill.max_missing` channels (fewer than half) are filled at once: with more missing,
there is too little left to estimate them from, and the runtime keeps ELECTRODE_OFF (docs/runtime.md).
:meth:`ChannelFill.fill` is the loop's call: a compiled loop over matrices computed once per missing set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from myoedge.ground.errors import InputError

__all__ = ["ChannelFill", "ChannelFillMeta", "fill_quality"]

DEFAULT_RIDGE = 1e-3


@dataclass(frozen=True, kw_only=True)
class ChannelFillMeta:
    """The ``channel_fill`` block of meta.json: moments of the training envelopes (normalised, 1 = MVC)."""

    mean: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]
    max: tuple[float, ...]
    ridge: float = DEFAULT_RIDGE

    @classmethod
    def of(cls, envelopes, *, ridge: float = DEFAULT_RIDGE) -> ChannelFillMeta:
        """From training envelopes (..., C): every axis but the last is pooled."""
        x = np.asarray(envelopes, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        if x.shape[0] < 2 or x.shape[1] < 2 or not np.all(np.isfinite(x)):
            raise InputError(f"channel fill needs finite envelopes of >= 2 channels and >= 2 steps, got "
                             f"{x.shape}")
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        return cls(mean=tuple(x.mean(0).tolist()), cov=tuple(tuple(r) for r in cov.tolist()),
                   max=tuple(x.max(0).tolist()), ridge=float(ridge))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "cov": [list(r) for r in self.cov], "max": list(self.max),
                "ridge": self.ridge}

    @classmethod
    def from_dict(cls, d: dict) -> ChannelFillMeta:
        return cls(mean=tuple(float(v) for v in d["mean"]),
                   cov=tuple(tuple(float(v) for v in r) for r in d["cov"]),
                   max=tuple(float(v) for v in d["max"]), ridge=float(d["ridge"]))

    @staticmethod
    def problems(d, n_channels: int) -> str | None:
        """What is wrong with a meta.json ``channel_fill`` block (None: nothing) for ``n_channels``."""
        if not isinstance(d, dict):
            return "an object with mean, cov, max and ridge"

        def numbers(v, n):
            return isinstance(v, list) and len(v) == n and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        for key in ("mean", "max"):
            if not numbers(d.get(key), n_channels):
                return f"{key}: {n_channels} finite numbers"
        cov = d.get("cov")
        square = isinstance(cov, list) and len(cov) == n_channels
        if not square or not all(numbers(r, n_channels) for r in cov):
            return f"cov: {n_channels} x {n_channels} finite numbers"
        s = np.asarray(cov, dtype=np.float64)
        if not np.allclose(s, s.T, rtol=1e-9, atol=1e-12) or np.any(np.diag(s) < 0):
            return "cov: a symmetric matrix with a non-negative diagonal"
        ridge = d.get("ridge")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not 0 <= ridge < 1:
            return "ridge: a number in [0, 1)"
        return None


@njit(cache=True)
def _fill(row, gain, offset, missing, hi):
    """row[m] = clip(offset[m] + gain[m] . row, 0, hi[m]) for m in ``missing`` (gain: 0 on missing cols)."""
    for i in range(missing.shape[0]):
        m = missing[i]
        v = offset[m]
        for a in range(row.shape[0]):
            v += gain[m, a] * row[a]
        row[m] = min(max(v, 0.0), hi[m])


class ChannelFill:
    """The runtime side: ``fill(row, missing_mask)`` writes estimates into the missing channels of ``row``."""

    def __init__(self, meta: ChannelFillMeta) -> None:
        self.meta = meta
        self.mean = np.asarray(meta.mean, dtype=np.float64)
        self.cov = np.asarray(meta.cov, dtype=np.float64)
        self.hi = np.asarray(meta.max, dtype=np.float64)
        self.n_channels = self.mean.shape[0]
        self.max_missing = (self.n_channels - 1) // 2 if self.n_channels > 2 else 1
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def matrices(self, missing_mask: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gain (C, C), offset (C,), missing channel indices) for the channels set in ``missing_mask``."""
        cached = self._cache.get(missing_mask)
        if cached is not None:
            return cached
        c = self.n_channels
        miss = np.array([k for k in range(c) if missing_mask >> k & 1], dtype=np.int64)
        avail = np.array([k for k in range(c) if not missing_mask >> k & 1], dtype=np.int64)
        gain, offset = np.zeros((c, c)), np.zeros(c)
        s_aa = self.cov[np.ix_(avail, avail)]
        lam = self.meta.ridge * float(np.mean(np.diag(s_aa))) if avail.size else 0.0
        # least squares, not solve: a channel that never moved in training makes S_AA singular
        g = np.linalg.lstsq(s_aa + lam * np.eye(avail.size), self.cov[np.ix_(avail, miss)], rcond=None)[0].T
        gain[np.ix_(miss, avail)] = g
        offset[miss] = self.mean[miss] - g @ self.mean[avail]
        self._cache[missing_mask] = (gain, offset, miss)
        return gain, offset, miss

    def can_fill(self, missing_mask: int) -> bool:
        n = bin(missing_mask & ((1 << self.n_channels) - 1)).count("1")
        return 0 < n <= self.max_missing and missing_mask >> self.n_channels == 0

    def fill(self, row: np.ndarray, missing_mask: int) -> bool:
        """Fill the channels of ``missing_mask`` in ``row`` (C,) in place; False (row untouched) when they
        are too many to fill (:attr:`max_missing`) or none."""
        if not self.can_fill(missing_mask):
            return False
        gain, offset, miss = self.matrices(missing_mask)
        _fill(row, gain, offset, miss, self.hi)
        return True

    def warm(self) -> None:
        """Compile the kernel and compute the single-channel matrices before the loop starts."""
        row = np.zeros(self.n_channels, dtype=np.float32)
        for k in range(self.n_channels):
            self.fill(row, 1 << k)
        row.fill(0.0)


def fill_quality(fill: ChannelFill, envelopes) -> dict[str, list[float | None]]:
    """Per channel, filled from all the others on ``envelopes`` (T, C): the CC and RMSE against the
    measured envelope (normalised units). The number to read before relying on the fill for a muscle."""
    x = np.asarray(envelopes, dtype=np.float64)
    cc, rmse = [], []  # None where undefined (JSON has no NaN: meta.json is written without it)
    for k in range(fill.n_channels):
        if not fill.can_fill(1 << k):
            cc.append(None)
            rmse.append(None)
            continue
        gain, offset, _ = fill.matrices(1 << k)
        a, b = x[:, k], np.clip(offset[k] + x @ gain[k], 0.0, fill.hi[k])
        cc.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None)
        rmse.append(float(np.sqrt(np.mean((a - b) ** 2))))
    return {"cc": cc, "rmse": rmse}
