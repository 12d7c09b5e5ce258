"""Export a trained edge model as a bundle: ONNX graph + meta.json + test vectors, checked for parity.

The exported graph is what the device runs: input ``envelopes`` (1, W, C) float32, the last W
normalised envelopes (oldest first); outputs ``theta`` (1, 1) rad and ``forces`` (1, M) N, with the
input standardisation and the output de-normalisation inside the graph. Only the edge preset exports:
the paper's networks take the trial's elapsed time as an input, which the bundle contract (envelopes
only) cannot supply on a device.

Parity rule (checked on the written bundle before it becomes visible): the bundle's test vectors are
replayed through ONNX Runtime (:func:`myoedge.edge.model.replay_test_vectors`, the replay the runtime
and the engine builder use) and, for every vector, every output element must satisfy
``|onnxruntime − PyTorch| ≤ 1e-4 · s``, with ``s`` that output's training-set standard deviation (θ:
σ_θ in rad; each force: its σ_F in N) — i.e. 1e-4 in the network's own normalised units. The bundle's
single absolute ``test_vectors.tolerance`` is the loosest of those bounds, ``1e-4 · max(σ_θ, σ_F…)``,
and the replay is held to it too.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from myoedge.edge.dsp.adc import Adc
from myoedge.edge.model import OnnxCpuPredictor, replay_test_vectors
from myoedge.edge.model.bundle import INPUT_NAME, write_bundle
from myoedge.edge.model.bundle_meta import STATE_NAMES, BundleMeta, ChannelFillMeta, InputRangeMeta, StateMeta
from myoedge.ground.errors import InputError
from myoedge.train.run import TrainedModel

OPSET = 17
PARITY_RTOL = 1e-4
PARITY_RULE = f"|onnx - torch| <= {PARITY_RTOL:g} * training std of the output"
OUTPUT_NAMES = ("theta", "forces")
STATE_INPUT, STATE_OUTPUT = STATE_NAMES
log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond the parity rule (an exporter or runtime fault)."""


class _Deployed(nn.Module):
    """(1, W, C) envelopes -> θ (1, 1) rad, F (1, M) N: the last step of the causal model, de-normalised."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, envelopes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta, forces = self.model.to_physical(self.model(envelopes)[:, -1])
        return theta.unsqueeze(-1), forces


class _DeployedStep(nn.Module):
    """(1, W, C) envelopes, (1, S) state -> θ (1, 1) rad, F (1, M) N, state_next (1, S): the model's step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, envelopes: torch.Tensor, state: torch.Tensor):
        return self.model.step(envelopes, state)


def _deployed(trained: TrainedModel) -> nn.Module:
    if trained.model_config.kind == "per-step":
        raise InputError(f"only edge runs export (this run is {trained.model_config.preset!r}): the paper's "
                         "networks take the trial's elapsed time as an input, which a bundle cannot supply")
    if trained.envelope_config is None:
        raise InputError("the run does not record its envelope configuration, so a bundle cannot say how to "
                         "compute its input")
    trained.model.eval()
    return (_DeployedStep if trained.stateful else _Deployed)(trained.model).eval()


def output_names(trained: TrainedModel) -> tuple[str, ...]:
    return OUTPUT_NAMES + ((STATE_OUTPUT,) if trained.stateful else ())


def onnx_bytes(trained: TrainedModel, *, opset: int = OPSET) -> bytes:
    """The ONNX graph (fixed batch 1) of an edge run; a stateful run's graph is its ``step``."""
    module = _deployed(trained)
    example: tuple = (torch.zeros(1, trained.window, len(trained.muscles)),)
    inputs = [INPUT_NAME]
    if trained.stateful:
        example += (trained.model.initial_state(),)
        inputs.append(STATE_INPUT)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch >= 2.9 prefers the torch.export-based exporter, which needs onnxscript; the TorchScript
        # exporter is still shipped and handles this small static graph exactly.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # GRU export: "batch_first" hint, not an error
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # nn.GRU shape checks, constant at batch 1
        torch.onnx.export(module, example, buf, opset_version=opset, dynamo=False, input_names=inputs,
                          output_names=list(output_names(trained)), do_constant_folding=True)
    return buf.getvalue()


