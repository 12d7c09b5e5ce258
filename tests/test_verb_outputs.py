"""Every verb that writes checks its outputs before the work starts (issue 15, cases 1, 2, 5 and 6): no
file is lost, an input is never an output, an undeliverable output is refused up front with exit 2."""

import json
import os
import shutil
import threading

import pytest
from loop_parts import setup_parts

from myoedge.cli import main


def cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def one_line_refusal(code, err, *words):
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


SIM_PORT = "sim://?labels=FCR,FCU,ECRL,ECRB,ECU&fs=1000"
SIM = ["simulate", "--joint", "knee", "--subjects", "1", "--duration", "1"]


def test_case1_simulate_into_an_existing_dataset_changes_nothing(tmp_path, capsys):
    data = tmp_path / "d"
    assert main([*SIM, "--seed", "4", "--out", str(data)]) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    code, err = cli([*SIM, "--seed", "5", "--out", str(data)], capsys)
    one_line_refusal(code, err, "--overwrite", "knee01")
    assert "overwrite=True" not in err
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before  # profile included
    # with --overwrite the subject is replaced whole, the old profile kept beside it
    assert main([*SIM, "--seed", "5", "--out", str(data), "--overwrite"]) == 0
    old = before[data / "knee01" / "profile.json"]
    assert (data / "knee01" / "profile.json.prev").read_bytes() == old
    assert (data / "knee01" / "profile.json").read_bytes() != old
    assert not [p for p in data.rglob(".*")]  # no staging folder left behind


@pytest.mark.parametrize("target", ["file", "/proc/nope/d", "file/below"])
def test_case6_simulate_onto_a_file_or_an_unwritable_path(tmp_path, capsys, target):
    (tmp_path / "file").write_text("keep")
    out = target if target.startswith("/") else str(tmp_path / target)
    code, err = cli([*SIM, "--out", out], capsys)
    one_line_refusal(code, err, "--out")
    assert (tmp_path / "file").read_text() == "keep"


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    bundle, profile, _ = setup_parts(tmp_path_factory.mktemp("rt"))
    return bundle.path, profile.save(tmp_path_factory.mktemp("profile") / "p.json")


def test_case2_run_csv_onto_an_input_is_refused_before_anything_opens(run_files, tmp_path, capsys):
    bundle, profile = run_files
    before = profile.read_bytes()
    for target in (profile, bundle / "meta.json", bundle):
        for extra in ([], ["--overwrite"]):
            code, err = cli(["run", "--port", "loop://", "--bundle", str(bundle), "--profile", str(profile),
                             "--csv", str(target), *extra], capsys)
            one_line_refusal(code, err, "--csv")
    assert profile.read_bytes() == before and not profile.with_name("p.json.partial").exists()
    assert not profile.with_name("p.json.prev").exists()


def test_case5_run_csv_onto_a_folder_or_an_existing_log(run_files, tmp_path, capsys):
    bundle, profile = run_files
    (tmp_path / "logs").mkdir()
    (tmp_path / "old.csv").write_text("old log\n")
    for target, words in ((tmp_path / "logs", ["is a folder"]), (tmp_path / "old.csv", ["--overwrite"]),
                          ("/proc/nope/x.csv", ["cannot write"])):
        code, err = cli(["run", "--port", "loop://", "--bundle", str(bundle), "--profile", str(profile),
                         "--csv", str(target)], capsys)
        one_line_refusal(code, err, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "old.csv"]  # no .partial anywhere
    assert (tmp_path / "old.csv").read_text() == "old log\n"
    (tmp_path / "new.csv.partial").write_text("rows of a killed run\n")
    code, err = cli(["run", "--port", "loop://", "--bundle", str(bundle), "--profile", str(profile), "--csv",
                     str(tmp_path / "new.csv")], capsys)
    one_line_refusal(code, err, "interrupted run")
    assert (tmp_path / "new.csv.partial").read_text() == "rows of a killed run\n"


def test_a_csv_log_that_cannot_be_delivered_is_a_non_zero_exit(run_files, tmp_path, capsys):
    bundle, profile = run_files
    logs = tmp_path / "logs"  # a USB stick pulled while the loop runs
    timer = threading.Timer(0.3, shutil.rmtree, (logs,))
    timer.start()
    try:
        code, err = cli(["run", "--port", SIM_PORT, "--bundle", str(bundle), "--profile", str(profile),
                         "--csv", str(logs / "run.csv"), "--duration", "1"], capsys)
    finally:
        timer.cancel()
    assert code == 1 and "was not delivered" in err.splitlines()[-1] and "Traceback" not in err


def test_case6_train_refuses_an_unwritable_or_input_out_before_training(tmp_path, capsys):
    data = tmp_path / "d"
    data.mkdir()
    for out in ("/proc/nope/r", str(data), str(data / "..")):
        code, err = cli(["train", str(data), "--out", out, "--overwrite"], capsys)
        one_line_refusal(code, err, "--out")
    assert "no recordings" not in err  # refused before the data were even read


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    assert main([*SIM, "--joint", "wrist", "--out", str(root / "d")]) == 0
    assert main(["train", str(root / "d"), "--out", str(root / "run"), "--iterations", "3", "--quiet",
                 "--test-fraction", "0"]) == 0
    return root / "d", root / "run"


