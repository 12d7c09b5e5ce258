"""The splits users pick with --split: the last part of every trial (time) and leave one trial out (trial)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from myoedge.body.subjects import write_dataset
from myoedge.cli import main
from myoedge.ground.errors import InputError
from myoedge.train.data import load_sequences, split_time


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits") / "data"
    write_dataset(root, joints=("knee",), n_subjects=1, duration_s=3.0)
    return root


def test_split_time_holds_out_the_end_of_every_trial(data):
    seqs = load_sequences(data)
    train, test = split_time(seqs, test_fraction=0.25)["knee01"]
    assert len(train) == len(test) == len(seqs)
    for s, tr, te in zip(seqs, train, test):
        assert tr.n + te.n == s.n and te.n == round(0.25 * s.n)
        np.testing.assert_array_equal(te.theta, s.theta[-te.n:])
        np.testing.assert_array_equal(te.lead, s.envelopes[:tr.n])  # input history, never targets
        assert tr.t[-1] < te.t[0]
    with pytest.raises(InputError, match="test_fraction"):
        split_time(seqs, test_fraction=1.0)


def test_train_verb_both_splits(data, tmp_path, capsys):
    base = ["train", str(data), "--iterations", "3", "--quiet", "--json"]
    assert main(base + ["--out", str(tmp_path / "time")]) == 0
    time_split = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert time_split["split"] == "time" and time_split["preset"] == "edge"
    assert set(time_split["test"]["outputs"]["theta"]) == {"rmse", "nrmse", "cc"}
    assert main(base + ["--out", str(tmp_path / "trial"), "--split", "trial"]) == 0
    trial = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folds = trial["folds"]
    assert len(folds) == 3 and trial["train_sequences"] == 3 and trial["test_sequences"] == 0
    for name in ("theta", "F_BFSH", "F_RF"):
        for k in ("rmse", "nrmse", "cc"):
            assert trial["test"]["outputs"][name][k] == pytest.approx(
                np.mean([f["outputs"][name][k] for f in folds]))
    with pytest.raises(SystemExit):
        main(base + ["--out", str(tmp_path / "x"), "--split", "space"])
