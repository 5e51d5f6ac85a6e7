"""Sensor bookkeeping in SQL: sensors, the frame ledger, defects. Only reads and writes rows;
the per-site statistics themselves live in accumulator files (indexer.sensor)."""
from __future__ import annotations

import calendar
import secrets
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from db.models import Camera, Image, Sensor, SensorClaim, SensorDefect, SensorFrame
from db.records import utcnow


@dataclass(frozen=True)
class SensorRow:
    id: int
    camera_id: int
    make: str
    model: str
    serial: str
    width: int
    height: int
    kind: str
    pattern: str | None
    frames: int
    accumulator: str
    updated_at: datetime | None = None
    stable_since: int = 0  # frame count when the defect list last changed
    stable_since_at: datetime | None = None


def as_datetime(seconds: int | None) -> datetime | None:
    """Seconds since 1970 (a camera clock read as UTC) -> naive datetime, as stored."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


def as_seconds(when: datetime | None) -> int | None:
    """The inverse of :func:`as_datetime`."""
    return None if when is None else calendar.timegm(when.timetuple())


def image_camera(engine: Engine, image_id: int) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(Image.camera_id).where(Image.id == image_id)).scalar()


def image_camera_of_frame(engine: Engine, image_id: int, sha256: str) -> int | None:
    """The camera of image ``image_id`` if that image's content is ``sha256``, else None."""
    with engine.connect() as conn:
        return conn.execute(select(Image.camera_id).where(Image.id == image_id, Image.sha256 == sha256)).scalar()


def next_image_id(engine: Engine) -> int:
    """One more than the highest image id: images stored from now on have ids >= it."""
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.max(Image.id))).scalar() or 0) + 1


def exposure_taken(engine: Engine, image_id: int, sensor: int, run_from: int) -> bool:
    """Whether another image of image ``image_id``'s exposure (the same camera and capture
    time, sub-seconds kept: EXIF DateTimeOriginal + SubSecTimeOriginal) stands for it in
    ``sensor`` already: one of the same size stored before this run (an id below
    ``run_from``), or one whose frame that sensor counted (the ledger) or is counting (a
    claim). False when the image records no camera or no capture time. A copy
    (mirrored, re-framed, recompressed, re-tagged) keeps both, as editors rewrite the
    modification date, not the capture time; a copy that drops its EXIF drops its camera
    too and is never learnt anyway. Another sensor of the body (the RAW of a RAW+JPEG
    pair) counts the exposure on its own."""
    this, other = Image.__table__.alias("this"), Image.__table__.alias("other")
    counted = select(SensorFrame.sha256).where((SensorFrame.sha256 == other.c.sha256)
                                               & (SensorFrame.sensor_id == sensor)).exists()
    claimed = select(SensorClaim.sha256).where((SensorClaim.sha256 == other.c.sha256)
                                               & (SensorClaim.sensor_id == sensor)).exists()
    before = (other.c.id < run_from) & (other.c.width == this.c.width) & (other.c.height == this.c.height)
    query = (select(other.c.id).join(this, (this.c.id == image_id) & (other.c.camera_id == this.c.camera_id)
                                     & (other.c.captured_at == this.c.captured_at))
             .where((other.c.id != image_id) & (before | counted | claimed)).limit(1))
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


def frame_counted(engine: Engine, sha256: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(SensorFrame.sha256).where(SensorFrame.sha256 == sha256)).first() is not None


def counted(engine: Engine, shas: list[str]) -> set[str]:
    """Those of ``shas`` the frame ledger has."""
    found: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(shas), 500):
            chunk = shas[start:start + 500]
            found.update(conn.execute(select(SensorFrame.sha256).where(SensorFrame.sha256.in_(chunk))).scalars())
    return found


