"""Per-subject moment arms by constrained, regularised least squares on the equation of motion.

Each moment arm is a polynomial r_n(θ) = Σ_k c_nk θ^k, so the net muscle moment Σ_n r_n(θ) F_n is
*linear* in the coefficients: with τ the net joint moment (measured, or M θ̈ + C + G + P from the
segment), every sample gives one linear equation Σ_nk (θ^k F_n) c_nk = τ. We solve

    min_c  (1/N) Σ_t (τ_t − Σ_n r_n(θ_t) F_nt)² / τ_rms²  +  λ · mean_θ∈ROM Σ_n ((r_n − r⁰_n) / ‖r⁰_n‖)²

subject to, on a dense grid over the anatomical range of motion, flexors r_n > 0 and extensors
r_n < 0 (by at least ``min_moment_arm_m``), |r_n| ≤ ``max_moment_arm_m`` and r⁰_n / f ≤ |r_n| ≤ f r⁰_n
(``max_factor`` f). The first term is the torque misfit relative to the torque's size, the second
the relative deviation of each curve from the prior (generic or previous) model over the whole range
of motion: where the trials never go, the prior stays. Internally the curves are Legendre series on
the range of motion (well conditioned, unlike raw powers of θ), scaled by each prior curve's RMS.

λ follows from a stated prior scale unless given. Read as a Bayesian MAP estimate, the penalty says
"each curve is within about σ_p (``prior_scale``, default 30 %) of the prior, RMS over the range" and
the data term says "the torque misfit is noise of size σ_τ over N_eff independent samples"; the
weight that makes the objective that posterior is λ = (σ_τ / τ_rms)² / (N_eff σ_p²). σ_τ is the RMS
residual of the fit. N_eff counts independent samples: N / (integrated autocorrelation time of the
residual), since samples of a time series are not independent, and at most the number of movement
cycles, since errors of a force estimate (crosstalk, a wrong MVC, the envelope's lag) repeat in every
cycle and more samples of the same cycle do not average them out. λ and the residual are iterated to a
fixed point. Exact
forces leave no residual, λ → 0 and the data decide alone; noisy forces (estimated from EMG) raise σ_τ
and λ with it, so directions the data cannot resolve (synergists with proportional activity) stay
near the prior. The constrained problem is a small convex QP solved with SLSQP over the constraints
that bind (constraint generation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.polynomial import Legendre, Polynomial
from numpy.polynomial import legendre as leg
from scipy.optimize import minimize

from myoedge.body.model import JointModel
from myoedge.ground.errors import InputError

VIF_WARNING = 10.0  # variance inflation above this: the muscle's torque is nearly a mix of the others'
DATA_SHARE_WARNING = 0.5  # below this the curve is mostly the prior


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """Settings of the moment-arm fit (see the module docstring for what each bounds)."""

    degree: int | None = None  # polynomial degree of every r_n; None = the prior's largest
    max_moment_arm_m: float = 0.08
    min_moment_arm_m: float = 0.001
    max_factor: float = 2.0
    prior_scale: float = 0.3  # σ_p, the prior's believed relative RMS error (sets λ)
    regularisation: float | None = None  # λ; None = from prior_scale and the residual
    grid_points: int = 127  # constraint grid; 127 includes the 64 points JointModel checks

    def __post_init__(self):
        if self.degree is not None and not (isinstance(self.degree, int) and 0 <= self.degree <= 5):
            raise InputError(f"degree must be an integer 0..5, got {self.degree!r}")
        for name in ("max_moment_arm_m", "min_moment_arm_m"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < 1):
                raise InputError(f"{name} must be a length in metres in (0, 1), got {v!r}")
        if not self.min_moment_arm_m < self.max_moment_arm_m:
            raise InputError("min_moment_arm_m must be below max_moment_arm_m")
        if not (isinstance(self.max_factor, (int, float)) and self.max_factor > 1):
            raise InputError(f"max_factor must be > 1, got {self.max_factor!r}")
        if self.regularisation is not None and not (isinstance(self.regularisation, (int, float))
                                                    and 0 <= self.regularisation < math.inf):
            raise InputError(f"regularisation must be a finite number >= 0, got {self.regularisation!r}")
        if not (isinstance(self.prior_scale, (int, float)) and 0 < self.prior_scale < math.inf):
            raise InputError(f"prior_scale must be a positive relative error, got {self.prior_scale!r}")
        if not (isinstance(self.grid_points, int) and self.grid_points >= 16):
            raise InputError(f"grid_points must be an integer >= 16, got {self.grid_points!r}")


@dataclass(frozen=True, eq=False)
class MomentArmFit:
    """A fitted model and what the fit says about itself."""

    model: JointModel
    prior: JointModel
    regularisation: float
    rule: str  # "prior-scale" | "given"
    rmse_before: float  # N·m, prior moment arms
    rmse_after: float  # N·m, fitted moment arms
    torque_rms: float
    n_samples: int
    theta_range: tuple[float, float]  # rad, 0.5th..99.5th percentile of the data
    condition_number: float  # of the column-normalised design matrix
    muscles: list[dict] = field(default_factory=list)  # per muscle: change, data share, VIF, ...
    warnings: list[str] = field(default_factory=list)
    active_constraints: int = 0

    def summary(self) -> dict:
        return {"regularisation": self.regularisation, "rule": self.rule, "rmse_before_nm": self.rmse_before,
                "rmse_after_nm": self.rmse_after, "torque_rms_nm": self.torque_rms,
                "n_samples": self.n_samples, "theta_range_deg": [math.degrees(t) for t in self.theta_range],
                "condition_number": self.condition_number, "active_constraints": self.active_constraints,
                "muscles": self.muscles, "warnings": self.warnings}


def _prior_legendre(model: JointModel, degree: int, domain: tuple[float, float],
                    grid: np.ndarray) -> np.ndarray:
    """Prior curves as Legendre coefficients (n_muscles, degree + 1): exact when the prior's degree fits."""
    r0 = model.moment_arms(grid)
    u = (2 * grid - domain[0] - domain[1]) / (domain[1] - domain[0])
    return np.stack([leg.legfit(u, r0[:, n], degree) for n in range(r0.shape[1])])


