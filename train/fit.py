"""Training: ``fit(train_seqs, TrainConfig) -> TrainedModel`` (both in :mod:`myoedge.train.run`).

Loss = w_F·L_F + w_θ·L_θ + w_P·L_P, each term in comparable, unit-free numbers:

* L_F = mean over steps and muscles of ((F̂ − F)/σ_F)², σ_F the training-set std of each muscle's force
  (the network predicts standardised forces, so this is also its output error);
* L_θ = mean of ((θ̂ − θ)/σ_θ)²;
* L_P = mean of (residual / τ_s)², the residual from :func:`myoedge.train.physics.sequence_residual` on
  the de-normalised predictions and τ_s the training-set std of the recorded Σ r F (or τ_ID); against a
  recorded τ_ID the joint's passive moment is identified from the training sequences first
  (:func:`myoedge.train.physics.passive_moments`), unless a split has set it already.

Default weights 1, 1, 0.1: the second difference turns step-to-step jitter of θ̂ into residual ×1/dt²,
so at weight 1 the physics term makes a network flatten its outputs (numbers in docs/training.md);
gradients are clipped to norm 1 because an untrained network's L_P is ~1e4.

The paper preset steps once per training trial, or a stretch of at most ``max_steps`` (1024) of it
(SGD, momentum 0.9, lr 0.01, 1200 iterations);
the edge preset steps on a batch of contiguous chunks with Adam, so L_P can difference consecutive
outputs. Runs are deterministic per seed on the CPU (seeded torch and numpy generators, deterministic
algorithms) — two fits with one seed give identical weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import torch

from myoedge.edge.model.bundle_meta import InputRangeMeta
from myoedge.edge.model.channel_fill import ChannelFill, ChannelFillMeta, fill_quality
from myoedge.ground.errors import InputError
from myoedge.ground.host import side_by_side
from myoedge.train.correction import choose_correction, without_selection
from myoedge.train.data import Sequence
from myoedge.train.executor import TaskFailed, open_executor
from myoedge.train.models import ModelConfig, Normalised, build_model, n_parameters, start_states
from myoedge.train.physics import passive_moments, physics_residual, sequence_residual, with_passive
from myoedge.train.presets import preset as preset_record
from myoedge.train.run import TrainConfig, TrainedModel


def _stats(seqs: list[Sequence]) -> dict[str, np.ndarray]:
    """Training-set normalisation: means and stds (floored so a constant signal cannot divide by 0)."""
    env = np.concatenate([s.envelopes for s in seqs]).astype(np.float64)
    t = np.concatenate([s.t for s in seqs])
    theta = np.concatenate([s.theta for s in seqs])
    forces = np.concatenate([s.forces for s in seqs])

    def std(x):
        return np.maximum(x.std(axis=0), 1e-3 * np.abs(x.mean(axis=0)) + 1e-9)

    applied = []
    for s in seqs:
        if s.physics == "id":
            applied.append(s.torque)
        elif s.physics == "eom":
            applied.append(s.muscle_moment())
    torque_scale = float(np.concatenate(applied).std()) if applied else 1.0
    return {"env_mean": env.mean(0), "env_std": std(env), "time_mean": np.array([t.mean()]),
            "time_std": np.array([std(t)]).ravel(), "theta_mean": np.array([theta.mean()]),
            "theta_std": np.array([std(theta)]).ravel(), "force_mean": forces.mean(0),
            "force_std": std(forces), "torque_scale": np.array([max(torque_scale, 1e-6)])}


def _check(seqs, config: TrainConfig) -> list[Sequence]:
    seqs = list(seqs)
    if not seqs:
        raise InputError("no training sequences")
    first = seqs[0]

    def rate(s):  # time-normalised cycles each have their own frame spacing (myoedge.train.cycles)
        return "cycle" if s.cycle_s is not None else s.rate_hz

    for s in seqs[1:]:
        if (s.muscles, s.joint, rate(s)) != (first.muscles, first.joint, rate(first)):
            raise InputError(f"training sequences must share joint, muscles and rate: {first.name} is "
                             f"{first.joint} {list(first.muscles)} at {first.rate_hz:g} Hz, {s.name} is "
                             f"{s.joint} {list(s.muscles)} at {s.rate_hz:g} Hz")
    if config.w_physics > 0 and all(s.physics == "none" for s in seqs):
        raise InputError("w_physics > 0 but no training sequence has physics (no profile, torque or moment "
                         "arms); set w_physics to 0")
    return seqs


def fit(train_seqs, config: TrainConfig, *, seed: int, progress=None,
        threads: int | None = 1) -> TrainedModel:
    """Train ``config.preset`` on ``train_seqs``; ``progress.update(1, note)`` is called per iteration.

    ``threads`` sets torch's CPU threads while training (None: leave as is). One is the default: these
    networks' matrices are small, so a second thread gains little (≈ 20 % on a quiet 2-core machine)
    while contending with any other work on the cores costs up to 10× (measured).
    """
    seqs = _check(train_seqs, config)
    if any(s.physics == "id" and s.passive is None for s in seqs):  # fitted on these training data alone
        seqs = with_passive(seqs, passive_moments(seqs))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive int or None, got {threads!r}")
    if config.correction_validation > 0 and preset_record(config.preset).kind == "observer":
        return _validated(seqs, config, seed=seed, progress=progress, threads=threads)
    if config.members > 1:
        return _ensemble(seqs, config, seed=seed, progress=progress, threads=threads)
    first = seqs[0]
    mcfg = ModelConfig.for_preset(config.preset, n_channels=len(first.muscles), n_muscles=len(first.muscles),
                                  **config.model)
    stats = _stats(seqs)
    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = build_model(mcfg)
        with torch.no_grad():
            for name, value in stats.items():
                if hasattr(model, name):
                    getattr(model, name).copy_(torch.as_tensor(value, dtype=torch.float32))
        identified = model.identify(seqs) if hasattr(model, "identify") else None  # the observer's joint
        if identified is not None and config.correction_s > 0:  # a time chosen on held-out data
            model.correction_s.fill_(min(config.correction_s, identified["correction_s"]))
            identified["correction_s"] = float(model.correction_s[0])
        if config.optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps = _sequence_steps if mcfg.kind == "per-step" else _chunk_steps if mcfg.kind == "window" \
            else _recurrent_steps
        if mcfg.kind == "per-step" and first.cycle_s is not None:
            steps = _cycle_steps
        t0 = time.perf_counter()
        history = []
        model.train()
        for terms in steps(model, seqs, config, stats, rng):
            total = config.w_force * terms["L_F"] + config.w_theta * terms["L_theta"]
            if "L_direct" in terms:  # the observer's direct angle estimate
                total = total + config.w_theta * terms["L_direct"]
            if config.w_physics > 0:
                total = total + config.w_physics * terms["L_P"]
            opt.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            history.append({k: float(v.detach()) for k, v in {**terms, "total": total}.items()})
            if not math.isfinite(history[-1]["total"]):
                raise InputError(f"training diverged at iteration {len(history)} (loss {history[-1]}); "
                                 "lower lr or the loss weights")
            if progress is not None:
                progress.update(1, f"loss {history[-1]['total']:.4g}")
        seconds = time.perf_counter() - t0
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])
    model.eval()
    envelopes = np.concatenate([s.envelopes for s in seqs])
    info = {"seed": seed, "train_seconds": round(seconds, 3), "parameters": n_parameters(model),
            "sequences": [s.name for s in seqs], "steps": int(sum(s.n for s in seqs)),
            "physics_modes": sorted({s.physics for s in seqs}),
            "normalisation": {k: v.tolist() for k, v in stats.items()},
            "theta_range": [float(min(s.theta.min() for s in seqs)), float(max(s.theta.max() for s in seqs))],
            "force_max": np.max([s.forces.max(0) for s in seqs], axis=0).tolist(),
            "models": _model_limits(seqs), "identified_joint": identified,
            "passive_joint": {s.subject: s.passive.to_dict() for s in seqs if s.passive is not None},
            "emg_rate_hz": None if first.envelope_config is None else first.envelope_config.fs_hz,
            "adc": None if first.adc is None else first.adc.to_dict(),
            "input_range": InputRangeMeta.of(envelopes).to_dict(), **_channel_fill(envelopes),
            "mvc": {s.subject: {"volts": list(s.mvc_volts), "source": s.mvc_source} for s in seqs}}
    return TrainedModel(model=model, config=config, model_config=mcfg, joint=first.joint,
                        muscles=tuple(first.muscles), rate_hz=first.rate_hz,
                        envelope_config=first.envelope_config, history=history, info=info,
                        samples=_samples(seqs, mcfg, rng))


def _validated(seqs, config: TrainConfig, *, seed: int, progress, threads) -> TrainedModel:
    """The observer with its correction time measured on held-out training data, or its rival (the
    GRU, ``config.rival``) where that predicts the held-out angle clearly better (train/correction.py)."""
    choice = choose_correction(seqs, config, seed=seed, threads=threads)
    plain = without_selection(config)
    if choice.get("winner") == config.rival and config.rival:
        trained = fit(seqs, dataclasses.replace(plain, preset=config.rival), seed=seed, progress=progress,
                      threads=threads)
    else:  # trained at the chosen time (never slower than this fit's own identified one), as it will run
        chosen = choice["chosen_s"]
        final = plain if chosen is None else dataclasses.replace(plain, correction_s=chosen)
        trained = fit(seqs, final, seed=seed, progress=progress, threads=threads)
        trained.info["identified_joint"]["correction"] = choice
    trained.info["selection"] = choice
    trained.info["train_seconds"] = round(trained.info["train_seconds"] + choice.get("fit_seconds", 0.0), 3)
    return trained


def _ensemble(seqs, config: TrainConfig, *, seed: int, progress, threads) -> TrainedModel:
    """``config.members`` fits of one network with seeds ``seed``, ``seed`` + 1, …, averaged
    (:mod:`myoedge.train.ensemble`): the first fits here, the others in worker processes beside it where
    the cores allow (each fit is one thread), one after the other otherwise; the same either way. The
    first member is the fit ``members`` = 1 gives."""
    from myoedge.train.ensemble import assemble

    single = dataclasses.replace(config, members=1)
    seeds = [seed + k for k in range(config.members)]
    ModelConfig.for_preset(config.preset, n_channels=len(seqs[0].muscles), n_muscles=len(seqs[0].muscles),
                           members=config.members, **config.model)  # refused before any fit: not stateful
    started = time.perf_counter()
    with open_executor("process", jobs=side_by_side(config.members)) as executor:
        pending = [executor.submit(_fit_member, seqs, single, s, threads) for s in seeds[1:]]
        members = [fit(seqs, single, seed=seed, progress=progress, threads=threads)]
        for s, task in zip(seeds[1:], pending, strict=True):
            try:
                members.append(_rebuilt(task.result(), single))
            except TaskFailed as exc:
                raise InputError(f"the ensemble's member with seed {s} could not be fitted ({exc}); "
                                 "train with members 1, or free memory and run again") from None
    trained = assemble(members, config)
    trained.info["train_seconds"] = round(time.perf_counter() - started, 3)  # wall time, side by side
    trained.info["parameters"] = n_parameters(trained.model)
    return trained


def _fit_member(seqs, config: TrainConfig, seed: int, threads) -> dict:
    """One member of an ensemble, fitted in a worker process: what rebuilds it here (the network's
    weights and buffers as plain tensors; a module holding autograd results does not cross processes)."""
    trained = fit(seqs, config, seed=seed, threads=threads)
    return {"model_config": trained.model_config, "weights": trained.model.state_dict(), "info": trained.info,
            "history": trained.history, "samples": trained.samples, "joint": trained.joint,
            "muscles": trained.muscles, "rate_hz": trained.rate_hz,
            "envelope_config": trained.envelope_config}


def _rebuilt(member: dict, config: TrainConfig) -> TrainedModel:
    """The :class:`TrainedModel` of a :func:`_fit_member` result."""
    model = build_model(member.pop("model_config"))
    model.load_state_dict(member.pop("weights"))
    return TrainedModel(model=model.eval(), config=config, model_config=model.config, **member)


def _channel_fill(envelopes: np.ndarray) -> dict:
    """The training envelopes' moments for the runtime's channel fill, and how well each channel is filled
    from the others on the training data (an upper bound of what the runtime reaches)."""
    if envelopes.shape[1] < 2:
        return {}
    meta = ChannelFillMeta.of(envelopes)
    quality = fill_quality(ChannelFill(meta), envelopes)
    return {"channel_fill": meta.to_dict(), "channel_fill_quality": quality}


def _samples(seqs: list[Sequence], mcfg: ModelConfig, rng: np.random.Generator) -> np.ndarray | None:
    """The export's test inputs: windows for a window model, a run of consecutive steps for a stateful one."""
    if mcfg.kind == "window":
        return _sample_windows(seqs, mcfg.window, rng)
    if mcfg.stateful:
        return _sample_sequence(seqs, mcfg.window, rng)
    return None


