"""Checks of an estimate against what the model can know: its inputs and its outputs (docs/runtime.md).

- **out of distribution**: a channel's normalised envelope (1 = MVC) sits far outside what the bundle
  was trained on (its ``input_range``): above ``ood_factor`` x the training max, or below the training
  min by ``ood_factor - 1`` training spans, for ``ood_ms`` in a row; a non-finite envelope at once.
  Typical causes: a wrong MVC in the profile, an amplifier gain change. The estimates stay flagged
  while such samples are in the model's window (``hold`` estimates after the last one). A bundle
  without ``input_range`` (older exports) is flagged only for a non-finite envelope.
- **flat output**: theta and every force stayed within ``flat_output_tolerance`` (relative,
  ``|x - x0| <= tol * (1 + |x0|)``) of one value for ``flat_output_ms`` while the envelopes moved: a model
  that saturated, or a profile that scales the inputs to nothing.

One :meth:`PlausibilityChecks.step` per model step: compiled comparisons against arrays allocated at
set-up, plain ints out; nothing is allocated.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from myoedge.edge.loop.estimate import Flags
from myoedge.ground.errors import InputError

__all__ = ["PlausibilityChecks"]

_OOD, _FLAT = int(Flags.OUT_OF_DISTRIBUTION), int(Flags.FLAT_OUTPUT)


@njit(cache=True)
def _outside(row, lo, hi):
    """0: every channel inside [lo, hi]; 1: one outside; 2: one not finite."""
    result = 0
    for c in range(row.shape[0]):
        v = row[c]
        if not np.isfinite(v):
            return 2
        if v < lo[c] or v > hi[c]:
            result = 1
    return result


@njit(cache=True)
def _moved(theta, values, ref, tol):
    """Whether theta (ref[0]) or any of ``values`` (ref[1:]) left ``tol`` of ref; ref follows when so."""
    moved = not abs(theta - ref[0]) <= tol * (1.0 + abs(ref[0]))
    for i in range(values.shape[0]):
        if not abs(values[i] - ref[i + 1]) <= tol * (1.0 + abs(ref[i + 1])):
            moved = True
    if moved:
        ref[0] = theta
        for i in range(values.shape[0]):
            ref[i + 1] = values[i]
    return moved


class PlausibilityChecks:
    """Per-stream state of the two checks; :meth:`step` once per model step returns the flag bits."""

    def __init__(self, config, *, input_range, n_channels: int, n_muscles: int, rate_hz: float,
                 hold: int) -> None:
        if not rate_hz > 0 or hold < 1:
            raise InputError(f"need a positive model rate and hold >= 1, got {rate_hz!r}, {hold!r}")
        self.hold = int(hold)
        self.enabled_ood = input_range is not None
        if input_range is not None:
            if len(input_range.max) != n_channels:
                raise InputError(f"the bundle's input_range has {len(input_range.max)} channels, the stream "
                                 f"{n_channels}")
            lo, hi = (np.asarray(v, dtype=np.float64) for v in (input_range.min, input_range.max))
            factor = config.ood_factor
            self._hi = factor * hi
            self._lo = lo - (factor - 1.0) * (hi - lo)
        else:
            self._lo = np.full(n_channels, -np.inf)
            self._hi = np.full(n_channels, np.inf)
        self.ood_after = max(1, round(config.ood_ms * 1e-3 * rate_hz))  # model steps
        self.flat_after = max(1, round(config.flat_output_ms * 1e-3 * rate_hz))
        self._tol = float(config.flat_output_tolerance)
        self._out_ref = np.full(n_muscles + 1, np.nan)  # theta, forces: NaN never matches, so the first moves
        self._env_prev = np.full(n_channels + 1, np.nan)  # slot 0 (_moved's theta) unused: 0.0
        self._warm_row = np.zeros(n_channels, dtype=np.float32)  # scratch for warm(): the loop calls it
        self._warm_ref = np.zeros(n_channels + 1)  # before model steps, so it allocates nothing
        self.reset()

    def reset(self) -> None:
        """Forget the past (with the pipeline's reset)."""
        self._ood_run = self._ood_left = self._flat_run = self._env_moves = 0
        self._out_ref.fill(np.nan)
        self._env_prev.fill(np.nan)

    def step(self, row: np.ndarray, theta: float, forces: np.ndarray) -> int:
        """The flag bits for the estimate computed from envelope ``row`` (C,) giving ``theta``, ``forces``."""
        bits = 0
        where = _outside(row, self._lo, self._hi)  # without a training range: only non-finite input
        self._ood_run = self._ood_run + 1 if where else 0
        if where == 2 or self._ood_run >= self.ood_after:
            self._ood_left = self.hold
        if self._ood_left:
            bits = _OOD
            self._ood_left -= 1
        if _moved(theta, forces, self._out_ref, self._tol):
            self._flat_run = self._env_moves = 0
            _moved(0.0, row, self._env_prev, -1.0)  # tol < 0: always "moved", so the row becomes the ref
        else:
            self._flat_run += 1
            if _moved(0.0, row, self._env_prev, self._tol):
                self._env_moves += 1
            if self._flat_run >= self.flat_after and self._env_moves:
                bits |= _FLAT
        return bits

    def warm(self) -> None:
        """Run the kernels on scratch arrays for the loop's float32 rows (compiling them, or loading them
        from numba's cache, the first time); no state changes."""
        _outside(self._warm_row, self._lo, self._hi)
        _moved(0.0, self._warm_row, self._warm_ref, 0.0)
