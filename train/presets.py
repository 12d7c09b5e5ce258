"""The presets: one typed record per trainable network (what it is, whether it carries state, how it trains).

A preset names a model *kind* and the defaults of its :class:`~myoedge.train.models.ModelConfig` and
:class:`~myoedge.train.run.TrainConfig`. Code asks the record (``preset(name).stateful``,
``.exports``, ``.uses_time``, ``.kind``) instead of comparing preset names.

Kinds:

* ``per-step`` — the paper's networks (pi-cnn, cnn): one envelope frame plus the trial's elapsed time;
* ``window`` — the causal dilated TCN over a window of W envelope frames (``edge-window``);
* ``recurrent`` — a GRU stepped once per model step on the current envelope frame; its hidden vector is
  the state of the state contract (``edge-rnn``);
* ``state-space`` — two banks of leaky integrators with learned time constants (20 ms … 30 s) and a
  tanh stage between them; their outputs are the state (``edge-ssm``);
* ``observer`` — a GRU gives muscle drives; a Hill-type stage makes them forces at the integrated angle
  and velocity; the joint's equation of motion, identified from the training recordings, integrates their
  moment, corrected toward a direct angle estimate; state = [θ, θ̇, load in the hand, hidden]
  (``edge-observer``);

``edge`` is the shipped model: the physics observer, with its correction time measured on the last fifth
of every training piece, or the GRU (``edge-rnn``) where that predicts the angle there more than 10 %
better (train/correction.py; docs/results/opensim: with loads in its equation the observer is chosen on
every OpenSim and hard-family dataset measured there, the OpenSim knee included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from myoedge.ground.errors import InputError

KINDS = ("per-step", "window", "recurrent", "state-space", "observer")
STATEFUL_KINDS = ("recurrent", "state-space", "observer")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A trainable network: its kind, whether it is stateful, and its model and training defaults."""

    name: str
    kind: str
    label: str  # in report tables
    summary: str
    model: dict = field(default_factory=dict)  # ModelConfig defaults
    train: dict = field(default_factory=dict)  # TrainConfig defaults

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"preset {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def stateful(self) -> bool:
        """True when the network carries state between steps (the bundle's ``state`` block)."""
        return self.kind in STATEFUL_KINDS

    @property
    def uses_time(self) -> bool:
        """The paper's networks take the normalised elapsed time as an input; a device cannot supply it."""
        return self.kind == "per-step"

    @property
    def exports(self) -> bool:
        """True when a run of this preset can become a bundle (inputs the device has: envelopes only)."""
        return not self.uses_time

    @property
    def sequence_training(self) -> bool:
        """Trained on batches of contiguous chunks (window and recurrent) rather than one piece at a time."""
        return self.kind != "per-step"


_TCN = {"filters": 32, "hidden": 32, "fc_blocks": 1, "dropout": 0.1, "dilations": (1, 2, 4, 8, 16, 32),
        "smooth": 31}
_TCN_TRAIN = {"optimizer": "adam", "lr": 3e-3, "iterations": 1500}
_RNN = {"hidden": 64, "fc_blocks": 1, "dropout": 0.0}
_RNN_TRAIN = {"optimizer": "adam", "lr": 3e-3, "iterations": 800, "chunk": 200, "burn_in": 300, "batch": 16}
_OBSERVER = {**_RNN, "force_stage": True}
# the step loop costs as much for 32 chunks as for 16 (it is bound by per-step dispatch), so the observer
# trains on twice the batch for half the iterations: the same chunks seen, in about half the time
_OBSERVER_TRAIN = {**_RNN_TRAIN, "batch": 32, "iterations": 400, "correction_validation": 0.2}

_ALL = (
    Preset(name="pi-cnn", kind="per-step", label="PI-CNN",
           summary="the paper's PI-CNN (elapsed time + envelope frame)"),
    Preset(name="cnn", kind="per-step", label="CNN", summary="the paper's CNN baseline (no physics loss)",
           model={"conv_blocks": 3, "fc_blocks": 3}, train={"w_physics": 0.0}),
    Preset(name="edge-window", kind="window", label="Edge TCN",
           summary="causal dilated TCN over a 1.57 s envelope window", model=_TCN, train=_TCN_TRAIN),
    Preset(name="edge-rnn", kind="recurrent", label="Edge GRU",
           summary="GRU over the envelope frames; state = hidden vector", model=_RNN, train=_RNN_TRAIN),
    Preset(name="edge-ssm", kind="state-space", label="Edge SSM",
           summary="diagonal state-space layers (leaky integrators); state = their outputs", model=_RNN,
           train=_RNN_TRAIN),
    Preset(name="edge-observer", kind="observer", label="Edge observer",
           summary="GRU forces integrated by the identified joint equation of motion, with a learned "
                   "correction whose time is chosen on held-out training data, the forces shaped by the "
                   "integrated angle and velocity; state = [θ, θ̇, load in the hand, hidden]",
           model=_OBSERVER, train=_OBSERVER_TRAIN),
    Preset(name="edge", kind="observer", label="Edge",
           summary="the shipped edge model: edge-observer, or edge-rnn where that predicts held-out "
                   "training data clearly better", model=_OBSERVER,
           train={**_OBSERVER_TRAIN, "rival": "edge-rnn"}),
)
PRESETS: dict[str, Preset] = {p.name: p for p in _ALL}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def preset(name: str) -> Preset:
    """The preset record called ``name`` (InputError naming the known ones otherwise)."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise InputError(f"preset must be one of {PRESET_NAMES}, got {name!r}") from None
