"""Generic joint models of a 75 kg, 1.75 m adult, with the sources of their numbers.

Segments: body-segment parameters from Winter, *Biomechanics and Motor Control of Human Movement*
(4th ed., 2009), Table 4.1 — mass fraction of body mass, centre of mass and radius of gyration about
the proximal joint as fractions of segment length, segment length as a fraction of height.

Muscles: maximum isometric force, optimal fibre length, tendon slack length and pennation from
OpenSim's gait2392 model (Delp et al. 1990, IEEE TBME 37:757) for the knee, Holzbaur et al. 2005
(Ann Biomed Eng 33:829) for the wrist, and OpenSim's arm26 model (after Holzbaur 2005) for the elbow.
Moment arms are smooth polynomials in the joint angle fitted by eye to the ranges those models report
(knee: Buford et al. 1997; wrist: Gonzalez et al. 1997; elbow: Murray et al. 1995): they have the right
sign, size and trend over the range of motion, not a particular cadaver's curve.

Angles are positive in flexion; flexor moment arms are positive, extensor ones negative.
"""

from __future__ import annotations

import math
from dataclasses import replace

from myoedge.body.model import JointModel, Muscle, Segment
from myoedge.ground.errors import InputError

BODY_MASS = 75.0  # kg
HEIGHT = 1.75  # m
DEG = math.pi / 180.0


def winter_segment(*, mass_fraction, length_fraction, com_fraction, gyration_proximal,
                   body_mass=BODY_MASS, height=HEIGHT):
    """(mass kg, com m, inertia about the proximal joint kg·m²) from Winter's proportions."""
    length = length_fraction * height
    mass = mass_fraction * body_mass
    return mass, com_fraction * length, mass * (gyration_proximal * length) ** 2


def knee() -> JointModel:
    """Knee flexion/extension; the shank and foot swing below a thigh held 25° forward of vertical, as
    in mid-swing (θ = 0: straight knee; gravity acts through sin(θ − 25°)).

    Winter: leg + foot 0.061 M, COM 0.606 and radius of gyration 0.735 of the leg length (0.246 H)
    from the knee. Driven by biceps femoris short head (flexor) and rectus femoris (extensor), as in
    Zhang et al. 2023; the other knee muscles are represented by the passive terms.
    """
    mass, com, inertia = winter_segment(mass_fraction=0.061, length_fraction=0.246,
                                        com_fraction=0.606, gyration_proximal=0.735)
    seg = Segment(mass=mass, com=com, inertia=inertia, gravity_offset=-25 * DEG, damping=0.5, stiffness=2.0,
                  rest_angle=20 * DEG, range_lo=-5 * DEG, range_hi=130 * DEG,
                  limit_torque=2.0, limit_rate=25.0)
    return JointModel(joint="knee", segment=seg, muscles=(
        # gait2392 bifemsh_r: F0 804 N, l_opt 0.173 m, l_ts 0.089 m, pennation 23°
        Muscle(name="BFSH", action="flexor", max_force=804.0, optimal_fiber_length=0.173,
               tendon_slack_length=0.089, pennation=23 * DEG, optimal_angle=60 * DEG,
               moment_arm=(0.012, 0.020, -0.006)),
        # gait2392 rect_fem_r: F0 1169 N, l_opt 0.114 m, l_ts 0.310 m, pennation 5°
        Muscle(name="RF", action="extensor", max_force=1169.0, optimal_fiber_length=0.114,
               tendon_slack_length=0.310, pennation=5 * DEG, optimal_angle=40 * DEG,
               moment_arm=(-0.040, -0.010, 0.010)),
    ))