def _sample_sequence(seqs: list[Sequence], window: int, rng: np.random.Generator, k: int = 64) -> np.ndarray:
    """``k`` consecutive (W, C) input windows (K, W, C) from one training trial, replayed from the initial
    state: the first ``k`` steps of the trial, so the vectors include the start-up from rest."""
    s = max(seqs, key=lambda q: q.n)
    env = np.concatenate([np.repeat(s.envelopes[:1], window - 1, 0), s.envelopes[:k]])
    return np.stack([env[i:i + window] for i in range(min(k, s.n))]).astype(np.float32)


def _model_limits(seqs: list[Sequence]) -> dict | None:
    """Anatomical angle range and max isometric forces of the physics models that name these muscles."""
    models = [s.model for s in seqs if s.model is not None and s.model_moment_arms]
    if not models:
        return None
    return {"theta_rad": [min(m.segment.range_lo for m in models), max(m.segment.range_hi for m in models)],
            "max_force_n": np.max([[mu.max_force for mu in m.muscles] for m in models], axis=0).tolist()}


def _sample_windows(seqs: list[Sequence], window: int, rng: np.random.Generator, k: int = 32) -> np.ndarray:
    long = [s for s in seqs if s.n >= window] or seqs
    picks = []
    for _ in range(k):
        s = long[int(rng.integers(len(long)))]
        env = s.envelopes if s.n >= window else np.concatenate([np.repeat(s.envelopes[:1], window - s.n, 0),
                                                                 s.envelopes])
        start = int(rng.integers(0, env.shape[0] - window + 1))
        picks.append(env[start:start + window])
    return np.stack(picks).astype(np.float32)


