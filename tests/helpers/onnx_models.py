"""Small ONNX bundles for the bundle and predictor tests (no torch on the edge).

The network itself — its ``onnx.helper`` builder and its float64 numpy reference — lives in
:mod:`myoedge.edge.sim.synthetic_net` (shared with ``myoedge bench``); it is re-exported here so the tests
keep importing it from ``onnx_models``. This module adds the test-only bundle helpers.
"""

from __future__ import annotations

import numpy as np

from myoedge.edge.dsp.adc import default_adc
from myoedge.edge.dsp.envelope import EnvelopeConfig
from myoedge.edge.model.bundle import BundleMeta, write_bundle
from myoedge.edge.sim.synthetic_net import (
    OPSET,
    NetParams,
    build_onnx,
    paper_size_params,
    random_params,
    reference_outputs,
)

__all__ = ["OPSET", "NetParams", "build_onnx", "bundle_meta", "make_bundle", "paper_size_params",
           "random_params", "reference_outputs"]


def bundle_meta(*, window: int, muscles: tuple[str, ...], rate_hz: float = 100.0, emg_rate_hz: float = 1000.0,
                tolerance: float = 1e-4, input_range=None, channel_fill=None) -> dict:
    """A complete ``meta`` (JSON form) for write_bundle (hashes and timestamps are filled in there)."""
    return BundleMeta.build(
        name="test-net", joint="wrist", muscles=muscles, window=window,
        envelope=EnvelopeConfig(fs_hz=emg_rate_hz, out_rate_hz=rate_hz, input_bits=24), adc=default_adc(24),
        physiological_range={"theta_rad": [-1.5, 1.5], "forces_n": [[0.0, 2000.0]] * len(muscles)},
        training={"model": "onnx.helper test net", "seed": 0}, opset=OPSET, tolerance=tolerance,
        input_range=input_range, channel_fill=channel_fill).to_dict()


def make_bundle(path, *, window: int = 8, muscles: tuple[str, ...] = ("FCR", "ECRL", "ECU"), filters: int = 6,
                hidden: tuple[int, ...] = (16, 16), n_vectors: int = 4, seed: int = 0, input_range=None,
                channel_fill=None):
    """Write a small bundle whose test vectors are the numpy reference; returns (path, params).
    ``input_range``, ``channel_fill``: blocks for meta.json (default: none, as older bundles)."""
    params = random_params(window=window, channels=len(muscles), muscles=len(muscles), filters=filters,
                           hidden=hidden, seed=seed)
    rng = np.random.default_rng(seed + 1)
    inputs = rng.uniform(0.0, 1.0, (n_vectors, window, len(muscles))).astype(np.float32)
    ref = reference_outputs(params, inputs)
    write_bundle(path, onnx_bytes=build_onnx(params, window=window),
                 meta=bundle_meta(window=window, muscles=muscles, input_range=input_range,
                                  channel_fill=channel_fill),
                 test_inputs=inputs,
                 test_outputs={k: v.astype(np.float32) for k, v in ref.items()})
    return path, params
