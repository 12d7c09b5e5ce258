"""A trained run: ``TrainConfig`` (how to train), ``TrainedModel`` (the network with what it needs to
predict and be exported) and the run folder it is saved to and loaded from.

The training loop that makes a ``TrainedModel`` is :func:`myoedge.train.fit.fit`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from myoedge.edge.dsp.envelope import EnvelopeConfig
from myoedge.ground.errors import InputError
from myoedge.ground.fileio import atomic_directory
from myoedge.train.data import Sequence
from myoedge.train.models import ModelConfig, Normalised, build_model, start_states
from myoedge.train.physics import check_window
from myoedge.train.presets import preset as preset_record

LOSS_TERMS = ("L_F", "L_theta", "L_P", "total")
RUN_FORMAT = "myoedge-run"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train; ``model`` holds :class:`ModelConfig` overrides (e.g. ``{"filters": 64}``)."""

    preset: str = "pi-cnn"
    iterations: int = 1200
    optimizer: str = "sgd"  # "sgd" | "adam"
    lr: float = 0.01
    momentum: float = 0.9
    w_force: float = 1.0
    w_theta: float = 1.0
    w_physics: float = 0.1  # chosen on a development subject (docs/training.md)
    max_steps: int = 1024  # paper presets: steps per iteration (a random stretch of a longer piece)
    physics_smooth: int = 1  # L_P: the zero-phase Hann window (odd, steps) the residual is averaged by
    # before it is squared (1: none; train/physics.py)
    chunk: int = 128  # window / recurrent: outputs (with loss) per training chunk
    batch: int = 16  # window / recurrent: chunks per iteration
    burn_in: int = 0  # recurrent: steps before each chunk that warm the state without loss
    carry_state: bool = False  # recurrent: each batch row walks on through its trial, state carried
    grad_clip: float = 1.0  # max gradient norm (0: off): L_P of an untrained net is ~1e4
    correction_validation: float = 0.0  # observer: the last fraction of every training piece on which its
    # correction time is chosen (train/correction.py); 0: the time the identification gives
    correction_s: float = 0.0  # observer: trains and runs with at most this correction time (s); 0: the
    # identified one (the held-out choice of correction_validation trains the final model at its choice)
    rival: str = ""  # observer with correction_validation: a preset fitted on the same split; trained
    # instead where it predicts the held-out angle more than 10 % better (the GRU for ``edge``)
    members: int = 1  # stateful presets: fit this many networks, seeds seed … seed + members − 1, and
    # average them (myoedge.train.ensemble; the held-out choice above weighs single fits)
    model: dict = field(default_factory=dict)

    def __post_init__(self):
        preset_record(self.preset)
        if self.optimizer not in ("sgd", "adam"):
            raise InputError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or self.burn_in < 0:
            raise InputError(f"burn_in must be an int >= 0, got {self.burn_in!r}")
        if not isinstance(self.carry_state, bool):
            raise InputError(f"carry_state must be true or false, got {self.carry_state!r}")
        check_window(self.physics_smooth, "physics_smooth")
        for name in ("iterations", "max_steps", "chunk", "batch", "members"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "momentum", "w_force", "w_theta", "w_physics", "grad_clip", "correction_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.lr == 0:
            raise InputError("lr must be > 0")
        if self.rival:
            preset_record(self.rival)
        v = self.correction_validation
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 0.5:
            raise InputError(f"correction_validation must be a fraction in [0, 0.5), got {v!r}")
        if "members" in dict(self.model):
            raise InputError("members is a training setting (TrainConfig.members, --members), not a model "
                             "override")
        try:  # JSON-normal (tuples -> lists) so a config read back from run.json compares equal
            object.__setattr__(self, "model", json.loads(json.dumps(dict(self.model))))
        except (TypeError, ValueError):
            raise InputError(f"model overrides must be JSON values, got {self.model!r}") from None

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> TrainConfig:
        """The preset's training defaults (:mod:`myoedge.train.presets`) with ``overrides`` applied."""
        return cls(preset=preset, **{**preset_record(preset).train, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)



@dataclass(eq=False)
class TrainedModel:
    """A trained network with what it needs to predict and to be exported."""

    model: Normalised
    config: TrainConfig
    model_config: ModelConfig
    joint: str
    muscles: tuple[str, ...]
    rate_hz: float
    envelope_config: EnvelopeConfig | None
    history: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    samples: np.ndarray | None = None  # (K, W, C) training envelope windows, for export test vectors

    @property
    def window(self) -> int:
        return self.model_config.window

    @property
    def stateful(self) -> bool:
        return self.model_config.stateful

    def predict(self, seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """θ (n,) rad and F (n, M) N for every step of ``seq`` (edge: fed ``seq.history`` before t[0])."""
        if tuple(seq.muscles) != self.muscles:
            raise InputError(f"{seq.name} has muscles {list(seq.muscles)}; this model was trained on "
                             f"{list(self.muscles)}")
        self.model.eval()
        with torch.no_grad():
            env = torch.as_tensor(seq.envelopes, dtype=torch.float32)
            if self.model_config.stateful:  # warmed up on the EMG before t[0], as on a device
                lead = seq.history(0 if seq.lead is None else len(seq.lead))
                out, _ = self.model(torch.cat([torch.as_tensor(lead, dtype=torch.float32), env])[None],
                                    start_states(self.model, [seq.load_kg]))
                out = out[0, len(lead):]
            elif self.model_config.kind == "window":
                pad = torch.as_tensor(seq.history(self.window - 1), dtype=torch.float32)
                out = self.model(torch.cat([pad, env])[None])[0]
            else:
                out = self.model(env, torch.as_tensor(seq.t, dtype=torch.float32))
            theta, forces = self.model.to_physical(out)
        return theta.double().numpy(), forces.double().numpy()

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the run folder: ``model.pt`` (state dict), ``run.json``, ``history.csv``, ``samples.npz``."""
        path = Path(path)
        doc = {"format": RUN_FORMAT, "version": 1, "config": self.config.to_dict(),
               "model_config": self.model_config.to_dict(), "joint": self.joint,
               "muscles": list(self.muscles), "rate_hz": self.rate_hz, "info": self.info,
               "envelope_config": None if self.envelope_config is None else self.envelope_config.to_dict()}
        try:
            with atomic_directory(path, overwrite=overwrite) as tmp:
                torch.save(self.model.state_dict(), tmp / "model.pt")
                (tmp / "run.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
                table = np.array([[h[k] for k in LOSS_TERMS] for h in self.history]).reshape(-1, 4)
                np.savetxt(tmp / "history.csv", table, fmt="%.17g", delimiter=",",
                           header=",".join(LOSS_TERMS), comments="")
                if self.samples is not None:
                    np.savez(tmp / "samples.npz", envelopes=self.samples)
        except FileExistsError as e:
            raise InputError(f"{e}; choose another folder") from None
        return path

    @classmethod
    def load(cls, path) -> TrainedModel:
        path = Path(path)
        try:
            doc = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: not a training run (no run.json)") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{path / 'run.json'}: not valid JSON ({e.msg})") from None
        if doc.get("format") != RUN_FORMAT or doc.get("version") != 1:
            raise InputError(f"{path / 'run.json'}: not a version-1 {RUN_FORMAT} file")
        try:
            mcfg = ModelConfig.from_dict(doc["model_config"])
            config = TrainConfig(**doc["config"])
            fields = {"joint": doc["joint"], "muscles": tuple(doc["muscles"]),
                      "rate_hz": float(doc["rate_hz"]), "info": doc["info"]}
            env = doc.get("envelope_config")
            envelope_config = None if env is None else EnvelopeConfig.from_dict(env)
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{path / 'run.json'}: does not match this myoedge ({_one_line(e)})") from None
        model = build_model(mcfg)
        with _unreadable(path / "model.pt", "this run's weights"):
            model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
        model.eval()
        with _unreadable(path / "history.csv", "a loss history"):
            table = np.loadtxt(path / "history.csv", delimiter=",", skiprows=1, ndmin=2)
            history = [dict(zip(LOSS_TERMS, map(float, row))) for row in table]
        samples = None
        if (path / "samples.npz").is_file():
            with _unreadable(path / "samples.npz", "stored envelopes"), np.load(path / "samples.npz") as npz:
                samples = npz["envelopes"]
        return cls(model=model, config=config, model_config=mcfg, envelope_config=envelope_config,
                   history=history, samples=samples, **fields)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@contextlib.contextmanager
def _unreadable(path: Path, what: str):
    """Turn any failure to read ``path`` (truncated, corrupt, wrong shapes) into an ``InputError``."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:  # torch, zipfile and numpy raise many kinds for a damaged file
        raise InputError(f"{path}: cannot be read as {what} ({_one_line(e)})") from None


