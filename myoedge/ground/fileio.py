"""Atomic file and folder writes, and the checks every writer makes before its work starts.

An interrupted write never leaves a half-written file behind; ``check_output`` refuses, up front, an
output that could not be delivered or would replace an input or an existing file without ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from myoedge.ground.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, keep_previous: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename.

    With ``keep_previous`` an existing file is first copied to ``<name>.prev`` (one generation kept).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace_file(tmp, path, keep_previous=keep_previous)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, keep_previous: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), keep_previous=keep_previous)


def replace_file(new: str | os.PathLike, path: str | os.PathLike, *, keep_previous: bool) -> None:
    """Rename ``new`` over ``path`` in one step; with ``keep_previous`` an existing ``path`` is first
    copied to ``<name>.prev`` (one generation kept)."""
    path = Path(path)
    if keep_previous and path.is_file():
        shutil.copy2(path, path.with_name(path.name + ".prev"))
    os.replace(new, path)


def replace_folder(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the folder ``new`` at ``path``; an existing folder there is moved aside first and removed once
    the new one is in place (a hidden ``.<name>.old`` sibling in between)."""
    path = Path(path)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it is renamed to ``path`` in one step.

    On any exception the temporary folder is removed and ``path`` is left as it was. An existing
    ``path`` is replaced only with ``overwrite`` (the old one is removed after the new one is ready).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------- checks before the work

def check_output(path: str | os.PathLike | None, *, folder: bool = False, inputs=(), overwrite: bool = False,
                 merge: bool = False, update: str | os.PathLike | None = None, flag: str = "--out") -> Path:
    """Refuse, before any work starts, an output that cannot be delivered or would destroy something.

    ``folder`` says whether the output is a folder (else a file). The checks, each an ``InputError``
    naming ``flag`` and the path: the nearest existing ancestor is a writable folder (probed by creating
    and removing a temporary file, so it holds for root and for read-only mounts too); the target is of
    the kind wanted (a file is not a folder, nor a device, pipe or socket); it is none of ``inputs`` (same
    inode or same resolved path) and, for a folder, holds none of them; an existing target is replaced
    only with ``overwrite`` (``merge``: a folder written into, such as a dataset that new subjects join,
    may exist). ``update`` is the one input this output may replace in place (a profile that a
    calibration updates, keeping ``<name>.prev``); pass the same object in ``inputs``. Returns the path.
    """
    if path is None or str(path).strip() == "":
        raise InputError(f"{flag} needs a path, got {str(path)!r}")
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise InputError(f"{flag} {p}: a dangling symlink (to {os.readlink(p)}); remove it or choose another "
                         "path")
    exists = p.exists()
    if exists and folder and not p.is_dir():
        raise InputError(f"{flag} {p} is a file; a folder is needed here")
    if exists and not folder:
        if p.is_dir():
            raise InputError(f"{flag} {p} is a folder; a file name is needed here")
        if not p.is_file():
            raise InputError(f"{flag} {p} is not a regular file (a device, pipe or socket); choose a file "
                             "path")
    in_place = update is not None and exists and _same(p, Path(update))
    for given in inputs:
        if given is None or in_place and given is update:  # the one input updated in place, not its twins
            continue
        _refuse_input(p, Path(given), folder=folder, flag=flag)
    _check_writable(p, flag=flag)
    if exists and not (overwrite or in_place or (folder and merge)):
        kept = "" if folder else f" (the old one is kept as {p.name}.prev)"
        raise InputError(f"{flag} {p} already exists; pass --overwrite to replace it{kept}")
    return p


def check_outputs_differ(*paths) -> None:
    """Refuse two outputs of one command that are the same path (one would overwrite the other)."""
    named = [(flag, Path(p)) for flag, p in paths if p is not None]
    for i, (flag_a, a) in enumerate(named):
        for flag_b, b in named[i + 1:]:
            if _same(a, b) or a.resolve() == b.resolve():
                raise InputError(f"{flag_a} and {flag_b} are the same path {a}; give each its own")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _refuse_input(p: Path, given: Path, *, folder: bool, flag: str) -> None:
    if _same(p, given):
        raise InputError(f"{flag} {p} is one of this command's inputs; writing it would destroy that input")
    if not given.exists():
        return
    target, source = p.resolve(), given.resolve()
    if folder and target in source.parents:
        raise InputError(f"{flag} {p} holds this command's input {given}; replacing it would destroy "
                         "that input")
    if given.is_dir() and p.exists() and source in target.parents:
        raise InputError(f"{flag} {p} is part of this command's input {given}; replacing it would damage "
                         "that input")


def _check_writable(p: Path, *, flag: str) -> None:
    ancestor = p.parent if str(p.parent) else Path(".")
    while not ancestor.exists() and not ancestor.is_symlink():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{flag} {p}: cannot be created, {ancestor} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".myoedge-probe.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{flag} {p}: cannot write into {ancestor} ({e.strerror or e})") from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in blocks (engines and models run to tens of MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
