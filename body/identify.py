"""Identification of a joint's segment terms from a measured angle and the moment that drove it.

With θ, θ̇, θ̈ and the net joint moment τ known, the equation of motion (:mod:`myoedge.body.dynamics`)
is linear in the segment terms:

    τ − P_ends(θ) = M θ̈ + b θ̇ + G_s sin θ + G_c cos θ + k θ + c

where m g l_c sin(θ + φ) = G_s sin θ + G_c cos θ (G_s = m g l_c cos φ, G_c = m g l_c sin φ), the passive
stiffness is k (θ − θ_rest) = k θ + c with c = −k θ_rest, and P_ends, the end-of-range moments, is known
(or zero) because trials rarely reach the limits. With a known rest angle the constant column is dropped
and c = −k θ_rest is moved to the left-hand side.

A mass L (kg) held in the hand, at a distance d from the axis and an angle ψ off the segment's own
centre of mass, adds L d² to M and L g d sin(θ + ψ) to the gravity moment: three more columns
L θ̈, L sin θ, L cos θ, whose terms (M_L = d², G_Ls, G_Lc, per kg) are identified when the training
trials hold at least two different loads (with one load they cannot be told from the segment's own).

:func:`solve_bounded` is the numeric core (bounded linear least squares, optionally pulled toward a
prior), shared by :func:`identify_joint` (train: the observer's equation of motion from the training
recordings) and :mod:`myoedge.calibrate.segment_fit` (a profile re-fit regularised toward the prior).
Bounds: M > 0, b ≥ 0, k ≥ 0; gravity and the constant free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear
from scipy.signal import butter, sosfiltfilt

from myoedge.body.dynamics import namespace
from myoedge.ground.errors import InputError

TERMS = ("inertia", "damping", "gravity_sin", "gravity_cos", "stiffness", "offset")
LOAD_TERMS = ("load_inertia", "load_gravity_sin", "load_gravity_cos")  # per kg in the hand
MIN_SAMPLES = 20
LOWPASS_HZ = 12.0  # Hz: human joint motion lies below ~10 Hz (Winter, Biomechanics of Human Movement)


def regressors(theta, theta_dot, theta_ddot, *, rest_angle: float | None = None) -> np.ndarray:
    """The columns of the linear equation of motion, (n, 5) with a known rest angle, else (n, 6)."""
    cols = [theta_ddot, theta_dot, np.sin(theta), np.cos(theta)]
    if rest_angle is None:
        return np.column_stack(cols + [theta, np.ones_like(theta)])
    return np.column_stack(cols + [theta - rest_angle])


def solve_bounded(a: np.ndarray, b: np.ndarray, *, lower, upper, prior: np.ndarray | None = None,
                  weight: float = 0.0) -> np.ndarray:
    """argmin ‖a x − b‖² + weight ‖x − prior‖² subject to lower ≤ x ≤ upper (BVLS)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    k = a.shape[1]
    if weight > 0:
        if prior is None or np.shape(prior) != (k,):
            raise InputError(f"a weighted solve needs a prior of {k} values, got {prior!r}")
        a = np.vstack([a, math.sqrt(weight) * np.eye(k)])
        b = np.concatenate([b, math.sqrt(weight) * np.asarray(prior, dtype=float)])
    return lsq_linear(a, b, bounds=(np.asarray(lower, float), np.asarray(upper, float)), method="bvls").x


def load_regressors(theta, theta_ddot, load_kg: float) -> np.ndarray:
    """The columns of a load in the hand, (n, 3): L θ̈, L sin θ, L cos θ (terms :data:`LOAD_TERMS`)."""
    return load_kg * np.column_stack([theta_ddot, np.sin(theta), np.cos(theta)])


