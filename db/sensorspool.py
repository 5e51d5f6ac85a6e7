"""The ``sensor_spool`` rows of a PostgreSQL database: young bodies' frames a writer keeps
until a flush counts them.

Rows only (bytes in, bytes out); what the bytes mean (a frame delta as an ``.npz``), when a
row is written and who reads it back are ``indexer.pipeline.sensorspool``'s. Whether an
owner is alive is ``db.sensortiles.claimer_alive`` (the session lock of ``sensor_claims``).
"""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, delete, insert, select, update

from db.models import SensorSpool
from db.records import utcnow


def add(engine: Engine, owner: int, sensor: int, sha256: str, image_id: int, data: bytes) -> int:
    """Keep one frame for writer ``owner``; returns its row id (arrival order)."""
    statement = insert(SensorSpool).values(owner=owner, sensor_id=sensor, sha256=sha256, image_id=image_id,
                                           data=data, created_at=utcnow()).returning(SensorSpool.id)
    with engine.begin() as conn:
        return int(conn.execute(statement).scalar_one())


def remove(engine: Engine, ids: list[int]) -> None:
    """Forget the rows ``ids`` (frames a flush has dealt with)."""
    if ids:
        with engine.begin() as conn:
            conn.execute(delete(SensorSpool).where(SensorSpool.id.in_(ids)))


def owners(engine: Engine) -> list[int]:
    """The owners that have rows, ascending."""
    query = select(SensorSpool.owner).distinct().order_by(SensorSpool.owner)
    with engine.connect() as conn:
        return [int(o) for o in conn.execute(query).scalars()]


def hand_over(engine: Engine, old: int, new: int) -> list[int]:
    """Give writer ``old``'s rows to writer ``new`` (one ``UPDATE``: of two writers handing
    over the same rows at once, the second waits for the first's row locks, then finds
    them no longer ``old``'s); the ids it got, ascending."""
    statement = (update(SensorSpool).where(SensorSpool.owner == old).values(owner=new)
                 .returning(SensorSpool.id))
    with engine.begin() as conn:
        return sorted(int(i) for i in conn.execute(statement).scalars())


def waiting(engine: Engine) -> dict[int, set[str]]:
    """Per sensor id, the SHA-256s of its rows (whatever their owner), no data read."""
    found: dict[int, set[str]] = {}
    with engine.connect() as conn:
        for sid, sha in conn.execute(select(SensorSpool.sensor_id, SensorSpool.sha256).distinct()):
            found.setdefault(int(sid), set()).add(str(sha))
    return found


def rows_of(engine: Engine, owner: int, ids: list[int] | None = None) -> Iterator[tuple[int, int, str, int, bytes]]:
    """``(id, sensor_id, sha256, image_id, data)`` of writer ``owner``'s rows (of ``ids``
    only, when given) in arrival order, one read at a time (each row is a frame: up to
    ~29 MB for 12 MP)."""
    if ids is None:
        query = select(SensorSpool.id).where(SensorSpool.owner == owner).order_by(SensorSpool.id)
        with engine.connect() as conn:
            ids = [int(i) for i in conn.execute(query).scalars()]
    for row_id in ids:
        query = (select(SensorSpool.sensor_id, SensorSpool.sha256, SensorSpool.image_id, SensorSpool.data)
                 .where((SensorSpool.id == row_id) & (SensorSpool.owner == owner)))
        with engine.connect() as conn:
            row = conn.execute(query).first()
        if row is not None:  # another writer recovering the same owner may have taken it
            yield row_id, int(row[0]), str(row[1]), int(row[2]), bytes(row[3])


__all__ = ["add", "hand_over", "owners", "remove", "rows_of", "waiting"]
