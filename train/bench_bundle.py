"""The trained ``edge`` bundle that ``myoedge bench`` times by default (``edge/sim/bundles/edge``).

The shipped ``edge`` preset is the physics observer (docs/training.md): its exported step is the GRU
wrapped in the force stage and the integrated equation of motion, several times the nodes of the GRU
alone, and the edge runtime cannot build that graph without torch. So the bench carries one bundle of
it, made here: the ``edge-observer`` network at the shipped size, trained briefly on a built-in hard
wrist subject and exported by ``export_bundle`` as any run is. Its outputs mean something only for that
subject; its graph and its cost per step are the shipped model's. Remake it after a change to the
observer's step, and tests/train/test_bench_bundle.py fails until it is remade::

    python -m myoedge.train.bench_bundle edge/sim/bundles/edge
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
from pathlib import Path

import onnx

from myoedge.body.subjects import make_subject, simulate_session
from myoedge.train.data import load_sequences, split_time
from myoedge.train.export import export_bundle
from myoedge.train.fit import fit
from myoedge.train.run import TrainConfig

__all__ = ["ITERATIONS", "NAME", "graph_signature", "make_bench_bundle"]

NAME = "bench-edge-observer"
ITERATIONS = 40  # enough for outputs in the training range; the cost per step does not depend on it
SUBJECT = ("wrist", 0)
DURATION_S = 8.0


def make_bench_bundle(out: str | Path, *, seed: int = 0) -> dict:
    """Train the observer briefly on the built-in hard wrist and export it to the folder ``out``."""
    subject = make_subject(*SUBJECT, family="hard")
    seqs = load_sequences(simulate_session(subject, duration_s=DURATION_S), profiles={})
    train = split_time(seqs)[subject.name][0]
    config = TrainConfig.for_preset("edge-observer", iterations=ITERATIONS)
    trained = fit(train, config, seed=seed)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="myoedge-bench-bundle-") as tmp:
        report = export_bundle(trained, Path(tmp) / "bundle", name=NAME)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(tmp) / "bundle", out)
    return report


def graph_signature(model_path: str | Path) -> dict[str, int]:
    """How many nodes of each operator type the ONNX graph holds, and its parameter count."""
    model = onnx.load(str(model_path))
    counts = collections.Counter(node.op_type for node in model.graph.node)
    counts["parameters"] = sum(int(onnx.numpy_helper.to_array(t).size) for t in model.graph.initializer)
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m myoedge.train.bench_bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="bundle folder to (re)write, normally edge/sim/bundles/edge")
    args = parser.parse_args(argv)
    report = make_bench_bundle(args.out)
    print(f"wrote {args.out}: {graph_signature(Path(args.out) / 'model.onnx')}; parity, largest error in "
          f"training stds: {report['max_scaled_error']:.2g}")


if __name__ == "__main__":
    main()
