"""The stable import name of the frame protocol (design.md section 3): see ``myoedge.edge.wire.protocol``."""

from myoedge.edge.wire.protocol import *  # noqa: F401,F403
from myoedge.edge.wire.protocol import __all__  # noqa: F401
