"""``myoedge bench``: the documented JSON (last stdout line and the file under --out), exact loss counts
with injected faults, a trained bundle as the model, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from loop_parts import setup_parts

from myoedge.body.catalog import generic_model
from myoedge.cli import main
from myoedge.edge.model.bundle import load_bundle
from myoedge.edge.model.onnx_cpu import OnnxCpuPredictor
from myoedge.edge.model.replay import replay_test_vectors
from myoedge.edge.sim.bench import BenchConfig, format_table, run_bench
from myoedge.edge.sim.bench_model import PACKAGED
from myoedge.ground.errors import InputError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "runtime.md"
TOP_KEYS = {"format", "command", "created_utc", "host", "config", "model", "backend", "transport", "realtime",
            "frame_period_us", "measured_s", "warmup_s", "latency_us", "deadline_misses", "frames",
            "faults_injected", "cpu_per_wall_second", "envelope_throughput", "envelope_in_loop_x_real_time",
            "targets"}
STAGES = {"parse", "filter", "infer", "publish", "processing", "end_to_end"}


def test_bench_json_has_the_documented_keys(tmp_path, capsys):
    code = main(["bench", "--seconds", "1.2", "--warmup", "0.2", "--envelope-seconds", "0.2", "--json",
                 "--out", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert TOP_KEYS <= set(result) and result["written_to"]
    written = json.loads(Path(result["written_to"]).read_text())
    assert Path(result["written_to"]).name.startswith("bench-")
    assert written["created_utc"] == result["created_utc"]
    latency = result["latency_us"]
    assert set(latency["all"]) == STAGES and set(latency["with_inference"]) == STAGES
    assert set(latency["without_inference"]) == STAGES - {"infer", "publish"}
    assert set(latency["all"]["processing"]) == {"n", "p50", "p99", "p99.9", "max"}
    assert set(result["host"]) >= {"cpu", "cores", "os", "python", "onnxruntime", "numba"}
    model = result["model"]
    assert model["kind"] == "edge"  # the default: the shipped edge model (--model paper stays)
    assert not model["synthetic"] and model["bundle"] == "bench-edge-observer"
    assert model["window"] == 1 and model["stateful"] and model["parameters"] > 18_000
    assert result["backend"] == "numba-cpu" and result["transport"] == "pty"  # auto: the compiled graph
    assert result["frames"]["lost"] == 0 and result["frames"]["crc_errors"] == 0  # exact counts: below
    assert result["frames"]["udp_datagrams_received"] == result["frames"]["estimates"] > 50
    assert set(result["targets"]) == {"processing_p99_us", "end_to_end_p99_us", "end_to_end_p99.9_us",
                                      "frames_lost", "envelope_x_real_time"}
    assert result["targets"]["processing_p99_us"]["target"] == 150.0  # the edge model's
    assert "latency (us)" in out and "the shipped edge model" in out and "targets:" in out
    docs = DOCS.read_text(encoding="utf-8")
    assert all(f"`{key}`" in docs for key in TOP_KEYS)


def test_injected_drops_are_counted_exactly_with_a_trained_bundle(tmp_path):
    bundle, _, _ = setup_parts(tmp_path)
    result = run_bench(BenchConfig(seconds=1.0, warmup_s=0.2, model=str(bundle.path), transport="inproc",
                                   faults=("drop:0.03", "garbage:0.02"), envelope_seconds=0.1),
                       log=lambda text: None)
    frames = result["frames"]
    assert result["faults_injected"]["drops"] > 3 and result["faults_injected"]["garbage_bursts"] > 3
    assert frames["lost"] == frames["expected_lost"] == result["faults_injected"]["drops"]
    assert frames["resyncs"] == result["faults_injected"]["garbage_bursts"]
    assert result["model"] == {**result["model"], "synthetic": False, "channels": 5, "emg_rate_hz": 1000.0}
    assert result["targets"]["end_to_end_p99_us"]["met"] is None  # no link to measure with inproc
    assert "frames without inference" in format_table(result)


@pytest.mark.parametrize("kwargs, message", [({"transport": "usb"}, "transport"),
                                             ({"model": "no-such-bundle"}, "bundle folder"),
                                             ({"seconds": 0.1}, "seconds"),
                                             ({"channels": 0}, "channels"),
                                             ({"spin_us": -5}, "spin_us"),
                                             ({"backend": "tensorrt"}, "backend must be one of"),
                                             ({"spin_us": 100, "transport": "inproc"}, "pty or tcp"),
                                             ({"spin_us": 100, "realtime_priority": 10}, "go together")])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        BenchConfig(**kwargs)


def test_disconnect_needs_a_port_and_faults_must_parse():
    with pytest.raises(InputError, match="disconnect"):
        BenchConfig(transport="inproc", faults=("disconnect@0.2s",))
    with pytest.raises(InputError, match="not understood"):
        BenchConfig(faults=("flood:0.1",))


def test_the_packaged_edge_bundle_is_the_observer_and_replays():
    bundle = load_bundle(PACKAGED["edge"])
    assert bundle.stateful and bundle.window == 1 and bundle.muscles == generic_model("wrist").muscle_names
    with OnnxCpuPredictor(bundle) as predictor:
        assert replay_test_vectors(bundle, predictor).check().deviation <= 1e-4
    ops = {node.op_type for node in onnx.load(str(PACKAGED["edge"] / "model.onnx")).graph.node}
    assert {"GRU", "Softplus", "Sin", "Cos", "Exp"} <= ops  # the force stage and the equation of motion


def test_the_synthetic_gru_is_still_there_for_any_channel_count():
    config = BenchConfig(seconds=0.6, warmup_s=0.1, model="edge-rnn", channels=3, transport="inproc",
                         envelope_seconds=0.1)
    result = run_bench(config, log=lambda text: None)
    assert result["model"]["kind"] == "edge-rnn" and result["model"]["synthetic"]
    assert result["model"]["channels"] == 3 and result["targets"]["processing_p99_us"]["target"] == 150.0
