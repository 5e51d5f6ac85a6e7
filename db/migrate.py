"""Bring a database to the newest schema with Alembic (one head, run on open).

Every command opens the database through :func:`upgrade`, and most find it at head.
Importing Alembic costs ~0.3 s on this machine (measured with ``python -X importtime``),
so the at-head check reads ``alembic_version`` with one SQL query and compares it with
the newest revision file's id (``alembic/versions/NNNN_*.py``: ids are the zero-padded
sequence numbers, checked against Alembic's own head by a test); Alembic is imported
only to upgrade.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from db.health import fatal_message

if TYPE_CHECKING:  # newest_revision is read without SQLAlchemy (db.sqlite_reads: status, dupes)
    from sqlalchemy import Connection, Engine

SCRIPTS = Path(__file__).resolve().parent.parent / "alembic"
_REVISION_FILE = re.compile(r"^(\d{4})_.*\.py$")
# the key of the PostgreSQL advisory lock migrations hold (any fixed 64-bit number: "pqa-migr")
_PG_MIGRATION_LOCK = 0x7071612D6D696772


def alembic_config():
    from alembic.config import Config

    if not (SCRIPTS / "env.py").exists():
        raise RuntimeError(f"migration scripts not found at {SCRIPTS}; install photoqa with `pip install -e .`")
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def head_revision() -> str:
    """Alembic's single head (imports Alembic; see :func:`newest_revision` for the fast path)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}")
    return heads[0]


def newest_revision() -> str | None:
    """The id of the newest revision file, without importing Alembic (None: no scripts)."""
    ids = [m.group(1) for p in (SCRIPTS / "versions").glob("*.py") if (m := _REVISION_FILE.match(p.name))]
    return max(ids) if ids else None


def current_revision(engine: Engine) -> str | None:
    """The database's revision (``alembic_version``), None for a database without one."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError as exc:  # no such table: a new database
        if fatal_message(exc):  # ...but not a damaged, foreign or unopenable one
            raise
        return None
    return rows[0] if len(rows) == 1 else None


def upgrade(engine: Engine, revision: str = "head", *, wait_seconds: float = 120.0) -> str | None:
    """Upgrade to ``revision`` (default head) unless already there; returns the new revision.

    All pending migrations run in one transaction (:func:`_migration_transaction`), so a
    process killed part-way leaves the schema exactly at the revision it started from.
    Two processes opening a new database at once (a daemon and an ``index``) take turns
    on the migration lock; the second then finds the database at head. When SQLite's busy
    timeout runs out first (a long migration in the other process), this one waits up to
    ``wait_seconds`` for the other to reach head. Any other failure is raised at once.
    """
    if revision == "head" and (current := current_revision(engine)) is not None and current == newest_revision():
        return current
    from alembic import command

    cfg = alembic_config()
    try:
        with _migration_transaction(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except Exception as exc:
        if fatal_message(exc) or revision != "head" or not _locked(exc) or not _wait_for_head(engine, wait_seconds):
            raise
    return current_revision(engine)


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection whose DDL and DML commit together or not at all.

    Python's sqlite3 module (legacy transaction control, Python < 3.12 default) opens a
    transaction only before INSERT/UPDATE/DELETE, so CREATE/DROP/ALTER issued by Alembic
    would each commit on their own: a SIGKILL mid-migration then left new tables behind
    with ``alembic_version`` still at the old revision, and every restart failed on
    "table already exists". ``BEGIN IMMEDIATE`` makes the whole upgrade one SQLite
    transaction (SQLite's DDL is transactional) and takes the write lock before the
    version is read, so two upgraders cannot both start from the same revision. On
    PostgreSQL (transactional DDL too) a transaction-scoped advisory lock does the same.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _locked(exc: BaseException) -> bool:
    """SQLite's "database is locked"/"busy" after its busy timeout: another process migrates."""
    import sqlite3

    err = getattr(exc, "orig", exc)
    return isinstance(err, sqlite3.OperationalError) and (getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _wait_for_head(engine: Engine, seconds: float) -> bool:
    head, deadline = head_revision(), time.monotonic() + seconds
    while True:
        try:
            if current_revision(engine) == head:
                return True
        except Exception:  # noqa: BLE001 - the other process may hold a lock right now
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
