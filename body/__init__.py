"""The shared musculoskeletal model (numpy and scipy only; never torch).

- :mod:`~myoedge.body.dynamics` — the equation of motion, written once, array-agnostic.
- :mod:`~myoedge.body.model`, :mod:`~myoedge.body.catalog` — joints, segments, muscles, moment arms.
- :mod:`~myoedge.body.muscle` — Hill-type muscle mechanics and activation dynamics.
- :mod:`~myoedge.body.profile` — the per-subject profile (MVC, moment arms, segment parameters).
- :mod:`~myoedge.body.recording` (schema in :mod:`~myoedge.body.recording_spec`),
  :mod:`~myoedge.body.opensim`, :mod:`~myoedge.body.csvtable` — recordings on disk and their loaders.
- :mod:`~myoedge.body.subjects`, :mod:`~myoedge.body.simulate` — synthetic subjects.
"""

from myoedge.body.catalog import generic_model
from myoedge.body.model import JointModel, Muscle, Segment
from myoedge.body.profile import SubjectProfile
from myoedge.body.recording import Recording, RecordingMeta, find_recordings, load_recording, save_recording

__all__ = [
    "JointModel", "Muscle", "Recording", "RecordingMeta", "Segment", "SubjectProfile",
    "find_recordings", "generic_model", "load_recording", "save_recording",
]
