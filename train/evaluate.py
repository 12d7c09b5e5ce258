"""The evaluation: every method × every subject × every protocol, scored the same way.

Protocols (splits from :mod:`myoedge.train.data`, all per subject, all methods on identical data):

- ``intra`` — the paper's intra-session protocol: a contiguous 20 % block of every trial is held out,
  the rest trains (one fold per subject);
- ``loto`` — leave one trial out: each trial (a walking speed or movement pace, or a session) is held
  out in turn and the subject's other trials train (one fold per trial): does the model generalise
  to a speed it has not seen?
- ``size`` — the training-size sweep: the intra split with only a contiguous ``fraction`` of every
  training piece kept (10, 20, 40, 60, 80, 100 %); the test block is unchanged. The 100 % point is
  the intra fold itself (the same fit, reused). By default only the two networks the claim is about
  (PI-CNN and CNN) are swept;
- ``paper`` — the paper's own protocol (:mod:`myoedge.train.cycles`): every trial cut into movement
  cycles of 100 frames, the time input being the phase in the cycle, a subject's cycles of all trials
  fused and split 80/20 at random (one fold per subject);
- ``sessions`` — the paper's inter-session protocol on the same cycles: for a subject with two or more
  sessions, trained on the first session's cycles and tested on each later session's (one fold per
  later session).

``paper`` and ``sessions`` fit the paper's networks with the paper's hyper-parameters
(:data:`PAPER_HYPERPARAMETERS`, pinned here so that a change of a preset's defaults does not change them),
each iteration a batch of :data:`PAPER_CYCLES_PER_ITERATION` cycles (:func:`paper_options`).

Subjects are grouped by joint and channel set (a knee model cannot be scored on wrist data); each group
gets its own tables. Every fit gets the same seed. A method that fails on a fold (e.g. a diverging
fit) is recorded with its error and left out of the statistics, so one failure does not lose a long
run; the report lists failures.

``evaluate(seqs, config)`` returns a JSON-able result (plus ``traces`` and ``histories`` for the plots,
which :mod:`myoedge.train.report` keeps out of report.json).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from myoedge.body.cycles import FRAMES
from myoedge.ground.errors import InputError
from myoedge.ground.fileio import atomic_write_bytes
from myoedge.train import stats
from myoedge.train.executor import TaskFailed, open_executor
from myoedge.train.methods import DEFAULT_METHODS, get_method, parse_methods
from myoedge.train.metrics import output_names, residual_rms, score_outputs

log = logging.getLogger(__name__)

PROTOCOLS = ("intra", "loto", "size", "paper", "sessions")
DEFAULT_PROTOCOLS = ("intra", "loto", "size")
CYCLE_PROTOCOLS = ("paper", "sessions")
#: `--protocol paper`: the paper's protocols beside our time split (intra with the last 20 % held out)
PAPER_PROTOCOLS = ("paper", "sessions", "intra")
#: the methods of the paper's Table II
PAPER_METHODS = ("pi-cnn", "cnn", "ml-elm", "elm", "svr")
#: Zhang et al. 2023, Section IV-C: SGD with momentum, 1200 iterations, learning rate 0.01, dropout 0.3
PAPER_HYPERPARAMETERS = {"optimizer": "sgd", "momentum": 0.9, "iterations": 1200, "lr": 0.01,
                         "model": {"dropout": 0.3}}
#: cycles per iteration under the paper's protocol (the paper gives no batch size): with one, 1200
#: iterations saw each training cycle ~20 times and PI-CNN and CNN were far from converged
#: (docs/evaluation.md)
PAPER_CYCLES_PER_ITERATION = 10
#: frames of the zero-phase Hann window the PI-CNN's physics residual is averaged by under the paper's
#: protocol (ours, not the paper's; chosen on development subjects that are not evaluated,
#: docs/evaluation.md): without it the second difference of a per-frame network's jitter dominates L_P
#: and costs the PI-CNN its angle and its forces
PAPER_PHYSICS_SMOOTH = 15
SIZE_FRACTIONS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
RESULT_FORMAT = "myoedge-evaluation"
TRACE_POINTS = 1500  # samples of the example test trace kept for the plots


@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """What to run. ``quick`` trains every method at demonstration size (tests, demos), never for reports."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    size_fractions: tuple[float, ...] = SIZE_FRACTIONS
    size_methods: tuple[str, ...] = ("pi-cnn", "cnn")
    train_fraction: float = 0.8
    seed: int = 0
    quick: bool = False
    baseline_lags_s: tuple[float, ...] = (0.0,)
    alpha: float = 0.05
    held_out: str = "block"  # intra: "block" (a 20 % block at a seeded place) | "end" (the last 20 %)
    cycle_frames: int = FRAMES  # paper, sessions: frames per time-normalised cycle
    cycle_k_mad: float = 3.0  # paper, sessions: a cycle whose duration is this many MADs off is dropped
    cycle_batch: int = PAPER_CYCLES_PER_ITERATION  # paper, sessions: cycles per PI-CNN / CNN iteration
    physics_smooth: int = PAPER_PHYSICS_SMOOTH  # paper, sessions: frames the PI-CNN's residual is averaged by

    def __post_init__(self):
        object.__setattr__(self, "methods", parse_methods(self.methods))
        object.__setattr__(self, "size_methods", tuple(m for m in parse_methods(self.size_methods)
                                                       if m in self.methods))
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise InputError(f"protocols must be some of {PROTOCOLS}, got {list(self.protocols)}")
        fr = tuple(float(f) for f in self.size_fractions)
        if not fr or any(not 0.0 < f <= 1.0 for f in fr):
            raise InputError(f"size fractions must be in (0, 1], got {list(self.size_fractions)}")
        object.__setattr__(self, "size_fractions", tuple(sorted(set(fr))))
        object.__setattr__(self, "baseline_lags_s", tuple(float(x) for x in self.baseline_lags_s))
        if not 0.0 < self.train_fraction < 1.0:
            raise InputError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.held_out not in ("block", "end"):
            raise InputError(f"held_out must be 'block' or 'end', got {self.held_out!r}")
        frames = self.cycle_frames
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 3:
            raise InputError(f"cycle_frames must be an int >= 3, got {self.cycle_frames!r}")
        batch = self.cycle_batch
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError(f"cycle_batch must be an int >= 1, got {self.cycle_batch!r}")
        from myoedge.train.physics import check_window

        check_window(self.physics_smooth, "physics_smooth")
        if not self.cycle_k_mad > 0:
            raise InputError(f"cycle_k_mad must be > 0, got {self.cycle_k_mad!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Fold:
    protocol: str
    subject: str
    name: str  # "80/20", the held-out trial, or "80/20@0.4"
    train: list
    test: list
    fraction: float = 1.0


def group_by_channels(seqs) -> dict[str, list]:
    """Sequences grouped by (joint, muscles), keyed by joint (plus the muscles if a joint has two sets)."""
    groups: dict[tuple, list] = {}
    for s in seqs:
        groups.setdefault((s.joint, tuple(s.muscles)), []).append(s)
    names: dict[str, list] = {}
    for (joint, muscles), group in groups.items():
        clash = any(j == joint and m != muscles for j, m in groups)
        key = f"{joint}-{'-'.join(muscles)}" if clash else joint
        names[key] = group
    return names


def plan_folds(seqs, config: EvaluationConfig, *, segmentation: list | None = None) -> list[Fold]:
    """Every fold of every requested protocol, for one channel group; the cycle protocols' segmentation
    counts are appended to ``segmentation`` when given."""
    from myoedge.train.data import split_intra_session, split_leave_one_trial_out, split_time, subsample_train

    folds: list[Fold] = []
    if "intra" in config.protocols or "size" in config.protocols:
        if config.held_out == "end":
            split = split_time(seqs, test_fraction=1.0 - config.train_fraction)
        else:
            split = split_intra_session(seqs, train_fraction=config.train_fraction, seed=config.seed)
        tag = f"{round(100 * config.train_fraction)}/{round(100 * (1 - config.train_fraction))}"
        for subject in sorted(split):
            train, test = split[subject]
            if "intra" in config.protocols:
                folds.append(Fold("intra", subject, tag, train, test))
            if "size" in config.protocols:
                for f in config.size_fractions:
                    if f < 1.0 or "intra" not in config.protocols:
                        folds.append(Fold("size", subject, f"{tag}@{f:g}",
                                          subsample_train(train, f, seed=config.seed), test, f))
    if "loto" in config.protocols:
        subjects = {s.subject for s in seqs}
        if any(sum(s.subject == subj for s in seqs) > 1 for subj in subjects):
            for held, train, test in split_leave_one_trial_out(seqs):
                folds.append(Fold("loto", test[0].subject, held, train, test))
        else:
            log.warning("leave-one-trial-out skipped: no subject has two trials")
    if any(p in config.protocols for p in CYCLE_PROTOCOLS):
        from myoedge.train.cycles import cycle_folds

        cycles, counts = cycle_folds(seqs, protocols=config.protocols, train_fraction=config.train_fraction,
                                     seed=config.seed, frames=config.cycle_frames, k_mad=config.cycle_k_mad)
        folds += [Fold(*f) for f in cycles]
        if segmentation is not None:
            segmentation.extend(counts)
    return [_with_passive(f) for f in folds]


def _with_passive(fold: Fold) -> Fold:
    """The fold with the joint's passive moment (recordings scored against τ_ID) identified on its
    training part and set on both parts, so every method is scored by one residual."""
    from myoedge.train.physics import attach_passive

    train, test = attach_passive(fold.train, fold.test)
    return replace(fold, train=train, test=test)


def _thin(x: np.ndarray, n: int) -> np.ndarray:
    return x if len(x) <= n else x[np.linspace(0, len(x) - 1, n).round().astype(int)]


def _record(fold: Fold, method: str) -> dict:
    return {"protocol": fold.protocol, "subject": fold.subject, "fold": fold.name,
            "fraction": fold.fraction, "method": method, "n_train": int(sum(s.n for s in fold.train)),
            "n_test": int(sum(s.n for s in fold.test))}


def paper_options(cycle_frames: int, cycle_batch: int = PAPER_CYCLES_PER_ITERATION,
                  physics_smooth: int = PAPER_PHYSICS_SMOOTH) -> dict:
    """The training options of PI-CNN and CNN under the paper's protocol: the paper's hyper-parameters,
    each iteration a batch of ``cycle_batch`` whole cycles of ``cycle_frames``, the physics residual
    averaged over ``physics_smooth`` frames."""
    return {**PAPER_HYPERPARAMETERS, "max_steps": cycle_batch * cycle_frames,
            "physics_smooth": physics_smooth}


def run_fold(fold: Fold, method: str, config: EvaluationConfig) -> tuple[dict, list | None, list]:
    """Fit ``method`` on the fold's training data and score it on its test data.

    Returns the run record, the predictions (None on failure) and the training history (per-iteration
    loss terms; empty for closed-form methods and on failure).
    """
    record = _record(fold, method)
    options = {}
    if method in ("elm", "ml-elm", "svr"):
        options["lags_s"] = config.baseline_lags_s
    if fold.protocol in CYCLE_PROTOCOLS and method in ("pi-cnn", "cnn"):
        paper = paper_options(config.cycle_frames, config.cycle_batch, config.physics_smooth)
        options.update({k: v for k, v in paper.items() if not (config.quick and k == "iterations")})
    t0 = time.perf_counter()
    try:
        model = get_method(method).fit(fold.train, seed=config.seed, quick=config.quick, **options)
        record["fit_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        predictions = [model.predict(s) for s in fold.test]
        record["predict_s"] = round(time.perf_counter() - t1, 3)
    except Exception as e:  # one failed fit must not lose hours of the others; the report lists it
        log.warning("%s on %s %s failed: %s", method, fold.subject, fold.name, e,
                    exc_info=not isinstance(e, InputError))
        record.update(error=f"{type(e).__name__}: {e}", fit_s=round(time.perf_counter() - t0, 3))
        return record, None, []
    record["outputs"] = score_outputs(fold.test, predictions)
    record["residual"] = residual_rms(fold.test, predictions)
    chosen = getattr(model, "chosen", None)
    if chosen:
        record["chosen"] = chosen
    history = list(getattr(model, "history", None) or [])
    if history:
        record["final_loss"] = history[-1]
    return record, predictions, history


@contextlib.contextmanager
def one_thread():
    """One torch thread and one BLAS thread while fitting. The networks and matrices here are small, and on
    a 2-core machine shared with anything else, idle worker threads spinning for work made fits 5–20
    times slower (measured); one thread is never much slower than two for these sizes."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def _worker_job(fold: Fold, method: str, config: EvaluationConfig):
    with one_thread():
        return run_fold(fold, method, config)


class FitCache:
    """Finished fits on disk (one pickle per fit), so a killed evaluation resumes where it stopped.

    A fit is found again only for the same joint group, fold, method, data (a digest of every training
    and test array) and settings that change a fit (seed, quick, baseline lags, train fraction, cycles per
    PI-CNN / CNN iteration, the physics residual's averaging window). It
    cannot see code changes: start from an empty cache after changing a method.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0

    def name(self, key: str, fold: Fold, method: str, config: EvaluationConfig) -> str:
        digest = hashlib.sha256()
        for s in (*fold.train, *fold.test):
            digest.update(f"{s.name}:{s.n}".encode())
            for a in (s.envelopes, s.theta, s.forces):
                digest.update(np.ascontiguousarray(a).tobytes())
        ident = [key, fold.protocol, fold.subject, fold.name, fold.fraction, method, config.seed,
                 config.quick, list(config.baseline_lags_s), config.train_fraction, config.cycle_batch,
                 config.physics_smooth, digest.hexdigest()]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]

    def get(self, name: str):
        path = self.folder / f"{name}.pkl"
        if not path.is_file():
            return None
        self.hits += 1
        return pickle.loads(path.read_bytes())  # written by put() below, never from outside

    def put(self, name: str, outcome) -> None:
        atomic_write_bytes(self.folder / f"{name}.pkl", pickle.dumps(outcome))


def evaluate(seqs, config: EvaluationConfig | None = None, *, show_progress: bool = False,
             jobs: int = 1, cache: FitCache | None = None, executor: str = "process",
             address: str | None = None) -> dict:
    """Run the configured protocols and methods on ``seqs`` (a progress bar on stderr per fit if asked).

    ``jobs`` > 1 runs that many fits at once in worker processes (one thread each): on a 2-core machine
    two single-threaded fits finish in about the time of one. Results do not depend on ``jobs``: every
    fit is deterministic per seed. Protocols run one after another, so each one's wall time is its own
    (for a protocol resumed from ``cache``, the cached fits add their own fit time ÷ ``jobs``).
    ``executor="ray"`` runs the fits as Ray tasks instead (a local Ray with ``jobs`` CPUs, or the cluster
    at ``address``; :mod:`myoedge.train.executor`), with the same results. A fit whose task is lost (its
    worker process or node died) is recorded as a failed fit, and not cached.
    """
    from myoedge.ground.progress import Progress

    config = config or EvaluationConfig()
    seqs = list(seqs)
    if not seqs:
        raise InputError("no sequences to evaluate")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs must be a positive int, got {jobs!r}")
    groups = group_by_channels(seqs)
    segmentation = {key: [] for key in groups}
    plans = {key: plan_folds(group, config, segmentation=segmentation[key]) for key, group in groups.items()}
    stages = [(key, protocol, [(fold, m) for fold in plans[key] if fold.protocol == protocol
                               for m in config.methods if protocol != "size" or m in config.size_methods])
              for key in groups for protocol in PROTOCOLS]
    stages = [st for st in stages if st[2]]
    t_start = time.perf_counter()
    result = {"format": RESULT_FORMAT, "version": 1, "config": config.to_dict(), "joints": {},
              "traces": {}, "histories": {}}
    runs_by_key: dict[str, list] = {key: [] for key in groups}
    seconds: dict[str, dict[str, float]] = {key: {} for key in groups}
    resumed: dict[str, list[str]] = {key: [] for key in groups}
    total = sum(len(work) for *_, work in stages)
    with Progress(total, "evaluate", enabled=show_progress) as progress, one_thread(), \
            open_executor(executor, jobs=jobs, address=address) as pool:
        for key, protocol, work in stages:
            t0 = time.perf_counter()
            names = [cache.name(key, fold, m, config) if cache else None for fold, m in work]
            done = {i: cache.get(n) for i, n in enumerate(names)} if cache else {}
            done = {i: o for i, o in done.items() if o is not None}
            todo = [w for i, w in enumerate(work) if i not in done]
            fresh = iter([pool.submit(_worker_job, fold, m, config) for fold, m in todo])
            cached_s = 0.0
            for i, (fold, method) in enumerate(work):
                if i in done:
                    outcome = done[i]
                    cached_s += outcome[0].get("fit_s", 0.0) + outcome[0].get("predict_s", 0.0)
                else:
                    try:
                        outcome = next(fresh).result()
                    except TaskFailed as e:  # the task was lost, not the fit: a rerun tries it again
                        log.warning("%s on %s %s: task failed: %s", method, fold.subject, fold.name, e)
                        outcome = {**_record(fold, method), "error": f"task failed: {e}"}, None, []
                    else:
                        if cache:
                            cache.put(names[i], outcome)
                record, predictions, history = outcome
                runs_by_key[key].append(record)
                if protocol == "intra" and predictions is not None and fold.subject == plans[key][0].subject:
                    _keep_trace(result, key, fold, method, predictions[0])
                    if history:
                        result["histories"].setdefault(key, {})[method] = history
                progress.update(1, f"{key} {protocol} {fold.subject} {method}")
            seconds[key][protocol] = time.perf_counter() - t0 + cached_s / jobs
            if done:
                resumed[key].append(protocol)
    for key, group in groups.items():
        runs = runs_by_key[key]
        if "intra" in config.protocols and "size" in config.protocols:  # the 100 % point is the intra fold
            runs += [{**r, "protocol": "size", "fold": f"{r['fold']}@1"} for r in runs
                     if r["protocol"] == "intra" and r["method"] in config.size_methods]
        result["joints"][key] = _summarise(group, runs, config, seconds[key], segmentation[key])
        result["joints"][key]["resumed_protocols"] = resumed[key]
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    result["jobs"] = jobs
    return result


def _keep_trace(result: dict, key: str, fold: Fold, method: str, prediction) -> None:
    seq = fold.test[0]
    names = output_names(seq.muscles)
    trace = result["traces"].setdefault(key, {
        "sequence": seq.name, "t": _thin(np.asarray(seq.t) - seq.t[0], TRACE_POINTS),
        "truth": dict(zip(names, _thin(np.column_stack([np.degrees(seq.theta), seq.forces]), TRACE_POINTS).T,
                          strict=True)),
        "pred": {}})
    theta, forces = prediction
    cols = _thin(np.column_stack([np.degrees(theta), forces]), TRACE_POINTS).T
    trace["pred"][method] = dict(zip(names, cols, strict=True))


def _summarise(group: list, runs: list[dict], config: EvaluationConfig, seconds: dict,
               segmentation: list[dict]) -> dict:
    first = group[0]
    outputs = output_names(first.muscles)
    ok = [r for r in runs if "error" not in r]
    methods = list(config.methods)
    summary = {p: stats.summarise(ok, protocol=p, methods=methods, outputs=outputs, alpha=config.alpha)
               for p in ("intra", "loto", *CYCLE_PROTOCOLS) if p in config.protocols}
    table1 = {m: stats.per_subject(ok, protocol="intra", method=m, outputs=outputs) for m in methods} \
        if "intra" in config.protocols else {}
    table1_paper = {m: stats.per_subject(ok, protocol="paper", method=m, outputs=outputs) for m in methods} \
        if "paper" in config.protocols else {}
    return {
        "joint": first.joint, "muscles": list(first.muscles), "outputs": outputs,
        "subjects": sorted({s.subject for s in group}), "trials": sorted({s.trial for s in group}),
        "physics": sorted({s.physics for s in group}), "mvc_source": sorted({s.mvc_source for s in group}),
        "rate_hz": first.rate_hz, "seconds_by_protocol": {k: round(v, 1) for k, v in seconds.items()},
        "runs": runs, "failures": [r for r in runs if "error" in r], "summary": summary,
        "per_subject": table1, "per_subject_paper": table1_paper, "segmentation": segmentation,
        "size_curve": stats.size_curve(ok, methods=list(config.size_methods), outputs=outputs)
        if "size" in config.protocols else {},
    }
