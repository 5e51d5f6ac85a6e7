"""Read-only queries behind ``photoqa serve``'s pages: counts and chart data for the
overview, one image with everything stored about it, the frames a sensor learnt from.

Every function takes an engine (read-only or not) and returns plain tuples and dicts;
dates are bucketed with SQL ``date()``, which SQLite and PostgreSQL both have.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, distinct, func, or_, select

from db.models import Camera, Decision, Failure, Image, ImageFlag, ImageGroup, Pair, SensorFrame
from db.store import unpack_hist, unpack_thumb

# Columns of an image shown on its page (BLOBs are shown decoded, not listed here)
_SKIP = {"hist", "thumb", "phash_d4", "phash_crops"}


def overview_counts(engine: Engine) -> dict[str, int]:
    """Present images, missing ones, cameras, failures, duplicate groups (of two or more
    present members), images in them, flagged images, pairs."""
    present = Image.missing_since.is_(None)
    sizes = (select(ImageGroup.group_id, func.count().label("n")).join(Image, Image.id == ImageGroup.image_id)
             .where(present).group_by(ImageGroup.group_id).subquery())
    with engine.connect() as conn:
        one = lambda q: conn.execute(q).scalar_one()  # noqa: E731
        return {
            "images": one(select(func.count()).select_from(Image).where(present)),
            "missing": one(select(func.count()).select_from(Image).where(Image.missing_since.is_not(None))),
            "cameras": one(select(func.count(distinct(Image.camera_id))).where(present)),
            "failures": one(select(func.count()).select_from(Failure)),
            "groups": one(select(func.count()).select_from(sizes).where(sizes.c.n > 1)),
            "grouped_images": one(select(func.coalesce(func.sum(sizes.c.n), 0)).where(sizes.c.n > 1)),
            "flagged": one(select(func.count(distinct(ImageFlag.image_id)))
                           .join(Image, Image.id == ImageFlag.image_id).where(present)),
            "pairs": one(select(func.count()).select_from(Pair)),
        }


def ev_values(engine: Engine) -> list[float]:
    """EV (log2 of mean linear luminance over 18% grey) of every present image."""
    with engine.connect() as conn:
        return [float(v) for v in conn.execute(select(Image.ev).where(Image.missing_since.is_(None))).scalars()
                if v is not None]


def flags_per_camera(engine: Engine) -> list[tuple[str, str, str, int]]:
    """(make, model, flag name, images) for present images; make/model '' without a camera."""
    query = (select(func.coalesce(Camera.make, ""), func.coalesce(Camera.model, ""), ImageFlag.name, func.count())
             .select_from(ImageFlag).join(Image, Image.id == ImageFlag.image_id)
             .outerjoin(Camera, Camera.id == Image.camera_id).where(Image.missing_since.is_(None))
             .group_by(Camera.make, Camera.model, ImageFlag.name).order_by(Camera.make, Camera.model, ImageFlag.name))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def pairs_per_verdict(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Pair.verdict, func.count()).group_by(Pair.verdict)).all())


def indexed_per_day(engine: Engine) -> list[tuple[str, int]]:
    """(YYYY-MM-DD, images first indexed or re-indexed that day, UTC), by day."""
    day = func.date(Image.indexed_at)
    with engine.connect() as conn:
        return [(str(d), n) for d, n in conn.execute(select(day, func.count()).group_by(day).order_by(day))]


def image_row(engine: Engine, image_id: int) -> dict | None:
    """Every stored column of one image (BLOBs left out) plus ``camera`` (make, model,
    serial) and the decoded ``histogram`` (uint32 (4, 256): R, G, B, luma) and
    ``thumb_pixels`` (uint8 grey); None when no such row."""
    with engine.connect() as conn:
        row = conn.execute(select(Image).where(Image.id == image_id)).mappings().first()
        if row is None:
            return None
        camera = conn.execute(select(Camera.make, Camera.model, Camera.serial)
                              .where(Camera.id == row["camera_id"])).first() if row["camera_id"] else None
    out = {k: v for k, v in row.items() if k not in _SKIP}
    out["camera"] = tuple(camera) if camera else None
    out["histogram"] = unpack_hist(row["hist"])
    out["thumb_pixels"] = unpack_thumb(row["thumb"], row["thumb_width"], row["thumb_height"])
    return out


def flags_of(engine: Engine, image_id: int) -> list[tuple[str, float, float]]:
    """(name, value, threshold) of one image's stored flags, by name."""
    query = (select(ImageFlag.name, ImageFlag.value, ImageFlag.threshold)
             .where(ImageFlag.image_id == image_id).order_by(ImageFlag.name))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def pairs_of(engine: Engine, image_id: int) -> list[dict]:
    """Every stored pair with the image: the pair's columns plus ``other_id``, ``other_path``."""
    other = Image.__table__.alias("other")
    query = (select(Pair, other.c.id.label("other_id"), other.c.path.label("other_path"))
             .join(other, or_((Pair.a_id == image_id) & (other.c.id == Pair.b_id),
                              (Pair.b_id == image_id) & (other.c.id == Pair.a_id)))
             .where(or_(Pair.a_id == image_id, Pair.b_id == image_id)).order_by(other.c.path))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def pair_row(engine: Engine, a_id: int, b_id: int) -> dict | None:
    """The stored pair of two images (either order), or None."""
    lo, hi = min(a_id, b_id), max(a_id, b_id)
    with engine.connect() as conn:
        row = conn.execute(select(Pair).where((Pair.a_id == lo) & (Pair.b_id == hi))).mappings().first()
    return None if row is None else dict(row)


