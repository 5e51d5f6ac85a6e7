"""``photoqa status``: what is indexed, missing, failed and pending, and whether a daemon runs.

A daemon counts as running when it has not recorded a clean stop, its heartbeat is
younger than ``stale_after`` heartbeats, and (on this host) its process still exists.
A daemon killed with ``kill -9`` therefore shows as stopped at once on its own host and
after ``stale_after`` heartbeat intervals elsewhere.
"""
from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from db.records import Counts, DaemonRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass
class DaemonStatus:
    host: str
    pid: int
    roots: list[str]
    started_at: datetime
    heartbeat_at: datetime
    pending: int
    running: bool


@dataclass
class Status:
    indexed: int
    missing: int
    failed: int
    pending: int  # from the heartbeats of running daemons
    last_activity: datetime | None
    daemon_running: bool
    daemons: list[DaemonStatus] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def is_running(row: DaemonRow, now: datetime, *, interval: float = 5.0, stale_after: float = 3.0,
               host: str | None = None) -> bool:
    """Heartbeat fresh (younger than ``stale_after`` x ``interval`` s) and, on this host, pid alive."""
    host = host or socket.gethostname()
    if (now - row.heartbeat_at).total_seconds() > stale_after * interval:
        return False
    return pid_alive(row.pid) if row.host == host[:255] else True


def status(engine: Engine, *, interval: float = 5.0, stale_after: float = 3.0) -> Status:
    """Counts and daemon liveness for the database behind ``engine``."""
    from db import heartbeat as hb

    return status_of(hb.counts(engine), hb.active_daemons(engine), interval=interval, stale_after=stale_after)


def status_of(counts: Counts, active: list[DaemonRow], *, interval: float = 5.0, stale_after: float = 3.0) -> Status:
    """The report from the counts and the daemons not cleanly stopped (:func:`db.heartbeat.counts`,
    :func:`db.heartbeat.active_daemons`, or the same from :mod:`db.sqlite_reads`)."""
    now = utcnow()
    daemons = [DaemonStatus(r.host, r.pid, r.roots, r.started_at, r.heartbeat_at, r.pending,
                            is_running(r, now, interval=interval, stale_after=stale_after))
               for r in active]
    times = [t for t in (counts.last_indexed_at, counts.last_failed_at, counts.last_daemon_activity_at) if t]
    return Status(indexed=counts.indexed, missing=counts.missing, failed=counts.failed,
                  pending=sum(d.pending for d in daemons if d.running),
                  last_activity=max(times) if times else None,
                  daemon_running=any(d.running for d in daemons), daemons=daemons)


def rows(report: Status) -> list[tuple[str, object]]:
    """(field, value) rows for a table."""
    out: list[tuple[str, object]] = [
        ("indexed", report.indexed), ("missing", report.missing), ("failed", report.failed),
        ("pending", report.pending), ("last activity (UTC)", report.last_activity),
        ("daemon running", "yes" if report.daemon_running else "no")]
    for d in report.daemons:
        state = "running" if d.running else "not responding (killed?)"
        out.append((f"daemon {d.host}:{d.pid}", f"{state}, heartbeat {d.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC, "
                                                  f"{d.pending} pending, watching {', '.join(d.roots)}"))
    return out
