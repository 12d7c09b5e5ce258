"""The models ``myoedge bench`` runs when no bundle is given, and a profile to run them.

``edge`` (the default): the shipped edge model itself, a bundle of the ``edge`` observer trained briefly
on a built-in synthetic wrist (``bundles/edge``, made by ``myoedge.train.bench_bundle``): its graph and
its cost per step are the shipped model's. The synthetic graphs, for any channel count:

``paper``: the paper's size, a 128-filter temporal convolution (k = 3) over a 50-step window, two
dense layers of 128 and two heads. ``edge-rnn``: the observer's network without its physics (the
``edge-rnn`` preset of ``myoedge.train``): a single-layer GRU of 64 units stepped once per model step on
the newest envelope frame, its hidden vector the model state (``state`` in, ``state_next`` out; the
bundle's ``state`` block), and a head on [hidden, frame] of one Linear+Tanh block of 64 and a linear
output layer, 19 465 parameters for 8 channels. Both are built by :mod:`myoedge.edge.sim.synthetic_net`
(``onnx`` is imported only there, when building, so the runtime never needs it) with random weights
from a fixed seed: a real model's compute, meaningless outputs. They take envelopes at
``MODEL_RATE_HZ`` and give physical outputs like any bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from myoedge.body.catalog import JOINTS, generic_model
from myoedge.body.model import JointModel, Muscle
from myoedge.body.profile import SubjectProfile
from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope import EnvelopeConfig
from myoedge.edge.model.bundle import INPUT_NAME, Bundle, BundleMeta, StateMeta, write_bundle
from myoedge.edge.sim.synthetic_net import (
    OPSET,
    STATE_INPUT,
    STATE_OUTPUT,
    build_gru_onnx,
    build_onnx,
    random_gru_params,
    random_params,
)
from myoedge.ground.errors import InputError

__all__ = ["BENCH_MODELS", "MODEL_KINDS", "MODEL_RATE_HZ", "MVC_VOLTS", "PACKAGED", "bench_profile",
           "synthetic_bundle"]

MODEL_KINDS = ("paper", "edge-rnn")  # synthetic graphs
PACKAGED = {"edge": Path(__file__).resolve().parent / "bundles" / "edge"}  # trained bundles shipped here
BENCH_MODELS = (*PACKAGED, *MODEL_KINDS)
MODEL_RATE_HZ = 100.0
# A stateful synthetic bundle's warm-up: the burn-in the stateful edge presets train with (3 s at 100 Hz),
# so that after a reset its estimates are flagged WARMING_UP for as long as a real bundle's.
SYNTHETIC_WARMUP_STEPS = 300
MVC_VOLTS = 300e-6  # near the bench signal's contraction peaks: normalised envelopes of 0.1 to 1
_SIZES = {"paper": {"window": 50, "filters": 128, "hidden": (128, 128), "dilations": (1,)},
          "edge-rnn": {"window": 1, "gru_hidden": 64, "head_blocks": 1}}  # the edge-rnn preset: GRU step
_TEST_STEPS = 8  # test vectors: a stateful model's are one sequence of this many steps


# The bench graphs' weight scales: biases ~ N(0, 0.1·sqrt(0.2)), theta head × 0.3 (rad), forces head
# × 100 without offset (N).
_SCALES = {"bias_std": 0.1 * np.sqrt(0.2), "theta_scale": 0.3, "forces_scale": 100.0, "forces_bias": 0.0}


def _onnx_graph(kind: str, *, channels: int, seed: int) -> tuple[bytes, int]:
    """The synthetic network as ONNX bytes and its parameter count (random He-scaled fixed weights)."""
    size = _SIZES[kind]
    if "gru_hidden" in size:
        gru = random_gru_params(channels=channels, muscles=channels, hidden=size["gru_hidden"],
                                blocks=size["head_blocks"], seed=seed)
        try:
            return build_gru_onnx(gru, window=size["window"], name=f"myoedge_bench_{kind}"), gru.n_params
        except InputError:
            raise InputError("building a synthetic model needs the onnx package (`pip install onnx`); or "
                             "pass --model BUNDLE") from None
    params = random_params(window=size["window"], channels=channels, muscles=channels,
                           filters=size["filters"], hidden=size["hidden"], dilations=size["dilations"],
                           seed=seed, **_SCALES)
    try:
        onnx_bytes = build_onnx(params, window=size["window"], name=f"myoedge_bench_{kind}")
    except InputError:
        raise InputError("building a synthetic model needs the onnx package (`pip install onnx`); or "
                         "pass --model BUNDLE") from None
    return onnx_bytes, params.n_params


def synthetic_bundle(path: str | os.PathLike, *, kind: str, muscles: tuple[str, ...], fs_hz: float,
                     input_bits: int, seed: int = 0,
                     warmup_steps: int = SYNTHETIC_WARMUP_STEPS) -> tuple[Path, int]:
    """Write a bundle around a synthetic ``kind`` graph; (its path, its parameter count). A stateful
    graph's bundle asks for ``warmup_steps`` model steps after a reset before its estimates count.

    The test vectors are ONNX Runtime's own outputs: they prove nothing about training, only that the
    runtime loads what was written.
    """
    if kind not in MODEL_KINDS:
        raise InputError(f"synthetic model kind must be one of {list(MODEL_KINDS)}, got {kind!r}")
    m, window = len(muscles), _SIZES[kind]["window"]
    onnx_bytes, n_params = _onnx_graph(kind, channels=m, seed=seed)
    envelope = EnvelopeConfig(fs_hz=fs_hz, out_rate_hz=MODEL_RATE_HZ, input_bits=input_bits)
    inputs = np.random.default_rng(seed + 1).uniform(0.0, 1.0, (_TEST_STEPS, window, m)).astype(np.float32)
    state = _state_block(kind, warmup_steps=warmup_steps)
    outs = _replay(onnx_bytes, inputs, state)
    meta = BundleMeta.build(
        name=f"synthetic-{kind}", joint=_joint_for(muscles), muscles=muscles, window=window,
        envelope=envelope, adc=default_adc(input_bits),
        physiological_range={"theta_rad": [-3.2, 3.2], "forces_n": [[0.0, 5000.0]] * m},
        training={"model": f"synthetic {kind}-size graph, random fixed weights (seed {seed})"},
        opset=OPSET, tolerance=1e-4, state=state)
    path = write_bundle(path, onnx_bytes=onnx_bytes, meta=meta, test_inputs=inputs, overwrite=True,
                        test_outputs=outs)
    return path, n_params


def _state_block(kind: str, *, warmup_steps: int) -> StateMeta | None:
    """The bundle's ``state`` block for a stateful synthetic model (zeros initial), or None."""
    hidden = _SIZES[kind].get("gru_hidden")
    if hidden is None:
        return None
    return StateMeta(input=STATE_INPUT, output=STATE_OUTPUT, size=hidden, initial=(0.0,) * hidden,
                     warmup_steps=warmup_steps)


