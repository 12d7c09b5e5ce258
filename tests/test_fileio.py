import os
import stat

import pytest

from myoedge.ground.fileio import atomic_directory, atomic_write_text


def test_atomic_write_replaces_and_keeps_previous(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two", keep_previous=True)
    assert p.read_text() == "two" and (tmp_path / "a.json.prev").read_text() == "one"
    mode = stat.S_IMODE(os.stat(p).st_mode)
    assert mode & 0o044  # readable by others under the usual umask, not mkstemp's 0600


def test_failed_directory_write_leaves_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as d:
            (d / "half.csv").write_text("1,2")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_directory_overwrite_is_explicit(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as d:
        (d / "x").write_text("old")
    with pytest.raises(FileExistsError):
        with atomic_directory(target):
            pass
    with atomic_directory(target, overwrite=True) as d:
        (d / "y").write_text("new")
    assert sorted(f.name for f in target.iterdir()) == ["y"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out"]
