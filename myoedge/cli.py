"""``myoedge <verb>``: one command line in front of every layer.

Each layer registers its own verbs (``register(subparsers)`` in the module that ``VERBS`` names, with
``myoedge.ground.verbs.add_verb``) and imports its heavy dependencies only inside the handlers, so
``myoedge run`` on a Jetson never loads torch.
Conventions for every verb: ``--help``; ``--json`` prints one JSON object as the last line of stdout;
exit status 0 on success, 2 on bad input (one-line reason on stderr), 1 on internal failure or an output
not delivered.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback

from myoedge import __version__
from myoedge.ground.errors import DeliveryError, InputError

# Every verb, with the module that registers it: a static table, so a module that fails to import is an
# error naming it, never a verb that silently disappears.
VERBS = {
    "simulate": "myoedge.body.cli",
    "amp-sim": "myoedge.edge.sim.ampsim_cli",
    "run": "myoedge.edge.loop.run_cli",
    "bench": "myoedge.edge.sim.bench_cli",
    "monitor": "myoedge.edge.monitor.cli",
    "calibrate": "myoedge.calibrate.cli",
    "train": "myoedge.train.cli",
    "export": "myoedge.train.cli",
    "evaluate": "myoedge.train.evaluate_cli",
    "reconstruct": "myoedge.train.reconstruct.cli",
    "build-engine": "myoedge.deploy.cli",
    "export-firmware": "myoedge.deploy.cli",
    "demo": "myoedge.demo",
}


class VerbTableError(RuntimeError):
    """A verb module is missing or does not register the verbs the table says it does."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="myoedge",
        description="Physics-consistent muscle forces, joint angle and torque from surface EMG.",
    )
    parser.add_argument("--version", action="version", version=f"myoedge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module_name in dict.fromkeys(VERBS.values()):
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise VerbTableError(f"cannot load the verbs of {module_name}: {e}") from e
        module.register(sub)
    missing = sorted(set(VERBS) - set(sub.choices))
    extra = sorted(set(sub.choices) - set(VERBS))
    if missing or extra:
        raise VerbTableError(f"verb table out of step with the modules: missing {missing}, unlisted {extra}")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except VerbTableError as e:
        print(f"myoedge: {e}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result = args.handler(args)
    except InputError as e:
        print(f"myoedge {args.verb}: {e}".replace("\n", " "), file=sys.stderr)
        return 2
    except DeliveryError as e:
        print(f"myoedge {args.verb}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    except OSError as e:  # the machine, not the program: a full disk, a folder removed under the run
        if args.verbose:
            traceback.print_exc()
        where = f" ({e.filename})" if e.filename else ""
        print(f"myoedge {args.verb}: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"myoedge {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"myoedge {args.verb}: internal error (see the traceback above)", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(result if result is not None else {}, default=_jsonable))
    return 0


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)