def term_bounds(n_terms: int, *, min_inertia: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Bounds for :func:`regressors`' columns: M ≥ ``min_inertia``, b ≥ 0, k ≥ 0, the rest free."""
    lower = np.array([min_inertia, 0.0, -np.inf, -np.inf, 0.0, -np.inf][:n_terms])
    return lower, np.full(n_terms, np.inf)


def lowpass(x: np.ndarray, *, dt: float, cutoff_hz: float = LOWPASS_HZ) -> np.ndarray:
    """``x`` through a zero-phase 4th-order Butterworth low-pass (2nd order, forward and backward).

    The angle and the moment of an equation of motion pass this one filter before the fit: it is linear
    and time-invariant, so differentiating the filtered angle gives the filtered θ̈, and both sides keep
    the same band. A moment with content above the band (a twitch, controller noise, the steps of a
    sampled excitation) moves a light joint, but once θ̈ is smoothed the unfiltered moment pulls the fit's
    inertia up (an OpenSim forward simulation's wrist: 0.0076 kg·m² for 0.003). The rule is inverse
    dynamics' own: kinematics and kinetics at one cut-off (Bisseling & Hof 2006; Kristianslund,
    Krosshaug & van den Bogert 2012). A Savitzky–Golay pair does not do this: its 2nd-derivative and
    smoothing filters pass different bands (+37 % inertia on tests/body/test_identify.py's joint).
    """
    x = np.asarray(x, dtype=float)
    if not dt > 0:
        raise InputError(f"dt must be > 0 s, got {dt!r}")
    fc = min(float(cutoff_hz), 0.4 / dt)
    if x.size < MIN_SAMPLES:
        raise InputError(f"filtering needs at least {MIN_SAMPLES} samples, got {x.size}")
    sos = butter(2, fc, fs=1.0 / dt, output="sos")
    return sosfiltfilt(sos, x, padlen=min(3 * 5, x.size - 1))


def derivatives(theta: np.ndarray, *, dt: float,
                cutoff_hz: float = LOWPASS_HZ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(θ, θ̇, θ̈) of a sampled angle: :func:`lowpass`, then central differences, edges included."""
    smooth = lowpass(theta, dt=dt, cutoff_hz=cutoff_hz)
    d1 = np.gradient(smooth, dt)
    return smooth, d1, np.gradient(d1, dt)


def _inner(n: int, *, dt: float, cutoff_hz: float) -> slice:
    """The samples of an n-sample trial away from its ends by two periods of the cut-off (all of them when
    the trial is too short to lose those)."""
    edge = int(round(2.0 / (min(cutoff_hz, 0.4 / dt) * dt)))
    return slice(edge, n - edge) if n - 2 * edge >= MIN_SAMPLES else slice(0, n)


@dataclass(frozen=True, kw_only=True)
class JointTerms:
    """An identified equation of motion: τ = M θ̈ + b θ̇ + G_s sin θ + G_c cos θ + k θ + c, and with a
    load L in the hand + L (M_L θ̈ + G_Ls sin θ + G_Lc cos θ)."""

    inertia: float  # kg·m²
    damping: float  # N·m·s/rad
    gravity_sin: float  # N·m
    gravity_cos: float  # N·m
    stiffness: float  # N·m/rad
    offset: float  # N·m (−k θ_rest)
    rmse: float  # N·m, residual of the fit
    torque_rms: float  # N·m, of the fitted moment
    load_inertia: float = 0.0  # m² (kg·m² per kg in the hand)
    load_gravity_sin: float = 0.0  # N·m per kg
    load_gravity_cos: float = 0.0  # N·m per kg

    @property
    def gravity_moment(self) -> float:
        """m g l_c (N·m): the gravity moment's amplitude."""
        return math.hypot(self.gravity_sin, self.gravity_cos)

    @property
    def gravity_offset(self) -> float:
        """φ in m g l_c sin(θ + φ)."""
        return math.atan2(self.gravity_cos, self.gravity_sin)

    def static_torque(self, theta):
        """G(θ) + P(θ) without the end-of-range terms (array-agnostic: ``sin``/``cos`` of θ's namespace)."""
        xp = namespace(theta)
        return self.gravity_sin * xp.sin(theta) + self.gravity_cos * xp.cos(theta) + self.stiffness * theta \
            + self.offset

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in TERMS + LOAD_TERMS + ("rmse", "torque_rms")}


def _pieces(values: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    out = [np.asarray(v, dtype=float).ravel() for v in values]
    if not out:
        raise InputError(f"{name}: no trials given")
    return out


def identify_joint(thetas: Sequence[np.ndarray], torques: Sequence[np.ndarray], *, dt: float,
                   rest_angle: float | None = None, ends: Sequence[np.ndarray] | None = None,
                   loads: Sequence[float] | None = None, cutoff_hz: float = LOWPASS_HZ) -> JointTerms:
    """Identify M, b, gravity, stiffness (and its rest offset) from trials of angle and driving moment.

    ``thetas`` and ``torques`` are one array per trial (rad, N·m, sampled every ``dt`` s); derivatives
    are taken per trial so no difference spans two trials, and each trial's angle and moment pass the
    same low-pass (:func:`lowpass`). ``ends`` (per trial, N·m) are known moments
    subtracted from τ first (e.g. end-of-range terms). Without ``rest_angle`` the stiffness's rest
    offset is identified too (column of ones). ``loads`` (kg per trial) held in the hand: with two or
    more different ones the load's terms (:data:`LOAD_TERMS`) are identified too, else they are 0.
    """
    thetas, torques = _pieces(thetas, "thetas"), _pieces(torques, "torques")
    if len(thetas) != len(torques):
        raise InputError(f"identify_joint needs one torque per angle trial, got {len(thetas)} angle and "
                         f"{len(torques)} torque trials")
    known = [np.zeros_like(t) for t in thetas] if ends is None else _pieces(ends, "ends")
    masses = [0.0] * len(thetas) if loads is None else [float(x) for x in loads]
    if len(masses) != len(thetas) or not all(math.isfinite(x) and x >= 0 for x in masses):
        raise InputError(f"loads must be one mass >= 0 kg per trial ({len(thetas)}), got {list(masses)}")
    loaded = len(set(masses)) > 1
    rows, rhs = [], []
    for th, tau, e, mass in zip(thetas, torques, known, masses):
        if not th.shape == tau.shape == e.shape:
            raise InputError(f"each trial's θ, τ (and ends) need one length, got {th.size}, {tau.size}, "
                             f"{e.size}")
        if not (np.all(np.isfinite(th)) and np.all(np.isfinite(tau))):
            raise InputError("θ and τ must be finite")
        if th.size < MIN_SAMPLES:
            continue
        smooth, d1, d2 = derivatives(th, dt=dt, cutoff_hz=cutoff_hz)
        keep = _inner(th.size, dt=dt, cutoff_hz=cutoff_hz)  # without the filter's start and end transients
        cols = regressors(smooth, d1, d2, rest_angle=rest_angle)
        if loaded:
            cols = np.hstack([cols, load_regressors(smooth, d2, mass)])
        rows.append(cols[keep])
        rhs.append(lowpass(tau - e, dt=dt, cutoff_hz=cutoff_hz)[keep])  # the band θ̈ kept (see lowpass)
    if not rows:
        raise InputError(f"identifying the joint needs a trial of at least {MIN_SAMPLES} samples")
    a, b = np.vstack(rows), np.concatenate(rhs)
    tau_rms = float(np.sqrt(np.mean(b**2)))
    if tau_rms <= 0:
        raise InputError("the torque is zero throughout; nothing to identify the joint from")
    scale = np.maximum(np.sqrt(np.mean(a**2, axis=0)), 1e-12)  # columns to unit RMS: a well-posed solve
    lower, upper = term_bounds(a.shape[1] - 3 * loaded)
    if loaded:  # M_L = d² ≥ 0, the load's gravity free
        lower, upper = np.append(lower, [0.0, -np.inf, -np.inf]), np.append(upper, [np.inf] * 3)
    x = solve_bounded(a / scale, b, lower=lower, upper=upper) / scale
    resid = b - a @ x
    names = [n for n in TERMS if rest_angle is None or n != "offset"] + list(LOAD_TERMS if loaded else ())
    terms = dict(zip(names, (float(v) for v in x)))
    if rest_angle is not None:
        terms["offset"] = -terms["stiffness"] * rest_angle
    return JointTerms(**terms, rmse=float(np.sqrt(np.mean(resid**2))), torque_rms=tau_rms)


PASSIVE_DEGREE = 3  # the passive elastic moment: a cubic in θ (ligaments and capsule stiffen at the ends)


@dataclass(frozen=True, kw_only=True)
class PassiveMoment:
    """The moment of a joint's passive structures, P(θ, θ̇) = Σ_k p_k θ^k + b θ̇ (k = 0 … 3).

    An inverse-dynamics moment is the net moment about the joint: the muscles' Σ r F less what the joint's
    own ligaments, capsule and damping take up (OpenSim's coordinate-limit and bushing forces are such
    elements; a real joint has them too), so Σ r F − τ_ID = P(θ, θ̇), not 0. Identified from recordings by
    :func:`identify_passive`."""

    elastic: tuple[float, ...]  # p_0 … p_3 (N·m / rad^k), lowest power first
    damping: float  # N·m·s/rad, ≥ 0
    rmse: float  # N·m, what the fit leaves of Σ r F − τ_ID
    moment_rms: float  # N·m, RMS of Σ r F − τ_ID over the fit

    def moment(self, theta, theta_dot):
        """P (N·m) at ``theta`` (rad) and ``theta_dot`` (rad/s), numpy or torch alike."""
        out, power = self.damping * theta_dot, 1.0
        for p in self.elastic:
            out = out + p * power
            power = power * theta
        return out

    def to_dict(self) -> dict:
        return {"elastic": list(self.elastic), "damping": self.damping, "rmse": self.rmse,
                "moment_rms": self.moment_rms}

    @classmethod
    def from_dict(cls, d: dict) -> PassiveMoment:
        return cls(elastic=tuple(float(v) for v in d["elastic"]), damping=float(d["damping"]),
                   rmse=float(d["rmse"]), moment_rms=float(d["moment_rms"]))


def identify_passive(thetas: Sequence[np.ndarray], excess: Sequence[np.ndarray], *,
                     dts: Sequence[float]) -> PassiveMoment:
    """Least-squares :class:`PassiveMoment` from trials of angle and ``excess`` = Σ r F − τ_ID (N·m).

    Per trial the angle and the excess pass the same low-pass (:func:`lowpass`) and θ̇ is taken from the
    filtered angle, as in :func:`identify_joint`; ``dts`` is each trial's sample spacing (s). Columns are
    scaled to unit RMS; the damping is bounded ≥ 0, the elastic terms are free.
    """
    thetas, excess = _pieces(thetas, "thetas"), _pieces(excess, "excess")
    if not len(thetas) == len(excess) == len(dts):
        raise InputError(f"identify_passive needs one excess moment and one dt per angle trial, got "
                         f"{len(thetas)}, {len(excess)}, {len(dts)}")
    rows, rhs = [], []
    for th, ex, dt in zip(thetas, excess, dts):
        if th.shape != ex.shape:
            raise InputError(f"each trial's θ and excess moment need one length, got {th.size}, {ex.size}")
        if not (np.all(np.isfinite(th)) and np.all(np.isfinite(ex))):
            raise InputError("θ and the excess moment must be finite")
        if th.size < MIN_SAMPLES:
            continue
        smooth, d1, _ = derivatives(th, dt=dt)
        keep = _inner(th.size, dt=dt, cutoff_hz=LOWPASS_HZ)
        cols = np.column_stack([smooth**k for k in range(PASSIVE_DEGREE + 1)] + [d1])
        rows.append(cols[keep])
        rhs.append(lowpass(ex, dt=dt)[keep])
    if not rows:
        raise InputError(f"identifying the passive moment needs a trial of at least {MIN_SAMPLES} samples")
    a, b = np.vstack(rows), np.concatenate(rhs)
    scale = np.maximum(np.sqrt(np.mean(a**2, axis=0)), 1e-12)
    lower = np.r_[np.full(PASSIVE_DEGREE + 1, -np.inf), 0.0]
    x = solve_bounded(a / scale, b, lower=lower, upper=np.full(a.shape[1], np.inf)) / scale
    resid = b - a @ x
    return PassiveMoment(elastic=tuple(float(v) for v in x[:-1]), damping=float(x[-1]),
                         rmse=float(np.sqrt(np.mean(resid**2))), moment_rms=float(np.sqrt(np.mean(b**2))))
