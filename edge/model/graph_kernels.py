"""The loop kernels of the compiled graph (:mod:`.graph_compile`): a small matrix product, ONNX GRU."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["gru", "matmul"]


@njit(cache=True)
def matmul(a, b):
    """``a`` (M, K) @ ``b`` (K, N), float32, written out: for the loop's sizes a BLAS call costs more."""
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), np.float32)
    for i in range(m):
        for p in range(k):
            v = a[i, p]
            for j in range(n):
                out[i, j] += v * b[p, j]
    return out


@njit(cache=True)
def gru(x, w_t, r_t, bias, h0):
    """ONNX GRU, forward, default activations, ``linear_before_reset=1`` (PyTorch's): ``x`` (T, B, I),
    ``w_t`` (I, 3H) and ``r_t`` (H, 3H) the transposed weights in gate order z, r, h, ``bias`` (6H,)
    = [Wb, Rb], ``h0`` (B, H). Returns Y (T, 1, B, H) and Y_h (1, B, H)."""
    steps, batch = x.shape[0], x.shape[1]
    hidden = r_t.shape[0]
    y = np.empty((steps, 1, batch, hidden), np.float32)
    h = h0.copy()
    one = np.float32(1.0)
    for t in range(steps):
        gx = matmul(np.ascontiguousarray(x[t]), w_t)
        gh = matmul(h, r_t)
        for b in range(batch):
            for j in range(hidden):
                z = one / (one + np.exp(-(gx[b, j] + gh[b, j] + bias[j] + bias[3 * hidden + j])))
                r = one / (one + np.exp(-(gx[b, hidden + j] + gh[b, hidden + j] + bias[hidden + j]
                                          + bias[4 * hidden + j])))
                c = np.tanh(gx[b, 2 * hidden + j] + bias[2 * hidden + j]
                            + r * (gh[b, 2 * hidden + j] + bias[5 * hidden + j]))
                h[b, j] = (one - z) * c + z * h[b, j]
                y[t, 0, b, j] = h[b, j]
    return y, h.reshape((1, batch, hidden))
