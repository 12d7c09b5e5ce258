"""The one test-vector replay: outputs stacked per vector, one sequence from the initial state, one
tolerance (the bundle's), the worst deviation named."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import make_bundle

from myoedge.edge.model import OnnxCpuPredictor, replay_test_vectors
from myoedge.edge.model.bundle import load_bundle, write_bundle
from myoedge.ground.errors import InputError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_bundle(tmp_path_factory.mktemp("b") / "bundle")[0])


def test_replay_stacks_the_outputs_of_every_window(bundle):
    with OnnxCpuPredictor(bundle) as predictor:
        replay = replay_test_vectors(bundle, predictor)
    k = len(bundle.test_inputs)
    assert replay.outputs["theta"].shape == (k, 1) and replay.outputs["forces"].shape == (k, 3)
    for name, ref in bundle.test_outputs.items():
        np.testing.assert_allclose(replay.outputs[name], ref, atol=bundle.tolerance)
    assert not np.array_equal(replay.outputs["forces"][0], replay.outputs["forces"][1])  # not 1 buffer
    assert replay.passed and replay.tolerance == bundle.tolerance == 1e-4
    assert replay.deviation == max(replay.max_abs.values()) < bundle.tolerance


def test_replay_names_the_worst_output_and_vector(bundle, tmp_path):
    wrong = {k: np.array(v) for k, v in bundle.test_outputs.items()}
    wrong["theta"][1, 0] += 2e-4  # just over the tolerance
    bad = load_bundle(write_bundle(tmp_path / "bad", onnx_bytes=bundle.onnx_path.read_bytes(),
                                   meta=bundle.meta, test_inputs=np.array(bundle.test_inputs),
                                   test_outputs=wrong))
    with OnnxCpuPredictor(bad) as predictor:
        replay = replay_test_vectors(bad, predictor)
        assert not replay.passed and (replay.worst_output, replay.worst_vector) == ("theta", 1)
        with pytest.raises(InputError, match=r"on 'theta' \(test vector 1\) exceeds the tolerance 0\.0001"):
            replay.check()
        assert replay_test_vectors(bad, predictor, tolerance=1e-3).passed
        with pytest.raises(InputError, match="tolerance must be > 0"):
            replay_test_vectors(bad, predictor, tolerance=0.0)


def test_a_failed_check_in_write_bundle_leaves_nothing(bundle, tmp_path):
    def refuse(written):
        with OnnxCpuPredictor(written) as predictor:
            replay_test_vectors(written, predictor, tolerance=1e-30).check()

    with pytest.raises(InputError, match="does not reproduce"):
        write_bundle(tmp_path / "out", onnx_bytes=bundle.onnx_path.read_bytes(), meta=bundle.meta,
                     test_inputs=np.array(bundle.test_inputs),
                     test_outputs={k: np.array(v) for k, v in bundle.test_outputs.items()}, check=refuse)
    assert not (tmp_path / "out").exists()
