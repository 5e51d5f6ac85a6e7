"""SQL for ``photoqa watch`` and ``photoqa status``: heartbeats, per-path lookups, counts.

A running daemon owns one row of ``daemons`` (one per process) and refreshes
``heartbeat_at`` every few seconds; ``status`` decides from it whether a daemon is alive.
The per-path lookups let the daemon decide what one file event needs without loading
the whole table (``images.path`` is unique, ``images.sha256`` indexed).

Writes are short single-statement transactions, retried by :func:`retry_locked` when
SQLite still reports "database is locked" after its busy timeout (two daemons on one
file); PostgreSQL never needs it.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from db.models import Daemon, Failure, Image
# DaemonRow and Counts live in db.records: the SQLAlchemy-free status road (db.sqlite_reads) makes them too
from db.records import Counts, DaemonRow, FileState, utcnow  # noqa: F401 - re-exported

T = TypeVar("T")


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's transient "database is locked"/"busy" error."""
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


# SQLSTATEs of a server going away or not yet back: admin/crash shutdown, "the database
# system is starting up", connection exceptions
_SERVER_GONE = {"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}


def _server_gone(exc: DBAPIError) -> bool:
    """A PostgreSQL connection cut or refused (restart, failover), not a statement's error."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if state in _SERVER_GONE:
        return True
    # psycopg reports a refused connection with no SQLSTATE at all
    return isinstance(exc, OperationalError) and state is None and type(orig).__module__.startswith("psycopg")


RECONNECT_SECONDS = 60.0  # a PostgreSQL restart measured 1-3 s here; a failover can take longer

_listeners = threading.local()  # per thread: a daemon's writes all run on its own thread


def on_reconnect(listener: Callable[[str, str], None]) -> Callable[[], None]:
    """Have :func:`retry_locked` on this thread call ``listener(event, detail)`` when it
    loses the server (event "disconnected") and when a transaction went through again after that
    ("reconnected"); returns the function that removes the listener. ``watch`` logs both,
    so a restart of the server shows in the daemon's log rather than as a silent stall.
    """
    if not hasattr(_listeners, "all"):
        _listeners.all = []
    _listeners.all.append(listener)
    return lambda: _listeners.all.remove(listener)


def _tell(event: str, detail: str) -> None:
    for listener in list(getattr(_listeners, "all", ())):
        listener(event, detail)


def retry_locked(fn: Callable[[], T], *, attempts: int = 8, first_wait: float = 0.05,
                 reconnect_seconds: float = RECONNECT_SECONDS) -> T:
    """Call ``fn`` (one whole transaction) again while SQLite says the database is locked,
    or while the connection to the server is lost (PostgreSQL restarted).

    Locked: waits 0.05, 0.1, 0.2 ... s between attempts (8 attempts: ~6 s on top of the
    busy timeout). Lost connection (SQLAlchemy invalidates it; the pool's pre-ping then
    opens a new one): tried again every second for up to ``reconnect_seconds``; ``fn``
    is a whole transaction, rolled back by the server, so running it again loses and
    doubles nothing. Any other error, or the last one, propagates.
    """
    wait = first_wait
    attempt = 0
    deadline = time.monotonic() + reconnect_seconds
    lost_at: float | None = None
    while True:
        try:
            result = fn()
        except DBAPIError as exc:
            if _server_gone(exc) and time.monotonic() < deadline:
                if lost_at is None:
                    lost_at = time.monotonic()
                    first = (str(exc.orig).strip().splitlines() or [""])[0][:200]
                    _tell("disconnected", f"{type(exc.orig).__name__}: {first}; trying again every second "
                                  f"for up to {reconnect_seconds:g} s")
                time.sleep(1.0)
                continue
            attempt += 1
            if not is_locked(exc) or attempt >= attempts:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 2.0)
            continue
        if lost_at is not None:
            _tell("reconnected", f"the server answered again after {time.monotonic() - lost_at:.1f} s; "
                                 "the interrupted transaction ran again")
        return result


# --- heartbeats -------------------------------------------------------------------------


def register(engine: Engine, *, host: str, pid: int, roots: list[str]) -> int:
    """Insert this daemon's row; returns its id."""
    now = utcnow()
    with engine.begin() as conn:
        return conn.execute(insert(Daemon).values(
            host=host[:255], pid=pid, roots="\n".join(roots), started_at=now, heartbeat_at=now,
            pending=0, is_active=True).returning(Daemon.id)).scalar_one()


def beat(engine: Engine, daemon_id: int, *, pending: int, last_activity: datetime | None) -> None:
    """Refresh the heartbeat with the current number of pending files."""
    values = dict(heartbeat_at=utcnow(), pending=int(pending))
    if last_activity is not None:
        values["last_activity_at"] = last_activity
    with engine.begin() as conn:
        conn.execute(update(Daemon).where(Daemon.id == daemon_id).values(**values))


def stopped(engine: Engine, daemon_id: int, *, last_activity: datetime | None) -> None:
    """Mark the daemon's row as cleanly stopped."""
    now = utcnow()
    values = dict(heartbeat_at=now, stopped_at=now, pending=0, is_active=False)
    if last_activity is not None:
        values["last_activity_at"] = last_activity
    with engine.begin() as conn:
        conn.execute(update(Daemon).where(Daemon.id == daemon_id).values(**values))


def retire(engine: Engine, daemon_ids: list[int]) -> None:
    """Mark rows of daemons known to be dead (killed: no clean stop) as inactive."""
    if daemon_ids:
        with engine.begin() as conn:
            conn.execute(update(Daemon).where(Daemon.id.in_(daemon_ids)).values(is_active=False, pending=0))


def active_daemons(engine: Engine) -> list[DaemonRow]:
    """Daemons that have not recorded a clean stop (some may have been killed)."""
    cols = (Daemon.id, Daemon.host, Daemon.pid, Daemon.roots, Daemon.started_at,
            Daemon.heartbeat_at, Daemon.pending, Daemon.last_activity_at)
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(Daemon.is_active.is_(True)).order_by(Daemon.id)).all()
    return [DaemonRow(r[0], r[1], r[2], r[3].split("\n") if r[3] else [], r[4], r[5], r[6], r[7])
            for r in rows]


