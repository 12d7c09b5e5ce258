"""One recorded trial: the in-memory ``Recording`` and its folder on disk (``recording.json`` + data files).

A recording folder is what a lab can produce with the tools it already has: raw EMG as CSV, and
kinematics/kinetics either as CSV or as the OpenSim files its pipeline writes (IK ``.mot``, inverse
dynamics ``.sto``, static-optimisation forces ``.sto``, MuscleAnalysis moment arms ``.sto``).
``recording.json`` says which file holds what, in which units and under which column names; checking
that file key by key is :mod:`myoedge.body.recording_spec`'s job (its constants, such as ``UNITS`` and
``JSON_NAME``, are re-exported here). This module owns what comes after: the ``Recording`` the rest of
the package trains and evaluates on, and moving it to and from disk.

``load_recording`` aligns the sources on the time interval they all cover, keeps the EMG at its own
(checked-uniform) rate, and resamples motion signals onto one uniform grid with PCHIP (piecewise cubic
Hermite): exact at the samples, accurate for smooth motion, and unlike a cubic spline it never
overshoots, so muscle forces stay non-negative and activations inside [0, 1]. Nothing is extrapolated.
Everything is read and checked before the ``Recording`` is built: a load returns all of it or raises.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from myoedge.body.c3d import read_c3d_emg
from myoedge.body.csvtable import TIME, Table, read_csv, write_csv
from myoedge.body.opensim import STORAGE_SUFFIXES, read_storage
from myoedge.body.recording_spec import (
    C3D_SUFFIX,
    COLUMN_KEYS,
    FILE_ROLES,
    FORMAT,
    JSON_NAME,
    RESERVED_KEYS,
    TRUTH_PREFIXES,
    UNITS,
    VERSION,
    _angle_scale,
    _check_name,
    _parse_spec,
    _Spec,
    checked_events,
)
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_directory, atomic_write_text

__all__ = [
    "COLUMN_KEYS", "FILE_ROLES", "FORMAT", "JSON_NAME", "RESERVED_KEYS", "TRUTH_PREFIXES", "UNITS", "VERSION",
    "Recording", "RecordingMeta", "find_recordings", "load_recording", "save_recording",
]


@dataclass(frozen=True)
class RecordingMeta:
    """Who and what was recorded; ``muscles`` gives the channel order of every per-muscle array."""

    joint: str
    muscles: tuple[str, ...]
    subject: str = ""
    session: str = ""
    trial: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # other recording.json keys (notes, source...)

    def __post_init__(self) -> None:
        _check_name(self.joint, "joint")
        if isinstance(self.muscles, str):
            raise InputError(f"muscles must be a sequence of names, got the string {self.muscles!r}")
        muscles = tuple(_check_name(m, "muscle name") for m in self.muscles)
        if not muscles or len(set(muscles)) != len(muscles):
            raise InputError(f"muscles must be at least one unique name, got {list(muscles)}")
        for key in ("subject", "session", "trial"):
            if not isinstance(getattr(self, key), str):
                raise InputError(f"{key} must be a string, got {getattr(self, key)!r}")
        clash = sorted(k for k in self.extra if k in RESERVED_KEYS or not isinstance(k, str))
        if clash:
            raise InputError(f"extra metadata may not use the schema keys {clash}")
        object.__setattr__(self, "muscles", muscles)
        object.__setattr__(self, "extra", dict(self.extra))


def _array(name: str, value: Any, shape: tuple[int, ...], *, required: bool = False) -> np.ndarray | None:
    if value is None:
        if required:
            raise InputError(f"{name} is required (shape {shape})")
        return None
    a = np.array(value, dtype=np.float64)
    if a.shape != shape:
        raise InputError(f"{name} must have shape {shape}, got {a.shape}")
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        raise InputError(f"{name} holds a non-finite value at index {tuple(int(i) for i in bad[0])}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, kw_only=True, eq=False)
class Recording:
    """One trial in SI units: raw EMG at its own rate plus motion signals on a common uniform time base.

    Sign conventions: ``theta`` (and its derivatives), ``torque`` and ``moment_arms`` are positive in
    flexion, so that ``torque ≈ Σ moment_arms · forces`` with flexors having positive moment arms.
    Arrays are read-only float64 copies; per-muscle arrays follow ``meta.muscles``.
    """

    meta: RecordingMeta
    emg_fs: float  # Hz
    emg: np.ndarray  # (n_emg, n_muscles) V
    emg_t0: float  # s, time of emg[0]
    time: np.ndarray  # (n,) s, uniform at `rate`
    rate: float  # Hz
    theta: np.ndarray  # (n,) rad
    theta_dot: np.ndarray | None = None  # (n,) rad/s
    theta_ddot: np.ndarray | None = None  # (n,) rad/s^2
    torque: np.ndarray | None = None  # (n,) N*m, net joint moment
    forces: np.ndarray | None = None  # (n, n_muscles) N
    moment_arms: np.ndarray | None = None  # (n, n_muscles) m
    activations: np.ndarray | None = None  # (n, n_muscles) in [0, 1]
    excitations: np.ndarray | None = None  # (n, n_muscles) in [0, 1]
    # name ("Right Foot Strike") -> sorted times (s) on this recording's clock (that of `time`)
    events: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.meta, RecordingMeta):
            raise InputError(f"meta must be a RecordingMeta, got {type(self.meta).__name__}")
        for name in ("emg_fs", "rate", "emg_t0"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
                    or (name != "emg_t0" and value <= 0):
                raise InputError(f"{name} must be a finite{' positive' if name != 'emg_t0' else ''} "
                                 f"number, got {value!r}")
            object.__setattr__(self, name, float(value))
        m = len(self.meta.muscles)
        n_emg = np.shape(self.emg)[0] if np.ndim(self.emg) == 2 else -1
        if n_emg < 2:
            raise InputError(f"emg must be (n_samples >= 2, {m}), got shape {np.shape(self.emg)}")
        n = int(np.size(self.time)) if np.ndim(self.time) == 1 else -1
        if n < 2:
            raise InputError(f"time must be 1-D with at least 2 samples, got shape {np.shape(self.time)}")
        shapes = {"emg": (n_emg, m), "time": (n,), "theta": (n,), "theta_dot": (n,), "theta_ddot": (n,),
                  "torque": (n,), "forces": (n, m), "moment_arms": (n, m), "activations": (n, m),
                  "excitations": (n, m)}
        for name, shape in shapes.items():
            value = _array(name, getattr(self, name), shape, required=name in ("emg", "time", "theta"))
            object.__setattr__(self, name, value)
        t, step = self.time, 1.0 / self.rate
        off = np.abs(t - (t[0] + np.arange(n) * step))
        if off.max() > 1e-6 * step + 1e-12 * np.abs(t).max():
            raise InputError(f"time must be uniform at rate {self.rate:g} Hz; sample {int(off.argmax())} is "
                             f"{off.max():.3g} s off the grid")
        emg_end = self.emg_t0 + (n_emg - 1) / self.emg_fs
        slack = 1.0 / self.emg_fs + 1e-9
        if self.emg_t0 > t[0] + slack or emg_end < t[-1] - slack:
            raise InputError(f"emg covers [{self.emg_t0:.6g}, {emg_end:.6g}] s but must cover the motion "
                             f"time [{t[0]:.6g}, {t[-1]:.6g}] s")
        object.__setattr__(self, "events", checked_events(self.events))
        for name in ("activations", "excitations"):
            a = getattr(self, name)
            if a is not None and (a.min() < -1e-9 or a.max() > 1 + 1e-9):
                raise InputError(f"{name} must lie in [0, 1], found [{a.min():.4g}, {a.max():.4g}]")

    @property
    def n_muscles(self) -> int:
        return len(self.meta.muscles)

    @property
    def emg_time(self) -> np.ndarray:
        """Time (s) of every EMG sample."""
        return self.emg_t0 + np.arange(self.emg.shape[0]) / self.emg_fs


# ---------------------------------------------------------------------------------------------- saving

def save_recording(rec: Recording, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``rec`` as a recording folder in the CSV layout, atomically; returns the folder.

    Files: ``emg.csv`` (time + one column per muscle, V), ``motion.csv`` (time, ``angle`` in rad,
    ``torque``, ``force_<muscle>``, ``moment_arm_<muscle>``), ``truth.csv`` (``theta_dot``,
    ``theta_ddot``, ``activation_<muscle>``, ``excitation_<muscle>``) when any of those is present.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; pass --overwrite to replace it")
    muscles = rec.meta.muscles
    motion: dict[str, np.ndarray] = {TIME: rec.time, "angle": rec.theta}
    columns: dict[str, Any] = {"angle": "angle"}
    files = {"emg": "emg.csv", "kinematics": "motion.csv"}
    if rec.torque is not None:
        motion["torque"], columns["torque"], files["torque"] = rec.torque, "torque", "motion.csv"
    for key, prefix in (("forces", "force_"), ("moment_arms", "moment_arm_")):
        values = getattr(rec, key)
        if values is not None:
            columns[key] = {m: prefix + m for m in muscles}
            motion.update({prefix + m: values[:, i] for i, m in enumerate(muscles)})
            files[key] = "motion.csv"
    truth: dict[str, np.ndarray] = {TIME: rec.time}
    for key in ("theta_dot", "theta_ddot"):
        if getattr(rec, key) is not None:
            truth[key] = getattr(rec, key)
    for key, prefix in TRUTH_PREFIXES.items():
        if getattr(rec, key) is not None:
            truth.update({prefix + m: getattr(rec, key)[:, i] for i, m in enumerate(muscles)})
    if len(truth) > 1:
        files["truth"] = "truth.csv"
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "joint": rec.meta.joint, "muscles": list(muscles),
        "subject": rec.meta.subject, "session": rec.meta.session, "trial": rec.meta.trial,
        "units": {"time": "s", "emg": "V", "angle": "rad", "torque": "N*m", "force": "N", "moment_arm": "m"},
        "rates": {"emg": rec.emg_fs, "kinematics": rec.rate}, "files": files, "columns": columns,
        "flexion_sign": 1, **rec.meta.extra}
    if rec.events:
        doc["events"] = {name: times.tolist() for name, times in rec.events.items()}
    try:
        text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise InputError(f"meta.extra must hold only JSON values: {exc}") from None
    with atomic_directory(path, overwrite=overwrite) as tmp:
        write_csv(tmp / "emg.csv", {TIME: rec.emg_time, **{m: rec.emg[:, i] for i, m in enumerate(muscles)}})
        write_csv(tmp / "motion.csv", motion)
        if len(truth) > 1:
            write_csv(tmp / "truth.csv", truth)
        atomic_write_text(tmp / JSON_NAME, text)
    return path


def find_recordings(root: str | os.PathLike) -> list[Path]:
    """Folders under ``root`` (``root`` included) holding a ``recording.json``, sorted.

    Hidden folders are skipped: that is where an interrupted ``save_recording`` leaves its temporary.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of recordings")
    found = [p.parent for p in root.rglob(JSON_NAME)
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts[:-1])]
    return sorted(found)


