"""myoedge: physics-consistent muscle force, joint angle and torque estimates from surface EMG.

The layer packages (``body``, ``edge``, ``train``, ``calibrate``, ``deploy``) are top-level folders of
the source tree that install under this one name (see ``[tool.setuptools.package-dir]``).
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# Run from a source checkout (``python -m pytest`` or ``python -m myoedge`` in the repository root puts
# the root on sys.path), this folder shadows the installed mapping and the layer folders sit beside it
# rather than inside it. Let the package search its parent folder too in that one case.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(_os.path.join(_root, "body")):
    __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821