def claim_frame(engine: Engine, sha256: str, sensor: int, owner: int, alive: Callable[[int], bool]) -> bool:
    """Whether the writer ``owner`` may count the frame ``sha256`` (then it holds its claim
    until the flush that enters it in the ledger, or :func:`release_claims`): not when the
    ledger has it, nor when another writer whose ``alive(owner)`` is true claims it. A
    claim of a writer that is gone (killed mid-run) is taken over.

    The claim is written before the ledger is read, in one transaction: a writer's claim
    stands until the transaction that enters the frame in the ledger deletes it, so one
    of the two is always there to be seen, and two machines never both count a frame
    (the check of the ledger alone, made before either flushed, let both count it)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    now = utcnow()
    with engine.connect() as conn:
        # RETURNING, not rowcount: psycopg gave -1 for this INSERT
        claimed = conn.execute(upsert(SensorClaim).values(sha256=sha256, sensor_id=sensor, owner=owner, claimed_at=now)
                               .on_conflict_do_nothing(index_elements=[SensorClaim.sha256])
                               .returning(SensorClaim.sha256)).first() is not None
        if not claimed:
            holder = conn.execute(select(SensorClaim.owner).where(SensorClaim.sha256 == sha256)).scalar()
            # a claim released meanwhile (holder None) was counted or given up: not counted here
            if holder is None or holder == owner or alive(holder):
                conn.rollback()
                return False
            taken = conn.execute(update(SensorClaim).where((SensorClaim.sha256 == sha256) & (SensorClaim.owner == holder))
                                 .values(owner=owner, sensor_id=sensor, claimed_at=now)).rowcount
            if taken != 1:
                conn.rollback()
                return False
        if conn.execute(select(SensorFrame.sha256).where(SensorFrame.sha256 == sha256)).first() is not None:
            conn.rollback()
            return False
        conn.commit()
        return True


def release_claims(engine: Engine | Connection, owner: int, shas: list[str] | None = None) -> None:
    """Drop ``owner``'s claims (of ``shas`` only, when given): frames it will not count."""
    with _begin(engine) as conn:
        query = delete(SensorClaim).where(SensorClaim.owner == owner)
        if shas is None:
            conn.execute(query)
        for start in range(0, len(shas or ()), 500):
            conn.execute(query.where(SensorClaim.sha256.in_(shas[start:start + 500])))


def sensor_id(engine: Engine, camera_id: int, width: int, height: int, kind: str,
              pattern: str | None, version: int) -> int:
    """The sensor row for this body and geometry, created on first sight.

    Its accumulator file is named ``sensor-<id>-<random>.npz``: a database deleted and
    rebuilt reuses ids, and must not merge into (and double-count) the old files left in
    the sensor folder. Another writer creating the same sensor at the same moment (two
    daemons) hits the unique constraint; its row is used.
    """
    key = (Sensor.camera_id == camera_id) & (Sensor.width == width) & (Sensor.height == height) \
        & (Sensor.kind == kind)
    try:
        with engine.begin() as conn:
            found = conn.execute(select(Sensor.id).where(key)).scalar()
            if found is not None:
                return found
            new_id = conn.execute(insert(Sensor).values(
                camera_id=camera_id, width=width, height=height, kind=kind, pattern=pattern, frames=0,
                accumulator="", stats_version=version, updated_at=utcnow()).returning(Sensor.id)).scalar_one()
            name = f"sensor-{new_id}-{secrets.token_hex(4)}.npz"
            conn.execute(update(Sensor).where(Sensor.id == new_id).values(accumulator=name))
            return new_id
    except IntegrityError:
        with engine.connect() as conn:
            return conn.execute(select(Sensor.id).where(key)).scalar_one()


def accumulator_name(engine: Engine, sensor: int) -> str:
    """The sensor's accumulator file name, relative to the sensor folder."""
    with engine.connect() as conn:
        return conn.execute(select(Sensor.accumulator).where(Sensor.id == sensor)).scalar_one()


def _begin(bind: Engine | Connection):
    """A transaction of its own on an engine; a connection's own (caller's) transaction."""
    return nullcontext(bind) if isinstance(bind, Connection) else bind.begin()


def record_flush(engine: Engine | Connection, sensor: int, frames: int, ledger: list[tuple[str, int]],
                 defects: list | None) -> None:
    """After the accumulator file was replaced: its frame count, the ledger, the defects.

    When the defect list (positions and kinds) differs from the stored one, the sensor's
    ``stable_since`` becomes this frame count (the learning budget's stability clock).
    Given a connection, writes in its open transaction (the one that merged the sensor's
    tiles under their lock: statistics, ledger and count commit together)."""
    with _begin(engine) as conn:
        values = dict(frames=frames, updated_at=utcnow())
        if defects is not None:
            old = {tuple(r) for r in conn.execute(select(SensorDefect.x, SensorDefect.y, SensorDefect.kind)
                                                  .where(SensorDefect.sensor_id == sensor))}
            if old != {(int(d.x), int(d.y), d.kind) for d in defects}:
                values.update(stable_since=frames, stable_since_at=values["updated_at"])
        conn.execute(update(Sensor).where(Sensor.id == sensor).values(**values))
        for sha, image_id in ledger:
            if conn.execute(select(SensorFrame.sha256).where(SensorFrame.sha256 == sha)).first() is None:
                conn.execute(insert(SensorFrame).values(sha256=sha, sensor_id=sensor, image_id=image_id,
                                                        added_at=utcnow()))
        shas = [sha for sha, _ in ledger]
        for start in range(0, len(shas), 500):  # counted now: their claims end in the same transaction
            conn.execute(delete(SensorClaim).where(SensorClaim.sha256.in_(shas[start:start + 500])))
        if defects is not None:
            conn.execute(delete(SensorDefect).where(SensorDefect.sensor_id == sensor))
            if defects:
                conn.execute(insert(SensorDefect), [
                    dict(sensor_id=sensor, x=d.x, y=d.y, kind=d.kind, rate=float(d.rate),
                         mean_residual=float(d.mean_residual), frames=int(d.frames),
                         first_seen=as_datetime(d.first_seen), last_seen=as_datetime(d.last_seen))
                    for d in defects])


