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
from pathlib import Path
from typing import TYPE_CHECKING

from db.health import fatal_message

if TYPE_CHECKING:  # newest_revision is read without SQLAlchemy (db.sqlite_reads: status, dupes)
    from sqlalchemy import Engine

SCRIPTS = Path(__file__).resolve().parent.parent / "alembic"
_REVISION_FILE = re.compile(r"^(\d{4})_.*\.py$")


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

    Two processes opening a new database at once (a daemon and an ``index``) both try to
    create the tables; the loser's "table already exists" is not an error: it waits up to
    ``wait_seconds`` for the winner to reach head.
    """
    if revision == "head" and (current := current_revision(engine)) is not None and current == newest_revision():
        return current
    from alembic import command

    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except Exception as exc:
        if fatal_message(exc) or revision != "head" or not _wait_for_head(engine, wait_seconds):
            raise
    return current_revision(engine)


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
