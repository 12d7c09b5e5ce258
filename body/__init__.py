"""The shared musculoskeletal model (numpy and scipy only; never torch).

- :mod:`~myoedge.body.dynamics` — the equation of motion, written once, array-agnostic.
- :mod:`~myoedge.body.model`, :mod:`~myoedge.body.catalog` — joints, segments, muscles, moment arms.
- :mod:`~myoedge.body.muscle` — Hill-type muscle mechanics and activation dynamics.
- :mod:`~myoedge.body.profile` — the per-subject profile (MVC, moment arms, segment parameters).
- :mod:`~myoedge.body.recording` (schema in :mod:`~myoedge.body.recording_spec`),
  :mod:`~myoedge.body.opensim`, :mod:`~myoedge.body.csvtable`, :mod:`~myoedge.body.c3d` — recordings on
  disk and their loaders (C3D through ezc3d, imported only for a ``.c3d`` file).
- :mod:`~myoedge.body.subjects`, :mod:`~myoedge.body.simulate` — synthetic subjects.
"""

from __future__ import annotations

from myoedge.ground.lazy import lazy_exports

# Loaded on first use (PEP 562): the recording loaders pull in SciPy, which the CLI's verb table and
# the edge runtime's profile checks do not need.
_HOMES = {
    "generic_model": "catalog", "JointModel": "model", "Muscle": "model", "Segment": "model",
    "SubjectProfile": "profile", "Recording": "recording", "RecordingMeta": "recording",
    "find_recordings": "recording", "load_recording": "recording", "save_recording": "recording",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
