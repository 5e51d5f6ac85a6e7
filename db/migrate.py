"""Bring a database to the newest schema with Alembic (one head, run on open)."""
from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

SCRIPTS = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config() -> Config:
    if not (SCRIPTS / "env.py").exists():
        raise RuntimeError(f"migration scripts not found at {SCRIPTS}; install photoqa with `pip install -e .`")
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", *, wait_seconds: float = 120.0) -> str | None:
    """Upgrade to ``revision`` (default head) unless already there; returns the new revision.

    Two processes opening a new database at once (a daemon and an ``index``) both try to
    create the tables; the loser's "table already exists" is not an error: it waits up to
    ``wait_seconds`` for the winner to reach head.
    """
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except Exception:
        if revision != "head" or not _wait_for_head(engine, wait_seconds):
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
