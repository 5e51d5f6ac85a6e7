"""A PostgreSQL schema of a test's own, on the server ``PHOTOQA_TEST_PG_URL`` names."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")
SKIP_REASON = "set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)"


@contextmanager
def fresh_schema(base: str | None = None) -> Iterator[str]:
    """The URL of ``base`` (default :data:`PG_URL`) with a new schema first on the search
    path; the schema is dropped with everything in it afterwards."""
    from sqlalchemy import text

    from db.engine import open_engine

    base = base or PG_URL
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def database_url(kind: str, folder, name: str) -> Iterator[str]:
    """A fresh database of ``kind`` ("sqlite": ``folder / name``; "postgresql": a
    :func:`fresh_schema`, the test skipped without ``PHOTOQA_TEST_PG_URL``), for fixtures
    parametrised over both."""
    if kind == "sqlite":
        yield str(folder / name)
        return
    if not PG_URL:
        import pytest

        pytest.skip(SKIP_REASON)
    with fresh_schema() as url:
        yield url
