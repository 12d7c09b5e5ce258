"""``check_output``: every writer's check before its work starts (issue 15, outputs)."""

import os
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from myoedge.ground.errors import InputError
from myoedge.ground.fileio import check_output, check_outputs_differ

names = st.text(alphabet=string.ascii_lowercase + "_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..") and not s.startswith("."))


def spellings(tmp_path, target):
    """Ways to name the same file: relative, with ./ and ../, through a symlink, a hard link."""
    rel = os.path.relpath(target)
    yield target
    yield rel
    yield os.path.join(os.path.dirname(target), ".", os.path.basename(target))
    yield os.path.join(os.path.dirname(target), "..", os.path.basename(os.path.dirname(target)),
                       os.path.basename(target))
    link = tmp_path / f"link-{os.path.basename(target)}"
    if not link.exists():
        link.symlink_to(target)
    yield link
    if os.path.isfile(target):
        hard = tmp_path / f"hard-{os.path.basename(target)}"
        if not hard.exists():
            os.link(target, hard)
        yield hard


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(names, min_size=1, max_size=3), as_folder=st.booleans(), overwrite=st.booleans())
def test_any_output_that_is_an_input_is_refused(tmp_path_factory, parts, as_folder, overwrite):
    root = tmp_path_factory.mktemp("io")
    target = root.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if as_folder:
        target.mkdir(exist_ok=True)
    else:
        target.write_text("precious")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for spelled in spellings(root, str(target)):
            with pytest.raises(InputError, match="input"):
                check_output(spelled, folder=as_folder, inputs=[str(target)], overwrite=overwrite)
            with pytest.raises(InputError, match="input"):  # the input named another way round
                check_output(str(target), folder=as_folder, inputs=[spelled], overwrite=overwrite)
    finally:
        os.chdir(cwd)
    assert target.is_dir() if as_folder else target.read_text() == "precious"


def test_a_folder_output_holding_an_input_and_a_file_inside_an_input_folder_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "s1").mkdir(parents=True)
    (data / "s1" / "emg.csv").write_text("1")
    with pytest.raises(InputError, match="holds this command's input"):
        check_output(tmp_path, folder=True, inputs=[data / "s1"], overwrite=True)
    with pytest.raises(InputError, match="part of this command's input"):
        check_output(data / "s1" / "emg.csv", inputs=[data], overwrite=True)
    assert check_output(data / "s1" / "new.csv", inputs=[data]) == data / "s1" / "new.csv"  # new: harmless


def test_kind_existence_and_writability(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a folder; a file name"):
        check_output(tmp_path / "d")
    with pytest.raises(InputError, match="is a file; a folder"):
        check_output(tmp_path / "f", folder=True, overwrite=True)
    with pytest.raises(InputError, match="already exists; pass --overwrite.*f.prev"):
        check_output(tmp_path / "f")
    assert check_output(tmp_path / "f", overwrite=True) == tmp_path / "f"
    with pytest.raises(InputError, match="f is not a folder"):
        check_output(tmp_path / "f" / "g" / "h")
    with pytest.raises(InputError, match="not a regular file"):
        check_output("/dev/null", overwrite=True)
    with pytest.raises(InputError, match="cannot write into /proc"):
        check_output("/proc/nope/r", folder=True)
    with pytest.raises(InputError, match="needs a path"):
        check_output("")
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    with pytest.raises(InputError, match="dangling symlink"):
        check_output(tmp_path / "dangling")
    # a folder written into (merge) may exist; a missing parent chain is fine if it can be created
    assert check_output(tmp_path / "d", folder=True, merge=True) == tmp_path / "d"
    assert check_output(tmp_path / "new" / "deeper" / "x.json") == tmp_path / "new" / "deeper" / "x.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "dangling", "f"]  # the checks wrote nothing


def test_read_only_folder_is_refused(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root may write into it anyway: stand in the refusal any other user gets
        real = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir) == ro:
                raise PermissionError(13, "Permission denied", str(ro))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(InputError, match="cannot write into"):
            check_output(ro / "x.json")
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_an_in_place_update_is_the_one_input_that_may_be_replaced(tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text("{}")
    assert check_output(profile, inputs=[profile], update=profile) == profile
    other = tmp_path / "q.json"
    other.write_text("{}")
    with pytest.raises(InputError, match="already exists"):
        check_output(other, inputs=[profile], update=profile)


def test_two_outputs_of_one_command_must_differ(tmp_path):
    with pytest.raises(InputError, match="--out and --cache are the same path"):
        check_outputs_differ(("--out", tmp_path / "a"), ("--cache", tmp_path / "." / "a"))
    check_outputs_differ(("--out", tmp_path / "a"), ("--cache", None))
