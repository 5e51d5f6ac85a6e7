"""Rows of array-stack frames (``images`` rows with ``container`` set): bulk writes.

A stack of 96,108 frames is stored in transactions of one batch each (executemany), not
one transaction per frame as :class:`db.store.Store` does for files (~3 ms a file would
be 5 minutes). Same columns as a file's row (:func:`db.store.image_values`'s layout),
plus ``container``, ``array_key``, ``frame``; ``size``/``mtime_ns`` are the container
file's, so an unchanged stack is skipped by comparing them.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from db.groups import old_members, refresh_groups
from db.models import Image
from db.store import pair_partners, utcnow
from indexer.match.groups import GroupRule

_IMAGES = Image.__table__


@dataclass(frozen=True)
class StackState:
    """What the database holds of one container file."""

    size: int
    mtime_ns: int
    frames: int
    features_version: int
    missing: bool


def known_stacks(engine: Engine) -> dict[str, StackState]:
    """container path -> its rows' bookkeeping (one row per container)."""
    from sqlalchemy import func

    cols = (Image.container, func.max(Image.size), func.max(Image.mtime_ns), func.count(),
            func.min(Image.features_version), func.max(Image.missing_since))
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(Image.container.is_not(None)).group_by(Image.container))
        return {r[0]: StackState(r[1], r[2], r[3], r[4], r[5] is not None) for r in rows}


def forget_stack(engine: Engine, container: str, rule: GroupRule) -> None:
    """Delete every row of ``container`` (re-indexed: its frames are stored again), with
    their pairs (cascade); the groups they were in are refreshed."""
    with engine.begin() as conn:
        ids = list(conn.execute(select(Image.id).where(Image.container == container)).scalars())
        if not ids:
            return
        affected = (old_members(conn, ids) | pair_partners(conn, ids)) - set(ids)
        for start in range(0, len(ids), 500):
            conn.execute(delete(Image).where(Image.id.in_(ids[start:start + 500])))
        refresh_groups(conn, affected, rule)


def insert_frames(engine: Engine, rows: list[dict]) -> None:
    """Insert frame rows (full ``images`` column dicts, no ids) in one transaction."""
    if not rows:
        return
    with engine.begin() as conn:
        first = conn.execute(select(Image.revision).order_by(Image.revision.desc()).limit(1)).scalar() or 0
        stamped = [{**row, "revision": first + 1 + i, "indexed_at": row.get("indexed_at") or utcnow()}
                   for i, row in enumerate(rows)]
        conn.execute(insert(_IMAGES), stamped)


def frame_ids(engine: Engine, container: str) -> dict[tuple[str, int], int]:
    """(array_key, frame) -> image id of a container's rows."""
    with engine.connect() as conn:
        rows = conn.execute(select(Image.array_key, Image.frame, Image.id).where(Image.container == container))
        return {(r[0], r[1]): r[2] for r in rows}


def ids_by_sha(engine: Engine, shas: Iterable[str]) -> dict[str, list[int]]:
    """sha256 -> ids of present rows with those bytes (files and frames)."""
    shas = sorted(set(shas))
    out: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for start in range(0, len(shas), 500):
            q = select(Image.sha256, Image.id).where(Image.sha256.in_(shas[start:start + 500])
                                                     & Image.missing_since.is_(None)).order_by(Image.id)
            for sha, image_id in conn.execute(q):
                out.setdefault(sha, []).append(image_id)
    return out


def mark_stacks_missing(engine: Engine, containers: list[str], rule: GroupRule) -> None:
    """The frames of containers gone from the disk are marked missing (groups refreshed)."""
    with engine.begin() as conn:
        for container in containers:
            ids = list(conn.execute(select(Image.id).where((Image.container == container)
                                                           & Image.missing_since.is_(None))).scalars())
            for start in range(0, len(ids), 500):
                conn.execute(update(Image).where(Image.id.in_(ids[start:start + 500])).values(missing_since=utcnow()))
            refresh_groups(conn, ids, rule)


def stack_sensor(engine: Engine, name: str, width: int, height: int, version: int) -> int:
    """The ``sensors`` row of a named detector (``photoqa index --sensor NAME``): camera
    make ``array``, model ``NAME``, kind ``stack``; created on first sight."""
    from db.models import Camera
    from db.sensors import sensor_id

    key = (Camera.make == "array") & (Camera.model == name[:128]) & (Camera.serial == "")
    with engine.begin() as conn:
        camera = conn.execute(select(Camera.id).where(key)).scalar()
        if camera is None:
            camera = conn.execute(insert(Camera).values(make="array", model=name[:128], serial="")
                                  .returning(Camera.id)).scalar_one()
    return sensor_id(engine, camera, width, height, "stack", None, version)


def matchable_frames(engine: Engine, min_side: int) -> list[int]:
    """Ids of present frames (rows with a ``container``) whose shorter side is at least
    ``min_side`` pixels: those near-duplicate matching considers (``[stacks] match_min_side``)."""
    return matchable_rows(engine, min_side, photos=False)


def matchable_rows(engine: Engine, min_side: int, photos: bool = True) -> list[int]:
    """Ids of the present rows a frame is near-duplicate matched against: frames of at
    least ``min_side`` pixels a side and (``photos``) every present photo, in id order."""
    big = Image.container.is_not(None) & (Image.width >= min_side) & (Image.height >= min_side)
    query = (select(Image.id).where((big | Image.container.is_(None)) if photos else big)
             .where(Image.missing_since.is_(None)).order_by(Image.id))
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())