def wrist() -> JointModel:
    """Wrist flexion/extension; forearm horizontal and pronated, so gravity flexes the hand.

    Winter: hand 0.006 M, COM 0.506 and radius of gyration 0.587 of the hand length (0.108 H). Muscle
    parameters from Holzbaur et al. 2005, Table 2 (FCR, FCU, ECRL, ECRB, ECU).
    """
    mass, com, inertia = winter_segment(mass_fraction=0.006, length_fraction=0.108,
                                        com_fraction=0.506, gyration_proximal=0.587)
    seg = Segment(mass=mass, com=com, inertia=inertia, gravity_offset=-math.pi / 2, damping=0.03,
                  stiffness=0.3, rest_angle=0.0, range_lo=-70 * DEG, range_hi=75 * DEG,
                  limit_torque=0.5, limit_rate=20.0)
    return JointModel(joint="wrist", segment=seg, muscles=(
        Muscle(name="FCR", action="flexor", max_force=74.0, optimal_fiber_length=0.0628,
               tendon_slack_length=0.244, pennation=3 * DEG, optimal_angle=0.0,
               moment_arm=(0.015, 0.002, -0.002)),
        Muscle(name="FCU", action="flexor", max_force=128.9, optimal_fiber_length=0.0509,
               tendon_slack_length=0.265, pennation=12 * DEG, optimal_angle=0.0,
               moment_arm=(0.016, 0.001, -0.003)),
        Muscle(name="ECRL", action="extensor", max_force=304.9, optimal_fiber_length=0.0810,
               tendon_slack_length=0.224, pennation=0.0, optimal_angle=0.0,
               moment_arm=(-0.007, 0.001)),
        Muscle(name="ECRB", action="extensor", max_force=100.5, optimal_fiber_length=0.0585,
               tendon_slack_length=0.222, pennation=9 * DEG, optimal_angle=0.0,
               moment_arm=(-0.012, 0.002, 0.002)),
        Muscle(name="ECU", action="extensor", max_force=93.2, optimal_fiber_length=0.0622,
               tendon_slack_length=0.228, pennation=4 * DEG, optimal_angle=0.0,
               moment_arm=(-0.006, 0.001)),
    ))


def elbow() -> JointModel:
    """Elbow flexion/extension with the upper arm hanging (θ = 0: straight), for deep-muscle work.

    Winter: forearm + hand 0.022 M, COM 0.682 and radius of gyration 0.827 of the forearm length
    (0.146 H). Muscles after arm26/Holzbaur 2005; brachialis and the triceps medial head are deep
    (not reachable by surface electrodes), the others superficial.
    """
    mass, com, inertia = winter_segment(mass_fraction=0.022, length_fraction=0.146,
                                        com_fraction=0.682, gyration_proximal=0.827)
    seg = Segment(mass=mass, com=com, inertia=inertia, gravity_offset=0.0, damping=0.2, stiffness=0.5,
                  rest_angle=30 * DEG, range_lo=0.0, range_hi=140 * DEG, limit_torque=1.0, limit_rate=20.0)

    def m(name, action, f0, l_opt, l_ts, penn_deg, r, *, deep=False):
        return Muscle(name=name, action=action, max_force=f0, optimal_fiber_length=l_opt,
                      tendon_slack_length=l_ts, pennation=penn_deg * DEG, optimal_angle=70 * DEG,
                      moment_arm=r, deep=deep)

    return JointModel(joint="elbow", segment=seg, muscles=(
        m("BIC", "flexor", 624.3 + 435.6, 0.1157, 0.2723, 0.0, (0.015, 0.040, -0.014)),
        m("BRD", "flexor", 261.3, 0.1726, 0.1329, 0.0, (0.020, 0.050, -0.014)),
        m("TRIlong", "extensor", 798.5, 0.134, 0.143, 12.0, (-0.022, 0.002)),
        m("TRIlat", "extensor", 624.3, 0.1138, 0.100, 9.0, (-0.019, 0.002)),
        m("BRA", "flexor", 987.3, 0.0858, 0.0535, 0.0, (0.008, 0.022, -0.007), deep=True),
        m("TRImed", "extensor", 624.3, 0.1138, 0.100, 9.0, (-0.018, 0.002), deep=True),
    ))


# Where a load held in the hand sits: the forearm's length plus 40 % of the hand's (the grip), Winter's
# forearm 0.146 H and hand 0.108 H.
HAND_LOAD_FRACTION = 0.146 + 0.4 * 0.108


