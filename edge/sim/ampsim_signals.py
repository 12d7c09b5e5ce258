"""What the amplifier simulator streams: raw EMG in volts from a synthetic subject, a recording, or a
guided MVC session of a synthetic subject whose true MVC is known.

Each source gives an ``AmpSignal``: volts of shape (n_samples, n_channels), the sample rate, channel
labels (the muscle names, as the amplifier's device-info frame carries them) and, where the body model
knows it, the true MVC envelope per channel, so a calibration tool fed from the simulator can be scored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from myoedge.edge.wire.protocol import LABEL_BYTES, MAX_CHANNELS
from myoedge.ground.errors import InputError

REST_EXCITATION = 0.02  # the other muscles during an MVC: relaxed, not silent


@dataclass(frozen=True, eq=False)
class Contraction:
    """One maximal contraction of an MVC session: the channel and when it holds full excitation."""

    channel: int
    muscle: str
    repetition: int
    start_s: float  # ramp starts
    plateau_s: tuple[float, float]  # excitation 1.0 held from, to
    end_s: float  # ramp ends


@dataclass(frozen=True, eq=False)
class AmpSignal:
    """Raw EMG (volts, (n_samples, n_channels)) at ``fs`` with one label per channel."""

    volts: np.ndarray
    fs: float
    labels: tuple[str, ...]
    description: str
    true_mvc_volts: np.ndarray | None = None  # per channel, when the source knows it
    contractions: tuple[Contraction, ...] = field(default=())  # the MVC protocol's schedule

    def __post_init__(self) -> None:
        volts = np.asarray(self.volts, dtype=np.float64)
        if volts.ndim != 2 or volts.shape[0] < 1 or not 1 <= volts.shape[1] <= MAX_CHANNELS:
            raise InputError(f"EMG must be (n_samples, 1..{MAX_CHANNELS} channels), got shape {volts.shape}")
        if len(self.labels) != volts.shape[1]:
            raise InputError(f"{volts.shape[1]} EMG channels but {len(self.labels)} labels")
        if not np.all(np.isfinite(volts)):
            raise InputError("EMG holds non-finite values")
        object.__setattr__(self, "volts", volts)
        object.__setattr__(self, "labels", channel_labels(self.labels))

    @property
    def duration_s(self) -> float:
        return self.volts.shape[0] / self.fs


def channel_labels(names) -> tuple[str, ...]:
    """Muscle names as device-info labels (at most 8 characters); names that would collide are refused."""
    labels = tuple(str(n)[:LABEL_BYTES] for n in names)
    if len(set(labels)) != len(labels):
        raise InputError(f"channel labels must be unique in their first {LABEL_BYTES} characters, got "
                         f"{list(names)}")
    return labels


def device_mvc_volts(gain_volts: np.ndarray, fs: float) -> np.ndarray:
    """True MVC envelope (V) of synthetic channels as the device measures it: the body model's
    ``mvc_envelope`` through the default envelope's own band-pass and notch (``design_envelope``), so a
    perfect MVC session on the device reads exactly this."""
    from myoedge.body.emg_synth import mvc_envelope
    from myoedge.edge.dsp.envelope import EnvelopeConfig, design_envelope

    design = design_envelope(EnvelopeConfig(fs_hz=fs, out_rate_hz=fs, input_bits=24))
    return mvc_envelope(gain_volts, fs, band_sos=design.band_sos)


def _resample(volts: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    if fs_to == fs_from:
        return volts
    ratio = Fraction(fs_to / fs_from).limit_denominator(1000)
    return sps.resample_poly(volts, ratio.numerator, ratio.denominator, axis=0)


def synthetic_signal(*, joint: str = "knee", subject: int = 1, seed: int = 0, session: int = 1,
                     duration_s: float = 10.0, fs: float = 2000.0) -> AmpSignal:
    """A simulated session of synthetic subject ``subject``: every pace of the joint, one after another."""
    from myoedge.body.subjects import EMG_FS, make_subject, session_gains, simulate_session

    if not 0.1 <= duration_s <= 3600:
        raise InputError(f"duration_s must be in [0.1, 3600] s per pace, got {duration_s!r}")
    subj = make_subject(joint, subject, seed=seed)
    recordings = simulate_session(subj, session=session, duration_s=duration_s)
    volts = _resample(np.concatenate([r.emg for r in recordings]), EMG_FS, fs)
    paces = "+".join(r.meta.trial for r in recordings)
    return AmpSignal(volts=volts, fs=fs, labels=subj.model.muscle_names,
                     description=f"synthetic {subj.name} session {session} ({paces}, {duration_s:g} s each)",
                     true_mvc_volts=device_mvc_volts(session_gains(subj, session), fs))


def recording_signal(path: str | os.PathLike) -> AmpSignal:
    """The raw EMG of a recording folder (``myoedge.body.recording``), at the recording's own rate."""
    from myoedge.body.recording import load_recording

    rec = load_recording(path)
    truth = rec.meta.extra.get("truth", {}) if isinstance(rec.meta.extra.get("truth"), dict) else {}
    mvc = truth.get("mvc_volts")
    mvc = np.asarray(mvc, dtype=float) if mvc is not None and len(mvc) == rec.n_muscles else None
    return AmpSignal(volts=rec.emg, fs=rec.emg_fs, labels=rec.meta.muscles, true_mvc_volts=mvc,
                     description=f"recording {rec.meta.subject or '?'} {rec.meta.session} {rec.meta.trial}")