def group_of(engine: Engine, image_id: int) -> tuple[int, bool] | None:
    """(group id, is keeper) of an image, or None when it is in no group."""
    with engine.connect() as conn:
        row = conn.execute(select(ImageGroup.group_id, ImageGroup.is_keeper)
                           .where(ImageGroup.image_id == image_id)).first()
    return None if row is None else (row[0], bool(row[1]))


def present_path(engine: Engine, image_id: int) -> str | None:
    """The path of an image row (present or missing), or None: the only way the web
    server turns a request into a file name."""
    with engine.connect() as conn:
        return conn.execute(select(Image.path).where(Image.id == image_id)).scalar()


def ids_of(engine: Engine, paths: Iterable[str]) -> dict[str, int]:
    """path -> image id for the paths that are rows."""
    wanted = list(paths)
    if not wanted:
        return {}
    with engine.connect() as conn:
        return {p: i for p, i in conn.execute(select(Image.path, Image.id).where(Image.path.in_(wanted)))}


def image_facts(engine: Engine, ids: Iterable[int]) -> dict[int, dict]:
    """id -> {format, width, height (displayed), captured_at, camera (make, model)} for cards."""
    wanted = list(ids)
    if not wanted:
        return {}
    query = (select(Image.id, Image.format, Image.display_width, Image.display_height, Image.captured_at,
                    Camera.make, Camera.model, Image.ev)
             .outerjoin(Camera, Camera.id == Image.camera_id).where(Image.id.in_(wanted)))
    with engine.connect() as conn:
        return {r[0]: {"format": r[1], "width": r[2], "height": r[3], "captured_at": r[4],
                       "camera": (r[5], r[6]) if r[5] or r[6] else None, "ev": r[7]} for r in conn.execute(query)}


def sensor_frames(engine: Engine, sensor_id: int) -> list[tuple[int | None, str | None, object]]:
    """(image id, path, added_at) of the frames a sensor's statistics were learnt from."""
    query = (select(SensorFrame.image_id, Image.path, SensorFrame.added_at)
             .outerjoin(Image, Image.id == SensorFrame.image_id)
             .where(SensorFrame.sensor_id == sensor_id).order_by(Image.path))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def change_token(engine: Engine) -> tuple:
    """A value that changes whenever the duplicate report could: the images' highest
    revision and missing count (a file stored, re-indexed, moved or marked missing bumps
    the revision), the pairs' count and highest id (pairs are written as new rows), the
    decisions' count and highest id."""
    # one aggregate per query: SQLite answers a lone max() or count() from an index or
    # the table's page counts (0.1-0.4 ms on 200,000 rows), but scans the table when two
    # share a SELECT (14-16 ms)
    queries = (select(func.max(Image.revision)),
               select(func.count()).select_from(Image).where(Image.missing_since.is_not(None)),
               select(func.count()).select_from(Pair), select(func.max(Pair.id)),
               select(func.count()).select_from(Decision), select(func.max(Decision.id)))
    with engine.connect() as conn:
        return tuple(conn.execute(q).scalar() for q in queries)


_GROUP_ORDER = {"bytes": ("freed DESC", "keeper_path"), "size": ("keeper_size DESC", "keeper_path"),
                "count": ("n DESC", "keeper_path"), "path": ("keeper_path",)}


def group_order(engine: Engine, sort: str) -> tuple[list[int], dict]:
    """Every stored group's id (``image_groups``, present images) in the order ``photoqa
    dupes --sort`` gives (bytes a removal frees, keeper size, members, keeper path), and
    the totals: groups, files, removable_files, bytes_reclaimable. One aggregate over
    ``image_groups``: ~0.3-0.6 s for 100,000 groups on the loaded 2 cores, where computing
    the whole report first took 25-43 s."""
    from sqlalchemy import text

    order = ", ".join(_GROUP_ORDER[sort])
    grouped = ("SELECT g.group_id AS gid, count(*) AS n, "
               "sum(CASE WHEN g.is_keeper THEN 0 ELSE i.size END) AS freed, "
               "max(CASE WHEN g.is_keeper THEN i.size END) AS keeper_size, "
               "max(CASE WHEN g.is_keeper THEN i.path END) AS keeper_path "
               "FROM image_groups g JOIN images i ON i.id = g.image_id WHERE i.missing_since IS NULL "
               "GROUP BY g.group_id HAVING count(*) > 1")
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT gid, n, freed FROM ({grouped}) t ORDER BY {order}")).all()
    files = sum(int(r[1]) for r in rows)
    return [int(r[0]) for r in rows], {"groups": len(rows), "files": files, "removable_files": files - len(rows),
                                       "bytes_reclaimable": sum(int(r[2] or 0) for r in rows)}


def members_of_groups(engine: Engine, group_ids: Iterable[int]) -> list[int]:
    """The image ids of the given stored groups."""
    group_ids = list(group_ids)
    if not group_ids:
        return []
    with engine.connect() as conn:
        return list(conn.execute(select(ImageGroup.image_id).where(ImageGroup.group_id.in_(group_ids))).scalars())
