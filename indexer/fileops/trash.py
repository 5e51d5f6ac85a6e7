"""A trash can as the freedesktop.org Trash specification 1.0 describes it (what GNOME,
KDE, Xfce and ``gio trash`` use), so trashed photos can be restored by a file manager
too: https://specifications.freedesktop.org/trash-spec/1.0/

A file on the filesystem of the home trash (``$XDG_DATA_HOME/Trash``, by default
``~/.local/share/Trash``) goes there; a file on another filesystem goes to that
filesystem's trash, ``$topdir/.Trash/$uid`` when an administrator made ``$topdir/.Trash``
(a directory, not a link, with the sticky bit), else ``$topdir/.Trash-$uid``, so trashing
is always a rename, never a copy. Each trashed ``files/NAME`` has ``info/NAME.trashinfo``::

    [Trash Info]
    Path=/home/me/Pictures/IMG%201.jpg
    DeletionDate=2026-12-03T10:15:00

``Path`` is the absolute original path, URL-escaped; the date is local time. The info
file is created first, exclusively, which reserves NAME (``IMG 1.2.jpg`` when
``IMG 1.jpg`` is taken).
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from indexer.fileops.files import lexists, unique_path


class TrashError(OSError):
    """No trash can be used for a file."""


def data_home() -> Path:
    value = os.environ.get("XDG_DATA_HOME")
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".local" / "share"


def home_trash() -> Path:
    return data_home() / "Trash"


@lru_cache(maxsize=8)
def _home_trash_texts(data_home_value: str) -> tuple[str, ...]:
    folder = os.path.join(os.path.abspath(data_home_value), "Trash")
    return tuple({folder, os.path.realpath(folder)})


def in_trash(path: str) -> bool:
    """Whether ``path`` (absolute) lies in a trash can: the home trash (as written or
    with links resolved), or a folder ``.Trash`` / ``.Trash-*`` of a filesystem's top."""
    for home in _home_trash_texts(str(data_home())):
        if path == home or path.startswith(home.rstrip(os.sep) + os.sep):
            return True
    return any(part == ".Trash" or part.startswith(".Trash-") for part in Path(path).parts)


def mount_point(path: Path) -> Path:
    """The top directory of the filesystem holding ``path`` (an existing folder)."""
    path = Path(os.path.abspath(path))
    dev = os.stat(path).st_dev
    while path.parent != path and os.stat(path.parent).st_dev == dev:
        path = path.parent
    return path


def _private_dir(folder: Path) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise TrashError(errno.ENOTDIR, "not a folder", str(folder))
    return folder


def trash_dir_for(path: Path) -> Path:
    """The trash can for ``path`` (created if needed), on the filesystem of ``path``."""
    dev = os.lstat(path).st_dev
    home = home_trash()
    try:
        _private_dir(home)
        if os.stat(home).st_dev == dev:
            return home
    except OSError:
        pass  # no usable home trash: the file's own filesystem may have one
    top = mount_point(path.parent)
    uid = os.getuid()
    admin = top / ".Trash"
    try:
        st = os.lstat(admin)
        if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
            return _private_dir(admin / str(uid))
    except OSError:
        pass
    try:
        own = _private_dir(top / f".Trash-{uid}")
        if os.lstat(own).st_uid != uid:
            raise TrashError(errno.EPERM, "owned by another user", str(own))
        return own
    except OSError as exc:
        raise TrashError(errno.EACCES, f"no trash can on the filesystem of {path} "
                                       f"(cannot use {home} or {top / f'.Trash-{uid}'}: {exc.strerror or exc})") from exc


@dataclass(frozen=True)
class Slot:
    """A reserved place in a trash can: the file's new path and its info file."""

    file: Path
    info: Path

    def release(self) -> None:
        """Give the reservation up (the file was not moved)."""
        self.info.unlink(missing_ok=True)


def info_of(trashed: Path) -> Path:
    """The ``.trashinfo`` file of a trashed ``files/NAME``."""
    return trashed.parent.parent / "info" / f"{trashed.name}.trashinfo"


def trashinfo(original: Path, when: datetime | None = None) -> str:
    when = when or datetime.now()
    return (f"[Trash Info]\nPath={quote(os.fsencode(os.path.abspath(original)))}\n"
            f"DeletionDate={when.strftime('%Y-%m-%dT%H:%M:%S')}\n")


def reserve(path: Path) -> Slot:
    """Reserve a name for ``path`` in its trash can by writing the info file (exclusively);
    the caller then renames ``path`` to ``Slot.file`` (or calls ``Slot.release``)."""
    can = trash_dir_for(path)
    files, info = _private_dir(can / "files"), _private_dir(can / "info")
    content = trashinfo(path).encode("utf-8")
    while True:
        name = unique_path(files, path.name, lambda p: lexists(p) or lexists(info_of(p))).name
        try:
            fd = os.open(info / f"{name}.trashinfo", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # taken meanwhile: the next name
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        return Slot(files / name, info / f"{name}.trashinfo")
