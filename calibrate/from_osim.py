"""A subject profile from a scaled OpenSim model: ``myoedge calibrate from-osim``.

The model is sampled over its coordinate's range of motion with the OpenSim API (the optional extra
``opensim``, imported only here): each muscle's moment arm (``Muscle.computeMomentArm``) and
muscle-tendon length, its maximum isometric force, optimal fibre length, tendon slack length, pennation
at optimal fibre length and maximum contraction velocity; and the bodies distal to the coordinate's
joint: their total mass, the distance of their centre of mass from the joint axis, their moment of
inertia about that axis and the gravity moment at each sample. Everything is taken by finite
differences of the model's own kinematics (body centres of mass and orientations per unit of the
coordinate), which needs no joint type (tested on a PinJoint).

The profile's moment arms are then polynomials in θ fitted by least squares to the samples (the fit's
residual is reported per muscle); θ = ``flexion_sign`` × the coordinate, as ``recording.json`` does.
The muscle's optimal angle is where the sampled muscle-tendon length equals l_opt·cos(α) + l_ts (the
fibre optimal, the tendon slack), the rigid-tendon reading the profile's muscle model makes of it.

What a model does not hold stays out of it and is said so in the provenance: the MVC (from another
profile or given per muscle, as ``calibrate mvc`` measures it) and the passive joint terms (damping,
stiffness, end-of-range moments: the generic model's for a joint myoedge knows, else none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myoedge.body.catalog import JOINTS, generic_model
from myoedge.body.dynamics import GRAVITY
from myoedge.body.model import JointModel, Muscle, Segment
from myoedge.body.opensim import import_opensim
from myoedge.body.profile import SubjectProfile
from myoedge.calibrate.profile_update import _provenance, now_iso
from myoedge.ground.errors import InputError
from myoedge.ground.fileio import sha256_file

PASSIVE_FIELDS = ("damping", "stiffness", "rest_angle", "limit_torque", "limit_rate")
_STEP = 1e-5  # rad, finite-difference step of the coordinate


@dataclass(frozen=True)
class OsimSample:
    """The model sampled over the coordinate's range, in myoedge's convention (θ positive in flexion)."""

    theta: np.ndarray  # (n,) rad
    moment_arms: np.ndarray  # (n, m) m, positive for flexors
    lengths: np.ndarray  # (n, m) m, muscle-tendon lengths
    muscles: tuple[dict, ...]  # per muscle: name, max_force, optimal_fiber_length, ... as Muscle fields
    segment: dict  # mass, com, inertia, gravity_offset, range_lo, range_hi
    gravity_torque: np.ndarray  # (n,) N*m, G(θ): the moment muscles must supply against gravity
    gravity_fit: dict  # the sinusoid G(θ) = m g l sin(θ + φ) fitted: its lever l and largest residual
    bodies: tuple[str, ...]  # the distal bodies
    opensim_version: str
    model_name: str
    joint_name: str  # the OpenSim joint the coordinate belongs to


def _vec(v) -> np.ndarray:
    return np.array([v.get(i) for i in range(3)])


def _rot(r) -> np.ndarray:
    return np.array([[r.get(i, j) for j in range(3)] for i in range(3)])


def _distal_bodies(model, body_name: str) -> list[str]:
    children: dict[str, list[str]] = {}
    for j in range(model.getJointSet().getSize()):
        joint = model.getJointSet().get(j)
        parent = joint.getParentFrame().findBaseFrame().getName()
        children.setdefault(parent, []).append(joint.getChildFrame().findBaseFrame().getName())
    found, todo = [], [body_name]
    while todo:
        name = todo.pop()
        if name not in found:
            found.append(name)
            todo += children.get(name, [])
    return found


def _named(kind: str, name: str, items, path) -> int:
    names = [items.get(i).getName() for i in range(items.getSize())]
    if name not in names:
        raise InputError(f"{path}: no {kind} {name!r}; the model has: {', '.join(names) or 'none'}")
    return names.index(name)


def sample_model(path: str | Path, *, coordinate: str, muscles: list[str], flexion_sign: int = 1,
                 n_samples: int = 101) -> OsimSample:
    """Sample the OpenSim model at ``path`` at ``n_samples`` values of ``coordinate`` across its range."""
    osim = import_opensim("reading an OpenSim model")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such OpenSim model file")
    if flexion_sign not in (1, -1) or n_samples < 8:
        raise InputError(f"flexion_sign must be 1 or -1 and n_samples at least 8, got {flexion_sign}, "
                         f"{n_samples}")
    try:
        model = osim.Model(str(path))
        state = model.initSystem()
    except Exception as exc:  # OpenSim raises its own exception types for a bad file
        lines = [ln.strip() for ln in str(exc).strip().splitlines()] or [type(exc).__name__]
        why = next((ln for ln in lines if ln.startswith("Error detected")), lines[0])
        raise InputError(f"{path}: OpenSim cannot load the model ({why})") from None
    coords = model.getCoordinateSet()
    coord = coords.get(_named("coordinate", coordinate, coords, path))
    if coord.getMotionType() != osim.Coordinate.Rotational:
        raise InputError(f"{path}: coordinate {coordinate!r} is not rotational; a profile joint rotates")
    all_muscles = model.getMuscles()
    ms = [all_muscles.get(_named("muscle", name, all_muscles, path)) for name in muscles]
    q_lo, q_hi = coord.getRangeMin(), coord.getRangeMax()
    if not q_lo < q_hi:
        raise InputError(f"{path}: coordinate {coordinate!r} has an empty range [{q_lo}, {q_hi}]")
    coord.setLocked(state, False)
    bodies = _distal_bodies(model, coord.getJoint().getChildFrame().findBaseFrame().getName())
    body_objs = [model.getBodySet().get(name) for name in bodies]
    mass = np.array([b.getMass() for b in body_objs])
    if mass.sum() <= 0:
        raise InputError(f"{path}: the bodies distal to {coordinate!r} ({bodies}) have no mass")
    g = _vec(model.getGravity())

    def pose(q: float):
        coord.setValue(state, q)
        model.realizePosition(state)
        coms = np.array([_vec(b.findStationLocationInGround(state, b.getMassCenter())) for b in body_objs])
        rots = [_rot(b.getTransformInGround(state).R()) for b in body_objs]
        return coms, rots

    qs = np.linspace(q_lo, q_hi, n_samples)
    r = np.empty((n_samples, len(ms)))
    lengths = np.empty_like(r)
    grav = np.empty(n_samples)
    for k, q in enumerate(qs):
        lo, hi = max(q - _STEP, q_lo), min(q + _STEP, q_hi)
        (c_lo, _), (c_hi, _) = pose(lo), pose(hi)
        # ∂V/∂q with V = −Σ m g·c: the moment the muscles must supply to hold the bodies at q
        grav[k] = -float(mass @ ((c_hi - c_lo) / (hi - lo) @ g))
        coord.setValue(state, q)
        model.realizePosition(state)
        for i, m in enumerate(ms):
            r[k, i] = m.computeMomentArm(state, coord)
            lengths[k, i] = m.getLength(state)
    # Inertia about the axis, the axis and the centre-of-mass distance, at mid-range.
    q_mid = 0.5 * (q_lo + q_hi)
    (c0, r0), (c1, r1) = pose(q_mid - _STEP), pose(q_mid + _STEP)
    c_mid, _ = pose(q_mid)
    dc = (c1 - c0) / (2 * _STEP)
    inertia = float(mass @ (dc ** 2).sum(1))
    axis = np.zeros(3)
    for b, ra, rb in zip(body_objs, r0, r1):
        w = rb @ ra.T
        omega = np.array([w[2, 1] - w[1, 2], w[0, 2] - w[2, 0], w[1, 0] - w[0, 1]]) / (4 * _STEP)
        moments, products = _vec(b.getInertia().getMoments()), _vec(b.getInertia().getProducts())
        i_body = np.diag(moments) + np.array([[0, products[0], products[1]], [products[0], 0, products[2]],
                                              [products[1], products[2], 0]])
        i_ground = ra @ i_body @ ra.T
        inertia += float(omega @ i_ground @ omega)
        axis = omega  # the same for every body distal to the joint (they move rigidly with q)
    n = axis / np.linalg.norm(axis)
    joint_origin = _vec(coord.getJoint().getChildFrame().getPositionInGround(state))
    com = (mass @ c_mid) / mass.sum() - joint_origin
    lever = float(np.linalg.norm(com - (com @ n) * n))
    s = flexion_sign
    theta = s * qs
    order = np.argsort(theta)
    moment_arms = (s * r)[order]
    gravity = (s * grav)[order]
    theta = theta[order]
    # G(θ) = m g l sin(θ + φ) = A sin θ + B cos θ
    a, b = np.linalg.lstsq(np.column_stack([np.sin(theta), np.cos(theta)]), gravity, rcond=None)[0]
    segment = {"mass": float(mass.sum()), "com": lever, "inertia": inertia,
               "gravity_offset": float(math.atan2(b, a)), "range_lo": float(theta[0]),
               "range_hi": float(theta[-1])}
    fit = gravity - (a * np.sin(theta) + b * np.cos(theta))
    params = tuple({"name": m.getName(), "max_force": m.getMaxIsometricForce(),
                    "optimal_fiber_length": m.getOptimalFiberLength(),
                    "tendon_slack_length": m.getTendonSlackLength(),
                    "pennation": m.getPennationAngleAtOptimalFiberLength(),
                    "max_velocity": m.getMaxContractionVelocity(), "class": m.getConcreteClassName()}
                   for m in ms)
    return OsimSample(theta=theta, moment_arms=moment_arms, lengths=lengths[order], muscles=params,
                      segment=segment, gravity_torque=gravity, bodies=tuple(bodies),
                      gravity_fit={"lever_m": float(math.hypot(a, b) / (mass.sum() * GRAVITY)),
                                   "max_residual_nm": float(np.abs(fit).max())},
                      opensim_version=str(osim.GetVersion()), model_name=model.getName(),
                      joint_name=coord.getJoint().getName())


def _optimal_angle(theta: np.ndarray, lengths: np.ndarray, r: np.ndarray, target: float) -> float:
    """θ where the muscle-tendon length is ``target``: from the nearest sample, one step along dL/dθ = −r."""
    k = int(np.argmin(np.abs(lengths - target)))
    return float(theta[k] + (lengths[k] - target) / r[k])


def _passive(joint: str) -> tuple[dict, str]:
    if joint in JOINTS:
        seg = generic_model(joint).segment
        return {f: getattr(seg, f) for f in PASSIVE_FIELDS}, f"the generic {joint} model of myoedge"
    return ({"damping": 0.0, "stiffness": 0.0, "rest_angle": 0.0, "limit_torque": 0.0, "limit_rate": 1.0},
            "none (no generic model of this joint): fit them with calibrate moment-arms --fit-segment")


def model_from_sample(sample: OsimSample, *, joint: str, degree: int = 4) -> tuple[JointModel, dict]:
    """The joint model (moment-arm polynomials of ``degree`` fitted to the samples) and the fit report."""
    if not 0 <= degree <= 5:
        raise InputError(f"--degree must be 0 to 5 (a profile holds up to 6 coefficients), got {degree}")
    theta, muscles, fit = sample.theta, [], {}
    for i, p in enumerate(sample.muscles):
        r = sample.moment_arms[:, i]
        if not (np.all(r > 0) or np.all(r < 0)):
            raise InputError(f"muscle {p['name']}: its moment arm changes sign or vanishes within the "
                             f"range [{theta[0]:.3f}, {theta[-1]:.3f}] rad (from {r.min():.4f} to "
                             f"{r.max():.4f} m); "
                             "a profile muscle acts one way over the whole range")
        coeffs = np.polynomial.polynomial.polyfit(theta, r, degree)
        err = np.polynomial.polynomial.polyval(theta, coeffs) - r
        fit[p["name"]] = {"max_abs_error_m": float(np.abs(err).max()),
                          "max_rel_error": float(np.max(np.abs(err) / np.abs(r))),  # pointwise
                          "rms_error_m": float(np.sqrt(np.mean(err ** 2)))}
        l_mt_opt = p["optimal_fiber_length"] * math.cos(p["pennation"]) + p["tendon_slack_length"]
        muscles.append(Muscle(name=p["name"], action="flexor" if r[0] > 0 else "extensor",
                              max_force=p["max_force"], optimal_fiber_length=p["optimal_fiber_length"],
                              tendon_slack_length=p["tendon_slack_length"], pennation=p["pennation"],
                              optimal_angle=_optimal_angle(theta, sample.lengths[:, i], r, l_mt_opt),
                              moment_arm=tuple(coeffs), max_velocity=p["max_velocity"]))
    passive, passive_source = _passive(joint)
    model = JointModel(joint=joint, segment=Segment(**sample.segment, **passive), muscles=tuple(muscles))
    return model, {"moment_arm_fit": fit, "passive_terms_from": passive_source}


def parse_mvc(text: str, muscles: list[str]) -> dict[str, float]:
    """``"A=0.0003,B=2.1e-4"`` (volts) for every muscle of ``muscles``."""
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, eq, value = item.partition("=")
        try:
            values[name.strip()] = float(value) if eq else math.nan
        except ValueError:
            values[name.strip()] = math.nan
        if not math.isfinite(values[name.strip()]):
            raise InputError(f"--mvc: {item!r} is not NAME=VOLTS")
    unknown = sorted(set(values) - set(muscles))
    missing = [m for m in muscles if m not in values]
    if unknown or missing:
        raise InputError(f"--mvc must give one value per muscle {muscles}; unknown {unknown}, "
                         f"missing {missing}")
    return values


def mvc_from_profile(profile: SubjectProfile, muscles: list[str], where: str) -> dict[str, float]:
    missing = [m for m in muscles if m not in profile.muscles]
    if missing:
        raise InputError(f"{where} has no MVC for {missing} (it has {list(profile.muscles)}); measure them "
                         "with calibrate mvc or give --mvc NAME=VOLTS,...")
    return {m: profile.mvc_volts[profile.model.index(m)] for m in muscles}


def profile_from_osim(model_path: str | Path, *, coordinate: str, muscles: list[str],
                      mvc_volts: dict[str, float] | None, joint: str | None = None,
                      subject: str | None = None, flexion_sign: int = 1, degree: int = 4,
                      n_samples: int = 101, base: SubjectProfile | None = None, mvc_source: str = ""
                      ) -> tuple[SubjectProfile, dict]:
    """A profile of the model at ``model_path`` (see the module doc) with ``mvc_volts``; and its report.

    ``base`` is the profile the MVC comes from when ``mvc_volts`` is None (its provenance, history
    included, is carried over); the model's muscles are checked first.
    """
    sample = sample_model(model_path, coordinate=coordinate, muscles=muscles, flexion_sign=flexion_sign,
                          n_samples=n_samples)
    if mvc_volts is None:
        if base is None:
            raise InputError("an OpenSim model holds no MVC: give --mvc-from PROFILE (e.g. one written by "
                             "calibrate mvc) or --mvc NAME=VOLTS,... for every muscle")
        mvc_volts = mvc_from_profile(base, muscles, mvc_source)
    joint = joint or sample.joint_name
    model, report = model_from_sample(sample, joint=joint, degree=degree)
    entry = {"date": now_iso(), "method": "sampled from an OpenSim model (calibrate from-osim)",
             "file": Path(model_path).name, "sha256": sha256_file(model_path),
             "opensim_version": sample.opensim_version, "model_name": sample.model_name,
             "coordinate": coordinate, "opensim_joint": sample.joint_name, "flexion_sign": flexion_sign,
             "samples": n_samples, "degree": degree, "distal_bodies": list(sample.bodies),
             "gravity_fit": sample.gravity_fit, **report,
             "muscle_classes": {p["name"]: p["class"] for p in sample.muscles},
             "mvc_from": mvc_source}
    provenance = _provenance(base, "opensim_model", entry)
    if base is None:
        provenance["mvc"] = {"date": entry["date"], "method": f"given: {mvc_source}"}
    profile = SubjectProfile(subject=subject or (base.subject if base else sample.model_name), model=model,
                             mvc_volts=tuple(mvc_volts[m] for m in model.muscle_names), provenance=provenance)
    return profile, {"sample": sample, **entry}
