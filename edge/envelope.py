"""The stable import name of the fixed-point envelope (design.md section 3).

See ``myoedge.edge.dsp.envelope`` and ``myoedge.edge.dsp.biquad_q31``.
"""

from myoedge.edge.dsp.biquad_q31 import BiquadCascadeQ31, BiquadCascadeQ31x64  # noqa: F401
from myoedge.edge.dsp.envelope import *  # noqa: F401,F403
from myoedge.edge.dsp.envelope import __all__ as _all

__all__ = [*_all, "BiquadCascadeQ31", "BiquadCascadeQ31x64"]
