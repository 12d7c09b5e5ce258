"""EMG and events from a C3D file, the binary format motion labs hand over (markers + analog channels).

Read with ezc3d (the optional extra ``lab``: ``pip install 'myoedge[lab]'``), imported only when a
recording names a ``.c3d`` file. The analog channels a recording maps to its muscles become a
:class:`~myoedge.body.csvtable.Table` in volts, so the rest of the loader treats a C3D exactly like an
EMG CSV. Everything is taken from the file's own parameters, never guessed:

* **units** from ``ANALOG:UNITS`` per channel (``V``, ``mV``, ``uV``/``µV``); a channel without a unit
  takes ``units.emg`` from ``recording.json``, and a unit the two disagree on is refused;
* **rate** from ``ANALOG:RATE``; **time** of analog sample ``i`` is ``first_frame / POINT:RATE + i /
  ANALOG:RATE`` with ezc3d's 0-based first frame, the clock the file's event times are on;
* **events** from ``EVENT:CONTEXTS``, ``EVENT:LABELS`` and ``EVENT:TIMES`` (minutes, seconds): each
  name is ``"<context> <label>"`` (``"Right Foot Strike"``), or the label alone when the context is
  empty, mapped to its sorted times in seconds.

Scale factors (``SCALE``, ``GEN_SCALE``, ``OFFSET``) are applied by ezc3d on reading.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from myoedge.body.csvtable import TIME, Table
from myoedge.body.recording_spec import C3D_SUFFIX, UNITS
from myoedge.ground.errors import FormatError, InputError

__all__ = ["C3D_SUFFIX", "VOLT_UNITS", "C3dEmg", "read_c3d_emg"]

#: volts per unit of an ANALOG:UNITS entry: recording.json's EMG units, plus the Greek mu some labs write
VOLT_UNITS = {**UNITS["emg"], "μV": 1e-6}


@dataclass(frozen=True)
class C3dEmg:
    """The mapped analog channels of one C3D file, in volts, and its events."""

    table: Table  # time (s) + one column per requested analog label (V)
    rate: float  # ANALOG:RATE, Hz
    events: dict[str, np.ndarray]  # "<context> <label>" -> sorted times (s)


def _ezc3d():
    try:
        import ezc3d
    except ImportError:
        raise InputError("reading a .c3d file needs the ezc3d package: pip install 'myoedge[lab]'") from None
    return ezc3d


def _param(group: Mapping, name: str) -> Any:
    entry = group.get(name) if hasattr(group, "get") else None
    return None if entry is None else entry["value"]


def _strings(group: Mapping, name: str) -> list[str]:
    """A string parameter and its continuations (``LABELS``, ``LABELS2``, ...), stripped."""
    out: list[str] = []
    for key in [name] + [f"{name}{i}" for i in range(2, 100)]:
        value = _param(group, key)
        if value is None:
            break
        out += [str(v).strip() for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
    return out


def _rate(group: Mapping) -> float | None:
    value = _param(group, "RATE")
    rate = float(np.ravel(value)[0]) if value is not None and np.size(value) else None
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        return None
    return rate


def _events(path: Path, params: Mapping) -> dict[str, np.ndarray]:
    if "EVENT" not in params:
        return {}
    group = params["EVENT"]
    times, labels = _param(group, "TIMES"), _strings(group, "LABELS")
    if times is None or not labels:
        return {}
    contexts = _strings(group, "CONTEXTS") or [""] * len(labels)
    times = np.asarray(times, dtype=np.float64)
    n = len(labels)
    if times.ndim != 2 or times.shape[0] != 2 or times.shape[1] < n or len(contexts) != n:
        raise FormatError(path, f"EVENT:TIMES has shape {times.shape} for {n} EVENT:LABELS and "
                                f"{len(contexts)} EVENT:CONTEXTS; expected (2, {n}) and equal counts")
    seconds = 60.0 * times[0, :len(labels)] + times[1, :len(labels)]
    found: dict[str, list[float]] = {}
    for context, label, t in zip(contexts, labels, seconds):
        name = f"{context} {label}".strip()
        if not name or not math.isfinite(t):
            raise FormatError(path, f"event {name or '(no label)'!r} at {t!r} s: every event needs a label "
                                    "and a finite time")
        found.setdefault(name, []).append(float(t))
    return {name: np.sort(np.array(ts)) for name, ts in found.items()}


def read_c3d_emg(path: str | os.PathLike, labels: Sequence[str], *,
                 fallback_unit: str | None = None) -> C3dEmg:
    """The analog channels ``labels`` of the C3D at ``path`` in volts, with the file's rate and events.

    A label the file does not have, a channel whose unit is not a voltage, or one with no unit in the
    file and no ``fallback_unit`` (``units.emg`` of the recording) is a ``FormatError`` naming the file
    and the label.
    """
    path = Path(path)
    ezc3d = _ezc3d()
    if not path.is_file():
        raise FormatError(path, "file not found" if not path.exists() else "is not a file")
    try:
        c3d = ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises RuntimeError/IOError of its own for a damaged file
        why = str(exc).strip() or type(exc).__name__
        raise FormatError(path, f"not a readable C3D file ({why})") from None
    params = c3d["parameters"]
    analog = params["ANALOG"]
    names = _strings(analog, "LABELS")
    data = np.asarray(c3d["data"]["analogs"], dtype=np.float64)
    if data.ndim != 3 or data.shape[1] != len(names):
        raise FormatError(path, f"{len(names)} ANALOG:LABELS for analog data of shape {data.shape}")
    rate = _rate(analog)
    if rate is None:
        raise FormatError(path, "ANALOG:RATE is missing or not a positive rate", column="ANALOG:RATE")
    if data.shape[2] < 2:
        raise FormatError(path, f"holds {data.shape[2]} analog sample(s); EMG needs at least two")
    units = _strings(analog, "UNITS")
    columns = []
    for label in labels:
        if label not in names:
            shown = ", ".join(names[:16]) + (" ..." if len(names) > 16 else "")
            raise FormatError(path, f"no analog channel '{label}'; the file has: {shown or 'none'}",
                              column=label)
        i = names.index(label)
        unit = units[i] if i < len(units) and units[i] else None
        if unit is None and fallback_unit is None:
            raise FormatError(path, f"ANALOG:UNITS gives no unit for '{label}'; set units.emg in "
                                    "recording.json", column=label)
        if unit is not None and unit not in VOLT_UNITS:
            raise FormatError(path, f"'{label}' is in {unit!r} per ANALOG:UNITS, not a voltage "
                                    f"({', '.join(VOLT_UNITS)})", column=label)
        if unit is not None and fallback_unit is not None and VOLT_UNITS[unit] != VOLT_UNITS[fallback_unit]:
            raise FormatError(path, f"ANALOG:UNITS says '{label}' is in {unit} but recording.json units.emg "
                                    f"says {fallback_unit}", column=label)
        values = data[0, i] * VOLT_UNITS[unit or fallback_unit]
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise FormatError(path, f"analog sample {int(bad[0])} of '{label}' is not a finite number",
                              column=label)
        columns.append(values)
    point_rate = _rate(params["POINT"]) if "POINT" in params else None
    header = c3d["header"]
    if point_rate is not None:
        t0 = header["points"]["first_frame"] / point_rate
    else:
        t0 = header["analogs"]["first_frame"] / rate
    time = t0 + np.arange(data.shape[2]) / rate
    table_data = np.column_stack([time, *columns])
    table_data.setflags(write=False)
    table = Table(path=str(path), labels=(TIME, *labels), data=table_data,
                  row_lines=np.zeros(0, dtype=np.int64), label_line=None, name="C3D analog")
    return C3dEmg(table=table, rate=rate, events=_events(path, params))
