"""Replace a file so that readers and crashes see the old or the new content, never half.

A temporary file in the same folder is written, flushed and fsynced, given ordinary
permissions (mkstemp makes 0600), renamed over the target (``os.replace`` is atomic on
POSIX), and the folder is fsynced so the rename itself survives a power cut. A process
killed between the two leaves its temporary file behind: the next replace of the same
target removes those older than :data:`STALE_AFTER` (younger ones may be another
writer's, still being written).
"""
from __future__ import annotations

import glob
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


def fsync_dir(folder: Path) -> None:
    """Make a rename or creation in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


STALE_AFTER = 3600.0  # seconds: no write of ours takes an hour; a kill -9 leftover does not grow


def sweep_leftovers(path: Path, *, older_than: float = STALE_AFTER) -> int:
    """Remove the temporary files of earlier replaces of ``path`` that a killed process
    left (``.NAME.*.tmp`` beside it, unchanged for ``older_than`` seconds); returns how many."""
    removed, cutoff = 0, time.time() - older_than
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
                removed += 1
        except OSError:
            pass  # gone meanwhile, or not ours to remove
    return removed


def replace_with(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Atomically replace ``path`` with what ``write(handle)`` writes to a binary handle
    (and sweep the leftovers of earlier replaces that were killed: :func:`sweep_leftovers`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return replace_with(path, lambda handle: handle.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
