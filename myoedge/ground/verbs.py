"""How a layer adds a verb to the command line (the hub, ``myoedge.cli``, lists every verb)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_verb(sub, name: str, handler: Callable[[argparse.Namespace], dict | None], *, help: str,
             description: str | None = None) -> argparse.ArgumentParser:
    """Add a verb whose ``handler(args)`` returns the summary that ``--json`` prints."""
    p = sub.add_parser(name, help=help, description=description or help)
    p.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    p.set_defaults(handler=handler, verb=name)
    return p
