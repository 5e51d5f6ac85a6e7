"""`photoqa sql` on a SQLite file through the standard library's ``sqlite3`` alone.

Importing SQLAlchemy costs ~0.26 s of CPU (0.6-0.9 s wall on the loaded development
machine, 2026-12-07), more than half of what `photoqa sql` may take (issue 13 item 4:
<= 0.5 s). A SQLite file needs none of it to run one read-only statement, so the
command opens it here, configured as :func:`db.engine.open_engine` configures a
read-only engine (``mode=ro`` URI, ``hamming()``, busy timeout, foreign keys, ATTACH
denied) plus ``PRAGMA query_only`` as :func:`db.queries.run_sql` sets it, and maps
errors as ``run_sql`` does. PostgreSQL and any ``--db`` URL go through ``run_sql``.

The SQL functions, the authorizer and the error types are defined here, once, for both
roads (``db.engine`` and ``db.queries`` import them).
"""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

DEFAULT_DB = "photoqa.db"  # the database when neither --db nor $PHOTOQA_DB names one
ENV_DB = "PHOTOQA_DB"

# "not authorized" / "authorization denied": ATTACH / VACUUM INTO, denied by deny_attach on read-only SQLite
WRITE_HINT = re.compile(r"readonly|read-only|read only|query_only|not authorized|authorization denied", re.I)


class ReadOnlyViolation(Exception):
    """A statement tried to change a database opened for reading."""


class QueryError(Exception):
    """A statement failed (syntax, unknown table...)."""


def hamming(a, b):
    """Differing bits of two signed or unsigned 64-bit integers; NULL if either is NULL."""
    if a is None or b is None:
        return None
    return ((int(a) ^ int(b)) & 0xFFFFFFFFFFFFFFFF).bit_count()


def deny_attach(action: int, *_args) -> int:
    # mode=ro and query_only protect the database file, not the file system: ATTACH and
    # VACUUM INTO (which attaches its target) would still create files beside it.
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def readonly_uri(path: Path) -> str:
    # A SQLite URI filename, percent-encoded: a '#' or '?' in the path would otherwise end
    # it there and drop mode=ro.
    return "file:" + quote(str(path)) + "?mode=ro"


def plain_path(db: str | None) -> Path | None:
    """The SQLite file ``--db`` (else ``$PHOTOQA_DB``, else ``./photoqa.db``) names,
    resolved as :func:`db.engine.resolve_url` resolves it; None for a URL (anything
    with ``://``), which SQLAlchemy opens."""
    value = str(db) if db else os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" in value:
        return None
    return Path(value).expanduser().resolve()


def run_sql(path: Path, statement: str, *, busy_timeout_ms: int) -> tuple[list[str], list[tuple]]:
    """Run one statement on the SQLite file ``path`` opened read-only; returns (column
    names, rows). Raises FileNotFoundError (no file), :class:`ReadOnlyViolation` or
    :class:`QueryError` with the messages of :func:`db.queries.run_sql`."""
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}; run `photoqa index` first")
    conn = sqlite3.connect(readonly_uri(path), uri=True)
    try:
        conn.create_function("hamming", 2, hamming, deterministic=True)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.set_authorizer(deny_attach)
        conn.execute("PRAGMA query_only = ON")
        cursor = conn.execute(statement)
        if cursor.description is None:
            conn.rollback()
            raise ReadOnlyViolation("the statement returns no rows; photoqa sql only reads")
        columns = [d[0] for d in cursor.description]
        rows = [tuple(r) for r in cursor]
        conn.rollback()
        return columns, rows
    except (sqlite3.Error, sqlite3.Warning) as exc:  # Warning: two statements (Python <= 3.11)
        message = str(exc)
        if WRITE_HINT.search(message):
            raise ReadOnlyViolation(f"refused: photoqa sql is read-only ({message})") from exc
        raise QueryError(message) from exc
    finally:
        conn.close()
