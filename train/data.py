"""Training data: recordings -> the device's envelopes and the targets at the model rate, and the splits.

Each recording's raw EMG goes through :func:`myoedge.edge.dsp.envelope.envelope_from_volts`, the same
fixed-point chain the device runs, so the network trains on the numbers it will see. Envelope sample j
is taken at EMG sample ``(k − 1) + j·k`` (k = EMG rate / model rate) and uses only EMG up to that
instant; the motion targets (θ, forces, moment arms, torque) are PCHIP-interpolated from the motion
time base onto those instants, never the other way round. The first ``settle_s`` seconds are dropped
because the filters start from rest there, which the always-running device never sees.

Normalisation (envelope ÷ MVC) uses the subject's profile; without one, the largest envelope of each
channel over all of that subject's recordings stands in for MVC (one scale per subject, as on the
device) and a warning says so. Physics: a profile gives the equation of motion ("eom") with the
profile's segment and moment arms; without one, a recording with an inverse-dynamics torque uses
``Σ r F − P(θ, θ̇) − τ_ID`` ("id"; P the joint's passive moment, identified on the training part of a
split: :func:`myoedge.train.physics.attach_passive`), else the generic model of the joint ("eom", with
a warning); with neither, the physics term is off ("none"). See docs/training.md.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.interpolate import PchipInterpolator

from myoedge.body.catalog import JOINTS, generic_model, hand_load_kg
from myoedge.body.identify import PassiveMoment
from myoedge.body.model import JointModel
from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import Recording, find_recordings, load_recording
from myoedge.edge.dsp.adc import Adc, default_adc
from myoedge.edge.dsp.envelope import EnvelopeConfig, envelope_from_volts
from myoedge.ground.errors import InputError

log = logging.getLogger(__name__)

PHYSICS_MODES = ("eom", "id", "none")
PROFILE_NAME = "profile.json"
MAX_LEAD_S = 10.0  # seconds of input history a part keeps from before its start


@dataclass(frozen=True, eq=False)
class Sequence:
    """One trial (or a contiguous part of one) at the model rate; per-muscle arrays follow ``muscles``."""

    name: str
    subject: str
    session: str
    trial: str
    joint: str
    muscles: tuple[str, ...]
    rate_hz: float
    t: np.ndarray  # (n,) s, on the recording's time base (time since the trial started)
    envelopes: np.ndarray  # (n, C) float32, envelope ÷ MVC from the edge code
    theta: np.ndarray  # (n,) rad
    forces: np.ndarray  # (n, M) N
    moment_arms: np.ndarray | None  # (n, M) m, as recorded
    torque: np.ndarray | None  # (n,) N·m, net joint moment (inverse dynamics)
    model: JointModel | None  # segment and moment-arm model for the physics term
    physics: str = "eom"  # "eom" | "id" | "none"
    envelope_config: EnvelopeConfig | None = None
    adc: Adc | None = None  # the ADC the recorded volts were quantised with
    mvc_volts: tuple[float, ...] = ()
    mvc_source: str = "profile"  # "profile" | "max envelope"
    lead: np.ndarray | None = None  # (k, C) envelopes just before t[0] in the same trial (inputs only)
    events: dict | None = None  # gait events of the recording: name -> times (s) on the clock of ``t``
    source: str = ""  # the recording's folder, for messages
    cycle_s: float | None = None  # a time-normalised movement cycle: its duration (``t`` is then the
    #   phase 0..1 and ``rate_hz`` = (n − 1) / cycle_s, the frames' spacing); see myoedge.train.cycles
    load_kg: float = 0.0  # a mass held in the hand through the trial (recording.json ``load_kg``)
    passive: PassiveMoment | None = None  # "id": the joint's passive moment in Σ r F − P − τ_ID, identified
    #   on training data (myoedge.train.physics.attach_passive); None: taken as 0

    def __post_init__(self) -> None:
        n, m = len(self.t), len(self.muscles)
        if self.physics not in PHYSICS_MODES:
            raise InputError(f"{self.name}: physics must be one of {PHYSICS_MODES}, got {self.physics!r}")
        expected = {"envelopes": (n, m), "theta": (n,), "forces": (n, m), "moment_arms": (n, m),
                    "torque": (n,)}
        for key, shape in expected.items():
            value = getattr(self, key)
            if value is not None and np.shape(value) != shape:
                raise InputError(f"{self.name}: {key} must have shape {shape}, got {np.shape(value)}")

    @property
    def n(self) -> int:
        return len(self.t)

    @property
    def model_moment_arms(self) -> bool:
        """True when the physics takes r(θ) from ``model`` (it names these muscles), else the recorded r.

        Against a recorded τ_ID ("id": no profile, so the model is the joint's generic one) recorded moment
        arms come first: a lab's muscle analysis of its own model is that subject's r(θ), the generic
        model's is an average adult's (on two OpenSim wrists and a knee, the passive moment fitted to
        Σ r F − τ_ID with the generic r left 28–34 % of its RMS, with the recorded r at most 0.3 %)."""
        if self.physics == "id" and self.moment_arms is not None:
            return False
        return self.model is not None and self.model.muscle_names == self.muscles

    def muscle_moment(self) -> np.ndarray:
        """Σ r F (N·m) of the recorded forces at the recorded angle, r where the physics takes it from
        (:attr:`model_moment_arms`)."""
        arms = self.model.moment_arms(self.theta) if self.model_moment_arms else self.moment_arms
        return (arms * self.forces).sum(-1)

    def part(self, start: int, stop: int, *, tag: str) -> Sequence:
        """Steps ``start:stop`` as a new sequence named ``<name>#<tag>``.

        Its ``lead`` keeps up to ``MAX_LEAD_S`` of the envelopes before ``start``: a causal model on the
        device has seen that EMG, so it may use it as input history (targets never cross the cut).
        """
        if not 0 <= start < stop <= self.n:
            raise InputError(f"{self.name}: part [{start}, {stop}) is outside 0..{self.n}")
        cut = slice(start, stop)
        opt = {k: None if getattr(self, k) is None else getattr(self, k)[cut]
               for k in ("moment_arms", "torque")}
        before = self.envelopes[:start]
        if self.lead is not None:
            before = np.concatenate([self.lead, before])
        lead = before[-int(MAX_LEAD_S * self.rate_hz):] if len(before) else None
        return replace(self, name=f"{self.name}#{tag}", t=self.t[cut], envelopes=self.envelopes[cut],
                       theta=self.theta[cut], forces=self.forces[cut], lead=lead, **opt)

    def history(self, steps: int) -> np.ndarray:
        """The ``steps`` envelope frames before t[0]: from ``lead``, the oldest missing ones holding the
        first available frame (what a model sees just after start-up)."""
        known = np.zeros((0, len(self.muscles)), np.float32) if self.lead is None else self.lead[-steps:]
        if steps <= 0:
            return known[:0]
        first = known[:1] if len(known) else self.envelopes[:1]
        return np.concatenate([np.repeat(first, steps - len(known), axis=0), known]).astype(np.float32)


# ------------------------------------------------------------------------------------------- loading

def discover_profiles(root: str | os.PathLike) -> dict[str, SubjectProfile]:
    """Every ``profile.json`` under ``root`` (or ``root`` itself when it is one), keyed by subject."""
    root = Path(root)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(p for p in root.rglob(PROFILE_NAME)
                       if not any(part.startswith(".") for part in p.relative_to(root).parts))
    else:
        raise InputError(f"{root}: no such profile file or folder")
    profiles: dict[str, SubjectProfile] = {}
    for path in paths:
        prof = SubjectProfile.load(path)
        if prof.subject in profiles:
            raise InputError(f"two profiles for subject {prof.subject!r} (the second is {path})")
        profiles[prof.subject] = prof
    return profiles


def _profiles_beside(folder: Path) -> dict[str, SubjectProfile]:
    """Profiles in a recording's folder or the one above it (``<subject>/profile.json`` layout)."""
    found = {}
    for candidate in (folder / PROFILE_NAME, folder.parent / PROFILE_NAME):
        if candidate.is_file():
            prof = SubjectProfile.load(candidate)
            found.setdefault(prof.subject, prof)
    return found


def _emg_at(rec: Recording, fs: float) -> tuple[np.ndarray, float]:
    """The EMG at ``fs`` Hz: as recorded, or band-limited (FFT) resampling when the rates differ."""
    if abs(rec.emg_fs - fs) <= 1e-9 * fs:
        return rec.emg, fs
    n = int(round(rec.emg.shape[0] * fs / rec.emg_fs))
    log.info("%s: resampling EMG from %g Hz to %g Hz (a multiple of the model rate)", rec.meta.subject,
             rec.emg_fs, fs)
    return signal.resample(rec.emg, n, axis=0), fs


def _envelope_config(rec: Recording, rate_hz: float, given: EnvelopeConfig | None,
                     adc: Adc) -> EnvelopeConfig:
    if given is not None:
        if abs(given.out_rate_hz - rate_hz) > 1e-9 * rate_hz:
            raise InputError(f"envelope out_rate_hz {given.out_rate_hz:g} Hz must equal the model rate "
                             f"{rate_hz:g} Hz")
        return given
    fs = math.ceil(rec.emg_fs / rate_hz - 1e-9) * rate_hz  # the EMG rate or the next multiple of the model's
    return EnvelopeConfig(fs_hz=fs, out_rate_hz=rate_hz, input_bits=adc.bits,
                          band_hz=(20.0, min(450.0, 0.45 * fs)))


def _check_profile(rec: Recording, profile: SubjectProfile) -> None:
    muscles, joint = rec.meta.muscles, rec.meta.joint
    if profile.joint != joint or set(profile.muscles) != set(muscles):
        raise InputError(f"profile of {profile.subject} is for {profile.joint} {list(profile.muscles)} but "
                         f"recording {rec.meta.subject} {rec.meta.trial} is {joint} {list(muscles)}")


def _physics_for(rec: Recording, profile: SubjectProfile | None) -> tuple[JointModel | None, str]:
    muscles, joint, who = rec.meta.muscles, rec.meta.joint, f"{rec.meta.subject} {rec.meta.trial}"
    if profile is not None:
        _check_profile(rec, profile)
        order = [profile.model.index(m) for m in muscles]
        return replace(profile.model, muscles=tuple(profile.model.muscles[i] for i in order)), "eom"
    generic = generic_model(joint) if joint in JOINTS else None
    named = generic is not None and set(generic.muscle_names) == set(muscles)
    if named:
        generic = replace(generic, muscles=tuple(generic.muscles[generic.index(m)] for m in muscles))
    has_r = named or rec.moment_arms is not None
    if rec.torque is not None and has_r:
        log.info("%s: no profile; the physics term is Σ r F − τ_ID against the recorded torque", who)
        return generic, "id"
    if generic is not None and has_r:
        log.warning("%s: no profile and no inverse-dynamics torque; the physics term uses the generic %s "
                    "model (segment parameters of an average adult)", who, joint)
        return generic, "eom"
    log.warning("%s: no profile, no torque and no known moment arms for %s; the physics term is off", who,
                list(muscles))
    return None, "none"


def load_sequences(paths_or_root, *, rate_hz: float = 100.0, envelope: EnvelopeConfig | None = None,
                   profiles: dict[str, SubjectProfile] | None = None, settle_s: float = 0.3,
                   adc: Adc | None = None) -> list[Sequence]:
    """Recordings -> sequences at ``rate_hz``.

    ``paths_or_root`` is a folder searched for recordings, or an iterable of recording folders and/or
    in-memory :class:`Recording` objects. ``profiles`` maps subject -> profile; ``None`` looks for
    ``profile.json`` in each recording's folder and the folder above it. Recorded volts are quantised as
    ``adc`` would (default: :func:`~myoedge.edge.dsp.adc.default_adc` of ``envelope.input_bits``, 24-bit
    without an envelope), the ADC the bundle records and the device must match.
    """
    bits = 24 if envelope is None else envelope.input_bits
    if adc is None:
        adc = default_adc(bits)
    elif not isinstance(adc, Adc):
        raise InputError(f"adc must be an Adc, got {type(adc).__name__}")
    elif adc.bits != bits and envelope is not None:
        raise InputError(f"the ADC is {adc.bits}-bit but the envelope is designed for {bits}-bit input")
    if not (isinstance(rate_hz, (int, float)) and 0 < rate_hz < math.inf):
        raise InputError(f"rate_hz must be a positive number of Hz, got {rate_hz!r}")
    if isinstance(paths_or_root, (str, os.PathLike)):
        items: list = find_recordings(paths_or_root)
        if not items:
            raise InputError(f"no recordings (folders with recording.json) under {paths_or_root}")
    else:
        items = list(paths_or_root)
    found: dict[str, SubjectProfile] = {} if profiles is None else dict(profiles)
    recordings, sources = [], {}
    for item in items:
        if isinstance(item, Recording):
            recordings.append(item)
            continue
        folder = Path(item)
        recordings.append(load_recording(folder))
        sources[id(recordings[-1])] = str(folder)
        if profiles is None:
            for subject, prof in _profiles_beside(folder).items():
                found.setdefault(subject, prof)
    if not recordings:
        raise InputError("no recordings given")
    by_subject: dict[str, list[Recording]] = {}
    for rec in recordings:
        if rec.forces is None:
            raise InputError(f"recording {rec.meta.subject} {rec.meta.session} {rec.meta.trial} has no "
                             "muscle forces; training needs them as targets (e.g. static optimisation's)")
        by_subject.setdefault(rec.meta.subject, []).append(rec)
    sequences = []
    for subject, recs in by_subject.items():
        sequences.extend(_subject_sequences(subject, recs, found.get(subject), rate_hz=float(rate_hz),
                                            envelope=envelope, settle_s=settle_s,
                                            adc=adc, sources=sources))
    return sequences


def _subject_sequences(subject: str, recs: list[Recording], profile: SubjectProfile | None, *, rate_hz: float,
                       envelope: EnvelopeConfig | None, settle_s: float,
                       adc: Adc, sources: dict) -> list[Sequence]:
    prepared, volts_per_count = [], adc.volts_per_count
    for rec in recs:
        cfg = _envelope_config(rec, rate_hz, envelope, adc)
        emg, fs = _emg_at(rec, cfg.fs_hz)
        prepared.append((rec, cfg, emg, fs))
    if profile is not None:
        for rec in recs:
            _check_profile(rec, profile)
        mvc_by_rec = [np.array([profile.mvc[profile.model.index(m)] for m in rec.meta.muscles])
                      for rec, *_ in prepared]
        source = "profile"
    else:
        volts = [envelope_from_volts(emg, fs_hz=fs, config=cfg, volts_per_count=volts_per_count)
                 for _, cfg, emg, fs in prepared]
        names = recs[0].meta.muscles
        if any(rec.meta.muscles != names for rec in recs):
            raise InputError(f"subject {subject}: recordings list different muscles; without a profile they "
                             "must share one channel order")
        mvc = np.max([v.max(axis=0) for v in volts], axis=0).astype(np.float64)
        mvc = np.where(mvc > 0, mvc, 1.0)
        log.warning("subject %s has no profile: MVC taken as the largest envelope over its %d recording(s) "
                    "(%s V)", subject, len(recs), ", ".join(f"{v:.3g}" for v in mvc))
        mvc_by_rec, source = [mvc] * len(recs), "max envelope"
    out = []
    for (rec, cfg, emg, fs), mvc in zip(prepared, mvc_by_rec):
        env = envelope_from_volts(emg, fs_hz=fs, config=cfg, volts_per_count=volts_per_count, mvc_volts=mvc)
        k = cfg.decimation
        t_env = rec.emg_t0 + ((k - 1) + k * np.arange(env.shape[0])) / fs
        keep = (t_env >= max(rec.time[0], rec.emg_t0 + settle_s) - 1e-9) & (t_env <= rec.time[-1] + 1e-9)
        if keep.sum() < 3:
            raise InputError(f"recording {rec.meta.subject} {rec.meta.trial}: under 3 samples at "
                             f"{rate_hz:g} Hz after the {settle_s:g} s filter settling time")
        t = t_env[keep]

        def at(values, rec=rec, t=t):
            return None if values is None else PchipInterpolator(rec.time, values, axis=0)(t)

        model, physics = _physics_for(rec, profile)
        meta = rec.meta
        out.append(Sequence(
            name=f"{meta.subject}/{meta.session}_{meta.trial}", subject=meta.subject, session=meta.session,
            trial=meta.trial, joint=meta.joint, muscles=meta.muscles, rate_hz=rate_hz, t=t,
            envelopes=np.ascontiguousarray(env[keep]), theta=at(rec.theta), forces=at(rec.forces),
            moment_arms=at(rec.moment_arms), torque=at(rec.torque), model=model, physics=physics,
            envelope_config=cfg, adc=adc, mvc_volts=tuple(float(v) for v in mvc), mvc_source=source,
            events={k: np.asarray(v, dtype=np.float64)
                    for k, v in (getattr(rec, "events", None) or {}).items()},
            source=sources.get(id(rec), ""), load_kg=recording_load(rec)))
    return out


def recording_load(rec: Recording, *, required: bool = False) -> float:
    """The mass held in the hand through ``rec`` (recording.json ``load_kg``; 0 when absent, or an error
    naming the recording when ``required``)."""
    where = f"recording {rec.meta.subject} {rec.meta.trial}"
    if required and rec.meta.extra.get("load_kg") is None:
        raise InputError(f"{where}: recording.json needs load_kg, the mass held in the hand (kg, 0 for none)")
    try:
        return hand_load_kg(rec.meta.extra)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


# -------------------------------------------------------------------------------------------- splits

def _by_subject(seqs: Iterable[Sequence]) -> dict[str, list[Sequence]]:
    groups: dict[str, list[Sequence]] = {}
    for s in seqs:
        groups.setdefault(s.subject, []).append(s)
    if not groups:
        raise InputError("no sequences to split")
    return groups


def split_intra_session(seqs, *, train_fraction: float = 0.8, seed: int = 0) -> dict:
    """The paper's intra-session protocol: per subject, 80/20 of its pooled trials.

    Every trial gives a contiguous test block of ``1 − train_fraction`` of its length at a random place
    (contiguous so the physics term and causal models see whole stretches) and keeps the rest, one or
    two pieces, for training. Returns ``{subject: (train, test)}``.
    """
    if not 0.0 < train_fraction < 1.0:
        raise InputError(f"train_fraction must be in (0, 1), got {train_fraction}")
    rng = np.random.default_rng(seed)
    result = {}
    for subject, group in _by_subject(seqs).items():
        train, test = [], []
        for s in group:
            n_test = int(round((1.0 - train_fraction) * s.n))
            if n_test < 3 or s.n - n_test < 3:
                raise InputError(f"{s.name}: {s.n} steps are too few to split {train_fraction:g}/"
                                 f"{1 - train_fraction:g}")
            start = int(rng.integers(0, s.n - n_test + 1))
            test.append(s.part(start, start + n_test, tag="test"))
            train.extend(s.part(a, b, tag=f"train{i}") for i, (a, b) in
                         enumerate(((0, start), (start + n_test, s.n))) if b - a >= 3)
        result[subject] = (train, test)
    return result


def split_time(seqs, *, test_fraction: float = 0.2) -> dict:
    """Held-out time (``--split time``): per subject, the last ``test_fraction`` of every trial is the test
    part and the rest before it trains — the estimate must hold later in a session than it was taught.
    The test part keeps the trial's earlier EMG as ``lead`` (input only).
    Returns ``{subject: (train, test)}``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    result = {}
    for subject, group in _by_subject(seqs).items():
        train, test = [], []
        for s in group:
            n_test = int(round(test_fraction * s.n))
            if n_test < 3 or s.n - n_test < 3:
                raise InputError(f"{s.name}: {s.n} steps are too few to hold out {test_fraction:g} of them")
            train.append(s.part(0, s.n - n_test, tag="train"))
            test.append(s.part(s.n - n_test, s.n, tag="test"))
        result[subject] = (train, test)
    return result


def split_leave_one_trial_out(seqs) -> list[tuple[str, list[Sequence], list[Sequence]]]:
    """Cross-trial (cross-speed, cross-session) protocol: per subject, each trial held out in turn."""
    folds = []
    for _, group in _by_subject(seqs).items():
        if len(group) < 2:
            continue
        for held in group:
            folds.append((held.name, [s for s in group if s is not held], [held]))
    if not folds:
        raise InputError("leave-one-trial-out needs a subject with at least two trials")
    return folds


def subsample_train(train, fraction: float, *, seed: int) -> list[Sequence]:
    """A contiguous ``fraction`` of every training sequence at a random place (the training-size sweep)."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    out = []
    for s in train:
        n = max(3, int(round(fraction * s.n)))
        if n >= s.n:
            out.append(s)
            continue
        start = int(rng.integers(0, s.n - n + 1))
        out.append(s.part(start, start + n, tag=f"sub{fraction:g}"))
    return out