def to_power_series(legendre_coeffs: np.ndarray, domain: tuple[float, float]) -> np.ndarray:
    """Legendre series on ``domain`` → power-series coefficients in θ, lowest first, one row per muscle."""
    rows = []
    width = legendre_coeffs.shape[1]
    for c in legendre_coeffs:
        p = Legendre(c, domain=list(domain)).convert(kind=Polynomial).coef
        rows.append(np.pad(p, (0, width - p.size)))
    return np.array(rows)


def integrated_autocorrelation(x: np.ndarray) -> float:
    """1 + 2 Σ_k ρ_k (summed until ρ first turns negative): samples per independent sample of ``x``."""
    r = np.asarray(x, dtype=float) - np.mean(x)
    n = r.size
    if n < 3 or not np.any(r):
        return 1.0
    f = np.fft.rfft(r, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[:n]
    ac = ac / ac[0]
    first_negative = int(np.argmax(ac < 0)) if np.any(ac < 0) else n
    return float(max(1.0, 1.0 + 2.0 * ac[1:first_negative].sum()))


def _prior_scale_lambda(ata: np.ndarray, atb: np.ndarray, ltl: np.ndarray, a: np.ndarray, b: np.ndarray,
                        lengths: Sequence[int], prior_scale: float, cycles: float | None) -> float:
    """λ = (σ_τ / τ_rms)² / (N_eff σ_p²), iterated to its fixed point (see the module docstring)."""
    lam, n = 1e-10, b.size
    for _ in range(4):
        z = np.linalg.solve(ata + lam * ltl, atb)
        resid = b - a @ z  # scaled by 1 / (τ_rms √N)
        noise2 = float(resid @ resid)  # (σ_τ / τ_rms)²
        cuts = np.cumsum(lengths)[:-1]
        t_int = float(np.average([integrated_autocorrelation(p) for p in np.split(resid, cuts)],
                                 weights=lengths))
        n_eff = n / t_int if cycles is None else min(n / t_int, cycles)
        new = max(noise2 / (n_eff * prior_scale**2), 1e-12)
        if abs(math.log(new / lam)) < 0.05:
            return new
        lam = new
    return lam


def _constrained(hess: np.ndarray, atb: np.ndarray, z: np.ndarray, rows: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, *, tol: float) -> tuple[np.ndarray, int]:
    """min ½ zᵀHz − gᵀz s.t. lo ≤ rows·z ≤ hi, by constraint generation around SLSQP.

    Most grid constraints never bind, so SLSQP sees only those violated so far (plus their
    neighbours); the loop ends when the solution satisfies all of them. Returns (z, n_active).
    """
    working = np.zeros(rows.shape[0], dtype=bool)
    for _ in range(20):
        val = rows @ z
        bad = (val < lo - tol) | (val > hi + tol)
        if not bad.any():
            return z, int(np.sum(working & ((val - lo < tol) | (hi - val < tol))))
        grown = bad | np.roll(bad, 1) | np.roll(bad, -1)
        working |= grown
        r, l, h = rows[working], lo[working], hi[working]
        cons = [{"type": "ineq", "fun": lambda zz, r=r, l=l: r @ zz - l, "jac": lambda zz, r=r: r},
                {"type": "ineq", "fun": lambda zz, r=r, h=h: h - r @ zz, "jac": lambda zz, r=r: -r}]
        res = minimize(lambda zz: 0.5 * zz @ hess @ zz - atb @ zz, z, jac=lambda zz: hess @ zz - atb,
                       constraints=cons, method="SLSQP", options={"maxiter": 500, "ftol": 1e-15})
        if not res.success and "Positive directional derivative" not in res.message:
            raise RuntimeError(f"the constrained moment-arm fit did not converge: {res.message}")
        z = res.x
    raise RuntimeError("the constrained moment-arm fit did not settle on its active constraints")


def _vif(columns: np.ndarray) -> np.ndarray:
    """Variance inflation factor of each column (1 = orthogonal to the others, ∞ = a mix of them)."""
    m = columns.shape[1]
    out = np.ones(m)
    for j in range(m):
        others = np.delete(columns, j, axis=1)
        if others.shape[1] == 0 or not np.any(columns[:, j]):
            continue
        coef, *_ = np.linalg.lstsq(others, columns[:, j], rcond=None)
        resid = columns[:, j] - others @ coef
        r2 = 1.0 - (resid @ resid) / max(columns[:, j] @ columns[:, j], 1e-300)
        out[j] = 1.0 / max(1.0 - r2, 1e-12)
    return out


def fit_moment_arms(prior: JointModel, theta: np.ndarray, torque: np.ndarray, forces: np.ndarray, *,
                    config: FitConfig = FitConfig(), trial_lengths: Sequence[int] | None = None,
                    cycles: float | None = None) -> MomentArmFit:
    """Fit every muscle's r_n(θ) to samples (θ (N,), τ (N,), F (N, n_muscles) in ``prior``'s order).

    ``trial_lengths`` (samples per trial, in order) keeps the residual's autocorrelation from running
    across the joins between trials; without it the samples are taken as one trial. ``cycles``, the
    number of movement cycles in the data, caps N_eff (see the module docstring).
    """
    theta, torque, forces = (np.asarray(a, dtype=float) for a in (theta, torque, forces))
    n_m, n = len(prior.muscles), theta.size
    if theta.ndim != 1 or torque.shape != theta.shape or forces.shape != (n, n_m):
        raise InputError(f"expected θ (N,), τ (N,) and forces (N, {n_m}); got {theta.shape}, "
                         f"{torque.shape}, {forces.shape}")
    if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(torque)) and np.all(np.isfinite(forces))):
        raise InputError("calibration data hold NaN or infinite values")
    degree = config.degree if config.degree is not None else prior.coeffs.shape[1] - 1
    k1 = degree + 1
    if n < 4 * n_m * k1:
        raise InputError(f"{n} samples are too few to fit {n_m * k1} moment-arm coefficients")
    domain = (prior.segment.range_lo, prior.segment.range_hi)
    grid = np.linspace(*domain, config.grid_points)
    half = domain[1] - domain[0]
    u_grid, u = (2 * grid - sum(domain)) / half, (2 * theta - sum(domain)) / half
    outside = np.mean((u < -1 - 1e-9) | (u > 1 + 1e-9))
    if outside > 0.01:
        raise InputError(f"{100 * outside:.1f}% of the samples lie outside the profile's range of motion "
                         f"[{math.degrees(domain[0]):.0f}°, {math.degrees(domain[1]):.0f}°]; check the "
                         "angle's sign and units")
    r0_grid = prior.moment_arms(grid)
    scale = np.sqrt(np.mean(r0_grid**2, axis=0))  # per-muscle RMS of the prior curve
    tau_rms = float(np.sqrt(np.mean(torque**2)))
    if tau_rms <= 0 or not np.any(forces):
        raise InputError("the torque or every muscle force is zero throughout; nothing to fit")

    # Scaled unknowns x = Legendre coefficients / prior RMS; rows scaled so the data term is a mean.
    v_grid = leg.legvander(u_grid, degree)
    a = (leg.legvander(u, degree)[:, None, :] * (forces * scale)[:, :, None]).reshape(n, n_m * k1)
    a /= tau_rms * math.sqrt(n)
    x0 = (_prior_legendre(prior, degree, domain, grid) / scale[:, None]).ravel()
    ltl = np.kron(np.eye(n_m), v_grid.T @ v_grid / len(grid))
    resid0 = torque / (tau_rms * math.sqrt(n)) - a @ x0
    ata, atb = a.T @ a, a.T @ resid0
    if config.regularisation is None:
        lengths = list(trial_lengths) if trial_lengths is not None else [n]
        if sum(lengths) != n or min(lengths) < 1:
            raise InputError(f"trial_lengths {lengths} must be positive and add up to the {n} samples")
        lam = _prior_scale_lambda(ata, atb, ltl, a, resid0, lengths, config.prior_scale, cycles)
        rule = "prior-scale"
    else:
        lam, rule = float(config.regularisation), "given"
    hess = ata + lam * ltl
    z = np.linalg.lstsq(hess, atb, rcond=None)[0]

    # lower <= s_n r_n(θ_g) <= upper on the grid (s_n = +1 flexor, −1 extensor).
    signs = np.array([m.sign for m in prior.muscles], dtype=float)
    c_rows = np.kron(np.diag(signs * scale), v_grid)
    s_r0 = (signs * r0_grid).T.ravel()
    lower = np.maximum(config.min_moment_arm_m, s_r0 / config.max_factor)
    upper = np.maximum(np.minimum(config.max_moment_arm_m, s_r0 * config.max_factor), lower)
    base = c_rows @ x0
    z, active = _constrained(hess, atb, z, c_rows, lower - base, upper - base, tol=1e-9 * float(scale.max()))
    power = to_power_series((x0 + z).reshape(n_m, k1) * scale[:, None], domain)
    model = replace(prior, muscles=tuple(replace(m, moment_arm=tuple(float(c) for c in power[i]))
                                         for i, m in enumerate(prior.muscles)))
    share = np.clip(np.diag(np.linalg.lstsq(hess, ata, rcond=None)[0]).reshape(n_m, k1).mean(axis=1), 0, 1)
    norms = np.linalg.norm(a, axis=0)
    cond = float(np.linalg.cond(a[:, norms > 0] / norms[norms > 0]))
    lo, hi = (float(v) for v in np.percentile(theta, [0.5, 99.5]))
    per_muscle, warnings = _diagnose(prior, model, theta, forces, share, (lo, hi))
    rmse = [float(np.sqrt(np.mean((torque - m.muscle_torque(theta, forces)) ** 2))) for m in (prior, model)]
    return MomentArmFit(model=model, prior=prior, regularisation=lam, rule=rule, rmse_before=rmse[0],
                        rmse_after=rmse[1], torque_rms=tau_rms, n_samples=n, theta_range=(lo, hi),
                        condition_number=cond, muscles=per_muscle, warnings=warnings,
                        active_constraints=active)


