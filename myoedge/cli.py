"""``myoedge <verb>``: one command line in front of every layer.

Each layer registers its own verbs (``register(subparsers)`` in its ``cli`` module) and imports its
heavy dependencies only inside the handlers, so ``myoedge run`` on a Jetson never loads torch.
Conventions for every verb: ``--help``; ``--json`` prints one JSON object as the last line of stdout;
exit status 0 on success, 2 on bad input (one-line reason on stderr), 1 on internal failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Callable

from myoedge import __version__
from myoedge.errors import InputError

VERB_MODULES = (
    "myoedge.body.cli",
    "myoedge.edge.cli",
    "myoedge.calibrate.cli",
    "myoedge.train.cli",
    "myoedge.deploy.cli",
    "myoedge.demo",
)


def add_verb(sub, name: str, handler: Callable[[argparse.Namespace], dict | None], *, help: str,
             description: str | None = None) -> argparse.ArgumentParser:
    """Add a verb whose ``handler(args)`` returns the summary that ``--json`` prints."""
    p = sub.add_parser(name, help=help, description=description or help)
    p.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    p.set_defaults(handler=handler, verb=name)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="myoedge",
        description="Physics-consistent muscle forces, joint angle and torque from surface EMG.",
    )
    parser.add_argument("--version", action="version", version=f"myoedge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("myoedge"):
                continue  # that layer has no verbs yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result = args.handler(args)
    except InputError as e:
        print(f"myoedge {args.verb}: {e}".replace("\n", " "), file=sys.stderr)
        return 2
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