def _terms(model: Normalised, out, theta_t, forces_t, physics, stats) -> dict:
    """Loss terms for normalised outputs ``out`` (..., 1+M) against physical targets."""
    theta_n = (theta_t - model.theta_mean[0]) / model.theta_std[0]
    forces_n = (forces_t - model.force_mean) / model.force_std
    terms = {"L_F": torch.mean((out[..., 1:] - forces_n) ** 2),
             "L_theta": torch.mean((out[..., 0] - theta_n) ** 2)}
    theta, forces = model.to_physical(out)
    residual = physics(theta, forces)  # logged even when w_P = 0, to compare with the physics-informed runs
    scale = float(stats["torque_scale"][0])
    terms["L_P"] = torch.zeros(()) if residual is None else torch.mean((residual / scale) ** 2)
    return terms


def _sequence_steps(model, seqs, config, stats, rng):
    """Paper preset: one iteration = one training piece (its steps are the batch); a piece longer than
    ``max_steps`` gives a random contiguous stretch of that length, so an iteration's cost does not grow
    with the length of a recording's trials."""
    tensors = [(torch.as_tensor(s.envelopes, dtype=torch.float32), torch.as_tensor(s.t, dtype=torch.float32),
                torch.as_tensor(s.theta, dtype=torch.float32), torch.as_tensor(s.forces, dtype=torch.float32))
               for s in seqs]
    order: list[int] = []
    for _ in range(config.iterations):
        if not order:
            order = list(rng.permutation(len(seqs)))
        i = order.pop()
        seq, (env, t, theta, forces) = seqs[i], tensors[i]
        if seq.n > config.max_steps:
            a = int(rng.integers(0, seq.n - config.max_steps + 1))
            b = a + config.max_steps
            seq, env, t = seq.part(a, b, tag="stretch"), env[a:b], t[a:b]
            theta, forces = theta[a:b], forces[a:b]
        out = model(env, t)
        yield _terms(model, out, theta, forces,
                     lambda th, f, s=seq: sequence_residual(s, th, f, smooth=config.physics_smooth), stats)


