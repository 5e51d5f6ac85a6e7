"""The database itself failing: recognising it, checking it, copying it safely.

A damaged file, a full disk or a read-only folder is not one file's problem: every write
after it fails the same way. :func:`fatal_message` tells those errors apart from a
per-file refusal (a value the database will not take) so that a run stops with one line
naming the cause instead of turning every later file into a failure row, or exiting 0
with "database disk image is malformed" in its log.
"""
from __future__ import annotations

import os

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy (~0.26 s CPU) only where an engine is used: `photoqa sql` on SQLite
    from sqlalchemy import Engine  # reads fatal_message and sniff_sqlite without it (issue 13 item 4)

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database file

# primary result codes (https://www.sqlite.org/rescode.html) that mean the database file
# cannot be used as it is, whatever the statement
_FATAL_SQLITE = {
    sqlite3.SQLITE_CORRUPT: "is damaged",
    sqlite3.SQLITE_NOTADB: "is not a SQLite database",
    sqlite3.SQLITE_FULL: "cannot grow: the disk is full; free space and run again (what was stored is kept)",
    sqlite3.SQLITE_IOERR: "cannot be read or written (I/O error)",
    sqlite3.SQLITE_READONLY: "is read-only (file or folder permissions, or a read-only mount)",
    sqlite3.SQLITE_CANTOPEN: ("cannot be opened (missing folder, no permission, or a read-only folder: "
                              "SQLite writes <db>-wal and <db>-shm beside it)"),
    sqlite3.SQLITE_PERM: "cannot be opened (no permission)",
}
# PostgreSQL SQLSTATEs of the same nature: disk full (53100), out of memory (53200),
# data or index corrupted (XX001, XX002), read-only server (25006 is a statement's own
# read-only transaction, not fatal: not listed)
_FATAL_PG = {"53100": "cannot grow: the server's disk is full", "53200": "ran out of memory on the server",
             "XX001": "is damaged (data corrupted)", "XX002": "is damaged (index corrupted)"}


def _driver_error(exc: BaseException) -> BaseException:
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def fatal_message(exc: BaseException, where: str = "the database") -> str | None:
    """One line when ``exc`` means the database as a whole is unusable, else None.

    ``exc`` may be SQLAlchemy's wrapper or the driver's own error; ``where`` names the
    database in the message (e.g. its path).
    """
    err = _driver_error(exc)
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        if code is None:
            return None
        reason = _FATAL_SQLITE.get(code & 0xFF)
        return f"{where} {reason} ({err})" if reason else None
    state = getattr(err, "sqlstate", None)
    if state in _FATAL_PG:
        return f"{where} {_FATAL_PG[state]} ({str(err).strip().splitlines()[0]})"
    return None


def sniff_sqlite(path: Path) -> str | None:
    """Why ``path`` is not a SQLite database, or None when it is one (or empty or absent).

    SQLite itself reports a non-database only when a statement runs, after its busy
    handler has waited (30 s measured on a random 100 kB file with journal_mode=WAL).
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return f"{path} is a folder, not a database file"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if head and head != SQLITE_MAGIC:
        return f"{path} is not a SQLite database (it starts with {head[:8]!r})"
    return None


class HeaderWatch:
    """:func:`sniff_sqlite` of a database this process holds open, again and again,
    through one descriptor opened once and never closed (the process's exit closes it).

    Why not :func:`sniff_sqlite`: POSIX advisory (fcntl) locks belong to the process, and
    closing *any* descriptor of a file releases every lock the process holds on it,
    including the SHARED lock a WAL-mode SQLite connection keeps on the database. Another
    process's last connection then takes the file as unused: it checkpoints and deletes
    ``-wal`` and ``-shm`` under this one, whose later commits go to the deleted WAL,
    unseen by others, and its next checkpoint writes over pages they committed since
    (SQLite, "How To Corrupt An SQLite Database File", 2.2). Seen 2026-12-08: a
    ``photoqa watch`` heartbeat read the header by open/close every 5 s; a ``photoqa
    index`` run beside it deleted the WAL, the daemon's next rows were invisible until it
    stopped, and then overwrote the row ``index`` had stored.

    A file replaced at the path (a rename over it: a restored backup) is reported too:
    this process's connections still write to the old one, which nothing reads.
    """

    _kept: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> descriptor, for the process's life

    def __init__(self, path: Path):
        self.path = Path(path)
        self.identity: tuple[int, int] | None = None  # the file's at the first check

    def check(self) -> str | None:
        """Why the file at the path is no longer a usable SQLite database for this
        process (overwritten, replaced, unreadable), or None."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # as sniff_sqlite: nothing there to judge
        except OSError as exc:
            return f"cannot read {self.path}: {exc.strerror or exc}"
        identity = (st.st_dev, st.st_ino)
        if self.identity is None:
            self.identity = identity
        if identity != self.identity:
            return f"{self.path} was replaced by another file (this process's writes would go to the old one)"
        fd = HeaderWatch._kept.get(identity)
        try:
            if fd is None:
                fd = HeaderWatch._kept[identity] = os.open(self.path, os.O_RDONLY)
            head = os.pread(fd, len(SQLITE_MAGIC), 0)
        except OSError as exc:
            return f"cannot read {self.path}: {exc.strerror or exc}"
        if head and head != SQLITE_MAGIC:
            return f"{self.path} is not a SQLite database (it starts with {head[:8]!r})"
        return None


@dataclass
class Check:
    """One checked thing: what, whether it is usable, and what was found."""

    what: str
    ok: bool
    detail: str


def integrity(engine: Engine, where: str) -> Check:
    """``PRAGMA integrity_check`` on SQLite (every page, index and constraint); a query of
    every table on other backends (the server checks its own pages)."""
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check(20)")]
                ok = rows == ["ok"]
                return Check(where, ok, "integrity check: ok" if ok else "; ".join(rows)[:2000])
            counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("images", "failures", "pairs")]
            return Check(where, True, f"reachable: {counts[0]} images, {counts[1]} failures, {counts[2]} pairs")
    except Exception as exc:  # noqa: BLE001 - a check reports, it never raises
        return Check(where, False, fatal_message(exc, "database") or f"{type(exc).__name__}: {_driver_error(exc)}")


def backup_sqlite(source: Path, dest: Path, *, busy_timeout_ms: int = 30_000) -> int:
    """Copy the database ``source`` to ``dest`` with SQLite's online backup API; returns pages.

    The copy is one consistent snapshot even while another process writes (the API
    restarts when the source changes under it, and reads through the WAL), which a file
    copy of ``<db>``, ``<db>-wal`` and ``<db>-shm`` is not. ``dest`` is written beside
    itself and renamed into place, so a stopped backup leaves no half-written file.
    """
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    tmp.replace(dest)
    return int(pages)
