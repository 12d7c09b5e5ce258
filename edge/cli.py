"""Verbs of the edge layer; each lives beside the code it fronts.

``amp-sim`` (amplifier simulator), ``run`` (the real-time loop) and ``bench`` (latency benchmark).
"""

from __future__ import annotations

import importlib

VERB_MODULES = ("myoedge.edge.ampsim_cli", "myoedge.edge.run_cli")


def register(sub) -> None:
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue  # not written yet
            raise
        module.register(sub)
