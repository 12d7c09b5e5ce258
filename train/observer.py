"""The physics observer edge model: a GRU gives muscle forces, the joint's equation of motion integrates them.

A heavily damped joint's angle is the net muscle moment integrated over seconds. Instead of asking a
network to learn that integral, the observer integrates the identified equation of motion inside the
forward pass, at the model rate, and a learned correction keeps it from drifting:

    x = standardised envelope frame          h ← GRU(x, h)
    [f, z, g] = head([h, x])                 F = σ_F · softplus(f) ≥ 0,  θ_d = θ_mean + σ_θ z
    τ_m = Σ r_n(θ) F_n                       r_n(θ): a cubic in θ (fitted moment arms)
    θ̇ ← (θ̇ + dt (τ_m − S(θ)) / M) / (1 + dt b / M)     semi-implicit Euler, damping implicit
    θ ← θ + dt θ̇
    e = θ_d − θ;  θ ← θ + γ₁ e;  θ̇ ← θ̇ + γ₂ e          γ₁ = dt/T · σ(g₁),  γ₂ = dt/T² · σ(g₂)
    θ ← clamp(θ, θ_lo, θ_hi)

With the force stage (``ModelConfig.force_stage``, on in the shipped presets) the forces are not the
envelopes' alone: F_n = σ_n [softplus(f_n + g_n e_n) · exp(α_n · φ) + softplus(β_n0 + β_n · φ)], with
e_n muscle n's own envelope (gain g_n ≥ 0 started by :meth:`ObserverNet.identify` at the training data's
force per envelope) and φ = [θ̃, θ̃², s, s²], s = tanh(θ̇ 0.1 s/σ_θ), taken from the state each step starts from
(force-length, force-velocity and passive force; :mod:`myoedge.train.force_stage`), so the forces act
back on the motion they come from, as in a forward dynamic simulation, and the step loop makes the
forces too.

The correction only removes drift: T bounds how fast it may pull (a correction that learned to follow
the network's direct angle fitted the training part and lost on held-out time: wrist θ CC 0.93 against
0.977 bounded at 1 s). T is identified with the equation, by the test the physics must pass with the
best moment there is: the identified equation, driven by the *recorded* muscle moment of the training
trials (Σ r F of the recorded forces at the recorded angle, a fixed series) and corrected toward the
recorded angle at the full bound, is integrated at each candidate T (1 s down to 30 ms); T is the
slowest one whose angle stays within 10 % of the angle's spread (RMSE / σ_θ). Where the equation
carries the moment (a damped wrist or knee) that is 1 s, at the OpenSim elbows 0.25–0.5 s; where even
the recorded moment runs away (a forearm above the horizontal, whose gravity
pulls harder the further it falls, with little damping: our hard elbow6 at 0.12 s) the physics is
trusted only as long as it holds there. Holding such a posture is the muscles' own stiffness, the force
stage's part, which the test leaves out: recorded forces re-weighted by the moment arms at the
integrated angle (the test before) held for only 0.12–0.25 s on OpenSim wrists whose equation carries
the recorded moment for 1 s (docs/results/opensim).

S(θ) = G_s sin θ + G_c cos θ + k θ + c is the static moment (gravity and passive stiffness), M, b the
inertia and damping: all identified (:func:`myoedge.body.identify.identify_joint`) from the *training*
recordings' angle and the muscles' moment Σ r F (recorded forces; recorded moment arms, else the model's),
when :meth:`ObserverNet.identify` is called by the fit. A mass L held in the hand (recording.json
``load_kg``) is part of the equation: M + L M_L and S(θ) + L (G_Ls sin θ + G_Lc cos θ), its terms
identified when the training trials hold two or more loads (else 0, and L changes nothing). The outputs
are θ (integrated and corrected) and F; the state is [θ, θ̇, L, h] (3 + ``hidden``), initial
[θ_mean, 0, L, 0…]: L is carried unchanged from step to step, set by whoever starts the sequence (the
fit from the trial's recording.json, the runtime from ``myoedge run --load-kg``).

The state contract (docs/training.md): ``forward(envelopes (B, T, C), state)`` runs the GRU over the
whole sequence in one call (the network does not see θ), then the integration step by step (compiled
by TorchScript where torch can);
``step`` is the same for one frame — the function exported to ONNX (Softplus, Sigmoid, Max, Min, Sin, Cos,
and with the stage Exp and Tanh: opset 17).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
from torch import nn

from myoedge.body.identify import LOAD_TERMS, identify_joint
from myoedge.train.correction import candidate_times
from myoedge.train.force_stage import VELOCITY_S, KinematicForceStage, staged_forces
from myoedge.train.models import ModelConfig, Normalised, SharedDropout
from myoedge.train.moment_arms import ARM_DEGREE, arm_polynomials
from myoedge.train.recurrent import tanh_head

log = logging.getLogger(__name__)

CORRECTION_S = 1.0  # T (s) until identified: the correction is never faster; the physics owns shorter times
DRIFT = 0.1  # identified T: the slowest at which the recorded moment's integration stays within this · σ_θ
GAIN_BIAS = 0.0  # initial gains half their bounds
MIN_INERTIA = 1e-6  # kg·m²: with no identified inertia the damping alone sets the response
MARGIN = 0.1  # the angle is clamped to the training range widened by this share of it


def _recorded_moments(seqs, coeffs: np.ndarray) -> list[np.ndarray]:
    """Per sequence, Σ r_n(θ) F_n (N·m) of the recorded forces at the recorded angle, r_n the fitted
    cubics ``coeffs`` (M, degree + 1): the moment the joint's equation is identified on."""
    return [(np.polynomial.polynomial.polyval(s.theta, coeffs.T).T * s.forces).sum(-1) for s in seqs]


