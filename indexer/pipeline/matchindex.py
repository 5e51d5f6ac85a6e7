"""The matching stage's index across runs: saved beside the database, loaded at the next
start and brought up to date from the rows changed since (``images.revision``).

Reading every row and building their index costs seconds at a million images; loading
the saved index and reading the few rows changed since costs a fraction of it
(bench/match_startup.py has the figures).
The saved file is a cache of the database, checked before use: it must belong to this
database (``photoqa_meta.instance``), have been built with the same index settings, and
it is replayed from a little before its revision (writers on PostgreSQL may commit
out of revision order; replaying a row already held costs a comparison). Rows deleted
since (a moved file replacing another's row) are found by counting the present rows,
and then by listing their ids. Anything unusable is rebuilt from the database.
"""
from __future__ import annotations

import hashlib
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from db import indexrows
from db import pairs as dbpairs
from indexer.config import MatchSettings
from indexer.match import snapshot
from indexer.match.engine import Matcher
from indexer.match.params import MatchParams

REPLAY = 1000  # revisions replayed before the saved one (out-of-order commits)


def index_file(url: str, configured: str) -> Path | None:
    """Where the saved index lives (``[match] index_file``): '' beside a SQLite database
    (``<database>.match-index``) or under ``~/.cache/photoqa/match/`` for other URLs;
    'off' never saves one."""
    from db.engine import sqlite_path

    if configured == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    db_file = sqlite_path(url)
    if db_file is not None:
        return db_file.with_name(db_file.name + ".match-index")
    return Path.home() / ".cache" / "photoqa" / "match" / hashlib.sha1(url.encode()).hexdigest()[:12]


@dataclass
class Mark:
    """The database state an index is up to date with: the highest revision read and
    how many rows were present then."""

    revision: int
    present: int


@dataclass
class Started:
    matcher: Matcher
    mark: Mark
    how: str  # "loaded" (saved index + catch-up) or "built" (every row read), and why
    changed: int = 0  # images not in the saved index: all of them when built, else those the catch-up changed


class IndexKeeper:
    """Opens the matching index for a stage and saves it for the next one.

    ``params``, ``pixels_equal``: the :class:`~indexer.match.engine.Matcher`'s (its
    records come from the database); ``min_images``: smaller archives are rebuilt every
    time (under a second) and leave no file behind; ``resave_after``: a run saves the
    index at its end only when at least this many images changed since the saved one (a
    million-image index costs ~4 s to write; the next start replays fewer rows in a
    fraction of a second).
    """

    def __init__(self, engine: Engine, path: Path | None, params: MatchParams = MatchParams(), *,
                 pixels_equal=None, min_images: int = MatchSettings.index_file_min,
                 resave_after: int = MatchSettings.index_file_resave):
        self.engine, self.path, self.min_images, self.resave_after = engine, path, min_images, resave_after
        self.params, self.pixels_equal, self.loader = params, pixels_equal, dbpairs.loader(engine)
        self.th = params.thresholds
        self.key = snapshot.config_key(params)
        self.instance = indexrows.instance_id(engine)
        self._saving: threading.Thread | None = None

    def open(self) -> Started:
        """A matcher holding every present image: the saved one brought up to date, else
        one built from every row. (Images about to be matched again are held too: adding
        an image the matcher holds replaces it.)"""
        reason = "no saved index" if self.path is None else ""
        if self.path is not None:
            try:
                m, info = snapshot.load(self.path, self.key, self.params, loader=self.loader,
                                        pixels_equal=self.pixels_equal)
                if info.get("instance") != self.instance:
                    raise snapshot.Unusable("saved for another database")
                mark = Mark(**info["mark"])
                mark, changed = self.catch_up(m, mark)
                return Started(m, mark, "loaded", changed)
            except snapshot.Unusable as exc:
                reason = str(exc)
        mark = self.read_mark()  # before the rows: rows written meanwhile are replayed next time
        rows = indexrows.load_index_rows(self.engine, self.th)
        m = Matcher.from_rows(rows, self.params, loader=self.loader, pixels_equal=self.pixels_equal)
        m.end_batch()  # incremental mode only: no batch join over these rows
        out = Started(m, mark, f"built ({reason})", len(rows))
        if self.path is not None and len(rows) >= self.min_images:
            self.save(m, mark, background=True)
        return out

    def read_mark(self) -> Mark:
        head = indexrows.changes_since(self.engine, self.th, 2**62)
        return Mark(head.revision, head.n_present)

    def catch_up(self, m: Matcher, mark: Mark) -> tuple[Mark, int]:
        """Apply the rows changed after ``mark`` to ``m``; returns the new mark and how
        many images changed.

        Deleted rows leave no changed row behind: when ``m`` then holds another number of
        images than the table has present rows, the two id sets are compared (one read
        of the ids, ~0.3 s at a million) and reconciled."""
        ch = indexrows.changes_since(self.engine, self.th, max(0, mark.revision - REPLAY))
        changed = m.sync(ch.present, ch.gone)
        if len(m.index) != ch.n_present:
            held_ids = m.index.held_ids()
            alive = indexrows.present_ids(self.engine)
            stale, unheld = held_ids[~np.isin(held_ids, alive)], alive[~np.isin(alive, held_ids)]
            m.forget(stale.tolist())
            for start in range(0, len(unheld), 500):  # bound the IN list
                m.insert(indexrows.load_index_rows(self.engine, self.th, ids=unheld[start:start + 500].tolist()))
            changed += len(stale) + len(unheld)
        return Mark(ch.revision, ch.n_present), changed

    def save(self, m: Matcher, mark: Mark, *, background: bool = False) -> None:
        """Save ``m`` as up to date with ``mark`` (compacted first if a fifth of its entries
        are dead). ``background``: the file is written by a thread (the arrays are taken
        now); a later save or :meth:`wait` waits for it."""
        if self.path is None:
            return
        if m.index.dead_entries > m.index.entry_count // 5:
            m.compact()
        info = {"config": self.key, "instance": self.instance, "mark": vars(mark),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        state = snapshot.state_of(m)
        self.wait()
        if background:
            self._saving = threading.Thread(target=self._write, args=(state, info), daemon=True)
            self._saving.start()
        else:
            self._write(state, info)

    def _write(self, state: dict, info: dict) -> None:
        try:
            snapshot.save(self.path, state, info)
        except OSError as exc:  # a cache: the next start rebuilds it from the database
            sys.stderr.write(f"photoqa: could not save the matching index to {self.path}: {exc} "
                             "(the next start rebuilds it)\n")

    def save_if_due(self, m: Matcher | None, mark: Mark | None, unsaved: int, *,
                    background: bool = False) -> Mark | None:
        """Bring ``m`` up to date (its own adds are rows it holds already) and save it, when
        ``unsaved`` images changed since the saved index (``resave_after``) and the
        archive is large enough to be worth it; returns the mark saved, else None."""
        if (m is None or mark is None or self.path is None or unsaved < self.resave_after
                or len(m.index) < self.min_images):
            return None
        mark, _ = self.catch_up(m, mark)
        self.save(m, mark, background=background)
        return mark

    def close(self, m: Matcher | None, mark: Mark | None, unsaved: int) -> None:
        """At the end of a run: :meth:`save_if_due`, and wait for any save in progress."""
        self.save_if_due(m, mark, unsaved)
        self.wait()

    def wait(self) -> None:
        if self._saving is not None:
            self._saving.join()
            self._saving = None

