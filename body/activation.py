"""EMG-driven activation dynamics as in CEINMS (Lloyd & Besier 2003; Pizzolato et al. 2015).

Neural activation is a critically damped second-order recursion on the excitation e (the normalised
EMG envelope), sampled at the model rate:

    u(t) = α·e(t − d) − β1·u(t − 1) − β2·u(t − 2),   β1 = C1 + C2,  β2 = C1·C2,  α = 1 + β1 + β2

(|C1|, |C2| < 1 keeps it stable; α makes its static gain one), and muscle activation follows the
non-linear shape

    a = (e^{A·u} − 1) / (e^{A} − 1),   A < 0,

which maps [0, 1] onto [0, 1]. :func:`neural_activation` runs the recursion as the IIR filter it is
(numpy/scipy); :func:`shape_activation` and :func:`recursion_coefficients` are array-agnostic, so a
training loss evaluates the same expressions on tensors.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from myoedge.body.dynamics import namespace
from myoedge.ground.errors import InputError

SHAPE_MIN = 1e-3  # |A| below this is the linear limit a = u


def recursion_coefficients(c1, c2):
    """(α, β1, β2) of the recursion from its two poles' coefficients C1, C2 (unity static gain)."""
    beta1, beta2 = c1 + c2, c1 * c2
    return 1.0 + beta1 + beta2, beta1, beta2


def neural_activation(e, *, c1: float, c2: float, delay: int = 0) -> np.ndarray:
    """u(t) of excitations ``e`` (n, ...) along axis 0, starting from rest (u = 0 before t = 0)."""
    if not (abs(c1) < 1 and abs(c2) < 1):
        raise InputError(f"activation coefficients must satisfy |C1|, |C2| < 1, got {c1}, {c2}")
    if delay < 0:
        raise InputError(f"electromechanical delay must be >= 0 samples, got {delay}")
    e = np.asarray(e, dtype=float)
    if delay:
        e = np.concatenate([np.zeros((delay, *e.shape[1:])), e[:-delay]])
    alpha, beta1, beta2 = recursion_coefficients(c1, c2)
    return signal.lfilter([alpha], [1.0, beta1, beta2], e, axis=0)


def shape_activation(u, shape):
    """a = (e^{A·u} − 1)/(e^{A} − 1) for shape factor(s) ``shape`` = A < 0 (broadcast against u)."""
    xp = namespace(u)
    a_ = shape + 0.0 * u
    linear = xp.abs(a_) < SHAPE_MIN
    safe = xp.where(linear, -1.0 + 0.0 * a_, a_)
    return xp.where(linear, u, (xp.exp(safe * u) - 1.0) / (xp.exp(safe) - 1.0))


def impulse_response(c1, c2, n: int):
    """The first ``n`` samples of the recursion's impulse response (array-agnostic in C1, C2):
    u = Σ_k h[k]·e(t − k), which a training loss applies as a causal convolution."""
    alpha, beta1, beta2 = recursion_coefficients(c1, c2)
    h = [alpha, -beta1 * alpha]
    for _ in range(2, n):
        h.append(-beta1 * h[-1] - beta2 * h[-2])
    xp = namespace(alpha)
    return xp.stack(h[:n]) if xp is not np else np.array(h[:n], dtype=float)