def test_case6_export_of_a_damaged_run_is_a_clear_refusal(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    broken = tmp_path / "run"
    broken.mkdir()
    for f in run.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    weights = (run / "model.pt").read_bytes()
    for damage, words in ((weights[: len(weights) // 2], ["model.pt", "cannot be read"]),
                          (b"", ["model.pt"]), (b"not a zip at all", ["model.pt"])):
        (broken / "model.pt").write_bytes(damage)
        code, err = cli(["export", str(broken), "--out", str(tmp_path / "b")], capsys)
        one_line_refusal(code, err, *words)
    (broken / "model.pt").write_bytes(weights)
    (broken / "run.json").write_text(json.dumps({**json.loads((run / "run.json").read_text()), "joint": None,
                                                 "model_config": 5}))
    code, err = cli(["export", str(broken), "--out", str(tmp_path / "b")], capsys)
    one_line_refusal(code, err, "run.json")
    assert not (tmp_path / "b").exists()


def test_export_and_train_never_write_over_their_inputs(tiny_run, capsys):
    data, run = tiny_run
    before = sorted(p.name for p in run.iterdir())
    code, err = cli(["export", str(run), "--out", str(run), "--overwrite"], capsys)
    one_line_refusal(code, err, "input")
    code, err = cli(["train", str(data), "--out", str(data / "wrist01"), "--overwrite"], capsys)
    one_line_refusal(code, err, "input")
    assert sorted(p.name for p in run.iterdir()) == before and (data / "wrist01" / "profile.json").is_file()


def test_case6_amp_sim_link_onto_a_folder_or_a_file(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("keep")
    for link, words in (("dir", ["is a folder"]), ("file", ["is a file"])):
        code, err = cli(["amp-sim", "--link", str(tmp_path / link), "--stop-after", "0.1"], capsys)
        one_line_refusal(code, err, "--link", *words)
    assert (tmp_path / "file").read_text() == "keep" and (tmp_path / "dir").is_dir()


def test_case6_calibrate_moment_arms_out_onto_a_folder_or_another_profile(tiny_run, tmp_path, capsys):
    data, _ = tiny_run
    profile = data / "wrist01" / "profile.json"
    before = profile.read_bytes()
    (tmp_path / "dir").mkdir()
    (tmp_path / "other.json").write_text("{}")
    for out, words in ((tmp_path / "dir", ["is a folder"]), (tmp_path / "other.json", ["--overwrite"]),
                       (data / "wrist01" / "s1_mix1" / "emg.csv", ["input"])):
        code, err = cli(["calibrate", "moment-arms", "--data", str(data), "--profile", str(profile), "--out",
                         str(out)], capsys)
        one_line_refusal(code, err, "--out", *words)
    assert profile.read_bytes() == before and (tmp_path / "other.json").read_text() == "{}"


def test_case6_export_firmware_out_unwritable_or_over_existing_headers(tmp_path, capsys):
    from myoedge.edge.dsp.envelope import EnvelopeConfig

    config = tmp_path / "envelope.json"
    config.write_text(json.dumps(EnvelopeConfig(fs_hz=1000.0, out_rate_hz=100.0, input_bits=24).to_dict()))
    code, err = cli(["export-firmware", "--envelope", str(config), "--out", "/proc/nope/fw"], capsys)
    one_line_refusal(code, err, "--out", "cannot write")
    code, err = cli(["export-firmware", "--envelope", str(config), "--out", str(config)], capsys)
    one_line_refusal(code, err, "--out")
    assert main(["export-firmware", "--envelope", str(config), "--out", str(tmp_path / "fw")]) == 0
    capsys.readouterr()
    header = tmp_path / "fw" / "myoedge_frame.h"
    header.write_text("/* edited by hand */")
    code, err = cli(["export-firmware", "--envelope", str(config), "--out", str(tmp_path / "fw")], capsys)
    one_line_refusal(code, err, "--overwrite", "myoedge_frame.h")
    assert header.read_text() == "/* edited by hand */"
    assert main(["export-firmware", "--envelope", str(config), "--out", str(tmp_path / "fw"),
                 "--overwrite"]) == 0
    assert (tmp_path / "fw" / "myoedge_frame.h.prev").read_text() == "/* edited by hand */"


def test_bench_and_evaluate_refuse_bad_outputs_before_running(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = cli(["bench", "--seconds", "1", "--out", str(tmp_path / "file")], capsys)
    one_line_refusal(code, err, "is a file")
    code, err = cli(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--cache",
                     str(tmp_path / "r")], capsys)
    one_line_refusal(code, err, "same path")
    assert os.listdir(tmp_path) == ["file"]


def test_a_write_that_fails_midway_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    from myoedge.ground import fileio

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "d"))

    monkeypatch.setattr(fileio.tempfile, "mkdtemp", full)
    code, err = cli([*SIM, "--out", str(tmp_path / "d")], capsys)
    assert code == 1 and err.splitlines()[-1].endswith(f"No space left on device ({tmp_path / 'd'})")
    assert "Traceback" not in err and not (tmp_path / "d").exists()


def test_calibrate_mvc_replaces_only_its_own_profile_without_overwrite(run_files, tmp_path, capsys):
    _, profile = run_files
    other = tmp_path / "other.json"
    other.write_text("{}")
    code, err = cli(["calibrate", "mvc", "--port", "loop://", "--profile", str(profile), "--out", str(other)],
                    capsys)
    one_line_refusal(code, err, "--overwrite")
    code, err = cli(["calibrate", "mvc", "--port", str(other), "--joint", "knee", "--out", str(other),
                     "--overwrite"], capsys)
    one_line_refusal(code, err, "input")
    assert other.read_text() == "{}"
