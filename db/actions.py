"""SQL of the actions journal (``photoqa dupes --apply``, ``photoqa undo``, ``photoqa actions``).

Every row is written ``planned`` in one transaction before any file is touched; each
operation is then marked ``done`` (or ``skipped`` with a reason) in its own transaction
right after the file moved, so a run killed between the two leaves a ``planned`` row
that :func:`indexer.commands.act.reconcile` settles from what is on disk.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from contextlib import contextmanager
from collections.abc import Iterator

from sqlalchemy import Engine, case, func, insert, select, text, update

from db.models import Action, Image
from db.records import utcnow


@dataclass(frozen=True)
class ActionRow:
    id: int
    batch: str
    action: str
    path: str
    destination: str | None
    image_id: int | None
    keeper_path: str
    size: int
    mtime_ns: int
    sha256: str
    state: str
    reason: str | None


_COLS = (Action.id, Action.batch, Action.action, Action.path, Action.destination, Action.image_id,
         Action.keeper_path, Action.size, Action.mtime_ns, Action.sha256, Action.state, Action.reason)


def indexed_files(engine: Engine, paths: Iterable[str]) -> dict[str, tuple[int, int, int, str]]:
    """path -> (image id, size, mtime_ns, sha256) of present rows."""
    paths = list(paths)
    out = {}
    with engine.connect() as conn:
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            query = select(Image.path, Image.id, Image.size, Image.mtime_ns, Image.sha256).where(
                Image.path.in_(chunk) & Image.missing_since.is_(None))
            out.update((r[0], tuple(r[1:])) for r in conn.execute(query))
    return out


def plan(engine: Engine, batch: str, rows: list[dict]) -> None:
    """Journal a batch: ``rows`` (action, path, destination, image_id, keeper_path, size,
    mtime_ns, sha256) as ``planned``, one transaction."""
    now = utcnow()
    with engine.begin() as conn:
        if rows:
            conn.execute(insert(Action), [dict(r, batch=batch, created_at=now, state="planned") for r in rows])


def mark(engine: Engine, action_id: int, state: str, *, reason: str | None = None,
         destination: str | None = None) -> None:
    values = {"state": state, "reason": reason, "done_at": utcnow()}
    if destination is not None:
        values["destination"] = destination
    with engine.begin() as conn:
        conn.execute(update(Action).where(Action.id == action_id).values(**values))


def rows_of(engine: Engine, batch: str | None = None, *, states: Iterable[str] | None = None) -> list[ActionRow]:
    """Rows of one batch (all batches when None), in the order they were planned."""
    query = select(*_COLS).order_by(Action.id)
    if batch is not None:
        query = query.where(Action.batch == batch)
    if states is not None:
        query = query.where(Action.state.in_(list(states)))
    with engine.connect() as conn:
        return [ActionRow(*r) for r in conn.execute(query)]


def last_batch(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(Action.batch).order_by(Action.id.desc()).limit(1)).scalar()


def batches(engine: Engine) -> list[tuple]:
    """(batch, first time, action, files, done, skipped, undone, bytes done), oldest first."""
    def count(state: str):
        return func.sum(case((Action.state == state, 1), else_=0))

    done = func.sum(case((Action.state == "done", Action.size), else_=0))
    query = (select(Action.batch, func.min(Action.created_at), func.min(Action.action), func.count(),
                    count("done"), count("skipped"), count("undone"), done)
             .group_by(Action.batch).order_by(func.min(Action.id)))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def when(engine: Engine, batch: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(select(func.min(Action.created_at)).where(Action.batch == batch)).scalar()


def placed(engine: Engine, paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` where ``dupes --apply`` is putting a file right now (the
    destination of a ``planned`` trash or move): not new photos for ``index``/``watch``.
    (A moved file's row follows it there once done, so done rows need no skipping.)"""
    paths = sorted(set(paths))
    found: set[str] = set()
    if not paths:
        return found
    with engine.connect() as conn:
        if not conn.execute(select(Action.id).where(Action.state == "planned").limit(1)).first():
            return found  # the usual case: nothing in flight (one indexed lookup)
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            found.update(conn.execute(select(Action.destination).where(
                Action.destination.in_(chunk) & (Action.state == "planned")
                & Action.action.in_(("trash", "move")))).scalars())
    return found


class Busy(RuntimeError):
    """Another apply or undo holds the database's action lock."""


_LOCK_KEY = 0x70686F7161  # "phoqa": the PostgreSQL advisory lock of applies and undos


@contextmanager
def exclusive(engine: Engine) -> Iterator[None]:
    """Hold the database's action lock while files are acted on: two applies (or an
    apply and an undo) interleaving their checks and moves could each trash the file the
    other keeps. SQLite: ``flock`` on ``<database>.apply-lock`` beside it (one machine,
    as SQLite itself); PostgreSQL: a session advisory lock, seen by every machine.
    Raises :class:`Busy` at once when it is held."""
    from db.engine import sqlite_path

    path = sqlite_path(str(engine.url))
    if path is not None:
        import fcntl

        with open(path.with_name(path.name + ".apply-lock"), "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"another photoqa apply or undo is acting on {path}; try again when it has finished") \
                    from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}).scalar():
            raise Busy("another photoqa apply or undo is acting on this database; try again when it has finished")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
