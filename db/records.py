"""The clock of every stored timestamp and what the database knows of one path.

Apart from :mod:`db.store` (which re-exports them) because the heartbeat, the status
report and the actions journal need these and nothing of the writer: ``db.store``
imports NumPy, Pillow and the hash code, ~0.15 s of CPU that `photoqa status` would
pay for a clock (issue 13 item 4).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class FileState:
    """What the database knows of one path."""

    id: int
    size: int
    mtime_ns: int
    sha256: str
    features_version: int
    missing: bool


@dataclass(frozen=True)
class DaemonRow:
    id: int
    host: str
    pid: int
    roots: list[str]
    started_at: datetime
    heartbeat_at: datetime
    pending: int
    last_activity_at: datetime | None


@dataclass(frozen=True)
class Counts:
    indexed: int
    missing: int
    failed: int
    last_indexed_at: datetime | None
    last_failed_at: datetime | None
    last_daemon_activity_at: datetime | None


def fold_decisions(rows: Iterable[tuple[str, int, int | None]]) -> tuple[dict[int, set[int]], set[int]]:
    """Rows ``(kind, image_id, other_id)`` of ``decisions`` as (id -> ids declared not its
    duplicates, both ways; the ids chosen as keepers): what the keeper rule reads, for
    the SQLAlchemy reader (:mod:`db.groups`) and the sqlite3 one (:mod:`db.sqlite_reads`)."""
    apart: dict[int, set[int]] = {}
    kept: set[int] = set()
    for kind, a, b in rows:
        if kind == "keep":
            kept.add(a)
        elif b is not None:
            apart.setdefault(a, set()).add(b)
            apart.setdefault(b, set()).add(a)
    return apart, kept