class ObserverNet(Normalised):
    """GRU -> forces and a direct angle; the identified joint equation integrates the forces' moment."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        c, h, m = cfg.n_channels, cfg.hidden, cfg.n_muscles
        self.gru = nn.GRU(c, h, batch_first=True)
        self.drop = SharedDropout(cfg.dropout, time_dim=1)
        self.head = tanh_head(h + c, hidden=h, blocks=cfg.fc_blocks, n_out=m + 3)
        with torch.no_grad():
            self.head[-1].bias[m + 1:].fill_(GAIN_BIAS)
        # the joint: [M, b, G_s, G_c, k, c], r_n(θ) coefficients, angle limits, step (set by identify)
        self.register_buffer("joint", torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
        self.register_buffer("load_terms", torch.zeros(len(LOAD_TERMS)))  # [M_L, G_Ls, G_Lc] per kg
        self.register_buffer("arm_coeffs", torch.zeros(m, ARM_DEGREE + 1))
        self.register_buffer("limits", torch.tensor([-math.pi, math.pi]))
        self.register_buffer("dt", torch.tensor([0.01]))
        self.register_buffer("correction_s", torch.tensor([CORRECTION_S]))
        self.force_stage = KinematicForceStage(m) if cfg.force_stage else None

    LOAD_INDEX = 2  # the state element that holds the load in the hand (kg)

    @property
    def state_size(self) -> int:
        return 3 + self.config.hidden

    def initial_state(self) -> torch.Tensor:
        """(1, S): at rest at the mean training angle, nothing in the hand (a sequence's load:
        :func:`myoedge.train.models.start_states`)."""
        return torch.cat([self.theta_mean, torch.zeros(2 + self.config.hidden)])[None]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "load_terms"  # a run saved before loads were modelled: no load terms
        if key not in state_dict:
            state_dict[key] = torch.zeros(len(LOAD_TERMS))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def identify(self, seqs) -> dict:
        """Set the joint's equation of motion, moment arms, angle limits and step from training sequences."""
        rate = seqs[0].rate_hz
        coeffs = arm_polynomials(seqs, hint="; the observer needs them (without, train --preset edge-rnn)")
        torques = _recorded_moments(seqs, coeffs)
        terms = identify_joint([s.theta for s in seqs], torques, dt=1.0 / rate,
                               loads=[s.load_kg for s in seqs])
        theta = np.concatenate([s.theta for s in seqs])
        lo, hi = float(theta.min()), float(theta.max())
        pad = MARGIN * max(hi - lo, 1e-3)
        inertia = max(terms.inertia, MIN_INERTIA)
        self.joint.copy_(torch.tensor([inertia, terms.damping, terms.gravity_sin, terms.gravity_cos,
                                       terms.stiffness, terms.offset]))
        self.load_terms.copy_(torch.tensor([getattr(terms, k) for k in LOAD_TERMS]))
        self.arm_coeffs.copy_(torch.as_tensor(coeffs, dtype=torch.float32))
        self.limits.copy_(torch.tensor([lo - pad, hi + pad]))
        self.dt.fill_(1.0 / rate)
        drift = self._drift(seqs, torques)
        held = [t for t, d in drift.items() if d <= DRIFT]
        self.correction_s.fill_(max(held) if held else min(drift))
        if self.force_stage is not None:  # F_n ≈ g_n e_n: least squares through the origin, per muscle
            env = np.concatenate([s.envelopes for s in seqs])
            force = np.concatenate([s.forces for s in seqs])
            gain = (env * force).sum(0) / np.maximum((env * env).sum(0), 1e-12)
            self.force_stage.set_emg_gain(gain / self.force_std.numpy())
        return {**terms.to_dict(), "inertia": inertia, "limits": [lo - pad, hi + pad],
                "correction_s": float(self.correction_s[0]),
                "drift_with_recorded_moment": {f"{t:.3g}": round(d, 4) for t, d in drift.items()}}

    @torch.no_grad()
    def _drift(self, seqs, moments=None) -> dict[float, float]:
        """Per candidate T (s): the RMSE / σ_θ of the angle that the identified equation integrates from
        the recorded muscle moment of ``seqs`` (``moments``, per sequence; by default Σ r(θ) F of the
        recorded forces at the recorded angle), corrected toward the recorded angle at the full bound of T.

        The moment is a fixed series, as recorded: the test asks whether the joint's equation carries
        the muscles' moment forward, not what the muscles would do at an angle the integration reached.
        Recorded forces re-weighted by the moment arms at the integrated angle would be muscles without
        their own stiffness (force-length, force-velocity: the force stage's part); on the OpenSim
        wrists such a test held for only 0.12–0.25 s where the equation carries the recorded moment for
        1 s (docs/results/opensim)."""
        dt = float(self.dt[0])
        spread = max(float(np.concatenate([s.theta for s in seqs]).std()), 1e-6)
        if moments is None:
            moments = _recorded_moments(seqs, self.arm_coeffs.double().numpy())
        driven = []
        for s, moment in zip(seqs, moments, strict=True):  # per trial: angle, moment, constants
            polynomial = torch.zeros(1, s.n, self.arm_coeffs.shape[1])  # the moment as a constant in θ
            polynomial[0, :, 0] = torch.as_tensor(moment, dtype=torch.float32)
            driven.append((torch.as_tensor(s.theta, dtype=torch.float32)[None], polynomial,
                           self._constants(torch.tensor([float(s.load_kg)])), s.theta[1:]))
        out = {}
        for t in candidate_times(1.0 / dt):
            squares, count = 0.0, 0
            for target, moment, consts, truth in driven:
                g_theta = torch.full_like(target, dt / t)
                got, _, _ = _rollout_moment_script(target[:, 0], torch.zeros(1), moment, target, g_theta,
                                                   g_theta / t, consts)
                err = got[0, :-1].double().numpy() - truth
                err = np.where(np.isfinite(err), err, 1e3 * spread)
                squares, count = squares + float(np.sum(err**2)), count + err.size
            out[t] = math.sqrt(squares / max(count, 1)) / spread
        return out

    def _network(self, x: torch.Tensor, h0: torch.Tensor):
        """Everything that does not depend on the integrated angle, for all steps at once: forces
        (B, T, M) and the moment's polynomial in θ (B, T, 1 + degree) — with the force stage, the drives
        (B, T, M) and None, the forces being made step by step —, the direct angle and the two
        correction gains (B, T) each, and the last hidden vector."""
        h, last = self.gru(x, h0.unsqueeze(0).contiguous())
        raw = self.head(torch.cat([self.drop(h), x], dim=-1))
        m = self.config.n_muscles
        if self.force_stage is None:
            forces = self.force_std * nn.functional.softplus(raw[..., :m])
            moment = forces @ self.arm_coeffs  # Σ_n r_n(θ) F_n = Σ_k θ^k (Σ_n c_nk F_n)
        else:  # the forces depend on the integrated angle: the step loop makes them (rollout_staged)
            forces, moment = raw[..., :m], None
        direct = self.theta_mean[0] + self.theta_std[0] * raw[..., m]
        gains = torch.sigmoid(raw[..., m + 1:]) * (self.dt[0] / self.correction_s[0])
        return forces, moment, direct, gains[..., 0], gains[..., 1] / self.correction_s[0], last[0]

    def _constants(self, load: torch.Tensor) -> torch.Tensor:
        """(9, B): [dt/M, 1/(1 + dt b/M), G_s, G_c, k, c, dt, θ_lo, θ_hi] for each row's load in the hand
        ``load`` (B,) (taken once per call, not per step)."""
        inertia, damping, g_s, g_c, k, c = self.joint.unbind()
        m_l, g_ls, g_lc = self.load_terms.unbind()
        dt, ones = self.dt[0], torch.ones_like(load)
        inertia = inertia + load * m_l
        return torch.stack([dt / inertia, 1.0 / (1.0 + dt * damping / inertia), g_s + load * g_ls,
                            g_c + load * g_lc, k * ones, c * ones, dt * ones, self.limits[0] * ones,
                            self.limits[1] * ones])

    def _outputs(self, theta: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
        """Physical θ (…) and F (…, M) -> the normalised outputs (…, 1 + M) every preset returns."""
        theta_n = (theta - self.theta_mean[0]) / self.theta_std[0]
        return torch.cat([theta_n[..., None], (forces - self.force_mean) / self.force_std], dim=-1)

    def forward(self, envelopes: torch.Tensor, state: torch.Tensor | None = None):
        """Normalised outputs for every step of ``envelopes`` (B, T, C) and the state after the last."""
        x = (envelopes - self.env_mean) / self.env_std
        if state is None:
            state = self.initial_state().expand(x.shape[0], -1)
        thetas, forces, mechanics, last = self._run(x, envelopes, state, scripted=True)
        return self._outputs(thetas, forces), torch.cat([mechanics, last], dim=-1)

    def _run(self, x: torch.Tensor, envelopes: torch.Tensor, state: torch.Tensor, *, scripted: bool):
        """The network on the standardised frames ``x`` (and, with the stage, the ``envelopes`` as they
        came), then the integration step by step (compiled by TorchScript for sequences; plain torch for
        one step, the function ONNX export traces)."""
        forces, moment, direct, g_theta, g_omega, last = self._network(x, state[:, 3:])
        if self.force_stage is not None:
            forces = self.force_stage.drive(forces, envelopes)
        self.last_direct = direct
        theta, omega, load = state[:, 0], state[:, 1], state[:, self.LOAD_INDEX]
        consts = self._constants(load)
        if self.force_stage is None:
            run = _rollout_moment_script if scripted else rollout_moment
            thetas, theta, omega = run(theta, omega, moment, direct, g_theta, g_omega, consts)
        else:
            run = _rollout_staged_script if scripted else rollout_staged
            weights, bias = self.force_stage.weights()
            kinematics = torch.stack([self.theta_mean[0], self.theta_std[0]])
            thetas, forces, theta, omega = run(theta, omega, nn.functional.softplus(forces), direct, g_theta,
                                               g_omega, consts, kinematics, weights, bias, self.force_std,
                                               self.arm_coeffs)
        return thetas, forces, torch.stack([theta, omega, load], dim=-1), last

    def direct_loss(self, theta: torch.Tensor) -> torch.Tensor:
        """Mean ((θ_d − θ)/σ_θ)² of the last forward's direct angle against the target ``theta`` (B, T): the
        correction's measurement is taught to be an angle, not left to whatever the gains make of it."""
        return torch.mean(((self.last_direct - theta) / self.theta_std[0]) ** 2)

    def step(self, envelopes: torch.Tensor, state: torch.Tensor):
        """One model step on the newest frame of ``envelopes`` (1, W, C): θ (1, 1), F (1, M), state_next."""
        x = (envelopes[:, -1:] - self.env_mean) / self.env_std
        thetas, forces, mechanics, last = self._run(x, envelopes[:, -1:], state, scripted=False)
        return thetas, forces[:, 0], torch.cat([mechanics, last], dim=-1)


def integrate(theta: torch.Tensor, omega: torch.Tensor, applied: torch.Tensor, direct: torch.Tensor,
              gain_theta: torch.Tensor, gain_omega: torch.Tensor, consts: list[torch.Tensor]):
    """One model step of the corrected equation of motion for (B,) angles, velocities and applied
    moments; ``consts`` the 9 rows of :meth:`ObserverNet._constants` (a (9, B) tensor or its rows: the
    step loops pass the rows, taken apart once, so no step indexes the tensor again)."""
    static = consts[2] * torch.sin(theta) + consts[3] * torch.cos(theta) + consts[4] * theta + consts[5]
    omega = (omega + consts[0] * (applied - static)) * consts[1]
    theta = theta + consts[6] * omega
    error = direct - theta
    theta = torch.minimum(torch.maximum(theta + gain_theta * error, consts[7]), consts[8])
    return theta, omega + gain_omega * error


def rollout_moment(theta: torch.Tensor, omega: torch.Tensor, moment: torch.Tensor, direct: torch.Tensor,
                   g_theta: torch.Tensor, g_omega: torch.Tensor, consts: torch.Tensor):
    """Integrate T steps driven by the moment polynomials ``moment`` (B, T, 1 + degree) in θ: the
    angles (B, T) and the last θ, θ̇ (B,)."""
    rows = consts.unbind(0)  # every per-step slice taken once, before the loop (fewer autograd nodes)
    moments, directs, gains, rates = moment.unbind(1), direct.unbind(1), g_theta.unbind(1), g_omega.unbind(1)
    thetas: list[torch.Tensor] = []
    for t in range(len(moments)):
        coeffs = moments[t].unbind(1)
        applied = coeffs[-1]
        for i in range(len(coeffs) - 2, -1, -1):
            applied = applied * theta + coeffs[i]
        theta, omega = integrate(theta, omega, applied, directs[t], gains[t], rates[t], rows)
        thetas.append(theta)
    return torch.stack(thetas, dim=1), theta, omega


def rollout_staged(theta: torch.Tensor, omega: torch.Tensor, drive_force: torch.Tensor,
                   direct: torch.Tensor, g_theta: torch.Tensor, g_omega: torch.Tensor, consts: torch.Tensor,
                   kinematics: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor,
                   force_std: torch.Tensor, arm_coeffs: torch.Tensor, velocity_s: float = VELOCITY_S):
    """Integrate T steps whose forces the force stage makes from ``drive_force`` (B, T, M) at the angle
    and velocity each step starts from (``kinematics`` = [θ_mean, θ_std] standardises them): the angles
    (B, T), the forces (B, T, M) and the last θ, θ̇ (B,)."""
    rows = consts.unbind(0)  # every per-step slice taken once, before the loop (fewer autograd nodes)
    drives, directs = drive_force.unbind(1), direct.unbind(1)
    gains, rates = g_theta.unbind(1), g_omega.unbind(1)
    mean, spread = kinematics[0], kinematics[1]
    per_velocity = velocity_s / spread
    arm_terms = arm_coeffs.unbind(1)
    thetas: list[torch.Tensor] = []
    forces: list[torch.Tensor] = []
    for t in range(len(drives)):
        f = staged_forces(drives[t], (theta - mean) / spread, omega * per_velocity, weights, bias, force_std)
        column = theta[:, None]
        arms = arm_terms[-1].expand_as(f)
        for i in range(len(arm_terms) - 2, -1, -1):
            arms = arms * column + arm_terms[i]
        theta, omega = integrate(theta, omega, (arms * f).sum(-1), directs[t], gains[t], rates[t], rows)
        thetas.append(theta)
        forces.append(f)
    return torch.stack(thetas, dim=1), torch.stack(forces, dim=1), theta, omega


def _compiled(function):
    """``function`` compiled by TorchScript (a sequence's step loop trains about 1.3× faster: fewer
    Python dispatches per step), or as it is where this torch cannot script it (TorchScript is deprecated
    in torch 2.x; the results are the same either way)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(function)
    except Exception as exc:  # a torch without TorchScript, or one that no longer compiles this
        log.info("the observer's step loop runs uncompiled: %s", exc)
        return function


_rollout_moment_script = _compiled(rollout_moment)
_rollout_staged_script = _compiled(rollout_staged)
