"""Hill muscles with a compliant tendon: the fibre–tendon equilibrium advanced one step at a time.

The muscle–tendon unit is a pennated contractile element in series with an elastic tendon
(Zajac 1989). The fibre length l_m is the state; the tendon force is a function of the tendon strain
ε = l_t / l_ts − 1 with l_t = l_MT − l_m cos α, and the fibre's velocity follows from the equilibrium

    f_T(ε) / cos α = a · f_L(l̃) · f_V(ṽ) + f_PE(l̃) + β ṽ

(force in units of F₀, ṽ = v_m / (v_max l_opt)). The small fibre damping β = 0.1 is the damped-
equilibrium model of Millard et al. 2013 (J Biomech Eng 135:021005): it keeps the equilibrium solvable
at zero activation. The tendon curve is Thelen 2003's: an exponential toe to F_toe = 0.33 F₀ at
0.609 ε₀ and linear beyond, reaching F₀ at ε₀ (the strain at maximum isometric force, 0.033 in
OpenSim's defaults). Each step solves the equilibrium *implicitly* for the fibre velocity (backward
Euler in l_m, Newton's method on a strictly increasing function), so stiff tendons and long fibres stay
stable at the simulator's 2 kHz step. The active, passive and force–velocity curves are those of
:mod:`myoedge.body.muscle`.

The kernels are compiled with numba (a scalar loop over trials and muscles); arrays are
(batch, n_muscles) float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from myoedge.body.muscle import FL_WIDTH, FV_A, FV_ECC_MAX, FV_ECC_SLOPE, PE_K, PE_STRAIN

FIBER_DAMPING = 0.1  # β, Millard 2013
TOE_FORCE = 0.33  # F_toe / F₀ (Thelen 2003)
TOE_STRAIN = 0.609  # ε_toe / ε₀
TOE_SHAPE = 3.0  # k_toe
LINEAR_SLOPE = 1.712  # k_lin · ε₀
MIN_FIBER = 0.2  # l̃ below which the fibre may not shorten (numerical floor)

_jit = numba.njit(cache=True, fastmath=False, nogil=True)


@_jit
def _tendon(strain, eps0):
    """(f_T, df_T/dε) in units of F₀."""
    toe = TOE_STRAIN * eps0
    if strain <= 0.0:
        return 0.0, 0.0
    if strain < toe:
        c = TOE_FORCE / (math.exp(TOE_SHAPE) - 1.0)
        e = math.exp(TOE_SHAPE * strain / toe)
        return c * (e - 1.0), c * e * TOE_SHAPE / toe
    k = LINEAR_SLOPE / eps0
    return TOE_FORCE + k * (strain - toe), k


def tendon_force(strain, eps0):
    """f_T(ε) / F₀ for arrays (numpy), the curve the kernels use."""
    strain, eps0 = np.broadcast_arrays(np.asarray(strain, float), np.asarray(eps0, float))
    out = np.empty(strain.shape)
    for i in np.ndindex(strain.shape):
        out[i] = _tendon(float(strain[i]), float(eps0[i]))[0]
    return out


@_jit
def _fv(v):
    """(f_V, df_V/dṽ); ṽ < −1 gives no active force."""
    if v <= -1.0:
        return 0.0, 0.0
    if v <= 0.0:
        d = 1.0 - v / FV_A
        return (1.0 + v) / d, (1.0 + 1.0 / FV_A) / (d * d)
    s = v + FV_ECC_SLOPE
    return 1.0 + (FV_ECC_MAX - 1.0) * v / s, (FV_ECC_MAX - 1.0) * FV_ECC_SLOPE / (s * s)


@_jit
def _curves(l_norm):
    fl = math.exp(-((l_norm - 1.0) ** 2) / FL_WIDTH)
    pe = (math.exp(PE_K * (l_norm - 1.0) / PE_STRAIN) - 1.0) / (math.exp(PE_K) - 1.0)
    return fl, max(pe, 0.0)


@_jit
def _tendon_at(l_m, l_mt, height, l_ts, eps0):
    along = math.sqrt(max(l_m * l_m - height * height, 1e-12))
    f, df = _tendon((l_mt - along) / l_ts - 1.0, eps0)
    return f, df, along / l_m


@_jit
def tendon_forces(l_m, l_mt, f0, height, l_ts, eps0, out):
    """Tendon force (N) of every muscle at fibre lengths ``l_m`` and muscle–tendon lengths ``l_mt``."""
    b, m = l_m.shape
    for i in range(b):
        for j in range(m):
            out[i, j] = f0[j] * _tendon_at(l_m[i, j], l_mt[i, j], height[j], l_ts[j], eps0[j])[0]


@_jit
def fiber_step(l_m, l_mt, a, dt, l_opt, v_max, height, l_ts, eps0):
    """Advance the fibre lengths ``l_m`` in place by one backward-Euler step of length ``dt``.

    ``l_mt`` is the muscle–tendon length and ``a`` the activation at the *end* of the step; ``v_max``
    is in optimal fibre lengths per second.
    """
    b, m = l_m.shape
    for i in range(b):
        for j in range(m):
            lo, lm0 = l_opt[j], l_m[i, j]
            vs = v_max[j] * lo * dt  # fibre excursion per unit ṽ over the step
            floor = max(MIN_FIBER * lo, 1.0001 * height[j])
            v, v_lo, v_hi = 0.0, (floor - lm0) / vs, 2.0
            fl, pe = _curves(lm0 / lo)
            for _ in range(30):
                lm = lm0 + vs * v
                ft, dft, cos_a = _tendon_at(lm, l_mt[i, j], height[j], l_ts[j], eps0[j])
                fv, dfv = _fv(v)
                g = a[i, j] * fl * fv + pe + FIBER_DAMPING * v - ft / cos_a
                # d(ft/cos α)/dṽ: tendon shortens as the fibre lengthens (cos α ≈ const over a step)
                dg = a[i, j] * fl * dfv + FIBER_DAMPING + dft * cos_a * vs / (l_ts[j] * cos_a)
                if g > 0.0:
                    v_hi = v
                else:
                    v_lo = v
                step = g / dg
                v_new = v - step
                if v_new <= v_lo or v_new >= v_hi:
                    v_new = 0.5 * (v_lo + v_hi)
                if abs(v_new - v) < 1e-12:
                    v = v_new
                    break
                v = v_new
            l_m[i, j] = lm0 + vs * v


@_jit
def static_fibers(l_mt, a, l_opt, height, l_ts, eps0, out):
    """Fibre lengths at isometric equilibrium (ṽ = 0) for muscle–tendon lengths ``l_mt`` (bisection)."""
    b, m = l_mt.shape
    for i in range(b):
        for j in range(m):
            lo = max(MIN_FIBER * l_opt[j], 1.0001 * height[j])
            hi = math.sqrt(height[j] ** 2 + max(l_mt[i, j] - 0.5 * l_ts[j], 1e-6) ** 2)
            hi = max(hi, lo * 1.001)
            for _ in range(80):
                mid = 0.5 * (lo + hi)
                fl, pe = _curves(mid / l_opt[j])
                ft, _, cos_a = _tendon_at(mid, l_mt[i, j], height[j], l_ts[j], eps0[j])
                if a[i, j] * fl + pe - ft / cos_a > 0.0:
                    hi = mid
                else:
                    lo = mid
            out[i, j] = 0.5 * (lo + hi)
