"""Per-subject calibration: guided MVC sessions and moment-arm (and segment) re-fits.

- :mod:`~myoedge.calibrate.mvc` — what a repetition's MVC is, when one is rejected (pure logic);
- :mod:`~myoedge.calibrate.mvc_stream` — the edge envelope over the live counts, and finding contractions;
- :mod:`~myoedge.calibrate.mvc_session` — the session front-end over the edge reader (guided or ``--auto``);
- :mod:`~myoedge.calibrate.trials`, :mod:`~myoedge.calibrate.forces` — calibration trials, EMG → forces;
- :mod:`~myoedge.calibrate.moment_arms`, :mod:`~myoedge.calibrate.segment_fit` — the constrained fits;
- :mod:`~myoedge.calibrate.refit`, :mod:`~myoedge.calibrate.profile_update` — recordings → profile;
- :mod:`~myoedge.calibrate.from_osim` — a profile sampled from a scaled OpenSim model (needs ``opensim``).

The verbs are ``myoedge calibrate mvc``, ``myoedge calibrate moment-arms`` and ``myoedge calibrate
from-osim`` (:mod:`~myoedge.calibrate.cli`).
"""
