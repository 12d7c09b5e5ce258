"""Export: ONNX Runtime agrees with PyTorch, the bundle loads and its test vectors round-trip, and the
``train`` / ``export`` verbs work end to end on a tiny data set."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from myoedge.body.subjects import make_subject, simulate_session, true_profile, write_dataset
from myoedge.cli import main
from myoedge.edge.dsp.adc import Adc, default_adc
from myoedge.edge.dsp.envelope import design_envelope
from myoedge.edge.model import OnnxCpuPredictor, replay_test_vectors
from myoedge.edge.model.bundle import load_bundle
from myoedge.ground.errors import InputError
from myoedge.train.data import load_sequences, split_intra_session
from myoedge.train.export import ParityError, check_parity, export_bundle, output_scales
from myoedge.train.fit import fit
from myoedge.train.run import TrainConfig, TrainedModel

SMALL_EDGE = {"dilations": (1, 2, 4), "filters": 16, "hidden": 16, "smooth": 5}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one torch thread is faster, and far faster when other work shares the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_and_test():
    subject = make_subject("wrist", 1)
    seqs = load_sequences(simulate_session(subject, duration_s=2.5, trial_paces=("slow", "fast")),
                          profiles={subject.name: true_profile(subject)})
    train, test = split_intra_session(seqs, seed=0)[subject.name]
    cfg = TrainConfig.for_preset("edge-window", iterations=20, model=SMALL_EDGE, chunk=32)
    return fit(train, cfg, seed=0), test


def test_bundle_loads_and_its_vectors_round_trip(trained_and_test, tmp_path):
    trained, test = trained_and_test
    w = trained.window
    extra = np.stack([test[0].envelopes[:w], test[1].envelopes[-w:]])
    report = export_bundle(trained, tmp_path / "bundle", extra_inputs=extra)
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.window == w and bundle.n_channels == 5 and bundle.muscles == trained.muscles
    assert bundle.input_rate_hz == 100.0 and bundle.emg_rate_hz == 2000.0
    assert bundle.envelope_hash == design_envelope(trained.envelope_config).coefficients_hash()
    assert len(bundle.test_inputs) == report["vectors"] == len(trained.samples) + 2
    assert onnx.load(str(bundle.onnx_path)).opset_import[0].version == 17
    with OnnxCpuPredictor(bundle) as ort_predictor:
        got = replay_test_vectors(bundle, ort_predictor).check().outputs
    for name in ("theta", "forces"):
        np.testing.assert_allclose(got[name], bundle.test_outputs[name], rtol=0, atol=bundle.tolerance)
    assert report["max_scaled_error"] <= 1e-4 and report["max_abs_error"]["forces"] < bundle.tolerance
    # the reference outputs are the PyTorch model's predictions in physical units
    theta, forces = trained.predict(test[1])
    np.testing.assert_allclose(bundle.test_outputs["theta"][-1, 0], theta[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bundle.test_outputs["forces"][-1], forces[-1], rtol=1e-4, atol=1e-3)
    phys = bundle.meta.physiological_range
    lo, hi = phys.theta_rad
    assert lo <= min(s.theta.min() for s in test) and hi >= max(s.theta.max() for s in test)
    assert all(pair[0] == 0.0 and pair[1] > 50.0 for pair in phys.forces_n)
    assert bundle.meta.training["model_config"]["preset"] == "edge-window"
    assert bundle.adc == default_adc(24) and bundle.meta.version == 3  # the ADC the data was quantised with


def test_parity_rule_fails_loudly(trained_and_test):
    trained, _ = trained_and_test
    scales = output_scales(trained)
    ref = {"theta": np.zeros((2, 1), np.float32), "forces": np.zeros((2, 5), np.float32)}
    ok = {"theta": ref["theta"] + 0.5e-4 * scales["theta"], "forces": ref["forces"]}
    assert check_parity(ref, ok, scales)["max_scaled_error"] == pytest.approx(0.5e-4, rel=1e-3)
    bad = {"theta": ref["theta"], "forces": ref["forces"] + 2e-4 * scales["forces"]}
    with pytest.raises(ParityError, match="output stds"):
        check_parity(ref, bad, scales)


def test_only_edge_runs_export(trained_and_test, tmp_path):
    trained, _ = trained_and_test
    cfg = TrainConfig.for_preset("pi-cnn", iterations=1, model={"filters": 4, "hidden": 4})
    paper = fit(trained_and_test[1], cfg, seed=0)
    with pytest.raises(InputError, match="only edge runs export"):
        export_bundle(paper, tmp_path / "b")
    with pytest.raises(InputError, match="must be"):
        export_bundle(trained, tmp_path / "b", extra_inputs=np.zeros((1, 3, 5)))


def test_train_and_export_verbs(tmp_path, capsys):
    write_dataset(tmp_path / "data", joints=("knee",), n_subjects=1, duration_s=3.0)
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    args = ["train", str(tmp_path / "data"), "--out", str(run), "--iterations", "5", "--quiet", "--json",
            "--preset", "edge-window"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["preset"] == "edge-window"
    assert set(summary["test"]["outputs"]) == {"theta", "F_BFSH", "F_RF"}
    assert TrainedModel.load(run).info["mvc"]["knee01"]["source"] == "profile"
    assert main(["export", str(run), "--out", str(bundle), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["max_scaled_error"] <= 1e-4 and load_bundle(bundle).muscles == ("BFSH", "RF")
    assert main(["export", str(run), "--out", str(bundle)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nothing"), "--out", str(run)]) == 2
    assert main(args[:3] + [str(tmp_path / "run1"), "--iterations", "2", "--quiet", "--smooth", "1",
                            "--preset", "edge-window"]) == 0
    assert TrainedModel.load(tmp_path / "run1").window == TrainedModel.load(run).window - 30  # default 31
    assert main(args + ["--preset", "pi-cnn", "--smooth", "3"]) == 2
    assert "--smooth applies to window presets" in capsys.readouterr().err
    chosen = tmp_path / "run16"
    assert main(args[:3] + [str(chosen), "--iterations", "2", "--quiet", "--adc-bits", "16", "--adc-scale",
                            "1e-6"]) == 0
    capsys.readouterr()
    assert main(["export", str(chosen), "--out", str(tmp_path / "b16")]) == 0
    b16 = load_bundle(tmp_path / "b16")
    assert b16.adc == Adc(bits=16, volts_per_count=1e-6) and b16.meta.envelope.config.input_bits == 16
    assert main(args[:3] + [str(tmp_path / "run-bad"), "--adc-scale", "-1"]) == 2
    assert "volts_per_count" in capsys.readouterr().err


def test_bundle_records_the_training_input_range(trained_and_test, tmp_path):
    import dataclasses

    trained, _ = trained_and_test
    export_bundle(trained, tmp_path / "bundle")
    got = load_bundle(tmp_path / "bundle").meta.input_range
    assert got is not None and len(got.max) == 5 and got.percentiles == (0.1, 99.9)
    samples = trained.samples.reshape(-1, 5)  # windows drawn from the training data: inside its range
    assert np.all(np.array(got.max) >= samples.max(0)) and np.all(np.array(got.min) <= samples.min(0))
    assert all(a <= b <= c <= d for a, b, c, d in zip(got.min, got.lo, got.hi, got.max, strict=True))
    # a run of an older myoedge records no range: the export computes it from the stored sample windows
    older = dataclasses.replace(trained, info={k: v for k, v in trained.info.items() if k != "input_range"})
    export_bundle(older, tmp_path / "older")
    older_range = load_bundle(tmp_path / "older").meta.input_range
    assert older_range.max == tuple(samples.max(0).astype(float).tolist())


def test_bundle_records_the_moments_for_the_channel_fill(trained_and_test, tmp_path):
    import dataclasses

    trained, _ = trained_and_test
    export_bundle(trained, tmp_path / "bundle")
    bundle = load_bundle(tmp_path / "bundle")
    fill = bundle.meta.channel_fill
    assert fill is not None and len(fill.mean) == 5 and len(fill.cov) == 5
    samples = trained.samples.reshape(-1, 5)  # windows drawn from the training data: inside its range
    assert np.all(np.array(fill.max) >= samples.max(0)) and np.all(np.diag(np.array(fill.cov)) > 0)
    quality = bundle.meta.training["channel_fill_quality"]
    assert len(quality["cc"]) == 5 and all(-1.0 <= c <= 1.0 for c in quality["cc"])
    older = dataclasses.replace(trained, info={k: v for k, v in trained.info.items() if k != "channel_fill"})
    export_bundle(older, tmp_path / "older")
    assert load_bundle(tmp_path / "older").meta.channel_fill is None
