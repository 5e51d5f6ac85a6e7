"""Opening the database: URL resolution, SQLite pragmas, the ``hamming`` SQL function.

SQLite connections get WAL journaling (readers never block the writer), foreign keys,
a busy timeout (a second writer waits instead of failing with "database is locked") and
``hamming(a, b)``: the number of differing bits of two 64-bit hashes. Read-only engines
open the file with ``mode=ro`` so no statement can change it.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool
from sqlalchemy.engine import URL, make_url

# defined in the stdlib-only module `photoqa sql` opens SQLite with (no SQLAlchemy import)
from db.sqlite_ro import DEFAULT_DB, ENV_DB  # noqa: F401 - re-exported
from db.sqlite_ro import deny_attach as _deny_attach
from db.sqlite_ro import hamming, readonly_uri  # noqa: F401 - re-exported: tests and callers use db.engine.hamming


def resolve_url(db: str | os.PathLike | None = None) -> str:
    """``--db`` value, else ``$PHOTOQA_DB``, else ``./photoqa.db``, as a SQLAlchemy URL.

    A value with ``://`` is taken as a URL (e.g. ``postgresql+psycopg://user@host/db``);
    anything else is a SQLite file path.
    """
    value = str(db) if db else os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" in value:
        return value
    # URL.create escapes '?', '#' and '%': pasted after "sqlite:///" they cut the path short
    path = str(Path(value).expanduser().resolve())
    return URL.create("sqlite", database=path).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or other backends)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _on_sqlite_connect(busy_timeout_ms: int, readonly: bool):
    def configure(dbapi_conn: sqlite3.Connection, _record) -> None:
        dbapi_conn.create_function("hamming", 2, hamming, deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()
        if readonly:
            dbapi_conn.set_authorizer(_deny_attach)

    return configure


def open_engine(url: str, *, readonly: bool = False, busy_timeout_ms: int = 30_000) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite configured as described above)."""
    if not is_sqlite(url):
        engine = create_engine(url, pool_pre_ping=True)
        if readonly:
            event.listen(engine, "connect", _pg_readonly)
        return engine
    path = sqlite_path(url)
    if readonly:
        if path is None or not path.exists():
            raise FileNotFoundError(f"no database at {path}; run `photoqa index` first")
        engine = create_engine("sqlite+pysqlite://", creator=_readonly_connector(path),
                               poolclass=QueuePool)
    else:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
    event.listen(engine, "connect", _on_sqlite_connect(busy_timeout_ms, readonly))
    return engine


def _readonly_connector(path: Path):
    # A SQLite URI filename, percent-encoded: a '#' or '?' in the path would otherwise end
    # it there and drop mode=ro. Passed to sqlite3 directly, since SQLAlchemy's URL parser
    # would decode the escapes first.
    uri = readonly_uri(path)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return connect


def _pg_readonly(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cur.close()
    dbapi_conn.commit()