def reference_outputs(trained: TrainedModel, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """PyTorch's outputs for each (W, C) window of ``inputs`` (K, W, C), one at a time as on the device; a
    stateful model replays them in order from its initial state and also returns the state after each."""
    module = _deployed(trained)
    names = output_names(trained)
    rows: dict[str, list] = {n: [] for n in names}
    state = trained.model.initial_state() if trained.stateful else None
    with torch.no_grad():
        for x in np.asarray(inputs, dtype=np.float32):
            if state is None:
                outs = module(torch.from_numpy(x)[None])
            else:
                outs = module(torch.from_numpy(x)[None], state)
                state = outs[2]
            for n, o in zip(names, outs):
                rows[n].append(o.numpy()[0])  # batch dimension dropped, as the bundle's vectors store them
    return {n: np.stack(v).astype(np.float32) for n, v in rows.items()}


def output_scales(trained: TrainedModel) -> dict[str, np.ndarray]:
    """Training-set std of each output element (the unit of the parity rule)."""
    m = trained.model
    scales = {"theta": m.theta_std.detach().numpy().astype(np.float64)[:1],
              "forces": m.force_std.detach().numpy().astype(np.float64)}
    if trained.stateful:  # hidden units of standardised size (GRU: in (-1, 1)): their unit is 1
        scales[STATE_OUTPUT] = np.ones(m.state_size)
    return scales


def check_parity(reference: dict, candidate: dict, scales: dict) -> dict:
    """Max abs error per output and the worst error in units of the output scale; raises ParityError."""
    report = {"max_abs_error": {}, "max_scaled_error": 0.0, "rule": PARITY_RULE}
    for name in reference:
        err = np.abs(candidate[name].astype(np.float64) - reference[name].astype(np.float64))
        report["max_abs_error"][name] = float(err.max())
        report["max_scaled_error"] = max(report["max_scaled_error"], float((err / scales[name]).max()))
    if report["max_scaled_error"] > PARITY_RTOL:
        raise ParityError(f"ONNX Runtime differs from PyTorch by {report['max_scaled_error']:.3g} output "
                          f"stds (limit {PARITY_RTOL:g}); max abs errors {report['max_abs_error']}")
    return report


def run_adc(trained: TrainedModel) -> Adc | None:
    """The ADC the run's training data was quantised with (None for runs of older myoedge versions)."""
    adc = trained.info.get("adc")
    return None if adc is None else Adc.from_dict(adc)


def physiological_range(trained: TrainedModel) -> dict:
    """θ: the joint's anatomical range (widened to the training data); F: 0 … max(1.8 F0, 1.2 × seen max)."""
    lo, hi = trained.info["theta_range"]
    force_hi = 1.2 * np.asarray(trained.info["force_max"], dtype=float)
    limits = trained.info.get("models")
    if limits:
        lo, hi = min(lo, limits["theta_rad"][0]), max(hi, limits["theta_rad"][1])
        force_hi = np.maximum(force_hi, 1.8 * np.asarray(limits["max_force_n"]))  # eccentric ceiling of Hill
    else:
        span = hi - lo
        lo, hi = lo - 0.1 * span, hi + 0.1 * span
    return {"theta_rad": [float(lo), float(hi)], "forces_n": [[0.0, float(max(f, 1.0))] for f in force_hi]}


def input_range(trained: TrainedModel) -> InputRangeMeta | None:
    """The normalised envelopes the run was trained on, per channel (``input_range`` in meta.json): from
    every training step where the run recorded it, else from its stored sample windows; None (no
    OUT_OF_DISTRIBUTION flag at run time) for a run that keeps neither."""
    recorded = trained.info.get("input_range")
    if recorded is not None:
        return InputRangeMeta.from_dict(recorded)
    if trained.samples is not None and trained.samples.size:
        return InputRangeMeta.of(trained.samples)
    log.warning("the run records no training envelopes; the bundle has no input_range, so the runtime "
                "cannot flag out-of-distribution input")
    return None


def channel_fill(trained: TrainedModel) -> ChannelFillMeta | None:
    """The moments of the training envelopes (``channel_fill`` in meta.json) the run recorded; None (the
    runtime cannot fill a channel whose electrode is off) for a run of one channel or an older run."""
    recorded = trained.info.get("channel_fill")
    return None if recorded is None else ChannelFillMeta.from_dict(recorded)


def export_bundle(trained: TrainedModel, out, *, name: str | None = None, extra_inputs=None,
                  overwrite: bool = False) -> dict:
    """Export ``trained`` to the bundle folder ``out`` if it passes the parity check; returns its report.

    Test vectors are the run's stored training windows plus ``extra_inputs`` (K, W, C), if given; for a
    stateful run they are one sequence replayed in order from the initial state (state contract), and
    meta.json gains the ``state`` block, its ``warmup_steps`` the training burn-in. meta.json records
    the run's ADC (``adc``), which the runtime holds the amplifier to.
    """
    model = onnx_bytes(trained)
    shape = (trained.window, len(trained.muscles))
    parts = [] if trained.samples is None else [trained.samples]
    if extra_inputs is not None:
        parts.append(np.asarray(extra_inputs, dtype=np.float32))
    for part in parts:
        if part.ndim != 3 or part.shape[1:] != shape or not np.all(np.isfinite(part)):
            raise InputError(f"test inputs must be finite (K, {shape[0]}, {shape[1]}), got {part.shape}")
    if not parts:
        raise InputError("no test vectors: the run stores no sample windows and none were given")
    inputs = np.concatenate(parts).astype(np.float32)
    reference = reference_outputs(trained, inputs)
    scales = output_scales(trained)
    initial = trained.model.initial_state().detach().numpy().astype(np.float32) if trained.stateful else None
    state = None
    if trained.stateful:
        state = StateMeta(size=int(initial.shape[1]), initial=tuple(float(v) for v in initial[0]),
                          warmup_steps=int(trained.config.burn_in),
                          load_index=getattr(trained.model, "LOAD_INDEX", None))
    meta = BundleMeta.build(
        name=name or f"{trained.joint}-{trained.model_config.preset}", joint=trained.joint,
        muscles=trained.muscles, window=trained.window, envelope=trained.envelope_config,
        adc=run_adc(trained),
        physiological_range=physiological_range(trained),
        training={"config": trained.config.to_dict(), "model_config": trained.model_config.to_dict(),
                  **{k: trained.info.get(k) for k in ("seed", "train_seconds", "parameters", "sequences",
                                                      "physics_modes", "normalisation", "mvc",
                                                      "channel_fill_quality")},
                  "parity_rule": PARITY_RULE},
        opset=OPSET, tolerance=PARITY_RTOL * float(max(scales["theta"].max(), scales["forces"].max())),
        state=state, input_range=input_range(trained), channel_fill=channel_fill(trained))
    if meta.adc is None:  # a run of an older myoedge: say so in the bundle's version, not by guessing
        log.warning("the run does not record the ADC its data was quantised with; the bundle is written as "
                    "version 2 (no 'adc'), and the runtime will not check the amplifier's scale")
        meta = dataclasses.replace(meta, version=2)
    report: dict = {}

    def verify(bundle) -> None:  # on the written bundle, before it becomes visible
        with OnnxCpuPredictor(bundle) as onnx:
            replay = replay_test_vectors(bundle, onnx)
        report.update(check_parity(reference, replay.outputs, scales))
        replay.check()

    path = write_bundle(Path(out), onnx_bytes=model, meta=meta, test_inputs=inputs, test_outputs=reference,
                        overwrite=overwrite, check=verify)
    return {"bundle": str(path), "vectors": int(len(inputs)), "tolerance": meta.test_vectors.tolerance,
            **report}
