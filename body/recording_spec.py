"""The ``recording.json`` schema: its constants, and the reader that turns the file into a checked spec.

Kept apart from :mod:`myoedge.body.recording` because it answers a different question: not "what is a
trial" but "is this hand-written JSON what a recording folder promises". That is the part labs get
wrong (a unit spelled ``uv`` for ``uV``, a muscle name with a stray space, a muscle the ``columns``
table names but ``muscles`` does not), so every key is checked here, before any data file is opened,
and each error is a :class:`~myoedge.ground.errors.FormatError` that points at the line of the offending key.
The schema itself is documented in docs/data-format.md; this module is its executable form.

It reads nothing but the JSON: which file holds what, in which units and under which column names.
The one exception is ``_angle_scale``, which settles the angle unit against an OpenSim file's
``inDegrees`` header, because a unit the JSON and the file disagree on is a schema error, not a data
error. Reading and aligning the data files is :func:`myoedge.body.recording.load_recording`'s job. To keep
the dependency one-way, this module does not import the in-memory types at run time: the caller hands
``_parse_spec`` the ``RecordingMeta`` constructor, so a bad ``muscles`` list still fails inside the
parse, at its line, in the same order as every other key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from myoedge.body.csvtable import TIME, Table, read_text_lines
from myoedge.body.opensim import STORAGE_SUFFIXES, storage_in_degrees
from myoedge.ground.errors import FormatError, InputError

if TYPE_CHECKING:
    from myoedge.body.recording import RecordingMeta

FORMAT = "myoedge-recording"
VERSION = 1
JSON_NAME = "recording.json"
#: accepted spellings of each unit and the factor that converts them to SI
UNITS: dict[str, dict[str, float]] = {
    "time": {"s": 1.0, "ms": 1e-3},
    "emg": {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6},
    "angle": {"rad": 1.0, "deg": math.pi / 180.0},
    "torque": {"N*m": 1.0, "N.m": 1.0, "Nm": 1.0},
    "force": {"N": 1.0},
    "moment_arm": {"m": 1.0, "mm": 1e-3},
}
FILE_ROLES = ("emg", "kinematics", "torque", "forces", "moment_arms", "truth")
COLUMN_KEYS = ("emg", "angle", "torque", "forces", "moment_arms")
RESERVED_KEYS = ("format", "version", "joint", "muscles", "subject", "session", "trial", "units", "files",
                 "columns", "rates", "flexion_sign", "events")
C3D_SUFFIX = ".c3d"  # accepted for files.emg only; read by myoedge.body.c3d
TRUTH_PREFIXES = {"activations": "activation_", "excitations": "excitation_"}


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or name != name.strip() or name == TIME \
            or any(ch in name for ch in ',"\r\n\t'):
        raise InputError(f"{what} must be a non-empty name without commas, quotes, tabs or surrounding "
                         f"spaces, and not '{TIME}'; got {name!r}")
    return name


@dataclass(frozen=True)
class _Json:
    """The text of ``recording.json``, to point errors at the line of a key."""

    json_path: Path
    text: str

    def error(self, key: str, reason: str, *, missing: bool = False) -> FormatError:
        # Best-effort line: each key of the path is searched after the previous one.
        keys = key.split(".")[:-1] if missing else key.split(".")
        pos, line = 0, None
        for k in keys:
            at = self.text.find(json.dumps(k), pos)
            if at < 0:
                break
            pos, line = at + 1, self.text.count("\n", 0, at) + 1
        return FormatError(self.json_path, reason, line=line, column=key)

    def get(self, obj: dict, name: str, kind: type, *, parent: str = "", required: bool = True) -> Any:
        """``obj[name]`` checked to be of ``kind``; ``parent`` is the key path of ``obj`` for messages."""
        key = f"{parent}.{name}" if parent else name
        if name not in obj:
            if required:
                raise self.error(key, f"missing required key '{key}'", missing=True)
            return None
        value = obj[name]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            kinds = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
            raise self.error(key, f"'{key}' must be {kinds[kind]}, found {json.dumps(value)[:40]}")
        return value


@dataclass(frozen=True)
class _Spec:
    """A checked ``recording.json``."""

    doc: _Json
    meta: RecordingMeta
    units: dict[str, str]
    files: dict[str, str]
    columns: dict[str, Any]
    rates: dict[str, float]
    sign: int
    events: dict[str, np.ndarray]


def _parse_spec(json_path: Path, make_meta: Callable[..., RecordingMeta]) -> _Spec:
    """Read and check ``json_path``; ``make_meta`` is ``RecordingMeta`` (passed in: no import cycle)."""
    text = "\n".join(read_text_lines(json_path))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(json_path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise FormatError(json_path, "JSON nested too deeply to be a recording description") from None
    if not isinstance(doc, dict):
        raise FormatError(json_path, "must hold a JSON object", line=1)
    s = _Json(json_path, text)
    if s.get(doc, "format", str) != FORMAT:
        raise s.error("format", f"format must be '{FORMAT}', found {doc['format']!r}")
    if s.get(doc, "version", int) != VERSION:
        raise s.error("version", f"version {doc['version']} is not supported (this reader knows {VERSION})")
    names = {key: s.get(doc, key, str) for key in ("joint", "subject", "session", "trial")}
    muscles = s.get(doc, "muscles", list)
    try:
        _check_name(names["joint"], "joint")
    except InputError as exc:
        raise s.error("joint", str(exc)) from None
    try:
        meta = make_meta(muscles=tuple(muscles), extra={k: v for k, v in doc.items()
                                                        if k not in RESERVED_KEYS}, **names)
    except InputError as exc:
        raise s.error("muscles", str(exc)) from None
    units = s.get(doc, "units", dict)
    for key, value in units.items():
        if key not in UNITS:
            raise s.error(f"units.{key}", f"unknown key 'units.{key}' (known: {', '.join(UNITS)})")
        if not isinstance(value, str) or value not in UNITS[key]:
            known = ", ".join(UNITS[key])
            raise s.error(f"units.{key}", f"units.{key} must be one of {known}; found {value!r}")
    files = s.get(doc, "files", dict)
    for role, rel in files.items():
        if role not in FILE_ROLES:
            raise s.error(f"files.{role}", f"unknown file role '{role}' (known: {', '.join(FILE_ROLES)})")
        rel = s.get(files, role, str, parent="files")
        p = Path(rel)
        kinds = (".csv", *STORAGE_SUFFIXES, *((C3D_SUFFIX,) if role == "emg" else ()))
        if p.is_absolute() or ".." in p.parts or p.suffix.lower() not in kinds:
            also = " (or, for emg, .c3d)" if role != "emg" else ", .c3d"
            raise s.error(f"files.{role}", f"files.{role} must be a .csv, .sto or .mot{also} path inside the "
                          f"recording folder, found {rel!r}")
    for role in ("emg", "kinematics"):
        s.get(files, role, str, parent="files")
    # A C3D file states the unit of each analog channel itself; units.emg is then only its fallback.
    s.get(units, "emg", str, parent="units", required=Path(files["emg"]).suffix.lower() != C3D_SUFFIX)
    columns = s.get(doc, "columns", dict)
    for key, value in columns.items():
        if key not in COLUMN_KEYS:
            raise s.error(f"columns.{key}", f"unknown key 'columns.{key}' (known: {', '.join(COLUMN_KEYS)})")
        if key in ("angle", "torque"):
            s.get(columns, key, str, parent="columns")
            continue
        for muscle in s.get(columns, key, dict, parent="columns"):
            if muscle not in meta.muscles:
                raise s.error(f"columns.{key}.{muscle}", f"'{muscle}' in columns.{key} is not in muscles")
            s.get(value, muscle, str, parent=f"columns.{key}")
    s.get(columns, "angle", str, parent="columns")
    rates = s.get(doc, "rates", dict, required=False) or {}
    for key in rates:
        if key not in ("emg", "kinematics") or not 0 < s.get(rates, key, float, parent="rates") < math.inf:
            raise s.error(f"rates.{key}", f"rates.{key} must be a positive rate in Hz for 'emg' or "
                          f"'kinematics', found {rates[key]!r}")
    sign = doc.get("flexion_sign", 1)
    if sign not in (1, -1) or isinstance(sign, bool):
        raise s.error("flexion_sign", f"flexion_sign must be 1 or -1, found {sign!r}")
    events = s.get(doc, "events", dict, required=False) or {}
    for name, times in events.items():
        if not isinstance(times, list) or any(isinstance(t, bool) for t in times):
            raise s.error(f"events.{name}", f"events.{name} must be a list of times in seconds, found "
                          f"{json.dumps(times)[:40]}")
    try:
        events = checked_events(events)
    except InputError as exc:
        raise s.error("events", str(exc)) from None
    return _Spec(s, meta, units, files, columns, {k: float(v) for k, v in rates.items()}, int(sign), events)


def checked_events(events: Any) -> dict[str, np.ndarray]:
    """Named event times: ``{"Right Foot Strike": [s, ...]}`` as sorted, read-only float64 arrays."""
    if not isinstance(events, Mapping):
        raise InputError(f"events must map event names to times, got {type(events).__name__}")
    out = {}
    for name, times in events.items():
        try:
            t = np.sort(np.array(times, dtype=np.float64).reshape(-1)) if np.ndim(times) <= 1 else None
        except (TypeError, ValueError):
            t = None
        if not isinstance(name, str) or not name or t is None or not np.isfinite(t).all():
            raise InputError(f"events[{name!r}] must be a named list of finite times in seconds")
        t.setflags(write=False)
        out[name] = t
    return out


def _angle_scale(spec: _Spec, kin: Table, column: str) -> float:
    """rad per unit of the angle column: the storage file's inDegrees, else units.angle; never a guess."""
    given = spec.units.get("angle")
    if Path(kin.path).suffix.lower() in STORAGE_SUFFIXES:
        flag = storage_in_degrees(kin)
        if flag is None and given is None:
            raise FormatError(kin.path, f"the header has no inDegrees line, so the unit of '{column}' is "
                              "unknown; add inDegrees=yes or inDegrees=no before endheader, or set "
                              "units.angle in recording.json", line=kin.header_lines["endheader"],
                              column=column)
        if flag is not None and given is not None and (given == "deg") != flag:
            raise spec.doc.error("units.angle", f"units.angle is '{given}' but {kin.path} says "
                                 f"inDegrees={kin.header['inDegrees']}")
        return UNITS["angle"][given if flag is None else ("deg" if flag else "rad")]
    if given is None:
        raise spec.doc.error("units.angle", "missing required key 'units.angle': the kinematics file is "
                             "CSV, so say whether its angles are in 'rad' or 'deg'", missing=True)
    return UNITS["angle"][given]
