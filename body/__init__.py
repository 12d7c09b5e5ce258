"""The shared musculoskeletal model (numpy and scipy only; never torch).

- :mod:`~myoedge.body.dynamics` — the equation of motion, written once, array-agnostic.
- :mod:`~myoedge.body.model`, :mod:`~myoedge.body.catalog` — joints, segments, muscles, moment arms.
- :mod:`~myoedge.body.muscle` — Hill-type muscle mechanics and activation dynamics.
- :mod:`~myoedge.body.profile` — the per-subject profile (MVC, moment arms, segment parameters).
- :mod:`~myoedge.body.recording`, :mod:`~myoedge.body.opensim` — recordings on disk and their loaders.
- :mod:`~myoedge.body.subjects`, :mod:`~myoedge.body.simulate` — synthetic subjects.
"""

from myoedge.body.catalog import generic_model
from myoedge.body.model import JointModel, Muscle, Segment
from myoedge.body.profile import SubjectProfile

__all__ = ["JointModel", "Muscle", "Segment", "SubjectProfile", "generic_model"]
