"""The musculoskeletal model of one joint: its distal segment, its muscles, their moment arms.

Plain frozen dataclasses with validation; all lengths in metres, angles in radians (positive in
flexion), forces in newtons, moments in newton-metres. Conversions to and from JSON-able dicts live
here so the subject profile and the model bundle write the same fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from myoedge.body import dynamics
from myoedge.ground.errors import InputError

ACTIONS = ("flexor", "extensor")


@dataclass(frozen=True, kw_only=True)
class Segment:
    """The joint and the segment distal to it (a rigid body rotating about a fixed axis)."""

    mass: float  # kg, distal segment(s)
    com: float  # m, joint axis to the segment's centre of mass
    inertia: float  # kg·m², about the joint axis
    gravity_offset: float  # rad, φ in G(θ) = m g l_c sin(θ + φ)
    damping: float  # N·m·s/rad, viscous
    stiffness: float  # N·m/rad, linear passive stiffness about rest_angle
    rest_angle: float  # rad
    range_lo: float  # rad, anatomical range of motion
    range_hi: float  # rad
    limit_torque: float  # N·m, passive end-of-range moment at each limit
    limit_rate: float  # 1/rad, its exponential growth rate beyond the limit

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"segment.{f.name} must be a finite number, got {v!r}")
        for name in ("mass", "com", "inertia", "limit_rate"):
            if getattr(self, name) <= 0:
                raise InputError(f"segment.{name} must be > 0, got {getattr(self, name)}")
        for name in ("damping", "stiffness", "limit_torque"):
            if getattr(self, name) < 0:
                raise InputError(f"segment.{name} must be >= 0, got {getattr(self, name)}")
        if not self.range_lo < self.range_hi:
            raise InputError(f"segment range must have lo < hi, got [{self.range_lo}, {self.range_hi}]")


@dataclass(frozen=True, kw_only=True)
class Muscle:
    """A Hill-type muscle with a rigid tendon, spanning the joint with a smooth moment arm r(θ).

    ``moment_arm`` holds polynomial coefficients in θ (m, m/rad, m/rad², …), lowest power first;
    flexors have r > 0 and extensors r < 0 over the whole range of motion. The fibre is at its optimal
    length at ``optimal_angle``; the muscle–tendon length elsewhere follows from l̇_MT = −r θ̇.
    """

    name: str
    action: str  # "flexor" | "extensor"
    max_force: float  # N, maximum isometric force
    optimal_fiber_length: float  # m
    tendon_slack_length: float  # m
    pennation: float  # rad, at optimal fibre length
    optimal_angle: float  # rad
    moment_arm: tuple[float, ...]
    max_velocity: float = 10.0  # optimal fibre lengths per second
    deep: bool = False  # True when surface electrodes cannot record it (deep-muscle work)

    def __post_init__(self):
        if not self.name or not self.name.replace("_", "").isalnum():
            raise InputError(f"muscle name must be a non-empty identifier, got {self.name!r}")
        if self.action not in ACTIONS:
            raise InputError(f"muscle {self.name}: action must be one of {ACTIONS}, got {self.action!r}")
        object.__setattr__(self, "moment_arm", tuple(float(c) for c in self.moment_arm))
        if not 1 <= len(self.moment_arm) <= 6:
            n = len(self.moment_arm)
            raise InputError(f"muscle {self.name}: 1 to 6 moment-arm coefficients, got {n}")
        for name in ("max_force", "optimal_fiber_length", "tendon_slack_length", "max_velocity"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"muscle {self.name}: {name} must be a finite number > 0, got {v!r}")
        if not 0 <= self.pennation < math.pi / 3:
            raise InputError(f"muscle {self.name}: pennation must be in [0, 60°), got {self.pennation} rad")

    @property
    def sign(self) -> int:
        return 1 if self.action == "flexor" else -1


@dataclass(frozen=True, kw_only=True)
class JointModel:
    """A joint, its segment and the muscles that cross it, in channel order."""

    joint: str
    segment: Segment
    muscles: tuple[Muscle, ...] = field(default_factory=tuple)

    def __post_init__(self):
        names = [m.name for m in self.muscles]
        if not names:
            raise InputError(f"joint {self.joint}: at least one muscle is needed")
        if len(set(names)) != len(names):
            raise InputError(f"joint {self.joint}: duplicate muscle names in {names}")
        grid = np.linspace(self.segment.range_lo, self.segment.range_hi, 64)
        with np.errstate(over="ignore", invalid="ignore"):
            r = self.moment_arms(grid)
        for i, m in enumerate(self.muscles):
            if not np.all(np.isfinite(r[:, i])):
                raise InputError(f"joint {self.joint}: moment arm of {m.name} is not finite in the range "
                                 "of motion")
            if np.any(m.sign * r[:, i] <= 0):
                raise InputError(
                    f"joint {self.joint}: moment arm of {m.name} ({m.action}) changes sign inside the range "
                    f"of motion (min {r[:, i].min():.4f} m, max {r[:, i].max():.4f} m)"
                )

    @property
    def muscle_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.muscles)

    @property
    def coeffs(self) -> np.ndarray:
        """Moment-arm polynomial coefficients, shape (n_muscles, max_degree + 1), zero-padded."""
        width = max(len(m.moment_arm) for m in self.muscles)
        c = np.zeros((len(self.muscles), width))
        for i, m in enumerate(self.muscles):
            c[i, : len(m.moment_arm)] = m.moment_arm
        return c

    def index(self, muscle: str) -> int:
        try:
            return self.muscle_names.index(muscle)
        except ValueError:
            known = list(self.muscle_names)
            raise InputError(f"joint {self.joint} has no muscle {muscle!r}; it has {known}") from None

    def moment_arms(self, theta):
        return dynamics.moment_arms(theta, self.coeffs)

    def muscle_torque(self, theta, forces):
        return dynamics.muscle_torque(theta, forces, self.coeffs)

    def residual(self, theta, theta_dot, theta_ddot, forces):
        return dynamics.residual(theta, theta_dot, theta_ddot, forces, seg=self.segment, coeffs=self.coeffs)

    def required_torque(self, theta, theta_dot, theta_ddot):
        return dynamics.required_torque(theta, theta_dot, theta_ddot, seg=self.segment)

    def with_muscles(self, **changes_by_muscle: dict) -> JointModel:
        """A copy with some muscles' fields replaced: ``with_muscles(RF={"max_force": 900.0})``."""
        muscles = tuple(replace(m, **changes_by_muscle.get(m.name, {})) for m in self.muscles)
        return replace(self, muscles=muscles)

    def to_dict(self) -> dict:
        return {
            "joint": self.joint,
            "segment": asdict(self.segment),
            "muscles": [{**asdict(m), "moment_arm": list(m.moment_arm)} for m in self.muscles],
        }

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "model") -> JointModel:
        """The model from its JSON fields (``joint``, ``segment``, ``muscles``), each checked against the
        schema (:mod:`myoedge.body.profile_schema`); errors name ``where`` and the field's path."""
        from myoedge.body.profile_schema import items, obj, record, text

        try:
            d = obj(d, "model")
            for key in ("joint", "segment", "muscles"):
                if key not in d:
                    raise InputError(f"missing field {key!r}")
            return cls(joint=text(d["joint"], "joint"), segment=record(Segment, d["segment"], "segment"),
                       muscles=items(d["muscles"], "muscles", parse=lambda v, path: record(Muscle, v, path)))
        except InputError as e:
            raise InputError(f"{where}: {e}" if where else str(e)) from None
