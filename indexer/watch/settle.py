"""When is a file complete? Debounced, per-path bookkeeping of file-system changes.

Every change to a path updates one :class:`Entry`; :meth:`Pending.ready` hands a path
to the writer once it is safe to read:

- a close-after-write (Linux inotify ``IN_CLOSE_WRITE``, watchdog's ``FileClosedEvent``)
  or a rename into place, followed by ``debounce`` seconds without another event; or
- size and mtime unchanged for ``settle`` seconds (platforms or observers that report
  no closes, files that appear without a write: hard links, moves from outside). When the
  platform reports closes and a write is still open (a write seen, no close yet), the
  stable window is ``open_factor`` x ``settle``: a writer pausing mid-file is not read.
- a path that no longer exists, ``debounce`` seconds after its last event (a deletion).

This is the approach of watchdog's own tricks and of tools like Syncthing (wait for the
file to stop changing before hashing it). Pure bookkeeping: the clock and ``stat`` are
passed in, so the rules are tested without a file system.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Stat = tuple[int, int] | None  # (size, mtime_ns), None when the path does not exist


def stat_of(path: str) -> Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class Entry:
    path: str
    last_event: float
    writing: bool = False  # a write seen and no close-after-write since (closes reported)
    closed: bool = False  # closed after its last write, or renamed into place
    moved_from: str | None = None  # the old path of a rename, for a move without decoding
    stat: Stat = None
    stable_since: float | None = None
    retries: int = 0


class Pending:
    """Paths waiting to be complete, bounded by ``max_pending`` (then :attr:`overflowed`).

    ``closes_reported``: whether the observer reports close-after-write (inotify).
    Times are seconds from any monotonic clock; all tuning options have documented
    defaults in :class:`indexer.watch.daemon.WatchOptions`.
    """

    def __init__(self, *, settle: float = 2.0, debounce: float = 0.2, open_factor: float = 3.0,
                 closes_reported: bool = False, max_pending: int = 50_000):
        self.settle, self.debounce, self.open_factor = settle, debounce, open_factor
        self.closes_reported, self.max_pending = closes_reported, max_pending
        self.entries: dict[str, Entry] = {}
        self.overflowed = False

    def __len__(self) -> int:
        return len(self.entries)

    def _entry(self, path: str, now: float, bound: bool = True) -> Entry:
        entry = self.entries.get(path)
        if entry is None:
            if bound and len(self.entries) >= self.max_pending:
                self.overflowed = True  # the daemon rescans instead of growing without bound
            entry = self.entries[path] = Entry(path, now)
        entry.last_event = now
        entry.stable_since = None  # restart the stable window on every event
        return entry

    def created(self, path: str, now: float, bound: bool = True) -> None:
        """A new file: taken as open for writing (its first writes may predate the watch
        of a brand-new folder), unless it was just renamed into place whole.

        ``bound=False`` for paths from a scan already held in memory: they never count
        towards ``max_pending`` (else a rescan could trigger the next one).
        """
        entry = self._entry(path, now, bound)
        if not entry.closed:
            entry.writing = self.closes_reported

    def written(self, path: str, now: float) -> None:
        """Bytes written (modified)."""
        entry = self._entry(path, now)
        entry.writing, entry.closed = self.closes_reported, False

    def touched(self, path: str, now: float) -> None:
        """Attributes changed (chmod, touch): no write in progress."""
        self._entry(path, now)

    def closed(self, path: str, now: float) -> None:
        """Closed after writing."""
        entry = self._entry(path, now)
        entry.writing, entry.closed = False, True

    def deleted(self, path: str, now: float) -> None:
        before = self.entries.get(path)
        if before is not None and before.moved_from is not None:
            # renamed, then deleted before the rename was handled (X -> Y, Y deleted): the
            # row lives at X, so X is the deletion (and Y, in case a row lived there);
            # forgetting X left its row live for a file gone (3 in 10,000 arrivals of the
            # watch soak, 2026-12-07)
            self.deleted(before.moved_from, now)
        entry = self._entry(path, now)
        entry.writing, entry.closed, entry.moved_from = False, False, None

    def moved(self, src: str | None, dest: str | None, now: float) -> None:
        """A rename: ``src`` is gone, ``dest`` is complete (either may be None: ignored).

        With a ``dest`` the writer handles ``src`` too (moving or retiring its row), so
        ``src`` is tracked as a deletion only when renamed to an ignored name.
        """
        if dest is None:
            if src is not None:
                self.deleted(src, now)
            return
        origin = src
        before = self.entries.get(src) if src is not None else None
        if before is not None and before.moved_from is not None:
            # renamed again before the first rename was handled (X -> Y -> Z): the row
            # lives at X, so Z moves it from there; Y's entry would only find Y gone and
            # leave X's row live beside a fresh decode of Z (found by the watch soak)
            origin = before.moved_from
            del self.entries[src]
        entry = self._entry(dest, now)
        entry.writing, entry.closed = False, True
        entry.moved_from = origin if origin != dest else None  # X -> Y -> X: X itself, unmoved

    def requeue(self, path: str, now: float) -> None:
        """Look at ``path`` again soon (after a worker crash)."""
        entry = self._entry(path, now)
        entry.closed, entry.retries = True, entry.retries + 1

    def clear(self) -> None:
        self.entries.clear()
        self.overflowed = False

    def is_ready(self, entry: Entry, now: float, stat: Callable[[str], Stat] = stat_of) -> bool:
        """Apply the rules above to one entry (updates its stable window)."""
        if now - entry.last_event < self.debounce:
            return False  # not quiet yet: no need to look at the disk
        current = stat(entry.path)
        if current is None or (entry.closed and not entry.writing):
            return True
        if current != entry.stat or entry.stable_since is None:
            entry.stat, entry.stable_since = current, now
        window = self.settle * (self.open_factor if entry.writing else 1.0)
        return now - entry.stable_since >= window

    def ready(self, now: float, *, limit: int, busy: frozenset[str] | set[str] = frozenset(),
              stat: Callable[[str], Stat] = stat_of) -> Iterator[Entry]:
        """Up to ``limit`` entries that are ready, removed from the registry, oldest first.

        Paths in ``busy`` (being analysed) wait: their new version is read afterwards.
        """
        taken = 0
        for path, entry in list(self.entries.items()):
            if taken >= limit:
                return
            if path in busy or not self.is_ready(entry, now, stat):
                continue
            del self.entries[path]
            taken += 1
            yield entry

    def next_wake(self, now: float) -> float:
        """Seconds until something may become ready (for the loop's sleep), at most 0.25."""
        return 0.05 if self.entries else 0.25
