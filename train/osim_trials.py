"""Recordings from an independent simulator: OpenSim forward dynamics, written in a lab's layout.

    python -m myoedge.train.osim_trials --joint elbow --subjects 2 --trials 3 --duration 30 --out DATA

Our own simulator (``myoedge simulate``) and our models share their physics: a model that scores well
on it may have learnt that physics' quirks. This module builds each subject as an OpenSim model
(Simbody multibody dynamics, Millard 2012 equilibrium muscles with compliant tendons and OpenSim's
activation dynamics, straight-line muscle paths whose moment arms follow from the geometry, a
viscoelastic joint spring and OpenSim's coordinate-limit force), none of which myoedge's own body
model uses, and drives it by a virtual subject: a feedback controller tracking point-to-point moves,
holds and rhythmic flexion, with slowly varying co-contraction and per-muscle shares (``--drive open``:
the same plan's moment from an internal model whose every term is misjudged by up to 25 %, and nothing
that sees the joint, so the joint goes wherever the muscles and passive structures take it).
Subjects differ in segment mass, muscle strength, fibre length, attachment points and joint
stiffness/damping; trials in the load held in the hand.

Each trial is written as a lab would hand it over (docs/data-format.md): raw EMG CSV in volts at
2 kHz, the angle as an IK ``.mot`` in degrees, muscle forces as a Static-Optimization-style ``.sto``,
moment arms as a MuscleAnalysis ``.sto`` (OpenSim's ``computeMomentArm``) and the net joint moment as
an Inverse-Dynamics ``.sto`` (muscle plus passive moments), at 200 Hz, with ``recording.json``, and
no myoedge profile. EMG is synthesised from each muscle's excitation (:mod:`myoedge.body.emg_synth`:
gains, crosstalk, noise, mains); that, and only that, is shared with our simulator.

Needs the ``opensim`` extra. Geometry: the proximal segment is fixed to the ground, the distal one
hangs along −y at θ = 0 and flexion rotates it about +z towards +x; flexors attach on the +x side.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myoedge.body.csvtable import write_csv
from myoedge.body.emg_synth import ElectrodeSetup, synthesize
from myoedge.body.opensim import import_opensim, write_storage
from myoedge.ground.errors import InputError
from myoedge.ground.fileio import atomic_directory, atomic_write_text

__all__ = ["JOINTS", "simulate_trial", "write_trial"]

EMG_HZ, MOTION_HZ, CONTROL_DT = 2000.0, 200.0, 0.005
DRIVES = ("feedback", "open")


@dataclass(frozen=True)
class MuscleSpec:
    name: str
    f_max: float  # N
    l_opt: float  # m
    origin: tuple[float, float]  # (x, y) on the proximal segment (ground), m
    insertion: tuple[float, float]  # (x, y) on the distal segment, m
    flexor: bool


@dataclass(frozen=True)
class JointSpec:
    coordinate: str
    range_deg: tuple[float, float]
    mass: float  # distal segment, kg
    com: float  # distance of its centre of mass from the joint, m
    gyration: float  # radius of gyration about the COM, m
    hand: float  # distance of a load in the hand from the joint, m
    stiffness: float  # N*m/rad about the rest angle
    damping: float  # N*m*s/rad
    rest_deg: float
    muscles: tuple[MuscleSpec, ...]
    loads: tuple[float, ...]  # kg, one per trial in turn
    wrap: bool = False  # tendons wrap over a cylinder at the joint (|insertion x| its radius), as over a
    # retinaculum or the patella: a straight line from a distal insertion would cross the axis and flip


JOINTS: dict[str, JointSpec] = {
    "elbow": JointSpec("elbow_flex", (5.0, 130.0), 1.6, 0.16, 0.09, 0.33, 0.4, 0.25, 40.0, (
        MuscleSpec("BIC", 650.0, 0.12, (0.022, 0.26), (0.015, -0.045), True),
        MuscleSpec("BRA", 900.0, 0.09, (0.012, 0.10), (0.010, -0.030), True),
        MuscleSpec("TRIlong", 800.0, 0.13, (-0.025, 0.26), (-0.020, 0.025), False),
        MuscleSpec("TRIlat", 650.0, 0.11, (-0.020, 0.12), (-0.018, 0.020), False)), (0.0, 1.0, 2.0)),
    # the six-muscle elbow of OpenSim's arm26 (maximum isometric forces and optimal fibre lengths from
    # its muscles), its paths reduced to this planar origin-insertion layout
    "elbow6": JointSpec("elbow_flex", (5.0, 130.0), 1.6, 0.16, 0.09, 0.33, 0.4, 0.25, 40.0, (
        MuscleSpec("BIClong", 624.3, 0.116, (0.022, 0.28), (0.015, -0.045), True),
        MuscleSpec("BICshort", 435.6, 0.132, (0.028, 0.24), (0.014, -0.045), True),
        MuscleSpec("BRA", 987.3, 0.086, (0.012, 0.10), (0.010, -0.030), True),
        MuscleSpec("TRIlong", 798.5, 0.134, (-0.025, 0.26), (-0.020, 0.025), False),
        MuscleSpec("TRIlat", 624.3, 0.114, (-0.020, 0.12), (-0.018, 0.020), False),
        MuscleSpec("TRImed", 624.3, 0.114, (-0.014, 0.10), (-0.016, 0.018), False)), (0.0, 1.0, 2.0)),
    "wrist": JointSpec("wrist_flex", (-55.0, 55.0), 0.45, 0.07, 0.04, 0.08, 0.3, 0.15, 0.0, (
        MuscleSpec("FCR", 400.0, 0.063, (0.012, 0.24), (0.012, -0.030), True),
        MuscleSpec("FCU", 420.0, 0.051, (0.016, 0.22), (0.015, -0.020), True),
        MuscleSpec("ECRL", 300.0, 0.081, (-0.012, 0.26), (-0.011, -0.030), False),
        MuscleSpec("ECRB", 330.0, 0.058, (-0.010, 0.24), (-0.012, -0.025), False),
        MuscleSpec("ECU", 200.0, 0.062, (-0.015, 0.22), (-0.016, -0.020), False)), (0.0, 0.0, 0.5), True),
    "knee": JointSpec("knee_flex", (5.0, 100.0), 3.6, 0.19, 0.12, 0.42, 2.0, 0.8, 30.0, (
        MuscleSpec("BFSH", 800.0, 0.17, (0.030, 0.20), (0.030, -0.050), True),
        MuscleSpec("RF", 1200.0, 0.08, (-0.040, 0.40), (-0.045, -0.070), False)), (0.0, 0.0, 1.0), True),
}


def _subject(spec: JointSpec, rng: np.random.Generator) -> JointSpec:
    """A subject: the generic joint with every parameter scaled within physiological spread."""
    def u(lo, hi):
        return float(rng.uniform(lo, hi))
    muscles = tuple(MuscleSpec(m.name, m.f_max * u(0.7, 1.3), m.l_opt * u(0.9, 1.1),
                               (m.origin[0] * u(0.85, 1.15), m.origin[1] * u(0.9, 1.1)),
                               (m.insertion[0] * u(0.85, 1.15), m.insertion[1] * u(0.85, 1.15)), m.flexor)
                    for m in spec.muscles)
    return JointSpec(spec.coordinate, spec.range_deg, spec.mass * u(0.8, 1.2), spec.com * u(0.9, 1.1),
                     spec.gyration, spec.hand, spec.stiffness * u(0.5, 2.0), spec.damping * u(0.5, 2.0),
                     spec.rest_deg, muscles, spec.loads, spec.wrap)


def _build(osim, spec: JointSpec, load_kg: float):
    """The OpenSim model of one joint with its muscles, passive elements and a controller per muscle."""
    model = osim.Model()
    model.setName(f"myoedge_{spec.coordinate}")
    model.setGravity(osim.Vec3(0.0, -9.81, 0.0))
    ground = model.getGround()
    mass = spec.mass + load_kg
    com = (spec.mass * spec.com + load_kg * spec.hand) / mass
    i_com = spec.mass * (spec.gyration ** 2 + (spec.com - com) ** 2) + load_kg * (spec.hand - com) ** 2
    body = osim.Body("distal", mass, osim.Vec3(0.0, -com, 0.0), osim.Inertia(i_com, 0.1 * i_com, i_com))
    model.addBody(body)
    joint = osim.PinJoint("joint", ground, osim.Vec3(0), osim.Vec3(0), body, osim.Vec3(0), osim.Vec3(0))
    coord = joint.updCoordinate()
    coord.setName(spec.coordinate)
    coord.setRangeMin(math.radians(spec.range_deg[0] - 20))
    coord.setRangeMax(math.radians(spec.range_deg[1] + 20))
    model.addJoint(joint)
    muscles = []
    for m in spec.muscles:
        mus = osim.Millard2012EquilibriumMuscle(m.name, m.f_max, m.l_opt, 0.1, 0.0)
        mus.addNewPathPoint(f"{m.name}_origin", ground, osim.Vec3(m.origin[0], m.origin[1], 0.0))
        mus.addNewPathPoint(f"{m.name}_insertion", body, osim.Vec3(m.insertion[0], m.insertion[1], 0.0))
        if spec.wrap:  # centre a little below the axis: the moment arm changes with the angle
            cyl = osim.WrapCylinder()
            cyl.setName(f"{m.name}_wrap")
            cyl.set_radius(abs(m.insertion[0]))
            cyl.set_length(0.05)
            cyl.set_translation(osim.Vec3(0.0, -0.3 * abs(m.insertion[0]), 0.0))
            cyl.set_quadrant("+x" if m.flexor else "-x")
            ground.addWrapObject(cyl)
            mus.updGeometryPath().addPathWrap(cyl)
        model.addForce(mus)
        muscles.append(mus)
    spring = osim.SpringGeneralizedForce(spec.coordinate)
    spring.setName("passive")
    spring.setStiffness(spec.stiffness)
    spring.setRestLength(math.radians(spec.rest_deg))
    spring.setViscosity(spec.damping)
    model.addForce(spring)
    lo, hi = spec.range_deg
    limit = osim.CoordinateLimitForce(spec.coordinate, hi + 5, 20.0, lo - 5, 20.0, 0.5, 5.0)
    limit.setName("limits")
    model.addForce(limit)
    ctrl = osim.PrescribedController()
    ctrl.setName("excitation")
    for mus in muscles:
        ctrl.addActuator(mus)
        ctrl.prescribeControlForActuator(mus.getName(), osim.Constant(0.02))
    model.addController(ctrl)
    return model, limit


def _targets(rng: np.random.Generator, spec: JointSpec, n: int, dt: float) -> np.ndarray:
    """Target angle (rad): minimum-jerk moves between random postures with holds, then rhythmic flexion
    of varying amplitude and rate, in random order per trial."""
    lo, hi = (math.radians(v) for v in spec.range_deg)
    margin = 0.1 * (hi - lo)
    out, t = np.empty(n), 0
    pos = float(rng.uniform(lo + margin, hi - margin))
    while t < n:
        if rng.random() < 0.5:  # point to point, then hold
            goal = float(rng.uniform(lo + margin, hi - margin))
            move, hold = int(rng.uniform(0.4, 1.5) / dt), int(rng.uniform(0.3, 2.5) / dt)
            s = np.linspace(0.0, 1.0, move)
            jerk = 10 * s**3 - 15 * s**4 + 6 * s**5
            seg = np.concatenate([pos + (goal - pos) * jerk, np.full(hold, goal)])
            pos = goal
        else:  # rhythmic
            f, cycles = float(rng.uniform(0.3, 1.5)), int(rng.integers(2, 6))
            amp = float(rng.uniform(0.2, 0.45)) * (hi - lo)
            room = hi - lo > 2 * amp + margin
            mid = float(np.clip(pos, lo + amp + margin / 2, hi - amp - margin / 2)) if room else (lo + hi) / 2
            tt = np.arange(int(cycles / f / dt)) * dt
            seg = mid + amp * np.sin(2 * math.pi * f * tt + math.asin(np.clip((pos - mid) / amp, -1, 1)))
            pos = float(seg[-1])
        out[t:t + len(seg)] = seg[:n - t]
        t += len(seg)
    return out


def simulate_trial(spec: JointSpec, *, load_kg: float, duration_s: float, seed: int,
                   drive: str = "feedback") -> dict:
    """Forward-simulate one trial; returns 200 Hz motion signals and 2 kHz excitations.

    ``drive``: "feedback" (the virtual subject tracks its plan from its own joint's angle and velocity)
    or "open" (the plan's moment, computed by an internal model whose every term is misjudged by up to
    25 %, is the whole drive: nothing sees the simulated state, so the joint goes wherever the muscles'
    moment, the passive structures and the range limits take it)."""
    if drive not in DRIVES:
        raise InputError(f"drive must be one of {DRIVES}, got {drive!r}")
    osim = import_opensim("simulating trials with OpenSim")
    rng = np.random.default_rng(seed)
    model, limit = _build(osim, spec, load_kg)
    state = model.initSystem()
    coord = model.getCoordinateSet().get(spec.coordinate)
    mid = math.radians(sum(spec.range_deg) / 2)
    coord.setValue(state, mid)
    model.realizePosition(state)
    names = [m.name for m in spec.muscles]
    muscles = [osim.Millard2012EquilibriumMuscle.safeDownCast(model.getMuscles().get(n)) for n in names]
    for mus, m in zip(muscles, spec.muscles, strict=True):  # tendon slack: fibres at optimal length mid-range
        mus.setTendonSlackLength(max(mus.getLength(state) - m.l_opt, 0.02))
    state = model.initSystem()
    coord = model.getCoordinateSet().get(spec.coordinate)
    muscles = [osim.Millard2012EquilibriumMuscle.safeDownCast(model.getMuscles().get(n)) for n in names]
    coord.setValue(state, mid)
    model.equilibrateMuscles(state)
    ctrl = osim.PrescribedController.safeDownCast(model.getControllerSet().get("excitation"))
    funcs = [osim.Constant.safeDownCast(ctrl.get_ControlFunctions().get(k)) for k in range(len(names))]
    manager = osim.Manager(model)
    manager.setIntegratorAccuracy(1e-4)
    manager.initialize(state)
    n = int(round(duration_s / CONTROL_DT))
    target = _targets(rng, spec, n + 1, CONTROL_DT)
    flex = np.array([m.flexor for m in spec.muscles])
    cocon = _slow(rng, n, lo=0.02, hi=0.15)  # co-contraction level
    share = np.stack([_slow(rng, n, lo=0.5, hi=1.5) for _ in names], axis=1)  # per-muscle share of the drive
    # the virtual subject's feedback, set from its own joint like a tuned controller: a 2-4 Hz, well damped
    # loop on the joint's inertia, in excitation units of the muscles' torque at mid-range, and an
    # internal model of the static moments (gravity with the load, the passive spring) fed forward
    model.realizeDynamics(state)
    capacity = sum(m.f_max * abs(mus.computeMomentArm(state, coord)) for m, mus in zip(spec.muscles, muscles,
                                                                                        strict=True)) / 2
    inertia = spec.mass * (spec.gyration ** 2 + spec.com ** 2) + load_kg * spec.hand ** 2
    mgl = 9.81 * (spec.mass * spec.com + load_kg * spec.hand)
    omega, zeta = 2 * math.pi * float(rng.uniform(2.0, 4.0)), float(rng.uniform(0.6, 1.0))
    kp, kd = inertia * omega ** 2 / capacity, 2 * zeta * inertia * omega / capacity
    rest = math.radians(spec.rest_deg)
    if drive == "open":  # the internal model: misjudged segment, damping and stiffness; no feedback
        misjudged = rng.uniform(0.75, 1.25, size=4)
        inertia, mgl = inertia * misjudged[0], mgl * misjudged[1]
        stiffness, damping = spec.stiffness * misjudged[2], spec.damping * misjudged[3]
        accel = np.gradient(np.gradient(target, CONTROL_DT), CONTROL_DT)
    rows = {"theta": [], "theta_dot": [], "forces": [], "moment_arms": [], "torque": [], "excitations": []}
    for k in range(n):
        speed = (target[k + 1] - target[k]) / CONTROL_DT
        if drive == "open":
            net = (inertia * accel[k] + damping * speed + mgl * math.sin(target[k])
                   + stiffness * (target[k] - rest)) / capacity
        else:
            st = manager.getState()
            q, u = coord.getValue(st), coord.getSpeedValue(st)
            static = (mgl * math.sin(target[k]) + spec.stiffness * (target[k] - rest)) / capacity
            net = static + kp * (target[k] - q) + kd * (speed - u)
        e = cocon[k] + np.where(flex, max(net, 0.0), max(-net, 0.0))
        e = np.clip(e * share[k] + 0.01 * rng.standard_normal(len(names)), 0.01, 1.0)
        for f, v in zip(funcs, e, strict=True):
            f.setValue(float(v))
        st = manager.integrate((k + 1) * CONTROL_DT)
        model.realizeDynamics(st)
        forces = [mus.getTendonForce(st) for mus in muscles]
        arms = [mus.computeMomentArm(st, coord) for mus in muscles]
        passive = -spec.stiffness * (coord.getValue(st) - rest) \
            - spec.damping * coord.getSpeedValue(st)  # SpringGeneralizedForce's law
        rows["theta"].append(coord.getValue(st))
        rows["theta_dot"].append(coord.getSpeedValue(st))
        rows["forces"].append(forces)
        rows["moment_arms"].append(arms)
        rows["torque"].append(float(np.dot(arms, forces)) + passive + limit.calcLimitForce(st))
        rows["excitations"].append(e)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in rows.items()}
    out["time"] = (np.arange(n) + 1) * CONTROL_DT
    return out


def _slow(rng: np.random.Generator, n: int, *, lo: float, hi: float) -> np.ndarray:
    """A random signal in [lo, hi] that changes over seconds (cubic interpolation of 1 Hz knots)."""
    from scipy.interpolate import CubicSpline
    knots = np.arange(0, n * CONTROL_DT + 2.0, 1.0)
    values = CubicSpline(knots, rng.uniform(0, 1, len(knots)))(np.arange(n) * CONTROL_DT)
    return lo + (hi - lo) * np.clip(values, 0.0, 1.0)


def write_trial(folder: Path, spec: JointSpec, sim: dict, *, setup: ElectrodeSetup, subject: str, trial: str,
                load_kg: float, seed: int) -> None:
    """One recording folder in the lab layout (docs/data-format.md)."""
    rng = np.random.default_rng(seed + 7)
    names = [m.name for m in spec.muscles]
    t = sim["time"]
    n_emg = int(round((t[-1] + CONTROL_DT) * EMG_HZ))
    t_emg = np.arange(n_emg) / EMG_HZ
    idx = np.minimum((t_emg / CONTROL_DT).astype(int), len(t) - 1)  # the controls are held for 5 ms
    ddot = np.gradient(sim["theta_dot"], CONTROL_DT)[idx]
    emg = synthesize(sim["excitations"][idx], fs=EMG_HZ, setup=setup, rng=rng, theta_ddot=ddot)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "emg.csv", {"time": t_emg, **{n: emg[:, k] for k, n in enumerate(names)}})
    c = spec.coordinate
    write_storage(folder / "ik.mot", {"time": t, c: np.degrees(sim["theta"])}, name="Coordinates",
                  in_degrees=True)
    write_storage(folder / "so_force.sto",
                  {"time": t, **{n: sim["forces"][:, k] for k, n in enumerate(names)}},
                  name="StaticOptimization_force", in_degrees=False)
    write_storage(folder / f"MomentArm_{c}.sto",
                  {"time": t, **{n: sim["moment_arms"][:, k] for k, n in enumerate(names)}},
                  name=f"MuscleAnalysis_MomentArm_{c}", in_degrees=False)
    write_storage(folder / "id.sto", {"time": t, f"{c}_moment": sim["torque"]}, name="Inverse Dynamics",
                  in_degrees=False)
    joint = JOINT_NAMES[(c, tuple(names))]  # elbow and elbow6 share the coordinate, not the muscles
    doc = {"format": "myoedge-recording", "version": 1, "joint": joint, "muscles": names,
           "subject": subject, "session": "1", "trial": trial, "units": {"emg": "V", "angle": "deg"},
           "rates": {"emg": EMG_HZ, "kinematics": MOTION_HZ},
           "files": {"emg": "emg.csv", "kinematics": "ik.mot", "torque": "id.sto", "forces": "so_force.sto",
                     "moment_arms": f"MomentArm_{c}.sto"},
           "columns": {"angle": c}, "load_kg": load_kg,
           "source": "myoedge.train.osim_trials: OpenSim forward dynamics, Millard 2012 muscles"}
    atomic_write_text(folder / "recording.json", json.dumps(doc, indent=2) + "\n")


JOINT_NAMES = {(spec.coordinate, tuple(m.name for m in spec.muscles)): name for name, spec in JOINTS.items()}


def _electrodes(rng: np.random.Generator, m: int) -> ElectrodeSetup:
    cross = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i != j and abs(i - j) == 1:
                cross[i, j] = rng.uniform(0.0, 0.15)
    return ElectrodeSetup(gain_volts=rng.uniform(0.2e-3, 1.0e-3, m), crosstalk=cross,
                          baseline_noise_volts=float(rng.uniform(2e-6, 6e-6)),
                          mains_volts=float(rng.uniform(5e-6, 30e-6)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m myoedge.train.osim_trials",
                                description=__doc__.split("\n")[0])
    p.add_argument("--joint", choices=sorted(JOINTS), required=True)
    p.add_argument("--subjects", type=int, default=1)
    p.add_argument("--trials", type=int, default=3,
                   help="trials per subject (the loads in the hand cycle through the joint's)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per trial")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drive", choices=DRIVES, default="feedback",
                   help="feedback: the virtual subject tracks its plan from the joint's state; open: the "
                        "plan's moment from a misjudged internal model, nothing sees the state")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.subjects < 1 or args.trials < 1 or not 2.0 <= args.duration <= 600.0:
            raise InputError("need >= 1 subject, >= 1 trial and a duration of 2 to 600 s")
        with atomic_directory(args.out, overwrite=args.overwrite) as out:
            for s in range(args.subjects):
                rng = np.random.default_rng([args.seed, s])
                spec = _subject(JOINTS[args.joint], rng)
                setup = _electrodes(rng, len(spec.muscles))
                for k in range(args.trials):
                    load = spec.loads[k % len(spec.loads)]
                    seed = int(rng.integers(2**31))
                    sim = simulate_trial(spec, load_kg=load, duration_s=args.duration, seed=seed,
                                         drive=args.drive)
                    name = f"trial{k + 1}"
                    write_trial(out / f"{args.joint}{s + 1:02d}" / name, spec, sim, setup=setup,
                                subject=f"{args.joint}{s + 1:02d}", trial=name, load_kg=load, seed=seed)
                    print(f"{args.joint}{s + 1:02d}/{name}: load {load:g} kg, theta "
                          f"{np.degrees(sim['theta'].min()):.0f}..{np.degrees(sim['theta'].max()):.0f} deg",
                          file=sys.stderr)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
