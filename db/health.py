"""The database itself failing: recognising it, checking it, copying it safely.

A damaged file, a full disk or a read-only folder is not one file's problem: every write
after it fails the same way. :func:`fatal_message` tells those errors apart from a
per-file refusal (a value the database will not take) so that a run stops with one line
naming the cause instead of turning every later file into a failure row, or exiting 0
with "database disk image is malformed" in its log.
"""
from __future__ import annotations

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
