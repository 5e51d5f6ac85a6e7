"""Per-image QA flags (``image_flags``) and the exposure pairs report, in SQL.

Flags are written by the flags stage of ``index``/``watch`` and by
``photoqa exposure --refresh``; reports read them joined to ``images``. A flag row holds
the measured value and the threshold it crossed, so ``photoqa sql`` can answer
"which photos are dark, and how dark" without Python.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import Engine, and_, delete, func, insert, or_, select

from db.models import Image, ImageFlag, Pair

EXPOSURE_VERDICTS = ("exposure_variant", "derived", "similar", "raw_jpeg")
_FLAG_INPUT_COLS = (Image.id, Image.width, Image.height, Image.hist, Image.luma_p1, Image.luma_p99,
                    Image.clip_high, Image.clip_low, Image.sharpness, Image.colourfulness, Image.ev)


def size_quartiles(engine: Engine, *, min_images: int = 20) -> tuple[float, float] | None:
    """(q1, q3) of sqrt(width * height) over present images, or None when fewer than
    ``min_images`` are indexed (quartiles of a handful of files would call ordinary
    photos odd; the flag then falls back to its minimum-side rule)."""
    query = select(Image.width, Image.height).where(Image.missing_since.is_(None))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if len(rows) < max(min_images, 1):
        return None
    size = np.sqrt(np.array([w * h for w, h in rows], dtype=np.float64))
    q1, q3 = np.percentile(size, [25, 75])
    return float(q1), float(q3)


def replace_flags(engine: Engine, image_id: int, flags: Iterable, version: int) -> None:
    """Replace the flags of one image by ``flags`` (objects with ``name``, ``value``,
    ``threshold``), in one transaction."""
    replace_flags_of(engine, {image_id: list(flags)}, version)


def replace_flags_of(engine: Engine, flags_by_image: dict[int, list], version: int) -> None:
    """Replace the flags of the given images (image id -> its flags), in one transaction
    (the flag stage's batch of stored images)."""
    if not flags_by_image:
        return
    rows = [dict(image_id=i, name=f.name, value=float(f.value), threshold=float(f.threshold),
                 flags_version=version) for i, flags in flags_by_image.items() for f in flags]
    with engine.begin() as conn:
        ids = sorted(flags_by_image)
        for start in range(0, len(ids), 500):  # far below every database's parameter limit
            conn.execute(delete(ImageFlag).where(ImageFlag.image_id.in_(ids[start:start + 500])))
        if rows:
            conn.execute(insert(ImageFlag), rows)


def replace_all_flags(engine: Engine, flags_by_image: dict[int, list], version: int) -> None:
    """Replace every image's flags at once (``--refresh``): one transaction."""
    rows = [dict(image_id=i, name=f.name, value=float(f.value), threshold=float(f.threshold),
                 flags_version=version) for i, flags in flags_by_image.items() for f in flags]
    with engine.begin() as conn:
        conn.execute(delete(ImageFlag))
        if rows:
            conn.execute(insert(ImageFlag), rows)


def flag_inputs(engine: Engine) -> list[tuple]:
    """Stored measurements of every present image, for re-evaluating flags:
    (id, width, height, hist blob, luma_p1, luma_p99, clip_high, clip_low, sharpness,
    colourfulness, ev)."""
    query = select(*_FLAG_INPUT_COLS).where(Image.missing_since.is_(None)).order_by(Image.id)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def flagged_images(engine: Engine, name: str | None = None) -> list[tuple]:
    """(path, ev, flag name, value, threshold) of present images' flags (only flag
    ``name`` when given), by path then flag name."""
    query = (select(Image.path, Image.ev, ImageFlag.name, ImageFlag.value, ImageFlag.threshold)
             .join(ImageFlag, ImageFlag.image_id == Image.id)
             .where(Image.missing_since.is_(None)).order_by(Image.path, ImageFlag.name))
    if name is not None:
        query = query.where(ImageFlag.name == name)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def flag_counts(engine: Engine) -> dict[str, int]:
    """Images per flag name (present images only)."""
    query = (select(ImageFlag.name, func.count()).join(Image, Image.id == ImageFlag.image_id)
             .where(Image.missing_since.is_(None)).group_by(ImageFlag.name))
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


def exposure_pairs(engine: Engine, *, verdicts: Sequence[str] = EXPOSURE_VERDICTS,
                   min_abs_ev: float = 0.25) -> list[tuple]:
    """(a path, b path, verdict, delta_ev, delta_ev_exif) of stored pairs of one scene
    that differ in exposure: every ``exposure_variant`` pair, and other ``verdicts``
    pairs whose measured or predicted |delta EV| reaches ``min_abs_ev``; by path. Pairs
    from two camera bodies (``same_camera`` false: look-alike photos of one chart taken
    years apart) are not shots of one scene and are left out."""
    a, b = Image.__table__.alias("a"), Image.__table__.alias("b")
    differs = or_(func.abs(Pair.delta_ev) >= min_abs_ev, func.abs(Pair.delta_ev_exif) >= min_abs_ev)
    chosen = or_(Pair.verdict == "exposure_variant", and_(Pair.verdict.in_(list(verdicts)), differs))
    query = (select(a.c.path, b.c.path, Pair.verdict, Pair.delta_ev, Pair.delta_ev_exif)
             .join(a, a.c.id == Pair.a_id).join(b, b.c.id == Pair.b_id)
             .where(a.c.missing_since.is_(None) & b.c.missing_since.is_(None)
                    & Pair.verdict.in_(list(verdicts)) & chosen
                    & or_(Pair.same_camera.is_(None), Pair.same_camera.is_(True)))
             .order_by(a.c.path, b.c.path))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def pair_sources(engine: Engine, ids: Iterable[int]) -> dict[int, tuple]:
    """id -> (path, format, width, height, orientation) for the CFA comparison."""
    query = select(Image.id, Image.path, Image.format, Image.width, Image.height,
                   Image.orientation).where(Image.id.in_(list(ids)))
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(query)}


def add_flags(engine: Engine, flags_by_image: dict[int, list], version: int) -> None:
    """Store the flags of images that have none yet (new rows: frames of a stack), in one
    transaction."""
    rows = [dict(image_id=i, name=f.name, value=float(f.value), threshold=float(f.threshold),
                 flags_version=version) for i, flags in flags_by_image.items() for f in flags]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(ImageFlag), rows)
