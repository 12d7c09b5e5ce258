"""Per-subject profile: the body model fitted to one wearer plus their MVC normalisation.

A versioned JSON file (``format: myoedge-profile``). ``load`` refuses unknown formats and versions and
checks every field against the schema (:mod:`myoedge.body.profile_schema`), naming the field's path
(``muscles[2].moment_arm``) and what was expected; top-level fields it does not know are kept in
``extra`` and written back by ``save``, never dropped. MVC values must lie in the physiological range of
sEMG envelopes (:data:`MVC_RANGE_VOLTS`); a value outside it is refused with the likely unit mistake
named. ``save`` writes atomically and keeps the previous file as ``<name>.prev``, so an interrupted
calibration never leaves a broken profile.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from myoedge.body import profile_schema as schema
from myoedge.body.model import JointModel
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_write_text

PROFILE_FORMAT = "myoedge-profile"
PROFILE_VERSION = 1
KNOWN_FIELDS = ("format", "version", "subject", "joint", "segment", "muscles", "mvc_volts", "provenance")

# The MVC envelope of surface EMG, in volts at the electrodes. sEMG amplitude is 0-10 mV peak to peak,
# 0-1.5 mV RMS (De Luca 2002), and a good recording's baseline noise stays under 3-5 µV (Konrad 2005):
# an MVC envelope below 5 µV is noise (an electrode off, a gain applied twice), one above 20 mV is no
# muscle's. The references are in docs/calibration.md.
MVC_RANGE_VOLTS = (5e-6, 20e-3)
_UNIT_MISTAKES = ((1e3, "millivolts written as volts (1000 times too large)"),
                  (1e6, "microvolts written as volts (a million times too large)"),
                  (1e-3, "volts divided by 1000 once too often (1000 times too small)"),
                  (1e-6, "volts divided by a million once too often (a million times too small)"))


def mvc_problem(volts: float) -> str | None:
    """Why ``volts`` cannot be an MVC envelope (None if it can), naming the likely unit mistake."""
    lo, hi = MVC_RANGE_VOLTS
    if lo <= volts <= hi:
        return None
    why = f"{volts:g} V is outside the physiological range of sEMG MVC envelopes ({lo * 1e6:g} µV to " \
          f"{hi * 1e3:g} mV)"
    for factor, mistake in _UNIT_MISTAKES:
        if lo <= volts / factor <= hi:
            return f"{why}: likely {mistake}, which would be {volts / factor:g} V"
    return why


@dataclass(frozen=True, kw_only=True)
class SubjectProfile:
    """One subject's joint model (segment, muscles, moment arms) and MVC per channel.

    ``mvc_volts[i]`` is the EMG envelope (V) of channel ``i`` (muscle ``model.muscles[i]``) during a
    maximum voluntary contraction; normalised envelopes are envelope / MVC.
    """

    subject: str
    model: JointModel
    mvc_volts: tuple[float, ...]
    provenance: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # top-level fields of the file this myoedge does not know

    def __post_init__(self):
        mvc = tuple(float(v) for v in self.mvc_volts)
        object.__setattr__(self, "mvc_volts", mvc)
        if len(mvc) != len(self.model.muscles):
            raise InputError(
                f"profile {self.subject}: {len(mvc)} MVC values for {len(self.model.muscles)} muscles "
                f"{list(self.model.muscle_names)}"
            )
        bad = [n for n, v in zip(self.model.muscle_names, mvc) if not (math.isfinite(v) and v > 0)]
        if bad:
            raise InputError(f"profile {self.subject}: MVC must be finite and > 0 for {bad}")
        for name, v in zip(self.model.muscle_names, mvc):
            problem = mvc_problem(v)
            if problem:
                raise InputError(f"mvc_volts.{name}: {problem}")
        clash = sorted(set(self.extra) & set(KNOWN_FIELDS))
        if clash:
            raise InputError(f"profile {self.subject}: extra fields {clash} are profile fields")

    @property
    def joint(self) -> str:
        return self.model.joint

    @property
    def muscles(self) -> tuple[str, ...]:
        return self.model.muscle_names

    @property
    def mvc(self) -> np.ndarray:
        """MVC envelope per channel (V), in channel order."""
        return np.array(self.mvc_volts)

    def moment_arm(self, muscle: str, theta_rad):
        """r(θ) of ``muscle`` in metres (positive for flexors)."""
        return self.model.moment_arms(np.asarray(theta_rad, dtype=float))[..., self.model.index(muscle)]

    def replace(self, **changes) -> SubjectProfile:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "subject": self.subject,
            **self.model.to_dict(),
            "mvc_volts": dict(zip(self.muscles, self.mvc_volts)),
            "provenance": self.provenance,
            **self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically; an existing profile at ``path`` is kept as ``<name>.prev``."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        return atomic_write_text(path, text, keep_previous=True)

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "profile") -> SubjectProfile:
        if not isinstance(d, dict):
            raise FormatError(where, "expected a JSON object")
        if d.get("format") != PROFILE_FORMAT:
            raise FormatError(where, f"not a myoedge profile (format={d.get('format')!r}, expected "
                                     f"{PROFILE_FORMAT!r})")
        if d.get("version") != PROFILE_VERSION:
            raise FormatError(where, f"profile version {d.get('version')!r} is not supported (this "
                                     f"myoedge reads version {PROFILE_VERSION})")
        for key in ("subject", "joint", "segment", "muscles", "mvc_volts"):
            if key not in d:
                raise FormatError(where, f"missing field {key!r}")
        try:
            model = JointModel.from_dict(d, where="")
            provenance = d.get("provenance")
            return cls(subject=schema.text(d["subject"], "subject"), model=model,
                       mvc_volts=schema.per_name(d["mvc_volts"], "mvc_volts", names=model.muscle_names),
                       provenance={} if provenance is None else dict(schema.obj(provenance, "provenance")),
                       extra={k: v for k, v in d.items() if k not in KNOWN_FIELDS})
        except InputError as e:
            raise FormatError(where, str(e)) from None

    @classmethod
    def load(cls, path: str | Path) -> SubjectProfile:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: no such profile") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read profile ({e.strerror})") from None
        except UnicodeDecodeError as e:
            raise FormatError(path, f"not UTF-8 text (byte {e.start}); a profile is a JSON file") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from None
        except RecursionError:
            raise FormatError(path, "JSON nested too deeply to be a profile") from None
        return cls.from_dict(d, where=str(path))
