"""Muscle forces estimated from EMG when a calibration trial has no measured forces.

The chain is the forward half of the body model, driven by the recorded EMG:

1. the edge's fixed-point envelope (:func:`myoedge.edge.dsp.envelope.envelope_from_volts`, bit-exact with
   the device) divided by the profile's MVC: the normalised envelope, ≈ the neural excitation u;
2. the envelope's 6 Hz low-pass delays it by its group delay at low frequency (≈ 37 ms); calibration is
   offline, so the envelope is advanced by that delay rather than left to bias the fit;
3. first-order activation dynamics (Thelen 2003, the same ȧ(u, a) as the simulator, stepped exactly
   for a piecewise-constant u: a ← u + (a − u)·exp(−Δt/τ)), u clipped to [0, 1];
4. Hill mechanics :meth:`myoedge.body.muscle.MuscleSet.forces` at the recorded θ, θ̇.

The Hill muscles' fibre lengths depend on the moment arms (l̇_MT = −r θ̇), so the forces change when
the moment arms do; :func:`myoedge.calibrate.refit.calibrate_moment_arms` re-estimates them after each
fit. What this cannot fix: crosstalk between neighbouring electrodes, the envelope's own fluctuation
(the EMG is a random interference pattern) and errors in the profile's maximum isometric forces,
which the moment arms absorb (only the product r·F₀ is identifiable from torque).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from myoedge.body.model import JointModel
from myoedge.body.muscle import MIN_ACTIVATION, TAU_ACT, TAU_DEACT, MuscleSet
from myoedge.body.recording import Recording
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope, envelope_from_volts
from myoedge.ground.errors import InputError


def envelope_config(emg_fs: float) -> EnvelopeConfig:
    """The envelope at the EMG's own rate (decimation 1), band edge capped below Nyquist."""
    return EnvelopeConfig(fs_hz=emg_fs, out_rate_hz=emg_fs, input_bits=default_adc().bits,
                          band_hz=(20.0, min(450.0, 0.45 * emg_fs)))


def lowpass_delay_s(config: EnvelopeConfig) -> float:
    """Group delay (s) of the envelope's low-pass at 1 Hz, where the movement's power is."""
    sos = design_envelope(config).lowpass_sos
    b, a = signal.sos2tf(sos)
    _, gd = signal.group_delay((b, a), w=[1.0], fs=config.fs_hz)
    return float(gd[0]) / config.fs_hz


def normalised_envelope(rec: Recording, mvc_volts: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """Envelope ÷ MVC at the recording's motion times (n, n_muscles), model muscle order, delay removed."""
    cfg = envelope_config(rec.emg_fs)
    emg = np.asarray(rec.emg)[:, list(order)]
    adc = default_adc(cfg.input_bits)  # the ADC training assumes, so calibration sees its envelope
    env = envelope_from_volts(emg, fs_hz=rec.emg_fs, config=cfg, volts_per_count=adc.volts_per_count,
                              mvc_volts=np.asarray(mvc_volts, dtype=float)).astype(np.float64)
    t_env = rec.emg_time - lowpass_delay_s(cfg)
    return np.column_stack([np.interp(rec.time, t_env, env[:, i]) for i in range(env.shape[1])])


def activation_from_excitation(u: np.ndarray, *, rate_hz: float, a0: np.ndarray | None = None) -> np.ndarray:
    """Activation (n, m) from excitation (n, m) by Thelen's first-order dynamics, stepped exactly."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    dt = 1.0 / rate_hz
    a = np.clip(u[0] if a0 is None else np.asarray(a0, dtype=float), MIN_ACTIVATION, 1.0)
    out = np.empty_like(u)
    for k in range(u.shape[0]):
        out[k] = a
        uk = u[k]
        tau = np.where(uk > a, TAU_ACT * (0.5 + 1.5 * a), TAU_DEACT / (0.5 + 1.5 * a))
        a = np.clip(uk + (a - uk) * np.exp(-dt / tau), MIN_ACTIVATION, 1.0)
    return out


def estimate_forces(rec: Recording, model: JointModel, *, mvc_volts, order: tuple[int, ...],
                    theta_dot: np.ndarray) -> np.ndarray:
    """Forces (n, n_muscles) in ``model``'s order from the recording's EMG (see the module docstring)."""
    mvc = np.asarray(mvc_volts, dtype=float)
    if mvc.shape != (len(model.muscles),) or not np.all(np.isfinite(mvc)) or np.any(mvc <= 0):
        raise InputError(f"estimating forces from EMG needs a positive MVC per muscle, got {mvc_volts!r}")
    if not math.isfinite(rec.emg_fs) or rec.emg_fs < 200.0:
        raise InputError(f"EMG at {rec.emg_fs:g} Hz is too slow for the 20–450 Hz envelope; need >= 200 Hz")
    u = normalised_envelope(rec, mvc, order)
    a = activation_from_excitation(u, rate_hz=rec.rate)
    return MuscleSet(model).forces(a, np.asarray(rec.theta), np.asarray(theta_dot))
