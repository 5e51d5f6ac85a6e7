"""From watchdog events to a queue of plain changes, filtered like ``photoqa index`` walks.

The handler runs on watchdog's dispatcher thread and only appends tuples to a queue;
the daemon's main thread drains it into :class:`indexer.watch.settle.Pending`. Names
``index`` would skip are dropped here: temporary and partial names (``.tmp``, ``.part``,
``.crdownload``, ``~`` suffixes, dotfiles; see :func:`indexer.pipeline.scan.is_hidden_or_partial`)
and anything inside a hidden folder. Our own workers' reads (open, close-without-write)
are never subscribed, so reading a file cannot trigger its own re-index.
"""
from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileAttribEvent,
                             FileClosedEvent, FileCreatedEvent, FileDeletedEvent,
                             FileModifiedEvent, FileMovedEvent, FileSystemEvent,
                             FileSystemEventHandler)

from indexer.fileops.trash import in_trash
from indexer.pipeline.scan import is_hidden_or_partial

# Event classes the observer must deliver (inotify is asked for nothing else).
WANTED = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileDeletedEvent,
          FileMovedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


@dataclass(frozen=True)
class Change:
    """``kind``: created | written | touched | closed | deleted | moved | dir_created |
    dir_moved_in | dir_deleted.

    ``path`` is None for a move whose source was an ignored name (an atomic write's
    temporary file); ``dest`` is set for moves only (None when moved to an ignored name
    or out of the watched folders). ``at`` is ``time.monotonic()`` at arrival.
    """

    kind: str
    path: str | None
    dest: str | None = None
    at: float = 0.0


def ignored(path: str, roots: list[str]) -> bool:
    """Whether ``index`` would skip ``path``: a partial/hidden name, a hidden folder, or a
    trash can (``indexer.fileops.trash.in_trash``: where ``dupes --apply trash`` puts files).

    ``roots`` are resolved absolute folders; a path outside all of them is ignored too.
    """
    if in_trash(path):
        return True
    for root in roots:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            rel = Path(path[len(root):].lstrip(os.sep)).parts
            return any(part.startswith(".") for part in rel[:-1]) or (
                bool(rel) and is_hidden_or_partial(rel[-1]))
    return True


class ChangeQueue(FileSystemEventHandler):
    """A watchdog handler that turns events into :class:`Change` tuples on ``queue``."""

    def __init__(self, roots: list[str]):
        self.roots = roots
        self.queue: queue.SimpleQueue[Change] = queue.SimpleQueue()

    def _keep(self, path) -> str | None:
        path = os.fsdecode(path) if path else ""
        return None if not path or ignored(path, self.roots) else path

    def _put(self, kind: str, path: str | None, dest: str | None = None) -> None:
        self.queue.put(Change(kind, path, dest, time.monotonic()))

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = _KINDS.get(type(event))
        if kind is None:
            return
        src = self._keep(event.src_path)
        if kind in ("moved", "dir_moved"):
            dest = self._keep(getattr(event, "dest_path", ""))
            if kind == "dir_moved":
                # inside the tree its files get their own move events; moved in from
                # outside, its files are complete; moved out, its rows are missing
                if dest is not None and src is None:
                    self._put("dir_moved_in", dest)
                elif src is not None and dest is None:
                    self._put("dir_deleted", src)
                return
            if src is not None or dest is not None:
                self._put("moved", src, dest)
        elif src is not None:
            self._put(kind, src)

    def drain(self, limit: int = 10_000) -> list[Change]:
        """Up to ``limit`` queued changes, without waiting."""
        out = []
        try:
            while len(out) < limit:
                out.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return out


_KINDS = {
    FileCreatedEvent: "created", FileModifiedEvent: "written", FileAttribEvent: "touched",
    FileClosedEvent: "closed", FileDeletedEvent: "deleted", FileMovedEvent: "moved",
    DirCreatedEvent: "dir_created", DirDeletedEvent: "dir_deleted", DirMovedEvent: "dir_moved",
}