def list_sensors(engine: Engine, only: int | None = None) -> list[SensorRow]:
    cols = (Sensor.id, Sensor.camera_id, Camera.make, Camera.model, Camera.serial, Sensor.width,
            Sensor.height, Sensor.kind, Sensor.pattern, Sensor.frames, Sensor.accumulator, Sensor.updated_at,
            Sensor.stable_since, Sensor.stable_since_at)
    query = select(*cols).join(Camera, Camera.id == Sensor.camera_id).order_by(Sensor.id)
    if only is not None:
        query = query.where(Sensor.id == only)
    with engine.connect() as conn:
        return [SensorRow(*row) for row in conn.execute(query)]


def defects_of(engine: Engine, sensor: int) -> list[tuple]:
    """(x, y, kind, rate, mean_residual, frames, first_seen, last_seen) rows of one sensor,
    by position; the dates as seconds since 1970 (None when unknown)."""
    cols = (SensorDefect.x, SensorDefect.y, SensorDefect.kind, SensorDefect.rate,
            SensorDefect.mean_residual, SensorDefect.frames, SensorDefect.first_seen, SensorDefect.last_seen)
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(SensorDefect.sensor_id == sensor)
                            .order_by(SensorDefect.y, SensorDefect.x))
        return [(*r[:6], as_seconds(r[6]), as_seconds(r[7])) for r in rows]


def dated_frames(engine: Engine, sensor: int) -> tuple[list[int], list[int]]:
    """Capture times (s since 1970, sorted) of the indexed frames of this sensor's body and
    geometry (images of its camera with its stored width and height): those learnt (in
    the ledger of this sensor, by content) and those not. Frames without a capture time
    are left out. For dating a defect's onset (``indexer.sensor.dating``)."""
    row = select(Sensor.camera_id, Sensor.width, Sensor.height).where(Sensor.id == sensor).subquery()
    learnt = select(SensorFrame.sha256).where(SensorFrame.sensor_id == sensor)
    query = (select(Image.captured_at, Image.sha256.in_(learnt))
             .join(row, (Image.camera_id == row.c.camera_id) & (Image.width == row.c.width)
                   & (Image.height == row.c.height))
             .where(Image.captured_at.is_not(None)).order_by(Image.captured_at))
    yes: list[int] = []
    no: list[int] = []
    with engine.connect() as conn:
        for when, was_learnt in conn.execute(query):
            (yes if was_learnt else no).append(as_seconds(when))
    return yes, no


def frames_per_body(engine: Engine) -> dict[tuple[str, str, str], list[tuple[int, int]]]:
    """Per camera body (make, model, serial), each of its sensors' ``(frames,
    stable_since)``: what the learning budget needs (``indexer.sensor.budget.settled``)."""
    query = (select(Camera.make, Camera.model, Camera.serial, Sensor.frames, Sensor.stable_since)
             .join(Sensor, Sensor.camera_id == Camera.id).where(Sensor.kind != "stack"))
    out: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    with engine.connect() as conn:
        for make, model, serial, frames, since in conn.execute(query):
            out.setdefault((make, model, serial), []).append((int(frames or 0), int(since or 0)))
    return out


def find_sensor(engine: Engine, make: str, model: str, serial: str, width: int, height: int,
                kind: str) -> int | None:
    """The sensor of a camera body and geometry, if photoqa has seen it."""
    query = (select(Sensor.id).join(Camera, Camera.id == Sensor.camera_id)
             .where((Camera.make == make) & (Camera.model == model) & (Camera.serial == serial)
                    & (Sensor.width == width) & (Sensor.height == height) & (Sensor.kind == kind)))
    with engine.connect() as conn:
        return conn.execute(query).scalar()
