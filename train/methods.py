"""Every method the evaluation compares, by name, behind one ``fit`` shape.

``METHODS[name].fit(train_seqs, seed=..., quick=..., progress=...)`` returns a model with
``predict(seq) -> (theta (n,) rad, forces (n, M) N)`` and ``history`` (per-iteration loss terms; empty
for the closed-form baselines). ``quick`` shrinks training to a demonstration size (few iterations,
small grids) so that the whole evaluation runs in seconds; it is for tests and demos, never for numbers
that are reported.

- ``pi-cnn`` — the paper's network with the physics loss (:mod:`myoedge.train.fit`, preset "pi-cnn");
- ``cnn`` — the paper's plain-CNN baseline: 3 conv + 3 FC blocks, no physics loss (preset "cnn");
- ``edge`` — the edge model this project ships, and ``edge-window`` (causal TCN) / ``edge-rnn`` (GRU),
  the candidates it was chosen from (:mod:`myoedge.train.presets`), physics loss on;
- ``ml-elm``, ``elm``, ``svr`` — :mod:`myoedge.train.baselines`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from myoedge.ground.errors import InputError
from myoedge.train.presets import PRESETS
from myoedge.train.presets import preset as preset_record

QUICK_ITERATIONS = {"per-step": 15, "window": 20, "recurrent": 20, "state-space": 20}  # by preset kind


@dataclass(frozen=True)
class Method:
    """A method the evaluation can run: a short name, its label in tables, and how to fit it."""

    name: str
    label: str
    fit: Callable[..., Any]
    physics_loss: bool
    description: str = ""
    options: dict = field(default_factory=dict)


def _network(preset: str) -> Callable[..., Any]:
    def fit_network(train, *, seed: int = 0, quick: bool = False, progress=None,
                    iterations: int | None = None, **overrides):
        from myoedge.train.fit import fit
        from myoedge.train.run import TrainConfig

        if quick and iterations is None:
            iterations = QUICK_ITERATIONS[preset_record(preset).kind]
        if iterations is not None:
            overrides["iterations"] = int(iterations)
        return fit(train, TrainConfig.for_preset(preset, **overrides), seed=seed, progress=progress)

    fit_network.__name__ = f"fit_{preset.replace('-', '_')}"
    fit_network.__doc__ = f"Train preset {preset!r} with :func:`myoedge.train.fit.fit`."
    return fit_network


def _baseline(name: str) -> Callable[..., Any]:
    def fit_baseline(train, *, seed: int = 0, quick: bool = False, progress=None, lags_s=None, **options):
        from myoedge.train import baselines

        fit = {"elm": baselines.fit_elm, "ml-elm": baselines.fit_ml_elm, "svr": baselines.fit_svr}[name]
        features = None if lags_s is None else baselines.Features(lags_s=tuple(lags_s))
        return fit(train, seed=seed, quick=quick, features=features, progress=progress, **options)

    fit_baseline.__name__ = f"fit_{name.replace('-', '_')}"
    return fit_baseline


METHODS: dict[str, Method] = {
    m.name: m for m in (
        *(Method(p.name, p.label, _network(p.name), p.train.get("w_physics", 0.1) > 0, p.summary)
          for p in PRESETS.values()),
        Method("ml-elm", "ML-ELM", _baseline("ml-elm"), False, "5 hidden layers of ELM auto-encoders"),
        Method("elm", "ELM", _baseline("elm"), False, "1 sigmoid hidden layer, ridge output"),
        Method("svr", "SVR", _baseline("svr"), False, "RBF SVR per output"),
    )
}
#: the paper's comparison (Table II order), then the shipped edge model
DEFAULT_METHODS = ("pi-cnn", "cnn", "ml-elm", "elm", "svr", "edge")
BASELINE_NAMES = ("ml-elm", "elm", "svr")


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}") from None


def parse_methods(names) -> tuple[str, ...]:
    """Validate a list (or comma-separated string) of method names, keeping order, dropping repeats."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for n in names:
        get_method(n)
        if n not in out:
            out.append(n)
    if not out:
        raise InputError(f"no methods given; known methods: {', '.join(METHODS)}")
    return tuple(out)


def label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name
