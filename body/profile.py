"""Per-subject profile: the body model fitted to one wearer plus their MVC normalisation.

A versioned JSON file (``format: myoedge-profile``). ``load`` refuses unknown formats and versions and
names any missing or malformed field; ``save`` writes atomically and keeps the previous file as
``<name>.prev``, so an interrupted calibration never leaves a broken profile.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from myoedge.body.model import JointModel
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_write_text

PROFILE_FORMAT = "myoedge-profile"
PROFILE_VERSION = 1


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
            model = JointModel.from_dict(d, where=where)
        except InputError as e:
            raise FormatError(where, str(e).removeprefix(f"{where}: ")) from None
        mvc = d["mvc_volts"]
        missing = [m for m in model.muscle_names if m not in mvc]
        if not isinstance(mvc, dict) or missing:
            raise FormatError(where, f"mvc_volts lacks muscles {missing}")
        try:
            return cls(subject=str(d["subject"]), model=model,
                       mvc_volts=tuple(mvc[m] for m in model.muscle_names),
                       provenance=dict(d.get("provenance") or {}))
        except (InputError, TypeError, ValueError) as e:
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
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from None
        return cls.from_dict(d, where=str(path))
