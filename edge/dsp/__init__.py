"""Signal processing in fixed point: Q31 biquad cascades bit-exact with CMSIS-DSP, the envelope built
from them (one definition for the device and for training), and the ADC scale (counts <-> volts).
"""

from __future__ import annotations

from myoedge.ground.lazy import lazy_exports

_HOMES = {
    "BiquadCascadeQ31": "biquad_q31", "BiquadCascadeQ31x64": "biquad_q31", "EnvelopeConfig": "envelope",
    "EnvelopeDesign": "envelope", "EnvelopeFilter": "envelope", "design_envelope": "envelope",
    "hash_coefficients": "envelope", "envelope_from_volts": "envelope",
    "Adc": "adc", "DEFAULT_ADC": "adc", "default_adc": "adc", "volts_to_counts": "adc",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