def _replay(onnx_bytes: bytes, inputs: np.ndarray, state: StateMeta | None) -> dict[str, np.ndarray]:
    """ONNX Runtime's outputs for ``inputs`` (K, W, C), one window at a time; a stateful graph is replayed
    as one sequence from its initial state, as ``replay_test_vectors`` does."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feeds: dict[str, np.ndarray] = {}
    if state is not None:
        feeds[state.input] = np.asarray(state.initial, np.float32).reshape(1, -1)
    outs: dict[str, list] = {name: [] for name in names}
    for x in inputs:
        results = dict(zip(names, session.run(None, {INPUT_NAME: x[None], **feeds}), strict=True))
        if state is not None:
            feeds[state.input] = results[state.output]
        for name, value in results.items():
            outs[name].append(value)
    return {name: np.concatenate(values) for name, values in outs.items()}


def _joint_for(muscles: tuple[str, ...]) -> str:
    for joint in JOINTS:
        if generic_model(joint).muscle_names == tuple(muscles):
            return joint
    return "bench"


def bench_profile(bundle: Bundle) -> SubjectProfile:
    """A profile for ``bundle``: the generic model of its joint when the muscles are that joint's,
    otherwise alternating wrist-like flexors and extensors named as the bundle's muscles."""
    joint = bundle.meta.joint
    model = generic_model(joint) if joint in JOINTS else None
    if model is None or model.muscle_names != bundle.muscles:
        wrist = generic_model("wrist")
        muscles = tuple(Muscle(name=name, action="flexor" if i % 2 == 0 else "extensor", max_force=100.0,
                               optimal_fiber_length=0.06, tendon_slack_length=0.24, pennation=0.0,
                               optimal_angle=0.0,
                               moment_arm=(0.015, 0.002, -0.002) if i % 2 == 0 else (-0.008, 0.001))
                        for i, name in enumerate(bundle.muscles))
        model = JointModel(joint=joint, segment=wrist.segment, muscles=muscles)
    return SubjectProfile(subject="bench", model=model, mvc_volts=(MVC_VOLTS,) * len(bundle.muscles),
                          provenance={"method": "myoedge bench: fixed MVC for the synthetic signal"})
