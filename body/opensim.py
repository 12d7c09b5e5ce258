"""OpenSim storage files (``.sto``, ``.mot``): a strict reader and a writer.

The format, as OpenSim documents it (and as its tools write it):

* A header of free lines ending at a line ``endheader``. The first line is usually the file's name
  (``Coordinates``, ``Inverse Dynamics Generalized Forces``...). Lines of the form ``key=value`` carry
  settings: ``version`` (1 for OpenSim 3 ``Storage``, 3 for OpenSim 4 ``TimeSeriesTable`` files),
  ``nRows`` and ``nColumns`` (data rows, and columns *including* time; optional in version 3),
  ``inDegrees=yes|no`` (whether rotational values are in degrees; translations are always in metres),
  ``DataType`` (version 3; only ``double`` holds one number per cell). Other lines ("Units are S.I.
  units ...") are free text.
* One line of column labels, tab-separated, the first being ``time``.
* Numeric rows, tab- or space-separated. A ``.mot`` is a ``.sto`` whose time steps are uniform; both are
  read the same way.

Strictness, each failure a ``FormatError`` naming the file, the 1-based line and, where there is one, the
column: no ``endheader``; a malformed or repeated ``version``/``nRows``/``nColumns``/``inDegrees``;
``nRows``/``nColumns`` disagreeing with the data; no label line; an empty or duplicate label; a first
label other than ``time``; a ragged row; a non-numeric, NaN or infinite cell; time not strictly
increasing.

Old files without ``inDegrees``: OpenSim itself assumes radians for them. Reading a degree-valued
kinematics file as radians is a silent 57x error, so ``storage_in_degrees`` reports the flag as unknown
(``None``) and the recording loader refuses to guess (see docs/data-format.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from myoedge.body.csvtable import TIME, Table, format_rows, parse_table, read_text_lines, stack_columns
from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_write_text

STORAGE_SUFFIXES = (".sto", ".mot")
KNOWN_VERSIONS = (1, 2, 3)

# A header setting is one identifier at the start of a line, '=', a value.
_SETTING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=(.*?)\s*$")
_INTEGER_KEYS = ("version", "nRows", "nColumns")


def read_storage(path: str | os.PathLike) -> Table:
    """Read an OpenSim ``.sto``/``.mot`` file into a checked ``Table`` (header settings in ``header``).

    Setting names are matched case-insensitively and stored under their canonical spelling
    (``nRows``, ``nColumns``, ``inDegrees``, ``version``, ``DataType``); others are kept as written.
    """
    lines = read_text_lines(path)
    end = next((i for i, s in enumerate(lines) if s.strip().lower() == "endheader"), None)
    if end is None:
        raise FormatError(path, "no 'endheader' line: an OpenSim storage file starts with a header that "
                          "ends at a line 'endheader'", line=max(len(lines), 1))
    header, header_lines, name = _parse_header(path, lines[:end])
    header_lines["endheader"] = end + 1

    label_at = next((i for i in range(end + 1, len(lines)) if lines[i].strip()), None)
    if label_at is None:
        raise FormatError(path, "no column label line after 'endheader'", line=end + 1)
    raw = lines[label_at]
    labels = [s.strip() for s in (raw.split("\t") if "\t" in raw else raw.split())]
    while labels and not labels[-1]:  # a trailing tab is common and harmless
        labels.pop()
    if labels and labels[0].lower() == TIME:
        labels[0] = TIME
    rows = [(i + 1, s) for i, s in enumerate(lines[label_at + 1:], start=label_at + 1) if s.strip()]
    table = parse_table(path, labels, label_at + 1, rows, delimiter=None, header=header,
                        header_lines=header_lines, name=name)
    for key, found in (("nRows", table.n_rows), ("nColumns", len(table.labels))):
        if key in header and int(header[key]) != found:
            what = "data rows follow" if key == "nRows" else "columns are labelled (time included)"
            raise FormatError(path, f"header says {key}={header[key]} but {found} {what}",
                              line=header_lines[key], column=key)
    return table


def _parse_header(path, lines: list[str]) -> tuple[dict[str, str], dict[str, int], str]:
    canonical = {k.lower(): k for k in (*_INTEGER_KEYS, "inDegrees", "DataType")}
    header: dict[str, str] = {}
    where: dict[str, int] = {}
    name = ""
    for i, text in enumerate(lines):
        match = _SETTING.match(text)
        if match is None:
            if i == 0:
                name = text.strip()
            continue
        key = canonical.get(match.group(1).lower(), match.group(1))
        value = match.group(2).strip()
        if key in header and key in canonical.values():
            raise FormatError(path, f"'{key}' is set twice (first on line {where[key]})", line=i + 1,
                              column=key)
        header[key], where[key] = value, i + 1
        if key in _INTEGER_KEYS and not re.fullmatch(r"[0-9]+", value):
            raise FormatError(path, f"{key} must be a whole number, found '{value}'", line=i + 1, column=key)
        if key == "version" and int(value) not in KNOWN_VERSIONS:
            raise FormatError(path, f"storage version {value} is not one this reader knows "
                              f"({', '.join(map(str, KNOWN_VERSIONS))})", line=i + 1, column=key)
        if key == "inDegrees" and value.lower() not in ("yes", "no"):
            raise FormatError(path, f"inDegrees must be 'yes' or 'no', found '{value}'", line=i + 1,
                              column=key)
        if key == "DataType" and value.lower() != "double":
            raise FormatError(path, f"DataType={value} holds several numbers per cell; only DataType=double "
                              "storage files are read", line=i + 1, column=key)
    return header, where, name


def storage_in_degrees(table: Table) -> bool | None:
    """The file's ``inDegrees`` flag: True, False, or None when the header does not say."""
    value = table.header.get("inDegrees")
    return None if value is None else value.lower() == "yes"


def write_storage(path: str | os.PathLike, table: Mapping[str, np.ndarray] | Table, *, name: str,
                  in_degrees: bool) -> Path:
    """Write ``{label: values}`` (``time`` first) as an OpenSim version-1 storage file; atomic.

    ``in_degrees`` only sets the header flag: the caller passes values already in the unit it states.
    The layout is the one OpenSim's own tools write (name line, ``version``, ``nRows``, ``nColumns``,
    ``inDegrees``, a units note, ``endheader``, tab-separated labels and rows), so OpenSim reads it back.
    """
    if not name.strip() or "\n" in name or "=" in name or name.strip().lower() == "endheader":
        raise InputError(f"storage name must be one line of text without '=', got {name!r}")
    labels, matrix = stack_columns(table)
    for label in labels:
        if not label or any(ch.isspace() for ch in label):
            raise InputError(f"storage column label {label!r} must be non-empty without whitespace")
    head = [name.strip(), "version=1", f"nRows={matrix.shape[0]}", f"nColumns={matrix.shape[1]}",
            f"inDegrees={'yes' if in_degrees else 'no'}",
            "Units are S.I. units (second, meters, Newtons, ...)", "endheader", "\t".join(labels)]
    return atomic_write_text(path, "\n".join(head) + "\n" + format_rows(matrix, delimiter="\t"))


def import_opensim(purpose: str):
    """The ``opensim`` package (the optional ``opensim`` extra), imported on first use, its ``[info]`` lines
    kept off stdout (``--json`` ends it) and no ``opensim.log`` left in the working folder; without the
    package, an InputError that says what ``purpose`` needs."""
    try:
        import opensim
    except ImportError:
        raise InputError(f"{purpose} needs the opensim package: pip install 'myoedge[opensim]'") from None
    opensim.Logger.setLevelString("warn")
    opensim.Logger.removeFileSink()
    return opensim