def _cycle_steps(model, seqs, config, stats, rng):
    """Paper preset on time-normalised cycles (the paper's protocol): one iteration = as many whole
    cycles as fit in ``max_steps`` steps (10 of 100 frames under the paper's protocol,
    :data:`myoedge.train.evaluate.PAPER_CYCLES_PER_ITERATION`), drawn without replacement until every
    cycle has been used; each cycle has its own dropout mask (dropout per sample, a sample being a cycle)
    and its residual is differentiated with its own frame spacing."""
    per = max(1, config.max_steps // max(s.n for s in seqs))
    tensors = [tuple(torch.as_tensor(a, dtype=torch.float32) for a in (s.envelopes, s.t, s.theta, s.forces))
               for s in seqs]
    order: list[int] = []
    for _ in range(config.iterations):
        picks = []
        while len(picks) < min(per, len(seqs)):
            if not order:
                order = [i for i in rng.permutation(len(seqs)) if i not in picks]
            picks.append(order.pop())
        env, t, theta, forces = (torch.cat([tensors[i][k] for i in picks]) for k in range(4))
        bounds = np.cumsum([0] + [seqs[i].n for i in picks])

        def physics(th, f, picks=picks, bounds=bounds):
            parts = [sequence_residual(seqs[i], th[a:b], f[a:b], smooth=config.physics_smooth)
                     for i, a, b in zip(picks, bounds[:-1], bounds[1:], strict=True)]
            parts = [p.reshape(-1) for p in parts if p is not None]
            return torch.cat(parts) if parts else None

        out = model(env, t, [seqs[i].n for i in picks])  # one dropout mask per cycle
        yield _terms(model, out, theta, forces, physics, stats)


def _physics_key(s: Sequence) -> tuple:
    """Sequences with equal keys share one residual computation (same mode, model, moment-arm source and
    passive joint moment)."""
    model = None if s.model is None else json.dumps(s.model.to_dict(), sort_keys=True)
    passive = None if s.passive is None else json.dumps(s.passive.to_dict(), sort_keys=True)
    return s.physics, model, s.model_moment_arms, s.rate_hz, passive


def _chunk_steps(model, seqs, config, stats, rng):
    """Edge preset: a batch of contiguous chunks of ``chunk`` outputs, each output after a full window of
    genuine input (the sequence's own envelopes, or its ``lead`` from before a split point)."""
    w = model.config.window
    hist = {id(s): 0 if s.lead is None else min(len(s.lead), w - 1) for s in seqs}
    full = {id(s): s.envelopes if not hist[id(s)] else np.concatenate([s.lead[-hist[id(s)]:], s.envelopes])
            for s in seqs}
    first = {id(s): w - 1 - hist[id(s)] for s in seqs}  # earliest output step with a full window
    length = min(config.chunk, max(s.n - first[id(s)] for s in seqs))
    usable = [s for s in seqs if s.n - first[id(s)] >= length]
    if length < 3 or not usable:
        raise InputError(f"the edge model needs sequences of at least {w + 2} steps ({w}-step window + 3 "
                         f"outputs); the longest has {max(s.n for s in seqs)}")
    keys = {id(s): _physics_key(s) for s in usable}
    weights = np.array([s.n - first[id(s)] - length + 1 for s in usable], dtype=float)
    weights /= weights.sum()
    for _ in range(config.iterations):
        picks = rng.choice(len(usable), size=config.batch, p=weights)
        env, theta, forces, physics = [], [], [], []
        for i in picks:
            s = usable[int(i)]
            a = int(rng.integers(first[id(s)], s.n - length + 1))
            shift = hist[id(s)]
            env.append(full[id(s)][a + shift - w + 1:a + shift + length])
            theta.append(s.theta[a:a + length])
            forces.append(s.forces[a:a + length])
            physics.append((s, a))
        out = model(torch.as_tensor(np.stack(env), dtype=torch.float32))
        target_theta = torch.as_tensor(np.stack(theta), dtype=torch.float32)
        target_forces = torch.as_tensor(np.stack(forces), dtype=torch.float32)
        chunk_physics = _chunk_physics(physics, keys, length, config.physics_smooth)
        yield _terms(model, out, target_theta, target_forces, chunk_physics, stats)



def _chunk_physics(physics: list[tuple[Sequence, int]], keys: dict, length: int, smooth: int = 1):
    """The residual of a batch of chunks (``physics``: (sequence, first step) per row), rows of one physics
    key computed together (``smooth``: :func:`~myoedge.train.physics.physics_residual`'s); None when no
    row has physics."""

    def residual(th, f):
        groups: dict[tuple, list[int]] = {}
        for j, (s, _) in enumerate(physics):
            if s.physics != "none":
                groups.setdefault(keys[id(s)], []).append(j)
        parts = []
        for idx in groups.values():
            s = physics[idx[0]][0]
            rows = [physics[j] for j in idx]
            arms = None if s.model_moment_arms else np.stack([q.moment_arms[a:a + length] for q, a in rows])
            torque = None if s.physics != "id" else np.stack([q.torque[a:a + length] for q, a in rows])
            parts.append(physics_residual(th[idx], f[idx], dt=1.0 / s.rate_hz, model=s.model,
                                          moment_arms=arms, torque=torque, mode=s.physics,
                                          passive=s.passive, smooth=smooth).reshape(-1))
        return torch.cat(parts) if parts else None

    return residual


def _recurrent_steps(model, seqs, config, stats, rng):
    """Recurrent preset: truncated back-propagation through time on a batch of chunks.

    Each row runs ``burn_in`` steps from the initial state without gradient or loss (the trial's own EMG
    before the chunk, its first frame held where the trial has none — a device just after start-up),
    then ``chunk`` steps with loss. With ``carry_state`` a row instead walks on through its trial chunk
    after chunk, its state carried (detached) from the previous iteration, and starts over at a random
    place, with a burn-in, when the trial ends.
    """
    burn = config.burn_in
    length = min(config.chunk, max(s.n for s in seqs))
    full = {id(s): s.envelopes if s.lead is None else np.concatenate([s.lead, s.envelopes]) for s in seqs}
    offset = {id(s): 0 if s.lead is None else len(s.lead) for s in seqs}
    usable = [s for s in seqs if s.n >= length]
    if length < 3:
        raise InputError(f"the recurrent model needs training sequences of at least 3 steps; the longest "
                         f"has {length}")
    keys = {id(s): _physics_key(s) for s in usable}
    weights = np.array([s.n - length + 1 for s in usable], dtype=float)
    weights /= weights.sum()

    def inputs(s, a, n):
        """Envelopes of steps a … a + n − 1 of ``s`` (negative: its lead, then its first frame held)."""
        env, lo = full[id(s)], a + offset[id(s)]
        if lo >= 0:
            return env[lo:lo + n]
        return np.concatenate([np.repeat(env[:1], -lo, 0), env[:lo + n]])

    def start():
        s = usable[int(rng.choice(len(usable), p=weights))]
        return [s, int(rng.integers(0, s.n - length + 1)), None]

    rows = [start() for _ in range(config.batch)]
    for _ in range(config.iterations):
        if not config.carry_state:
            rows = [start() for _ in range(config.batch)]
        states = []
        for row in rows:
            if row[2] is None or row[1] + length > row[0].n:
                if row[2] is not None:
                    row[:] = start()
                states.append(None)
            else:
                states.append(row[2])
        warm = [i for i, st in enumerate(states) if st is None]
        h0 = start_states(model, [s.load_kg for s, _, _ in rows])
        if warm and burn > 0:
            with torch.no_grad():
                env = np.stack([inputs(rows[i][0], rows[i][1] - burn, burn) for i in warm])
                _, h = model(torch.as_tensor(env, dtype=torch.float32), h0[warm])
            h0[warm] = h
        for i, st in enumerate(states):
            if st is not None:
                h0[i] = st
        env = np.stack([inputs(s, a, length) for s, a, _ in rows])
        out, h_last = model(torch.as_tensor(env, dtype=torch.float32), h0)
        theta = torch.as_tensor(np.stack([s.theta[a:a + length] for s, a, _ in rows]), dtype=torch.float32)
        forces = torch.as_tensor(np.stack([s.forces[a:a + length] for s, a, _ in rows]), dtype=torch.float32)
        physics = _chunk_physics([(s, a) for s, a, _ in rows], keys, length, config.physics_smooth)
        terms = _terms(model, out, theta, forces, physics, stats)
        if hasattr(model, "direct_loss"):
            terms["L_direct"] = model.direct_loss(theta)
        for i, row in enumerate(rows):
            row[1], row[2] = row[1] + length, h_last[i].detach()
        yield terms
