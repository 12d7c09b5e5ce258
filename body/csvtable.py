"""Time-series tables read strictly from text files: the shared ``Table`` type and the CSV reader/writer.

Every loader of recordings (CSV here, OpenSim storage files in ``myoedge.body.opensim``) produces a
``Table``: labelled float64 columns, the first one ``time`` in seconds and strictly increasing, every
cell finite, and for every row the 1-based line of the file it came from. Keeping the line numbers is
what lets a later complaint (a missing column, a gap in the EMG clock, a NaN in row 5,000) name the
file, the line and the column instead of "bad data somewhere".

Parsing takes a fast path (``numpy.loadtxt`` over the data lines) and only when that fails walks the
lines one by one to find the first bad cell, so a clean 100,000-row EMG export costs one C-level parse.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from myoedge.ground.errors import FormatError, InputError
from myoedge.ground.fileio import atomic_write_text

#: printf format for every number we write: 12 significant digits keep float64 data to ~1e-12
#: relative, and times up to 999 s to the nanosecond, at two thirds of the size of full precision.
NUMBER_FORMAT = "%.12g"

TIME = "time"


@dataclass(frozen=True, eq=False)
class Table:
    """Labelled numeric columns of one file; ``labels[0] == "time"``, ``data`` is (n_rows, n_labels)."""

    path: str
    labels: tuple[str, ...]
    data: np.ndarray
    row_lines: np.ndarray  # 1-based line of each data row, for error messages (empty: a binary file)
    label_line: int | None  # 1-based line holding the column labels (None: a binary file, e.g. C3D)
    header: Mapping[str, str] = field(default_factory=dict)  # key=value header lines (OpenSim files)
    header_lines: Mapping[str, int] = field(default_factory=dict)
    name: str = ""

    @property
    def time(self) -> np.ndarray:
        return self.data[:, 0]

    @property
    def n_rows(self) -> int:
        return int(self.data.shape[0])

    def has(self, label: str) -> bool:
        return label in self.labels

    def column(self, label: str, *, role: str = "") -> np.ndarray:
        """The column named ``label``; a missing one is a ``FormatError`` at the label line."""
        if label not in self.labels:
            what = f" (needed for {role})" if role else ""
            shown = ", ".join(self.labels[:12]) + (" ..." if len(self.labels) > 12 else "")
            raise self.error(f"no column '{label}'{what}; the file has: {shown}", label=label)
        return self.data[:, self.labels.index(label)]

    def error(self, reason: str, *, row: int | None = None, label: str | None = None) -> FormatError:
        """A ``FormatError`` at data row ``row`` (0-based), or at the label line when ``row`` is None."""
        line = self.label_line if row is None or row >= len(self.row_lines) else int(self.row_lines[row])
        return FormatError(self.path, reason, line=line, column=label)

    def uniform_rate(self, *, rel_tol: float = 0.05) -> tuple[float, float]:
        """Sample rate (Hz) and start time (s) of a uniformly sampled table, fitted by least squares.

        Every step must lie within ``rel_tol`` of the median step (a dropped or repeated sample is a
        100 % step error, print rounding of the time column a fraction of a percent), and no sample may
        drift more than a quarter period from the fitted line. A rate within 1e-7 of a whole number of
        hertz is snapped to it, so a 2 kHz export reads as exactly 2000.0 despite rounded time stamps.
        """
        t = self.time
        steps = np.diff(t)
        typical = float(np.median(steps))
        bad = np.flatnonzero(np.abs(steps - typical) > rel_tol * typical)
        if bad.size:
            i = int(bad[0]) + 1
            raise self.error(
                f"time is not uniformly sampled: step {steps[i - 1]:.6g} s where the file's typical step is "
                f"{typical:.6g} s ({1.0 / typical:.6g} Hz): a dropped, repeated or jittered sample, or times "
                "printed with too few decimals",
                row=i, label=TIME)
        k = np.arange(t.size, dtype=np.float64)
        kc = k - k.mean()
        period = float(np.dot(kc, t - t.mean()) / np.dot(kc, kc))
        rate = 1.0 / period
        if round(rate) > 0 and abs(rate - round(rate)) <= 1e-7 * rate:
            rate = float(round(rate))
        t0 = float(np.mean(t - k / rate))
        drift = np.abs(t - (t0 + k / rate))
        j = int(np.argmax(drift))
        if drift[j] > 0.25 / rate:
            raise self.error(
                f"time drifts {drift[j]:.3g} s from a uniform {rate:.6g} Hz clock (more than a quarter "
                "period); the sample rate changes within the file", row=j, label=TIME)
        return rate, t0


def read_text_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark is dropped, any newline convention accepted)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except IsADirectoryError:
        raise FormatError(path, "is a folder, expected a file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FormatError(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", line=line) from None
    return text.splitlines()


def check_labels(path: str | os.PathLike, labels: Sequence[str], *, line: int) -> None:
    """Labels must be non-empty and unique, and the first one must be ``time``."""
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if not label:
            after = f" after '{labels[i - 1]}'" if i else ""
            raise FormatError(path, f"column {i + 1} has an empty label{after}", line=line)
        if label in seen:
            raise FormatError(path, f"duplicate column label '{label}'", line=line, column=label)
        seen.add(label)
    if not labels or labels[0] != TIME:
        found = f"'{labels[0]}'" if labels else "nothing"
        raise FormatError(path, f"the first column must be labelled '{TIME}', found {found}", line=line)


def parse_table(path: str | os.PathLike, labels: Sequence[str], label_line: int,
                rows: Sequence[tuple[int, str]], *, delimiter: str | None,
                header: Mapping[str, str] | None = None, header_lines: Mapping[str, int] | None = None,
                name: str = "") -> Table:
    """Parse data ``rows`` (line number, text) under ``labels`` into a checked ``Table``.

    ``delimiter`` is ``","`` for CSV and ``None`` for any run of whitespace (OpenSim). Rejected, each
    with its line and column: a ragged row, a non-numeric or empty cell, NaN or infinity, a time that
    does not increase; and fewer than two rows (a time series needs an interval).
    """
    labels = tuple(labels)
    check_labels(path, labels, line=label_line)
    if len(rows) < 2:
        line = rows[0][0] if rows else label_line
        raise FormatError(path, f"needs at least 2 data rows, found {len(rows)}", line=line)
    try:
        data = np.loadtxt([text for _, text in rows], delimiter=delimiter, dtype=np.float64, ndmin=2,
                          comments=None)
        if data.shape[1] != len(labels):
            raise ValueError(f"{data.shape[1]} columns")
    except ValueError as exc:
        _raise_first_bad_cell(path, labels, rows, delimiter)
        raise FormatError(path, f"unreadable data ({exc})", line=rows[0][0]) from None
    row_lines = np.array([n for n, _ in rows], dtype=np.int64)
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        raise FormatError(path, f"value {data[r, c]} is not a finite number", line=int(row_lines[r]),
                          column=labels[c])
    steps = np.diff(data[:, 0])
    back = np.flatnonzero(steps <= 0)
    if back.size:
        r = int(back[0]) + 1
        kind = "repeats" if steps[r - 1] == 0 else "goes back from"
        raise FormatError(path, f"time {data[r, 0]:.9g} s {kind} the previous row's {data[r - 1, 0]:.9g} s; "
                          "times must be strictly increasing", line=int(row_lines[r]), column=TIME)
    data.setflags(write=False)
    row_lines.setflags(write=False)
    return Table(path=str(path), labels=labels, data=data, row_lines=row_lines, label_line=label_line,
                 header=dict(header or {}), header_lines=dict(header_lines or {}), name=name)


def _raise_first_bad_cell(path, labels: tuple[str, ...], rows: Sequence[tuple[int, str]],
                          delimiter: str | None) -> None:
    for line, text in rows:
        cells = [c.strip() for c in text.split(delimiter)]
        if len(cells) != len(labels):
            if len(cells) < len(labels):
                raise FormatError(path, f"row has {len(cells)} cells but there are {len(labels)} columns",
                                  line=line, column=labels[len(cells)])
            raise FormatError(path, f"row has {len(cells)} cells but there are {len(labels)} columns "
                              f"(extra cells after the last column '{labels[-1]}')", line=line,
                              column=labels[-1])
        for label, cell in zip(labels, cells, strict=True):
            if not _is_number(cell):
                what = "an empty cell" if not cell else f"'{cell[:40]}' is not a number"
                raise FormatError(path, what, line=line, column=label)


def _is_number(cell: str) -> bool:
    if not cell or "_" in cell or any(ch.isspace() for ch in cell):
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(path: str | os.PathLike) -> Table:
    """Read a comma-separated time series: ``#`` comment lines, a label row ``time,...``, numeric rows.

    Labels may be quoted (spreadsheet exports quote them); numbers may not. Blank lines are skipped.
    """
    lines = read_text_lines(path)
    start = next((i for i, s in enumerate(lines) if s.strip() and not s.lstrip().startswith("#")), None)
    if start is None:
        raise FormatError(path, "file is empty (no label row)", line=max(len(lines), 1))
    labels = [label.strip() for label in next(csv.reader([lines[start]]))]
    rows = [(i + 1, s) for i, s in enumerate(lines[start + 1:], start=start + 1) if s.strip()]
    return parse_table(path, labels, start + 1, rows, delimiter=",")


def stack_columns(columns: Mapping[str, np.ndarray] | Table) -> tuple[tuple[str, ...], np.ndarray]:
    """Labels and an (n_rows, n_columns) float64 matrix from ``{label: 1-D array}`` (``time`` first)."""
    if isinstance(columns, Table):
        return columns.labels, np.asarray(columns.data, dtype=np.float64)
    labels = tuple(columns)
    if not labels or labels[0] != TIME:
        raise InputError(f"columns must start with '{TIME}', got {list(labels)[:3]}")
    arrays = [np.asarray(columns[k], dtype=np.float64) for k in labels]
    n = arrays[0].shape
    for label, a in zip(labels, arrays, strict=True):
        if a.ndim != 1 or a.shape != n:
            raise InputError(f"column '{label}' must be 1-D with {n[0]} values, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"column '{label}' holds NaN or infinite values")
    return labels, np.column_stack(arrays)


def format_rows(matrix: np.ndarray, *, delimiter: str) -> str:
    """Numeric rows as text in ``NUMBER_FORMAT``, one line per row."""
    buf = io.StringIO()
    np.savetxt(buf, matrix, fmt=NUMBER_FORMAT, delimiter=delimiter)
    return buf.getvalue()


def write_csv(path: str | os.PathLike, columns: Mapping[str, np.ndarray] | Table) -> Path:
    """Write ``{label: values}`` (``time`` first) as a CSV that ``read_csv`` reads back; atomic."""
    labels, matrix = stack_columns(columns)
    for label in labels:
        if not label or any(ch in label for ch in ',"\r\n') or label != label.strip():
            raise InputError(f"column label {label!r} cannot be written unquoted in a CSV header")
    return atomic_write_text(path, ",".join(labels) + "\n" + format_rows(matrix, delimiter=","))
