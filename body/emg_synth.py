"""Synthetic surface EMG: what electrodes over the simulated muscles would record (volts).

Per channel: the muscle's neural excitation modulates unit-power band-limited Gaussian noise (the
interference pattern of many motor-unit trains; its spectrum peaks near 80–100 Hz and falls off by
400 Hz, shaped by a 30 Hz high-pass and a 200 Hz low-pass, both second order), scaled by the
electrode's gain; neighbouring muscles leak in (crosstalk); a motion artefact (< 15 Hz) follows the
segment's acceleration; the amplifier adds white baseline noise and 50 Hz mains interference.

The *MVC envelope* of a channel — the value a maximum voluntary contraction gives after the standard
envelope chain (20–450 Hz band-pass, rectification, low-pass) — is gain · E|x| with x the band-passed
unit-RMS signal, i.e. gain · √(2/π) · √(fraction of the signal's power inside 20–450 Hz). It is part of
the subject's true profile. Given a real band filter (``band_sos``, e.g. the device's Butterworth band-pass
and mains notch) the fraction is the power that filter passes, ∫ S|H|² / ∫ S, instead of the ideal band's:
that is the level the device's own envelope settles at during a maximal contraction (0.9 % lower than
the ideal band for the default device filters at 2 kHz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

SHAPE_HP_HZ = 30.0
SHAPE_LP_HZ = 200.0
ENVELOPE_BAND_HZ = (20.0, 450.0)


@dataclass(frozen=True, kw_only=True)
class ElectrodeSetup:
    """Recording conditions of one session (per channel arrays of length n_muscles)."""

    gain_volts: np.ndarray  # EMG RMS at full excitation (V)
    crosstalk: np.ndarray  # (n, n) fraction of muscle j's signal seen on channel i (diagonal 0)
    baseline_noise_volts: float = 3e-6  # RMS
    mains_volts: float = 10e-6  # amplitude
    mains_hz: float = 50.0
    artefact_volts_per_rad_s2: float = 0.3e-6


def _shaping_sos(fs: float) -> np.ndarray:
    hp = signal.butter(2, SHAPE_HP_HZ, btype="highpass", fs=fs, output="sos")
    lp = signal.butter(2, min(SHAPE_LP_HZ, 0.45 * fs), fs=fs, output="sos")
    return np.vstack([hp, lp])


def band_power_fraction(fs: float, band=ENVELOPE_BAND_HZ, *, band_sos: np.ndarray | None = None) -> float:
    """Fraction of the shaped noise's power inside the ideal ``band``, or passed by filter ``band_sos``."""
    f, h = signal.sosfreqz(_shaping_sos(fs), worN=8192, fs=fs)
    p = np.abs(h) ** 2
    if band_sos is not None:
        _, g = signal.sosfreqz(np.asarray(band_sos, dtype=float), worN=8192, fs=fs)
        return float((p * np.abs(g) ** 2).sum() / p.sum())
    inside = (f >= band[0]) & (f <= min(band[1], fs / 2))
    return float(p[inside].sum() / p.sum())


def mvc_envelope(gain_volts: np.ndarray, fs: float, *, band_sos: np.ndarray | None = None) -> np.ndarray:
    """The true MVC envelope (V) of channels with these gains (see module docstring)."""
    fraction = band_power_fraction(fs, band_sos=band_sos)
    return np.asarray(gain_volts) * math.sqrt(2.0 / math.pi) * math.sqrt(fraction)


def _unit_sources(rng: np.random.Generator, n: int, m: int, fs: float) -> np.ndarray:
    """Unit-RMS shaped noise (n, m): each muscle's interference pattern at full excitation."""
    noise = rng.standard_normal((n + 2000, m))
    shaped = signal.sosfilt(_shaping_sos(fs), noise, axis=0)[2000:]
    shaped /= shaped.std(axis=0)
    return shaped


def synthesize(excitation: np.ndarray, *, fs: float, setup: ElectrodeSetup, rng: np.random.Generator,
               theta_ddot: np.ndarray | None = None) -> np.ndarray:
    """Raw EMG (n, n_muscles) in volts for excitations (n, n_muscles) sampled at ``fs``."""
    n, m = excitation.shape
    shaped = _unit_sources(rng, n, m, fs)
    sources = np.clip(excitation, 0.0, 1.0) * shaped  # unit gain per muscle
    mixing = np.eye(m) + setup.crosstalk
    emg = (sources @ mixing.T) * setup.gain_volts
    emg += setup.baseline_noise_volts * rng.standard_normal((n, m))
    t = np.arange(n) / fs
    phase = rng.uniform(0, 2 * math.pi, m)
    emg += setup.mains_volts * np.sin(2 * math.pi * setup.mains_hz * t[:, None] + phase)
    if theta_ddot is not None and setup.artefact_volts_per_rad_s2 > 0:
        lp = signal.butter(2, 15.0, fs=fs, output="sos")
        art = signal.sosfilt(lp, theta_ddot)[:, None] * rng.uniform(0.5, 1.5, m)
        emg += setup.artefact_volts_per_rad_s2 * art
    return emg


MAINS_HARMONICS = (1, 3, 5)


def synthesize_drifting(excitation: np.ndarray, *, fs: float, gain_volts: np.ndarray, crosstalk: np.ndarray,
                        drift: np.ndarray, mains_volts: np.ndarray, noise_volts: float,
                        rng: np.random.Generator, theta_ddot: np.ndarray | None = None) -> np.ndarray:
    """Raw EMG (n, n_muscles) in volts for the hard family.

    As :func:`synthesize`, but each electrode's gain is ``gain_volts · drift`` with ``drift`` (n,
    n_muscles) a slow relative gain (electrode–skin impedance and sweat), crosstalk may reach any
    channel, and mains interference is 50 Hz and 60 Hz, each with its 3rd and 5th harmonics
    (``mains_volts`` (2, 3) amplitudes, V; random phase per channel).
    """
    n, m = excitation.shape
    sources = np.clip(excitation, 0.0, 1.0) * _unit_sources(rng, n, m, fs)
    emg = (sources @ (np.eye(m) + crosstalk).T) * gain_volts * drift
    emg += noise_volts * rng.standard_normal((n, m))
    t = np.arange(n) / fs
    for row, base_hz in enumerate((50.0, 60.0)):
        for col, h in enumerate(MAINS_HARMONICS):
            if h * base_hz < fs / 2:
                phase = rng.uniform(0, 2 * math.pi, m)
                emg += mains_volts[row, col] * np.sin(2 * math.pi * h * base_hz * t[:, None] + phase)
    if theta_ddot is not None:
        lp = signal.butter(2, 15.0, fs=fs, output="sos")
        emg += 0.3e-6 * signal.sosfilt(lp, theta_ddot)[:, None] * rng.uniform(0.5, 1.5, m)
    return emg
