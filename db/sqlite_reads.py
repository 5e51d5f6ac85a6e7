"""The reads of `photoqa status` and `photoqa dupes` on a SQLite file, by the stdlib
``sqlite3`` alone.

Importing SQLAlchemy and declaring the models costs ~0.4 s of CPU (``python -X
importtime``: ``sqlalchemy`` 0.24 s, ``db.models`` 0.16 s, 2026-12-07), most of what these
two commands may take (issue 13 item 4: <= 0.5 s wall). The queries they run are few and
fixed, so on a SQLite file they run here, returning what :mod:`db.heartbeat`,
:mod:`db.pairs` and :mod:`db.queries` return for the same database: the same values,
with SQLAlchemy's conversions done by hand (``DateTime`` columns, stored by SQLAlchemy's
SQLite dialect as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, parsed back to naive datetimes;
``Boolean`` columns, stored as 0/1, to bool). ``tests/test_sqlite_reads.py`` compares both
roads on a planted database. PostgreSQL and any ``--db`` URL go through SQLAlchemy.

:func:`open_reader` answers None when the file needs a writer's attention first (not at
the newest schema, or ``image_groups`` computed with other group verdicts): then the
command opens its SQLAlchemy session, which migrates and rebuilds as before.
"""
from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from db.records import Counts, DaemonRow, fold_decisions
from db.sqlite_ro import deny_attach, hamming, readonly_uri

CHUNK = 500  # ids per IN list, as db.groups.CHUNK
VERDICTS_KEY = "group_verdicts"  # as db.groups.VERDICTS_KEY

# the columns and names of db.pairs.all_pairs's rows
PairRow = namedtuple("PairRow", "a b verdict hamming transform shift_x shift_y scale correlation hist_similarity "
                                "delta_ev delta_ev_exif time_gap_s description same_camera same_shot detail_gain detail_above")


