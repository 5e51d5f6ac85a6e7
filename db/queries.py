"""Read-only access: the ``sql`` command and the reports' named queries."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, StatementError

from db.models import Pair
# the error types and their rule, defined once beside the stdlib road of `photoqa sql` on SQLite
from db.sqlite_ro import WRITE_HINT as _WRITE_HINT
from db.sqlite_ro import QueryError, ReadOnlyViolation  # noqa: F401 - re-exported


def run_sql(engine: Engine, statement: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only engine; returns (column names, rows)."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            result = conn.execute(text(statement), params or {})
            if not result.returns_rows:
                conn.rollback()
                raise ReadOnlyViolation("the statement returns no rows; photoqa sql only reads")
            columns = list(result.keys())
            rows = [tuple(r) for r in result]
            conn.rollback()
            return columns, rows
    except (OperationalError, ProgrammingError, DBAPIError) as exc:
        message = str(getattr(exc, "orig", exc))
        if _WRITE_HINT.search(message):
            raise ReadOnlyViolation(f"refused: photoqa sql is read-only ({message})") from exc
        raise QueryError(message) from exc
    except StatementError as exc:
        raise QueryError(str(exc.orig or exc)) from exc


def present_sizes(engine: Engine) -> list[tuple]:
    """(path, ev, width, height) of every present image, by path: the dataset that
    dataset-relative flags (``odd_size``) are computed over when a report reads them."""
    _, rows = run_sql(engine, "SELECT path, ev, width, height FROM images "
                              "WHERE missing_since IS NULL ORDER BY path")
    return rows


def recent_failures(engine: Engine, limit: int) -> list[tuple]:
    """(path, kind, message) of the ``limit`` files that failed last (a run's own
    failures when ``limit`` is its failed count), by path."""
    _, rows = run_sql(engine, "SELECT path, kind, message FROM failures ORDER BY failed_at DESC, path "
                              "LIMIT :n", {"n": int(limit)})
    return sorted(rows)


def pair_overlaps(engine: Engine) -> dict[tuple[int, int], tuple[float | None, float | None]]:
    """(a_id, b_id) -> (overlap_a, overlap_b) of every stored pair: which side of a crop
    is the crop (the side whose overlap is whole), which the stored description
    ("cropped to 81% of the area") does not say."""
    with engine.connect() as conn:
        rows = conn.execute(select(Pair.a_id, Pair.b_id, Pair.overlap_a, Pair.overlap_b)).all()
    return {(a, b): (oa, ob) for a, b, oa, ob in rows}


def present_paths(engine: Engine) -> list[str]:
    """``path`` of every image still on disk (files and stack frames)."""
    from sqlalchemy import select

    from db.models import Image

    with engine.connect() as conn:
        return list(conn.execute(select(Image.path).where(Image.missing_since.is_(None))).scalars())


@dataclass(frozen=True)
class ExportRow:
    """One image chosen for ``photoqa export``: its row id, path, stack address (NULLs
    for files), duplicate group (its own id when alone) and whether it is the keeper."""

    id: int
    path: str
    container: str | None
    array_key: str | None
    frame: int | None
    group_id: int
    keeper: bool


def export_rows(engine: Engine, *, where: str | None = None, exclude_flags: Sequence[str] = (),
                exclude_verdicts: Sequence[str] = (), keepers_only: bool = True) -> list[ExportRow]:
    """Present images in id order, filtered: ``where`` is an SQL condition over the
    ``images`` columns (run on the caller's read-only connection); ``exclude_flags``
    drops images with any of those flags raised; ``keepers_only`` keeps one image per
    duplicate group (its keeper); ``exclude_verdicts`` also drops the later image (higher
    id) of every pair with one of those verdicts whose earlier image is kept."""
    sql = ("SELECT images.id, images.path, images.container, images.array_key, images.frame, "
           "COALESCE(g.group_id, images.id), COALESCE(g.is_keeper, 1) FROM images "
           "LEFT JOIN image_groups g ON g.image_id = images.id WHERE images.missing_since IS NULL")
    if where:
        sql += f" AND ({where})"
    if exclude_flags:
        names = ", ".join(f":f{i}" for i in range(len(exclude_flags)))
        sql += f" AND images.id NOT IN (SELECT image_id FROM image_flags WHERE name IN ({names}))"
    params = {f"f{i}": name for i, name in enumerate(exclude_flags)}
    with engine.connect() as conn:
        rows = [ExportRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), bool(r[6]))
                for r in conn.execute(text(sql + " ORDER BY images.id"), params)]
        if keepers_only:
            rows = [r for r in rows if r.keeper]
        if exclude_verdicts:
            names = ", ".join(f":v{i}" for i in range(len(exclude_verdicts)))
            pairs = conn.execute(text(f"SELECT a_id, b_id FROM pairs WHERE verdict IN ({names})"),
                                 {f"v{i}": v for i, v in enumerate(exclude_verdicts)}).all()
            earlier: dict[int, set[int]] = {}
            for a, b in pairs:
                earlier.setdefault(max(a, b), set()).add(min(a, b))
            kept: set[int] = set()
            for r in rows:  # id order: an image goes when an earlier one it pairs with stays
                if not earlier.get(r.id, set()) & kept:
                    kept.add(r.id)
            rows = [r for r in rows if r.id in kept]
    return rows