def elbow6() -> JointModel:
    """Elbow flexion/extension with OpenSim arm26's six muscles, for deep-muscle work with loads.

    Segment: forearm + hand as in :func:`elbow` (upper arm hanging, θ = 0 straight). Muscle parameters
    are arm26's (after Holzbaur et al. 2005): BIClong F0 624.3 N, l_opt 0.1157 m, l_ts 0.2723 m;
    BICshort 435.56 N, 0.1321 m, 0.1923 m; BRA 987.26 N, 0.0858 m, 0.0535 m; TRIlong 798.52 N,
    0.134 m, 0.143 m, 12°; TRIlat 624.3 N, 0.1138 m, 0.098 m, 9°; TRImed 624.3 N, 0.1138 m, 0.0908 m,
    9°. Moment arms after Murray et al. 1995 (biceps 3-4.5 cm peaking near 90°, brachialis ~2 cm,
    triceps heads ~2 cm). Brachialis and the triceps medial head are deep; a load in the hand enters
    through :func:`with_hand_load`.
    """
    base = elbow()

    def m(name, action, f0, l_opt, l_ts, penn_deg, r, *, deep=False):
        return Muscle(name=name, action=action, max_force=f0, optimal_fiber_length=l_opt,
                      tendon_slack_length=l_ts, pennation=penn_deg * DEG, optimal_angle=70 * DEG,
                      moment_arm=r, deep=deep)

    return JointModel(joint="elbow6", segment=base.segment, muscles=(
        m("BIClong", "flexor", 624.3, 0.1157, 0.2723, 0.0, (0.015, 0.040, -0.014)),
        m("BICshort", "flexor", 435.56, 0.1321, 0.1923, 0.0, (0.013, 0.037, -0.013)),
        m("BRA", "flexor", 987.26, 0.0858, 0.0535, 0.0, (0.008, 0.022, -0.007), deep=True),
        m("TRIlong", "extensor", 798.52, 0.134, 0.143, 12.0, (-0.022, 0.002)),
        m("TRIlat", "extensor", 624.3, 0.1138, 0.098, 9.0, (-0.019, 0.002)),
        m("TRImed", "extensor", 624.3, 0.1138, 0.0908, 9.0, (-0.018, 0.002), deep=True),
    ))


def with_hand_load(segment: Segment, *, load_kg: float, distance: float) -> Segment:
    """The forearm segment holding a point mass ``load_kg`` at ``distance`` (m) from the elbow axis:
    total mass, combined centre of mass and inertia (parallel-axis) change; the rest does not."""
    if not (load_kg >= 0 and math.isfinite(load_kg)):
        raise InputError(f"load must be a finite mass >= 0 kg, got {load_kg!r}")
    mass = segment.mass + load_kg
    com = (segment.mass * segment.com + load_kg * distance) / mass
    return replace(segment, mass=mass, com=com, inertia=segment.inertia + load_kg * distance**2)


MAX_HAND_LOAD_KG = 50.0  # a mass held in one hand; more is a unit mistake (g for kg)


def hand_load_kg(extra) -> float:
    """The mass held in the hand (kg) that a recording.json (``extra``: its keys beyond the schema's)
    gives as ``load_kg``; 0 when it gives none."""
    load = extra.get("load_kg", 0.0)
    load = 0.0 if load is None else load
    if not isinstance(load, (int, float)) or isinstance(load, bool) or not 0.0 <= load <= MAX_HAND_LOAD_KG:
        raise InputError(f"recording.json load_kg must be a mass from 0 to {MAX_HAND_LOAD_KG:g} kg, "
                         f"got {load!r}")
    return float(load)


def loaded_segment(segment: Segment, extra) -> Segment:
    """The segment of a trial whose recording.json (``extra``: its other keys) may hold ``load_kg`` and
    ``load_distance_m``: ``segment`` itself when there is no load."""
    load = hand_load_kg(extra)
    if load == 0:
        return segment
    distance = extra.get("load_distance_m")
    if not isinstance(distance, (int, float)) or isinstance(distance, bool) or not distance > 0:
        raise InputError(f"recording.json has load_kg {load} but no positive load_distance_m (m), "
                         f"got {distance!r}")
    return with_hand_load(segment, load_kg=float(load), distance=float(distance))


JOINTS = {"knee": knee, "wrist": wrist, "elbow": elbow, "elbow6": elbow6}


def generic_model(joint: str) -> JointModel:
    try:
        return JOINTS[joint]()
    except KeyError:
        raise InputError(f"unknown joint {joint!r}; known joints: {sorted(JOINTS)}") from None