def _time(value) -> datetime | None:
    """A ``DateTime`` column's stored text as SQLAlchemy's SQLite dialect returns it."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _bool(value) -> bool | None:
    return None if value is None else bool(value)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ids = sorted(set(ids))
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _marks(chunk: list[int]) -> str:
    return ",".join("?" * len(chunk))


class SqliteReads:
    """One read-only connection to a photoqa SQLite file and the report queries on it."""

    def __init__(self, path: Path, *, busy_timeout_ms: int):
        self.path = path
        self.conn = sqlite3.connect(readonly_uri(path), uri=True)
        self.conn.create_function("hamming", 2, hamming, deterministic=True)
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self.conn.set_authorizer(deny_attach)
        self.conn.execute("PRAGMA query_only = ON")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SqliteReads:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _all(self, sql: str, params: Iterable = ()) -> list[tuple]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    # --- what the database needs before a report (db.migrate, db.groups.ensure_groups) ---

    def revision(self) -> str | None:
        """``alembic_version``'s one row, None without one (as db.migrate.current_revision)."""
        try:
            rows = self._all("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError:
            return None
        return rows[0][0] if len(rows) == 1 else None

    def meta(self, key: str) -> str | None:
        try:
            rows = self._all("SELECT value FROM photoqa_meta WHERE key = ?", (key,))
        except sqlite3.OperationalError:
            return None
        return rows[0][0] if rows else None

    # --- status (db.heartbeat) ---------------------------------------------------------

    def counts(self) -> Counts:
        """As :func:`db.heartbeat.counts`."""
        one = lambda sql: self._all(sql)[0]  # noqa: E731
        present = one("SELECT count(*) FROM images WHERE missing_since IS NULL")[0]
        missing = one("SELECT count(*) FROM images WHERE missing_since IS NOT NULL")[0]
        failed, last_failed = one("SELECT count(*), max(failed_at) FROM failures")
        last_indexed = one("SELECT max(indexed_at) FROM images")[0]
        last_daemon = one("SELECT max(last_activity_at) FROM daemons")[0]
        return Counts(present, missing, failed, _time(last_indexed), _time(last_failed), _time(last_daemon))

    def active_daemons(self) -> list[DaemonRow]:
        """As :func:`db.heartbeat.active_daemons`."""
        rows = self._all("SELECT id, host, pid, roots, started_at, heartbeat_at, pending, last_activity_at "
                         "FROM daemons WHERE is_active IS 1 ORDER BY id")
        return [DaemonRow(r[0], r[1], r[2], r[3].split("\n") if r[3] else [], _time(r[4]), _time(r[5]), r[6],
                          _time(r[7])) for r in rows]

    # --- dupes (db.pairs, db.queries) ----------------------------------------------------

    _PAIRS = ("SELECT p.a_id, p.b_id, p.verdict, p.hamming, p.transform, p.shift_x, p.shift_y, p.scale, "
              "p.correlation, p.hist_similarity, p.delta_ev, p.delta_ev_exif, p.time_gap_s, p.description, "
              "p.same_camera, p.same_shot, p.detail_gain, p.detail_above FROM pairs p JOIN images a ON a.id = p.a_id JOIN images b ON b.id = p.b_id "
              "WHERE a.missing_since IS NULL AND b.missing_since IS NULL")

    @staticmethod
    def _pair(r: tuple) -> PairRow:
        return PairRow(*r[:14], _bool(r[14]), _bool(r[15]), *r[16:18])

    def all_pairs(self, among: Iterable[int] | None = None) -> list[PairRow]:
        """As :func:`db.pairs.all_pairs`."""
        if among is None:
            return [self._pair(r) for r in self._all(self._PAIRS + " ORDER BY p.a_id, p.b_id")]
        wanted = set(among)
        rows = [self._pair(r) for chunk in _chunks(wanted)
                for r in self._all(self._PAIRS + f" AND p.a_id IN ({_marks(chunk)})", chunk) if r[1] in wanted]
        return sorted(rows, key=lambda r: (r.a, r.b))

    def keeper_infos(self, ids: Iterable[int]) -> dict:
        """As :func:`db.pairs.keeper_infos` (:func:`db.groups.keeper_infos`)."""
        from indexer.match.groups import KeeperInfo
        from indexer.match.shots import body_key

        ids = list(ids)
        apart, kept = self._decisions(ids)
        out = {}
        for chunk in _chunks(ids):
            rows = self._all("SELECT i.id, i.width, i.height, i.format, i.size, i.sharpness, i.captured_at, "
                             "c.make, c.model, c.serial, i.path, i.mtime_ns, i.colourfulness FROM images i "
                             f"LEFT OUTER JOIN cameras c ON c.id = i.camera_id WHERE i.id IN ({_marks(chunk)})", chunk)
            out.update((r[0], KeeperInfo(*r[:6], _time(r[6]), camera=body_key(*r[7:10]), path=r[10],
                                         mtime_ns=r[11], colourfulness=r[12],
                                         apart_from=frozenset(apart.get(r[0], ())), keep=r[0] in kept))
                       for r in rows)
        return out

    def _decisions(self, ids: list[int]) -> tuple[dict[int, set[int]], set[int]]:
        return fold_decisions(
            row for chunk in _chunks(ids)
            for row in self._all(f"SELECT kind, image_id, other_id FROM decisions WHERE image_id IN ({_marks(chunk)}) "
                                 f"OR other_id IN ({_marks(chunk)})", chunk + chunk))

    def paths(self, ids: Iterable[int]) -> dict[int, str]:
        """As :func:`db.pairs.paths`."""
        return {i: p for chunk in _chunks(ids)
                for i, p in self._all(f"SELECT id, path FROM images WHERE id IN ({_marks(chunk)})", chunk)}

    def pair_overlaps(self, among: Iterable[int] | None = None) -> dict[tuple[int, int], tuple]:
        """As :func:`db.queries.pair_overlaps`."""
        sql = "SELECT a_id, b_id, overlap_a, overlap_b FROM pairs"
        if among is None:
            rows = self._all(sql)
        else:
            rows = [r for chunk in _chunks(among) for r in self._all(sql + f" WHERE a_id IN ({_marks(chunk)})", chunk)]
        return {(a, b): (oa, ob) for a, b, oa, ob in rows}


def open_reader(path: Path, *, busy_timeout_ms: int, newest_revision: str | None,
                group_key: str | None = None) -> SqliteReads | None:
    """A reader on the SQLite file ``path`` when it is at ``newest_revision`` (and, with
    ``group_key``, its groups were computed with that rule: ``GroupRule.key()``); None when
    a writer must open it first (or it cannot be opened: SQLAlchemy's road then reports
    why, in the words every command uses)."""
    if not path.exists():
        return None
    try:
        reader = SqliteReads(path, busy_timeout_ms=busy_timeout_ms)
    except sqlite3.Error:
        return None
    try:
        if newest_revision is None or reader.revision() != newest_revision or (
                group_key is not None and reader.meta(VERDICTS_KEY) != group_key):
            reader.close()
            return None
    except sqlite3.Error:
        reader.close()
        return None
    return reader