def mvc_excitation(*, n_channels: int, fs: float, rest_s: float = 3.0, contraction_s: float = 5.0,
                   repetitions: int = 3, ramp_s: float = 1.0,
                   labels: tuple[str, ...] | None = None) -> tuple[np.ndarray, tuple[Contraction, ...]]:
    """Excitations (n, n_channels) of a guided MVC session and its schedule.

    Per muscle, ``repetitions`` times: rest ``rest_s``, then a ``contraction_s`` maximal contraction of
    that muscle alone (excitation ramps to 1.0 over ``ramp_s``, holds, ramps back down), the others at
    rest; a final rest closes the session.
    """
    if not (rest_s > 0 and contraction_s > 2 * ramp_s and ramp_s >= 0 and isinstance(repetitions, int)
            and repetitions >= 1):
        raise InputError(f"MVC protocol needs rest_s > 0, contraction_s > 2 * ramp_s >= 0 and repetitions "
                         f">= 1, got {rest_s}, {contraction_s}, {ramp_s}, {repetitions}")
    labels = labels or tuple(f"ch{c}" for c in range(n_channels))
    block = round((rest_s + contraction_s) * fs)
    n_rest, n_ramp = round(rest_s * fs), round(ramp_s * fs)
    n_contract = block - n_rest
    shape = np.ones(n_contract)
    if n_ramp:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n_ramp + 1) / (n_ramp + 1))  # smooth onset
        shape[:n_ramp], shape[-n_ramp:] = ramp, ramp[::-1]
    n_total = n_channels * repetitions * block + n_rest
    excitation = np.full((n_total, n_channels), REST_EXCITATION)
    schedule = []
    for c in range(n_channels):
        for r in range(repetitions):
            start = (c * repetitions + r) * block + n_rest
            excitation[start:start + n_contract, c] = np.maximum(shape, REST_EXCITATION)
            schedule.append(Contraction(channel=c, muscle=labels[c], repetition=r + 1, start_s=start / fs,
                                        plateau_s=((start + n_ramp) / fs, (start + n_contract - n_ramp) / fs),
                                        end_s=(start + n_contract) / fs))
    return excitation, tuple(schedule)


def mvc_protocol_signal(*, joint: str = "knee", subject: int = 1, seed: int = 0, session: int = 1,
                        fs: float = 2000.0, rest_s: float = 3.0, contraction_s: float = 5.0,
                        repetitions: int = 3, ramp_s: float = 1.0) -> AmpSignal:
    """An isometric MVC session of a synthetic subject, synthesised by the body model's EMG model with
    the subject's electrodes, so every channel's true MVC envelope is known (:func:`device_mvc_volts`)."""
    from myoedge.body.emg_synth import ElectrodeSetup, synthesize
    from myoedge.body.subjects import make_subject, session_gains

    subj = make_subject(joint, subject, seed=seed)
    labels = channel_labels(subj.model.muscle_names)
    excitation, schedule = mvc_excitation(n_channels=len(labels), fs=fs, rest_s=rest_s,
                                          contraction_s=contraction_s, repetitions=repetitions,
                                          ramp_s=ramp_s, labels=labels)
    gains = session_gains(subj, session)
    rng = np.random.default_rng([seed, subject, session, 3571])
    volts = synthesize(excitation, fs=fs, setup=ElectrodeSetup(gain_volts=gains, crosstalk=subj.crosstalk),
                       rng=rng)
    return AmpSignal(volts=volts, fs=fs, labels=labels, true_mvc_volts=device_mvc_volts(gains, fs),
                     contractions=schedule,
                     description=f"MVC protocol of synthetic {subj.name} session {session} ({repetitions} x "
                                 f"{contraction_s:g} s per muscle)")
