"""OpenSim storage files: the reader against files laid out as OpenSim documents and writes them."""

from __future__ import annotations

import numpy as np
import pytest

from myoedge.body.opensim import read_storage, storage_in_degrees, write_storage
from myoedge.ground.errors import FormatError, InputError

UNITS_NOTE = ("\nUnits are S.I. units (second, meters, Newtons, ...)\n"
              "If the header above contains a line with 'inDegrees', this indicates whether rotational "
              "values are in degrees (yes) or radians (no).\n\n")


def ik_mot(n: int = 4, *, in_degrees: str | None = "yes") -> str:
    """An inverse-kinematics .mot as OpenSim 3.x writes it: name, settings, a units note, fixed-width rows."""
    flag = f"inDegrees={in_degrees}\n" if in_degrees is not None else ""
    rows = "".join(f"{0.01 * i:16.8f}\t{0.9 + 0.001 * i:16.8f}\t{-10.0 * i:16.8f}\n" for i in range(n))
    return (f"Coordinates\nversion=1\nnRows={n}\nnColumns=3\n{flag}{UNITS_NOTE}endheader\n"
            "time\tpelvis_ty\tknee_angle_r\n" + rows)


def write(tmp_path, text: str, name: str = "trial.mot"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_ik_mot_header_labels_and_rows(tmp_path):
    table = read_storage(write(tmp_path, ik_mot()))
    assert table.name == "Coordinates"
    assert table.labels == ("time", "pelvis_ty", "knee_angle_r")
    assert storage_in_degrees(table) is True
    assert table.header["nRows"] == "4" and table.header_lines["nRows"] == 3
    np.testing.assert_allclose(table.column("knee_angle_r"), [0.0, -10.0, -20.0, -30.0])
    np.testing.assert_allclose(table.time, [0.0, 0.01, 0.02, 0.03])
    assert table.label_line == 11 and list(table.row_lines) == [12, 13, 14, 15]


def test_reads_opensim4_table_without_counts(tmp_path):
    text = ("DataRate=100.000000\nDataType=double\nversion=3\nOpenSimVersion=4.4\ninDegrees=no\nendheader\n"
            "time\tknee_angle_r_moment\t\n0\t1.5\n0.01\t2.5\n")
    table = read_storage(write(tmp_path, text, "inverse_dynamics.sto"))
    assert table.name == "" and storage_in_degrees(table) is False
    assert table.labels == ("time", "knee_angle_r_moment")
    np.testing.assert_allclose(table.data, [[0, 1.5], [0.01, 2.5]])


def test_missing_in_degrees_is_reported_as_unknown(tmp_path):
    assert storage_in_degrees(read_storage(write(tmp_path, ik_mot(in_degrees=None)))) is None


def test_write_storage_round_trips_and_counts(tmp_path):
    t = np.linspace(0.0, 1.0, 11)
    cols = {"time": t, "knee_angle_r": np.degrees(np.sin(t)), "hip_flexion_r": np.cos(t) * 1e-3}
    path = write_storage(tmp_path / "out.mot", cols, name="Coordinates", in_degrees=True)
    table = read_storage(path)
    assert table.name == "Coordinates" and storage_in_degrees(table) is True
    assert table.header["nRows"] == "11" and table.header["nColumns"] == "3"
    for label, values in cols.items():
        np.testing.assert_allclose(table.column(label), values, rtol=1e-11, atol=1e-15)
    again = write_storage(tmp_path / "again.sto", table, name="copy", in_degrees=False)
    np.testing.assert_array_equal(read_storage(again).data, table.data)


def test_write_storage_refuses_bad_input(tmp_path):
    with pytest.raises(InputError, match="start with 'time'"):
        write_storage(tmp_path / "x.sto", {"t": np.arange(3.0)}, name="x", in_degrees=False)
    with pytest.raises(InputError, match="whitespace"):
        write_storage(tmp_path / "x.sto", {"time": np.arange(3.0), "a b": np.zeros(3)}, name="x",
                      in_degrees=False)
    with pytest.raises(InputError, match="name"):
        write_storage(tmp_path / "x.sto", {"time": np.arange(3.0)}, name="a=b", in_degrees=False)
    assert not (tmp_path / "x.sto").exists()


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


GOOD = ik_mot()
# (broken file text, expected line, expected column or None, words the reason must contain)
MALFORMED = {
    "no endheader": (_replace(GOOD, "endheader\n", ""), 14, None, "endheader"),
    "nRows disagrees": (_replace(GOOD, "nRows=4", "nRows=5"), 3, "nRows", "4 data rows"),
    "nColumns disagrees": (_replace(GOOD, "nColumns=3", "nColumns=4"), 4, "nColumns", "3 columns"),
    "nRows not a number": (_replace(GOOD, "nRows=4", "nRows=four"), 3, "nRows", "whole number"),
    "inDegrees not yes/no": (_replace(GOOD, "inDegrees=yes", "inDegrees=true"), 5, "inDegrees", "'yes' or"),
    "setting repeated": (_replace(GOOD, "version=1\n", "version=1\nnColumns=3\n"), 5, "nColumns", "twice"),
    "unknown version": (_replace(GOOD, "version=1", "version=9"), 2, "version", "version 9"),
    "quaternion table": (_replace(GOOD, "version=1", "DataType=Quaternion"), 2, "DataType", "double"),
    "non-numeric cell": (_replace(GOOD, "-10.00000000", "abc"), 13, "knee_angle_r", "'abc'"),
    "NaN cell": (_replace(GOOD, "-20.00000000", "nan"), 14, "knee_angle_r", "finite"),
    "ragged row": (_replace(GOOD, "\t    -30.00000000", ""), 15, "knee_angle_r", "2 cells"),
    "extra cell": (_replace(GOOD, "-30.00000000", "-30.0\t7"), 15, "knee_angle_r", "extra"),
    "duplicate label": (_replace(GOOD, "pelvis_ty\t", "knee_angle_r\t"), 11, "knee_angle_r", "duplicate"),
    "empty label": (_replace(GOOD, "\tpelvis_ty\t", "\t\t"), 11, None, "empty label after 'time'"),
    "no time column": (_replace(GOOD, "time\t", "frame\t"), 11, None, "labelled 'time'"),
    "time goes back": (_replace(GOOD, "0.02000000\t", "0.00500000\t"), 14, "time", "goes back"),
    "time repeats": (_replace(GOOD, "0.02000000\t", "0.01000000\t"), 14, "time", "repeats"),
    "no label line": (GOOD.split("time\t")[0], 10, None, "no column label"),
    "one data row": (_replace(_replace(GOOD, "nRows=4", "nRows=1"), GOOD[GOOD.index("      0.01"):], ""),
                     12, None, "at least 2"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_storage_names_file_line_and_column(tmp_path, case):
    text, line, column, words = MALFORMED[case]
    path = write(tmp_path, text)
    with pytest.raises(FormatError) as info:
        read_storage(path)
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), line, column)
    assert words in err.reason
    assert str(path) in str(err) and f"line {line}" in str(err)
    if column:
        assert f"column '{column}'" in str(err)


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        read_storage(tmp_path / "absent.sto")