def _diagnose(prior: JointModel, model: JointModel, theta: np.ndarray, forces: np.ndarray, share: np.ndarray,
              covered: tuple[float, float]) -> tuple[list[dict], list[str]]:
    """Per-muscle change and identifiability, and the warnings a user should read."""
    dense = np.linspace(*covered, 200)
    r_before, r_after = prior.moment_arms(dense), model.moment_arms(dense)
    contrib = prior.moment_arms(theta) * forces  # each muscle's torque under the prior
    vif = _vif(contrib)
    corr = np.nan_to_num(np.corrcoef(contrib, rowvar=False)) if contrib.shape[1] > 1 else np.ones((1, 1))
    names = prior.muscle_names
    per_muscle, warnings = [], []
    for i, m in enumerate(prior.muscles):
        change = m.sign * (r_after[:, i] - r_before[:, i]) / np.sqrt(np.mean(r_before[:, i] ** 2))  # of |r|
        per_muscle.append({"muscle": m.name, "action": m.action,
                           "rms_change": float(np.sqrt(np.mean(change**2))),
                           "mean_change": float(np.mean(change)), "data_share": float(share[i]),
                           "vif": float(vif[i]), "coefficients": list(model.muscles[i].moment_arm),
                           "prior_coefficients": list(m.moment_arm)})
        if vif[i] > VIF_WARNING:
            others = [j for j in range(len(names)) if j != i]
            like = names[max(others, key=lambda j: abs(corr[i, j]))]
            warnings.append(f"{m.name}: its torque is nearly a linear mix of the other muscles' (variance "
                            f"inflation {vif[i]:.0f}, most like {like}); the trials cannot tell them apart, "
                            "so record movements that use them in different proportions (co-contraction, "
                            "other angles, other speeds)")
        if share[i] < DATA_SHARE_WARNING:
            warnings.append(f"{m.name}: the data determine only {100 * share[i]:.0f}% of its curve and the "
                            "rest stays at the prior (too little activity of this muscle, or too narrow a "
                            "range)")
    seg = prior.segment
    cover = (covered[1] - covered[0]) / (seg.range_hi - seg.range_lo)
    if cover < 0.5:
        lo_deg, hi_deg = (math.degrees(c) for c in covered)
        warnings.append(f"the trials cover θ {lo_deg:.0f}°..{hi_deg:.0f}°, {100 * cover:.0f}% of the "
                        "range of motion; outside it the moment arms stay near the prior")
    return per_muscle, warnings


def relative_rms_error(fitted: JointModel, truth: JointModel, theta_range: Sequence[float], *,
                       points: int = 200) -> np.ndarray:
    """Per muscle ‖r_fit − r_true‖ / ‖r_true‖ (RMS over ``theta_range``): the recovery measure."""
    grid = np.linspace(float(theta_range[0]), float(theta_range[1]), points)
    rf, rt = fitted.moment_arms(grid), truth.moment_arms(grid)
    return np.sqrt(np.mean((rf - rt) ** 2, axis=0) / np.mean(rt**2, axis=0))
