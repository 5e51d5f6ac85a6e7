"""File operations that never lose a byte: a move is a rename, or a copy verified and
renamed into place before the source goes; a link replaces a file atomically (made
under a temporary name beside it, then renamed over it); a restore writes a copy,
checks its SHA-256 and modification time, then renames it into place.

Temporary names start with a dot, so ``photoqa index`` and ``watch`` ignore them.
Symbolic links are handled as links: moving one moves the link, never its target.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from indexer.atomicfile import fsync_dir

BLOCK = 1 << 20


class ContentMismatch(OSError):
    """A copy's bytes differ from what they must be."""


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the bytes at ``path`` (through a symbolic link: the bytes it shows)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def lexists(path: str | os.PathLike) -> bool:
    return os.path.lexists(path)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` (through links) are one file on the disk."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def link_to(path: str | os.PathLike, keeper: str | os.PathLike) -> str | None:
    """``"symlink"`` when ``path`` is a symbolic link resolving to ``keeper``'s file,
    ``"hardlink"`` when it is another name of the same inode, else None (a copy holding
    its own bytes, or gone)."""
    if not same_file(path, keeper):
        return None
    if os.path.islink(path):
        return "symlink"
    return None if os.path.islink(keeper) else "hardlink"


def unique_path(folder: Path, name: str, taken: Callable[[Path], bool] = lexists) -> Path:
    """``folder/name``, or ``folder/stem.2.ext``, ``stem.3.ext``... the first not ``taken``
    (``ext``: the last suffix)."""
    stem, ext = os.path.splitext(name)
    candidate = folder / name
    n = 2
    while taken(candidate):
        candidate = folder / f"{stem}.{n}{ext}"
        n += 1
    return candidate


def partial_name(dest: Path) -> Path:
    """Where a copy to ``dest`` is written before it is complete (a hidden name beside it)."""
    return dest.parent / f".{dest.name}.photoqa-part"


def link_temp_name(path: Path) -> Path:
    """Where a link that replaces ``path`` is made before it is renamed over it."""
    return path.parent / f".{path.name}.photoqa-link"


def _copy_verified(src: Path, dest: Path, sha256: str | None, mtime_ns: int | None) -> None:
    """Copy ``src`` (a link as a link) to ``dest`` through a partial name; check the bytes
    against ``sha256`` and give it ``mtime_ns`` (else the source's) before renaming it in."""
    part = partial_name(dest)
    part.unlink(missing_ok=True)
    try:
        if src.is_symlink():
            os.symlink(os.readlink(src), part)
        else:
            shutil.copy2(src, part)  # bytes, permission bits and times
            with open(part, "rb") as handle:
                os.fsync(handle.fileno())
            if sha256 is not None and sha256_file(part) != sha256:
                raise ContentMismatch(errno.EIO, f"the copy of {src} does not hold the expected bytes")
            if mtime_ns is not None:
                os.utime(part, ns=(mtime_ns, mtime_ns))
        if lexists(dest):
            raise FileExistsError(errno.EEXIST, "already exists", str(dest))
        os.rename(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def move(src: Path, dest: Path, *, sha256: str | None = None) -> None:
    """Move ``src`` to ``dest`` (which must not exist): a rename on one filesystem; across
    filesystems a copy whose bytes are checked against ``sha256``, renamed into place,
    and only then the source removed. A symbolic link moves as a link."""
    if lexists(dest):
        raise FileExistsError(errno.EEXIST, "already exists", str(dest))
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_verified(src, dest, sha256, None)
        os.unlink(src)
    fsync_dir(dest.parent)


def replace_with_link(path: Path, keeper: Path, kind: str) -> None:
    """Replace ``path`` by a hard link (``kind`` "hardlink") or a symbolic link ("symlink",
    to the keeper's absolute path) to ``keeper``, atomically: the link is made under a
    temporary name in the same folder, then renamed over ``path``."""
    tmp = link_temp_name(path)
    tmp.unlink(missing_ok=True)
    if kind == "hardlink":
        os.link(keeper, tmp)  # through a symbolic keeper to its file
    elif kind == "symlink":
        os.symlink(str(Path(os.path.abspath(keeper))), tmp)
    else:
        raise ValueError(f"unknown link kind {kind!r}")
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def is_link_to(path: Path, keeper: Path, kind: str) -> bool:
    """Whether ``path`` is now the ``kind`` link to ``keeper`` that :func:`replace_with_link` makes."""
    if kind == "symlink":
        return path.is_symlink() and os.readlink(path) == str(Path(os.path.abspath(keeper)))
    return not path.is_symlink() and same_file(path, keeper)


def restore_copy(source: Path, path: Path, *, sha256: str, mtime_ns: int) -> None:
    """Put an independent copy of ``source``'s bytes at ``path`` (replacing whatever link is
    there), checked against ``sha256``, with modification time ``mtime_ns``."""
    tmp = partial_name(path)
    tmp.unlink(missing_ok=True)
    try:
        shutil.copyfile(source, tmp)
        shutil.copymode(source, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if sha256_file(tmp) != sha256:
            raise ContentMismatch(errno.EIO, f"{source} no longer holds the bytes of {path}")
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def restore_symlink(path: Path, target: str) -> None:
    """Put the symbolic link ``path`` -> ``target`` back (replacing what is there)."""
    tmp = link_temp_name(path)
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