# --------------------------------------------------------------------------------------------- loading

def _read_source(path: Path, spec: _Spec) -> Table:
    if path.suffix.lower() in STORAGE_SUFFIXES:
        return read_storage(path)  # OpenSim time is always in seconds
    table = read_csv(path)
    scale = UNITS["time"][spec.units.get("time", "s")]
    if scale == 1.0:
        return table
    data = table.data.copy()
    data[:, 0] *= scale
    data.setflags(write=False)
    return replace(table, data=data)


def _checked_rate(spec: _Spec, role: str, table: Table, found: float, *, found_by: str = "time column") \
        -> float:
    declared = spec.rates.get(role)
    if declared is None:
        return found
    if abs(found - declared) > 1e-3 * declared:
        raise table.error(f"{found_by} gives {found:.6g} Hz but recording.json rates.{role} says "
                          f"{declared:g} Hz", label=TIME if found_by == "time column" else found_by)
    return declared


def _resample(table: Table, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    t = table.time
    return PchipInterpolator(t, values, axis=0, extrapolate=False)(np.clip(grid, t[0], t[-1]))


def load_recording(path: str | os.PathLike, *, rate: float | None = None) -> Recording:
    """Read a recording folder (or its ``recording.json``) into a checked ``Recording``.

    Motion signals are resampled by PCHIP onto ``rate`` Hz (default: the kinematics file's own rate),
    on a grid anchored at the kinematics file's first sample so that at the default rate the angle is
    taken as recorded. The grid spans the interval every file covers (EMG included). EMG keeps its rate
    and the samples from the first grid time to one grid period after the last (each motion sample
    stands for the period that starts at it), so a saved recording loads back with all of its EMG.
    """
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not 0 < rate < math.inf):
        raise InputError(f"rate must be a positive number of Hz, got {rate!r}")
    path = Path(path)
    spec = _parse_spec(path / JSON_NAME if path.is_dir() else path, RecordingMeta)
    folder, muscles, sign = spec.doc.json_path.parent, spec.meta.muscles, spec.sign
    cache: dict[str, Table] = {}

    def table(role: str) -> Table:
        rel = spec.files[role]
        if rel not in cache:
            cache[rel] = _read_source(folder / rel, spec)
        return cache[rel]

    def per_muscle(tab: Table, key: str, what: str) -> np.ndarray:
        names = spec.columns.get(key, {})
        return np.column_stack([tab.column(names.get(m, m), role=f"{what} of muscle '{m}'") for m in muscles])

    events = dict(spec.events)
    if Path(spec.files["emg"]).suffix.lower() == C3D_SUFFIX:
        labels = [spec.columns.get("emg", {}).get(m, m) for m in muscles]
        c3d = read_c3d_emg(folder / spec.files["emg"], labels, fallback_unit=spec.units.get("emg"))
        emg_tab, emg_fs = c3d.table, _checked_rate(spec, "emg", c3d.table, c3d.rate, found_by="ANALOG:RATE")
        emg = emg_tab.data[:, 1:]  # volts, in muscle order
        events.update({name: np.concatenate([events.get(name, []), t]) for name, t in c3d.events.items()})
    else:
        emg_tab = table("emg")
        emg = per_muscle(emg_tab, "emg", "the EMG") * UNITS["emg"][spec.units["emg"]]
        emg_fs = _checked_rate(spec, "emg", emg_tab, emg_tab.uniform_rate()[0])
    emg_t0 = float(np.mean(emg_tab.time - np.arange(emg_tab.n_rows) / emg_fs))

    kin = table("kinematics")
    angle = spec.columns["angle"]
    theta = kin.column(angle, role="the joint angle") * _angle_scale(spec, kin, angle) * sign
    signals = {"theta": (kin, theta)}
    try:
        kin_rate = kin.uniform_rate()[0]
    except FormatError:  # a variable-step .sto (or coarsely printed time): its mean rate
        kin_rate = (kin.n_rows - 1) / float(kin.time[-1] - kin.time[0])
    rate = float(rate) if rate is not None else _checked_rate(spec, "kinematics", kin, kin_rate)
    if emg_fs < kin_rate:
        raise FormatError(emg_tab.path, f"EMG at {emg_fs:g} Hz is slower than the kinematics in {kin.path} "
                                        f"at {kin_rate:.6g} Hz; EMG must be sampled at least as fast")
    if "torque" in spec.files:
        tab = table("torque")
        torque = tab.column(spec.columns.get("torque", f"{angle}_moment"), role="the joint torque")
        signals["torque"] = (tab, torque * UNITS["torque"][spec.units.get("torque", "N*m")] * sign)
    for key, unit, si, factor in (("forces", "force", "N", 1), ("moment_arms", "moment_arm", "m", sign)):
        if key in spec.files:
            tab = table(key)
            signals[key] = (tab, per_muscle(tab, key, key) * UNITS[unit][spec.units.get(unit, si)] * factor)
    if "truth" in spec.files:
        tab = table("truth")
        for key in ("theta_dot", "theta_ddot"):
            if tab.has(key):
                signals[key] = (tab, tab.column(key) * sign)
        for key, prefix in TRUTH_PREFIXES.items():
            if any(tab.has(prefix + m) for m in muscles):
                values = np.column_stack([tab.column(prefix + m, role=key) for m in muscles])
                bad = np.argwhere((values < 0) | (values > 1))
                if bad.size:
                    r, c = bad[0]
                    raise tab.error(f"{key} must lie in [0, 1], found {values[r, c]:.6g}", row=int(r),
                                    label=prefix + muscles[c])
                signals[key] = (tab, values)

    spans = {emg_tab.path: (emg_t0, emg_t0 + (emg_tab.n_rows - 1) / emg_fs)}
    spans.update({tab.path: (tab.time[0], tab.time[-1]) for tab, _ in signals.values()})
    lo, hi = max(a for a, _ in spans.values()), min(b for _, b in spans.values())
    k0 = math.ceil((lo - kin.time[0]) * rate - 1e-6)
    n = math.floor((hi - kin.time[0]) * rate + 1e-6) - k0 + 1
    if n < 2:
        covers = "; ".join(f"{p} covers [{a:.6g}, {b:.6g}] s" for p, (a, b) in spans.items())
        raise FormatError(spec.doc.json_path, f"the files share under two samples at {rate:g} Hz: {covers}")
    grid = (kin.time[0] + k0 / rate) + np.arange(n) / rate
    emg_time = emg_t0 + np.arange(emg_tab.n_rows) / emg_fs
    i0 = int(np.searchsorted(emg_time, grid[0] - 0.5 / emg_fs, side="left"))
    i1 = int(np.searchsorted(emg_time, grid[-1] + 1.0 / rate - 0.5 / emg_fs, side="left"))
    motion = {key: _resample(tab, values, grid) for key, (tab, values) in signals.items()}
    try:
        return Recording(meta=spec.meta, emg_fs=emg_fs, emg=emg[i0:i1], emg_t0=float(emg_time[i0]),
                         time=grid, rate=rate, events=events, **motion)
    except InputError as exc:
        raise FormatError(spec.doc.json_path, str(exc)) from None
