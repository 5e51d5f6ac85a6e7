"""Read-only access: the ``sql`` command and the reports' named queries."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, StatementError

from db.models import Pair
# the error types and their rule, defined once beside the stdlib road of `photoqa sql` on SQLite
from db.sqlite_ro import WRITE_HINT as _WRITE_HINT
from db.sqlite_ro import QueryError, ReadOnlyViolation  # noqa: F401 - re-exported


# PostgreSQL lets a READ ONLY transaction write files on the server (COPY ... TO, lo_export,
# adminpack's pg_file_write), read them (pg_read_file, lo_import's source) and signal other
# backends: none of that changes a table, so the transaction mode cannot stop it. These
# functions are refused by name wherever they appear in the planned statement.
_PG_SIDE_EFFECTS = re.compile(
    r"\b(pg_read_file|pg_read_binary_file|pg_stat_file|pg_ls_\w+|pg_file_\w+|pg_logdir_ls|lo_\w+|"
    r"loread|lowrite|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile\w*|"
    r"pg_log_backend_memory_contexts|pg_promote|pg_switch_wal|pg_start_backup|pg_stop_backup|"
    r"pg_backup_\w+|pg_create_\w+|pg_drop_\w+|pg_replication_\w+|pg_logical_\w+|pg_wal_replay_\w+|"
    r"pg_advisory\w*|pg_try_advisory\w*|pg_notify|set_config|dblink\w*|query_to_xml\w*|"
    r"cursor_to_xml\w*|pg_import_system_collations|pg_nextoid)\s*\(", re.I)
# the statements a query may start with on PostgreSQL (after comments and parentheses)
_PG_QUERY_START = re.compile(r"(select|with|values|table)\b", re.I)
_SQL_COMMENTS = re.compile(r"\s+|--[^\n]*(\n|$)|/\*.*?\*/", re.S)


def _leading_keyword(statement: str) -> str:
    """The statement without leading blanks, comments and opening parentheses."""
    rest = statement
    while True:
        stripped = _SQL_COMMENTS.match(rest)
        if stripped and stripped.end() > 0:
            rest = rest[stripped.end():]
        elif rest.startswith("("):
            rest = rest[1:]
        else:
            return rest


def _run_pg_readonly(engine: Engine, statement: str) -> tuple[list[str], list[tuple]]:
    """One user query on PostgreSQL with no side effect on the server.

    Three guards, each enough for what it covers: (1) only a query may be given
    (SELECT, WITH, VALUES, TABLE), so COPY, DO, SET, CALL are refused before the server
    sees them; (2) the statement is planned first (``EXPLAIN (VERBOSE)``, which runs
    nothing) and refused when the plan calls a function of ``_PG_SIDE_EFFECTS`` (the plan
    names functions canonically, so quoting or schema prefixes do not hide one); (3) it
    runs in a ``READ ONLY`` transaction that is rolled back. Both are sent as prepared
    statements (extended protocol): the server then refuses a second statement after a
    ';', which the simple protocol would run (``SELECT 1; COPY ... TO '/file'``).
    """
    import psycopg

    first = _leading_keyword(statement)
    if not _PG_QUERY_START.match(first):
        word = (first.split(None, 1) or ["(empty)"])[0]
        raise ReadOnlyViolation(f"refused: photoqa sql runs queries only (SELECT, WITH, VALUES, TABLE), "
                                f"not {word.upper()}")
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + statement, prepare=True)
                plan = str(cur.fetchall())
                found = _PG_SIDE_EFFECTS.search(plan)
                if found:
                    raise ReadOnlyViolation(f"refused: photoqa sql is read-only and {found.group(1)}() "
                                            "acts on the server (files, other sessions or settings)")
                cur.execute(statement, prepare=True)
                if cur.description is None:
                    raise ReadOnlyViolation("the statement returns no rows; photoqa sql only reads")
                columns = [d.name for d in cur.description]
                rows = [tuple(r) for r in cur.fetchall()]
            return columns, rows
        except psycopg.Error as exc:
            message = str(exc).strip()
            if "multiple commands" in message:
                raise ReadOnlyViolation("refused: photoqa sql runs one statement (no ';' between two)") from exc
            if _WRITE_HINT.search(message):
                raise ReadOnlyViolation(f"refused: photoqa sql is read-only ({message.splitlines()[0]})") from exc
            raise QueryError(message) from exc
        finally:
            raw.rollback()


def run_sql(engine: Engine, statement: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only engine; returns (column names, rows).

    A statement without params on PostgreSQL is a user's (``photoqa sql``): it goes
    through ``_run_pg_readonly``'s guards.
    """
    if params is None and engine.dialect.name == "postgresql":
        return _run_pg_readonly(engine, statement)
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


def pair_overlaps(engine: Engine, among: Iterable[int] | None = None
                  ) -> dict[tuple[int, int], tuple[float | None, float | None]]:
    """(a_id, b_id) -> (overlap_a, overlap_b) of every stored pair (``among``: of the pairs
    whose ``a`` is one of these): which side of a crop is the crop (the side whose overlap
    is whole), which the stored description ("cropped to 81% of the area") does not say."""
    query = select(Pair.a_id, Pair.b_id, Pair.overlap_a, Pair.overlap_b)
    with engine.connect() as conn:
        if among is None:
            rows = conn.execute(query).all()
        else:
            ids = sorted(set(among))
            rows = [r for start in range(0, len(ids), 500)
                    for r in conn.execute(query.where(Pair.a_id.in_(ids[start:start + 500])))]
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


def failures_of(engine: Engine, paths: list[str]) -> list[tuple[str, str, str]]:
    """(path, kind, message) of the failure rows of ``paths``, in the order given."""
    if not paths:
        return []
    from db.models import Failure

    with engine.connect() as conn:
        rows = {r[0]: tuple(r) for r in conn.execute(
            select(Failure.path, Failure.kind, Failure.message).where(Failure.path.in_(paths)))}
    return [rows[p] for p in paths if p in rows]
