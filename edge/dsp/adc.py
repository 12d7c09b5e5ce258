"""The ADC: sample width and volts per count, defined once for the device, its simulator and training.

Counts become volts as ``volts = counts * volts_per_count``. The device-info frame carries the scale as
float32, so :class:`Adc` keeps ``volts_per_count`` rounded to float32: the offline envelope (training,
calibration) then multiplies by exactly the number the runtime reads from the amplifier, and the two
envelopes agree bit for bit (docs/envelope.md, "ADC scale").

Defaults per sample width (:data:`DEFAULT_ADC`):

- 24-bit: 4.5 V / 24 / 2^23 = 22.35 nV per count, range +-187.5 mV: a TI ADS1299 at gain 24 with its
  4.5 V reference, the front end of many EMG and EEG amplifiers (OpenBCI among them);
- 16-bit: 0.5 uV per count (float32 of it), range +-16.4 mV: about three times the largest synthetic MVC
  peak, with quantisation noise (0.14 uV RMS) far below the 3 uV baseline noise.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from myoedge.ground.errors import InputError

__all__ = ["ADC_BITS", "ADC_SCALE_HELP", "DEFAULT_ADC", "Adc", "choose_adc", "default_adc", "quantise",
           "volts_to_counts"]

ADC_BITS = (16, 24)


def _float32(value: float) -> float:
    return float(np.float32(value))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Adc:
    """Sample width ``bits`` (16 or 24) and ``volts_per_count`` (positive; kept as its float32 value)."""

    bits: int
    volts_per_count: float

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in ADC_BITS:
            raise InputError(f"ADC bits must be one of {list(ADC_BITS)}, got {self.bits!r}")
        vpc = self.volts_per_count
        if isinstance(vpc, bool) or not isinstance(vpc, (int, float, np.floating)) or not math.isfinite(vpc) \
                or not 1e-15 <= vpc <= 1.0:
            raise InputError(f"ADC volts_per_count must be a finite number in [1e-15, 1] V, got {vpc!r}")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "volts_per_count", _float32(vpc))

    @property
    def full_scale_v(self) -> float:
        """The largest magnitude the ADC represents, in volts."""
        return 2 ** (self.bits - 1) * self.volts_per_count

    def describe(self) -> str:
        return f"{self.bits}-bit, {self.volts_per_count:.7g} V per count (+-{1e3 * self.full_scale_v:.4g} mV)"

    def to_dict(self) -> dict:
        return {"bits": self.bits, "volts_per_count": self.volts_per_count}

    @classmethod
    def from_dict(cls, d) -> Adc:
        if not isinstance(d, dict) or set(d) != {"bits", "volts_per_count"}:
            raise InputError(f"an ADC is an object with 'bits' and 'volts_per_count', got {d!r}")
        return cls(bits=d["bits"], volts_per_count=d["volts_per_count"])

    def counts(self, volts: np.ndarray) -> np.ndarray:
        """What this ADC delivers for ``volts`` (n, ch): int32 counts, rounded and clipped."""
        return quantise(volts, volts_per_count=self.volts_per_count, bits=self.bits)[0]


DEFAULT_ADC = {24: Adc(bits=24, volts_per_count=4.5 / 24 / 2**23), 16: Adc(bits=16, volts_per_count=0.5e-6)}


def default_adc(bits: int = 24) -> Adc:
    """The ADC myoedge assumes for ``bits``-wide samples when none is named (module docstring)."""
    if isinstance(bits, bool) or bits not in DEFAULT_ADC:
        raise InputError(f"ADC bits must be one of {list(ADC_BITS)}, got {bits!r}")
    return DEFAULT_ADC[bits]


def choose_adc(*, bits: int = 24, volts_per_count: float | None = None) -> Adc:
    """The ADC a user names (``--bits``/``--adc-bits`` and ``--adc-scale``): the default of ``bits``
    unless a scale is given."""
    return default_adc(bits) if volts_per_count is None else Adc(bits=bits, volts_per_count=volts_per_count)


#: The command-line help of ``--adc-scale``, shared by ``myoedge train`` and ``myoedge amp-sim``.
ADC_SCALE_HELP = ("volts per ADC count (default: 22.35 nV at 24 bits, an ADS1299 at gain 24; 0.5 uV at 16 "
                  "bits); the bundle records it and `myoedge run` refuses an amplifier reporting another")


def quantise(volts: np.ndarray, *, volts_per_count, bits: int) -> tuple[np.ndarray, int]:
    """Counts (int32) for ``volts`` (n, ch): round to the nearest count, clip to ``bits``; and how many
    samples were clipped. ``volts_per_count`` is a scalar or one value per channel."""
    volts = np.asarray(volts, dtype=np.float64)
    if volts.ndim != 2 or not np.all(np.isfinite(volts)):
        raise InputError(f"volts must be a finite (n_samples, n_channels) array, got shape {volts.shape}")
    if isinstance(bits, bool) or bits not in ADC_BITS:
        raise InputError(f"sample width must be one of {list(ADC_BITS)} bits, got {bits!r}")
    vpc = np.asarray(volts_per_count, dtype=np.float64)
    if vpc.ndim == 0:
        vpc = np.full(volts.shape[1], float(vpc))
    if vpc.shape != (volts.shape[1],) or not np.all(np.isfinite(vpc)) or np.any(vpc <= 0):
        raise InputError(f"volts_per_count must be positive finite, a scalar or {volts.shape[1]} values, "
                         f"got {volts_per_count!r}")
    counts = np.rint(volts / vpc)
    limit = 2 ** (bits - 1)
    clipped = int(np.count_nonzero((counts < -limit) | (counts > limit - 1)))
    return np.clip(counts, -limit, limit - 1).astype(np.int32), clipped


def volts_to_counts(volts: np.ndarray, *, volts_per_count, input_bits: int) -> np.ndarray:
    """What an ADC of ``input_bits`` delivers: round to the nearest count, clip to the word width."""
    return quantise(volts, volts_per_count=volts_per_count, bits=input_bits)[0]
