"""Opening photoqa's database with its settings: the glue the commands share."""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from db import engine as dbengine
from db import groups as dbgroups
from db import migrate
from indexer.config import Settings, load_settings

if TYPE_CHECKING:
    from db.store import Store


@dataclass
class Session:
    url: str
    settings: Settings
    engine: Engine
    # index --cluster: what makes the verification pool (pipeline.cluster.Cluster.executor,
    # called with a worker count); None: local worker processes
    verify_executor: Callable[[int], Executor] | None = None

    @property
    def store(self) -> Store:
        # imported here: the writer pulls in NumPy, Pillow and the hash code (~0.15 s CPU),
        # which the read commands (status, sql, dupes) never need
        from db.store import Store

        return Store(self.engine, group_rule=self.settings.group_rule())


def open_session(db: str | None = None, config: str | None = None, *, readonly: bool = False,
                 upgrade: bool = True, create: bool = True) -> Session:
    """Resolve the URL, load settings, open the engine and (for writers) migrate to head.

    ``create=False``: a SQLite file that does not exist is a ``FileNotFoundError`` instead
    of a new empty database (a mistyped ``--db`` must not look like a clean archive).
    """
    url = dbengine.resolve_url(db)
    config = config or os.environ.get("PHOTOQA_CONFIG") or None
    path = dbengine.sqlite_path(url)
    if not create and path is not None and not path.exists():
        raise FileNotFoundError(f"no database at {path}; run `photoqa index` first")
    settings = load_settings(config, path)
    engine = dbengine.open_engine(url, readonly=readonly,
                                  busy_timeout_ms=settings.database.busy_timeout_ms)
    if upgrade and not readonly:
        migrate.upgrade(engine)
        # image_groups of other verdicts (or numbered 1..n by an older version): rebuilt once
        dbgroups.ensure_groups(engine, settings.group_rule())
    return Session(url, settings, engine)
