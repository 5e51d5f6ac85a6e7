"""The ``stack_parts`` rows of a PostgreSQL database: a stack detector's per-stack statistics.

Rows only (bytes in, bytes out); what the bytes mean (``PixelStats.as_arrays`` as an
``.npz``) and their merge are ``indexer.pipeline.stackrun``'s. A part is replaced whole by
one statement, so a reader sees the old part or the new one, never half of either.
"""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import StackPart
from db.records import utcnow


def source_of(engine: Engine, sensor: int, stack_key: str) -> str | None:
    """The ``source`` tag of the stack's part (None when it has none)."""
    query = select(StackPart.source).where((StackPart.sensor_id == sensor) & (StackPart.stack_key == stack_key))
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def write_part(engine: Engine, sensor: int, stack_key: str, stack: str, source: str, data: bytes) -> None:
    """Insert or replace the stack's part (PostgreSQL's INSERT ... ON CONFLICT)."""
    values = dict(sensor_id=sensor, stack_key=stack_key, stack=stack, source=source, data=data,
                  updated_at=utcnow())
    statement = pg_insert(StackPart).values(**values)
    with engine.begin() as conn:
        conn.execute(statement.on_conflict_do_update(
            index_elements=[StackPart.sensor_id, StackPart.stack_key],
            set_={k: statement.excluded[k] for k in ("stack", "source", "data", "updated_at")}))


def keys_of(engine: Engine, sensor: int) -> list[str]:
    """The sensor's part keys, sorted (the order parts are merged in)."""
    query = select(StackPart.stack_key).where(StackPart.sensor_id == sensor).order_by(StackPart.stack_key)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def parts_of(engine: Engine, sensor: int) -> Iterator[tuple[str, bytes]]:
    """``(stack_key, data)`` of each part of the sensor, by key, one read at a time (a
    detector's parts together can be far bigger than memory)."""
    for key in keys_of(engine, sensor):
        query = select(StackPart.data).where((StackPart.sensor_id == sensor) & (StackPart.stack_key == key))
        with engine.connect() as conn:
            data = conn.execute(query).scalar()
        if data is not None:
            yield key, bytes(data)
