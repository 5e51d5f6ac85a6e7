"""The ``sensor_tiles`` rows of a PostgreSQL database: its sensors' per-site statistics.

Rows only (bytes in, bytes out); what the bytes mean is ``indexer.sensor.tiles``, the
merge is ``indexer.pipeline.sensorstore``. A writer changes a sensor's tiles only inside
a transaction holding :func:`lock_sensor` (an exclusive transaction-level advisory lock
on the sensor id), readers take the shared one (:func:`lock_sensor_shared`), so a merge
on one machine waits for another machine's merge into the same sensor and then reads
its result: no delta is lost, none counted twice, and no reader sees half a merge. The
lock ends with the transaction (commit, rollback, or the connection dropping).
"""
from __future__ import annotations

from sqlalchemy import Connection, Engine, delete, func, select, text

from db.models import SensorTile
from db.records import utcnow

# first key of pg_advisory_xact_lock(int, int): photoqa's sensor locks ("PQ" + 1), the
# second is the sensor id, so other users of advisory locks on the server do not collide
LOCK_SPACE = 0x505131
# first key of the session-level lock a writer holds while it has frame claims
# (db.sensors.claim_frame): its claims are live while the lock is
CLAIM_SPACE = 0x505132


def lock_sensor(conn: Connection, sensor: int) -> None:
    """Wait for, then hold until the transaction ends, the right to change ``sensor``'s tiles."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:space, :sensor)"), {"space": LOCK_SPACE, "sensor": sensor})


def lock_sensor_shared(conn: Connection, sensor: int) -> None:
    """Wait for any merge into ``sensor`` to commit; hold off new ones until the transaction ends."""
    conn.execute(text("SELECT pg_advisory_xact_lock_shared(:space, :sensor)"),
                 {"space": LOCK_SPACE, "sensor": sensor})


def tiles_of(conn: Connection, sensor: int) -> list[tuple[int, int, int, int]]:
    """(tile, y0, y1, frames) of a sensor's stored bands, by tile; [] when none."""
    query = (select(SensorTile.tile, SensorTile.y0, SensorTile.y1, SensorTile.frames)
             .where(SensorTile.sensor_id == sensor).order_by(SensorTile.tile))
    return [tuple(row) for row in conn.execute(query)]


def read_tile(conn: Connection, sensor: int, tile: int) -> bytes:
    query = select(SensorTile.data).where((SensorTile.sensor_id == sensor) & (SensorTile.tile == tile))
    return bytes(conn.execute(query).scalar_one())


def write_tile(conn: Connection, sensor: int, tile: int, y0: int, y1: int, frames: int, data: bytes) -> None:
    """Insert or replace one band (PostgreSQL's INSERT ... ON CONFLICT)."""
    # imported here: the PostgreSQL dialect costs ~0.03 s CPU to import, and every
    # `photoqa index` with sensor learning imports this module, on SQLite too
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    values = dict(sensor_id=sensor, tile=tile, y0=y0, y1=y1, frames=frames, data=data, updated_at=utcnow())
    statement = pg_insert(SensorTile).values(**values)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[SensorTile.sensor_id, SensorTile.tile],
        set_={k: statement.excluded[k] for k in ("y0", "y1", "frames", "data", "updated_at")}))


def drop_tiles(conn: Connection, sensor: int) -> None:
    conn.execute(delete(SensorTile).where(SensorTile.sensor_id == sensor))


def stored(engine: Engine) -> dict[int, tuple[int, int, int, int]]:
    """Per sensor id with tiles: (tiles, fewest frames, most frames, bytes of data).
    Cheap: no tile is read."""
    query = (select(SensorTile.sensor_id, func.count(), func.min(SensorTile.frames), func.max(SensorTile.frames),
                    func.sum(func.length(SensorTile.data)))
             .group_by(SensorTile.sensor_id))
    with engine.connect() as conn:
        return {int(sid): (int(n), int(lo), int(hi), int(size or 0)) for sid, n, lo, hi, size in conn.execute(query)}


def hold_claimer(conn: Connection, owner: int) -> None:
    """Hold, for as long as ``conn`` stays open, the lock that says writer ``owner`` is alive
    (a session-level advisory lock: it ends when the connection does, however the
    process ends)."""
    conn.execute(text("SELECT pg_advisory_lock(:space, :owner)"), {"space": CLAIM_SPACE, "owner": owner})
    conn.commit()


def claimer_alive(engine: Engine, owner: int) -> bool:
    """Whether some session holds writer ``owner``'s lock (:func:`hold_claimer`)."""
    query = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                 "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                 "AND classid::bigint = :space AND objid::bigint = :owner AND objsubid = 2)")
    with engine.connect() as conn:
        return bool(conn.execute(query, {"space": CLAIM_SPACE, "owner": owner}).scalar())