def counts(engine: Engine) -> Counts:
    """Rows present, rows whose file is gone, failures, and the latest times of each."""
    with engine.connect() as conn:
        present = conn.execute(select(func.count()).select_from(Image)
                               .where(Image.missing_since.is_(None))).scalar_one()
        missing = conn.execute(select(func.count()).select_from(Image)
                               .where(Image.missing_since.is_not(None))).scalar_one()
        failed, last_failed = conn.execute(select(func.count(), func.max(Failure.failed_at))).one()
        last_indexed = conn.execute(select(func.max(Image.indexed_at))).scalar()
        last_daemon = conn.execute(select(func.max(Daemon.last_activity_at))).scalar()
    return Counts(present, missing, failed, last_indexed, last_failed, last_daemon)


# --- per-path lookups for the daemon --------------------------------------------------------


def file_state(engine: Engine, path: str) -> FileState | None:
    """What the database knows of ``path`` (None when no row)."""
    cols = (Image.id, Image.size, Image.mtime_ns, Image.sha256, Image.features_version, Image.missing_since)
    with engine.connect() as conn:
        r = conn.execute(select(*cols).where(Image.path == path)).first()
    return None if r is None else FileState(r[0], r[1], r[2], r[3], r[4], r[5] is not None)


def failure_state(engine: Engine, path: str) -> tuple[int | None, int | None] | None:
    """(size, mtime_ns) recorded with ``path``'s failure, None when it has none."""
    with engine.connect() as conn:
        r = conn.execute(select(Failure.size, Failure.mtime_ns).where(Failure.path == path)).first()
    return None if r is None else (r[0], r[1])


def missing_ids_with_sha(engine: Engine, sha256: str) -> list[int]:
    """Ids of rows whose file left the disk and whose bytes hashed to ``sha256``."""
    with engine.connect() as conn:
        return list(conn.execute(select(Image.id).where(
            (Image.sha256 == sha256) & Image.missing_since.is_not(None)).order_by(Image.id)).scalars())


def missing_shas(engine: Engine, limit: int = 4096) -> frozenset[str]:
    """SHA-256s of up to ``limit`` rows whose files are gone (move candidates)."""
    with engine.connect() as conn:
        return frozenset(conn.execute(select(Image.sha256).where(Image.missing_since.is_not(None))
                                      .limit(limit)).scalars())


def live_paths_under(engine: Engine, folder: str) -> list[str]:
    """Paths of present rows inside ``folder`` (a folder moved away or deleted whole)."""
    prefix = folder.rstrip(os.sep) + os.sep
    with engine.connect() as conn:
        return list(conn.execute(select(Image.path).where(
            Image.path.startswith(prefix, autoescape=True) & Image.missing_since.is_(None))).scalars())
