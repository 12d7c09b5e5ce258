"""Desired movements for the synthetic subjects, and smooth random signals.

The knee follows a walking-like flexion profile (a loading-response bump of ~15° and a swing peak of
~60°, as in the normative sagittal knee curve of Winter 2009, Fig. 2.x/Kadaba et al. 1990), with its
cadence and amplitude set by walking speed and small cycle-to-cycle variation. The wrist and elbow
move in smooth flexion/extension cycles at a given pace with varying amplitude and set point.
These are *targets*: the simulator tracks them with muscle forces, so the recorded motion is the
forward-dynamic result, never the target itself.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

DEG = math.pi / 180.0

# (stride period s, swing peak deg) for slow / normal / fast walking
KNEE_SPEEDS = {"slow": (1.7, 48.0), "normal": (1.45, 53.0), "fast": (1.25, 58.0)}
# cycle period (s) of wrist / elbow flexion–extension
PACES = {"slow": 3.0, "medium": 1.8, "fast": 1.1}


def smooth_noise(rng: np.random.Generator, n: int, *, fs: float, cutoff_hz: float, shape=()) -> np.ndarray:
    """Zero-mean, unit-std Gaussian noise low-passed below ``cutoff_hz``; shape (n, *shape)."""
    pad = int(2 * fs / cutoff_hz)
    x = rng.standard_normal((n + 2 * pad, *shape))
    sos = signal.butter(2, cutoff_hz, fs=fs, output="sos")
    y = signal.sosfiltfilt(sos, x, axis=0)
    # normalise by the std of the whole padded run (≥ 4 cut-off periods): a short slice of slow noise
    # has a tiny std of its own, and dividing by it would blow the slice up
    return y[pad:-pad] / np.maximum(y.std(axis=0), 1e-12)


def _derivatives(theta: np.ndarray, fs: float):
    d = np.gradient(theta, 1.0 / fs)
    return theta, d, np.gradient(d, 1.0 / fs)


def knee_gait(t: np.ndarray, *, speed: str, rng: np.random.Generator, fs: float):
    """Walking-like knee flexion (rad) with its first two derivatives."""
    period, peak = KNEE_SPEEDS[speed]
    rate = (1.0 / period) * (1.0 + 0.03 * smooth_noise(rng, len(t), fs=fs, cutoff_hz=0.3))
    phase = np.cumsum(rate) / fs + rng.uniform()
    amp = 1.0 + 0.05 * smooth_noise(rng, len(t), fs=fs, cutoff_hz=0.3)

    def bump(center, width):  # periodic Gaussian bump in gait phase
        d = (phase - center + 0.5) % 1.0 - 0.5
        return np.exp(-0.5 * (d / width) ** 2)

    deg = 5.0 + amp * (12.0 * bump(0.15, 0.06) + (peak - 5.0) * bump(0.70, 0.16))
    theta = signal.sosfiltfilt(signal.butter(2, 6.0, fs=fs, output="sos"), deg * DEG)
    return _derivatives(theta, fs)


def cyclic(t: np.ndarray, *, pace: str, lo_deg: float, hi_deg: float, rng: np.random.Generator, fs: float):
    """Smooth flexion/extension cycles between about ``lo_deg`` and ``hi_deg`` (rad, derivatives)."""
    period = PACES[pace]
    rate = (1.0 / period) * (1.0 + 0.08 * smooth_noise(rng, len(t), fs=fs, cutoff_hz=0.2))
    phase = 2 * math.pi * (np.cumsum(rate) / fs + rng.uniform())
    mid, half = 0.5 * (lo_deg + hi_deg), 0.5 * (hi_deg - lo_deg)
    amp = half * (0.8 + 0.15 * smooth_noise(rng, len(t), fs=fs, cutoff_hz=0.15))
    centre = mid + 0.1 * half * smooth_noise(rng, len(t), fs=fs, cutoff_hz=0.1)
    deg = centre + amp * np.sin(phase)
    return _derivatives(deg * DEG, fs)


def movement(joint: str, pace: str, t: np.ndarray, *, rng: np.random.Generator, fs: float):
    """The desired (θ, θ̇, θ̈) of one trial of ``joint`` at ``pace`` (a speed for the knee)."""
    if joint == "knee":
        return knee_gait(t, speed=pace, rng=rng, fs=fs)
    if joint == "wrist":
        return cyclic(t, pace=pace, lo_deg=-45.0, hi_deg=50.0, rng=rng, fs=fs)
    if joint in ("elbow", "elbow6"):
        return cyclic(t, pace=pace, lo_deg=15.0, hi_deg=115.0, rng=rng, fs=fs)
    raise ValueError(f"no movement defined for joint {joint!r}")


def paces(joint: str) -> tuple[str, ...]:
    return tuple(KNEE_SPEEDS) if joint == "knee" else tuple(PACES)
