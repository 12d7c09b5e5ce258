"""Where fits run: Ray tasks give exactly the numbers of the process pool; a lost task is a recorded
failure; a missing Ray or a dead cluster address is a one-line input error."""

import json
import os
import sys
import time

import pytest
from test_evaluate import SEQS  # the tiny two-subject knee set of the evaluation tests

from myoedge.body.subjects import write_dataset
from myoedge.cli import main
from myoedge.ground.errors import InputError
from myoedge.train import evaluate as evaluate_module
from myoedge.train.evaluate import EvaluationConfig, FitCache, evaluate
from myoedge.train.executor import TaskFailed, open_executor, start_ray

ray = pytest.importorskip("ray")  # installed by `make test` (the `ray` extra)

TIMING = {"seconds", "seconds_by_protocol", "fit_s", "predict_s"}


def without_timing(x):
    if isinstance(x, dict):
        return {k: without_timing(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list | tuple):
        return [without_timing(v) for v in x]
    return x


def as_json(result) -> str:
    return json.dumps(without_timing(result), sort_keys=True, default=lambda a: a.tolist())


def test_missing_ray_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(InputError, match=r"pip install 'myoedge\[ray\]'"):
        with open_executor("ray", jobs=2):
            pass
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert "myoedge[ray]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_bad_or_dead_addresses_are_one_line_errors(monkeypatch):
    assert not ray.is_initialized()
    t0 = time.monotonic()
    with pytest.raises(InputError, match="no Ray cluster reachable at '127.0.0.1:1'"):
        with open_executor("ray", jobs=2, address="127.0.0.1:1"):
            pass
    assert time.monotonic() - t0 < 10  # not a driver retrying for minutes
    with pytest.raises(InputError, match="no Ray cluster reachable at 'ray://127.0.0.1:1'"):
        evaluate(SEQS, EvaluationConfig(methods=("elm",), protocols=("intra",), quick=True), executor="ray",
                 address="ray://127.0.0.1:1")
    with pytest.raises(InputError, match="HOST:PORT"):
        with open_executor("ray", address="head-node"):
            pass
    with pytest.raises(InputError, match="--executor ray"):
        with open_executor("process", jobs=2, address="127.0.0.1:6379"):
            pass
    with pytest.raises(InputError, match="executor must be one of"):
        with open_executor("dask"):
            pass
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the module (starting one takes seconds); open_executor reuses it."""
    start_ray(jobs=2)
    yield ray
    ray.shutdown()


def test_ray_and_the_process_pool_give_exactly_the_same_results(local_ray):
    config = EvaluationConfig(methods=("cnn", "elm"), protocols=("intra",), quick=True, seed=3)
    pooled = evaluate(SEQS, config, jobs=2)
    on_ray = evaluate(SEQS, config, jobs=2, executor="ray")
    runs = on_ray["joints"]["knee"]["runs"]
    assert len(runs) == 2 * 2 and not on_ray["joints"]["knee"]["failures"]  # 2 subjects × 2 methods
    assert {r["method"] for r in runs} == {"cnn", "elm"}
    assert on_ray["histories"]["knee"]["cnn"]  # the network's loss curve came back from its task
    assert all(r["outputs"]["theta"]["rmse"] > 0 for r in runs)  # real scores, not empty shells
    assert as_json(on_ray) == as_json(pooled)


def test_a_ray_task_that_raises_is_a_task_failure(local_ray):
    def explode(x):
        raise ValueError(f"no fit for {x}")

    with open_executor("ray", jobs=2) as ex:
        bad, good = ex.submit(explode, 7), ex.submit(abs, -5)
        with pytest.raises(TaskFailed, match="ValueError: no fit for 7"):
            bad.result()
        assert good.result() == 5
    assert ray.is_initialized()  # a session opened by someone else is left running
    with pytest.raises(InputError, match="already initialised"):
        with open_executor("ray", address="127.0.0.1:6379"):
            pass


def test_a_dead_worker_process_is_a_task_failure():
    with open_executor("process", jobs=2) as ex:
        dying = ex.submit(os._exit, 3)
        with pytest.raises(TaskFailed, match="BrokenProcessPool"):
            dying.result()
        with pytest.raises(TaskFailed, match="BrokenProcessPool"):
            ex.submit(abs, -1).result()  # the pool is broken: later tasks fail the same way, not raise


def test_a_lost_task_is_recorded_and_the_run_goes_on(monkeypatch, tmp_path):
    real = evaluate_module._worker_job

    def lose_svr(fold, method, config):
        if method == "svr":
            raise RuntimeError("worker process died")
        return real(fold, method, config)

    monkeypatch.setattr(evaluate_module, "_worker_job", lose_svr)
    cache = FitCache(tmp_path / "cache")
    result = evaluate(SEQS, EvaluationConfig(methods=("elm", "svr"), protocols=("intra",), quick=True),
                      cache=cache)
    knee = result["joints"]["knee"]
    assert [r["method"] for r in knee["failures"]] == ["svr", "svr"]
    assert knee["failures"][0]["error"] == "task failed: RuntimeError: worker process died"
    assert knee["failures"][0]["n_train"] > 0 and knee["summary"]["intra"]["methods"] == ["elm"]
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 2  # lost tasks are not cached: a rerun retries


def test_evaluate_verb_on_ray(local_ray, tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, joints=("knee",), n_subjects=1, duration_s=3.0, seed=1)
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(data), "--out", str(out), "--quick", "--methods", "elm",
            "--protocols", "intra", "--no-figures", "--executor", "ray", "--jobs", "2", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["joints"]["knee"]["failures"] == 0 and set(summary["joints"]["knee"]["intra"]) == {"elm"}
    assert (out / "report.json").is_file()
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "x"), "--address", "h:1"]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err
