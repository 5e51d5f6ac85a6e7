"""The clock of every stored timestamp and what the database knows of one path.

Apart from :mod:`db.store` (which re-exports them) because the heartbeat, the status
report and the actions journal need these and nothing of the writer: ``db.store``
imports NumPy, Pillow and the hash code, ~0.15 s of CPU that `photoqa status` would
pay for a clock (issue 13 item 4).
"""
from __future__ import annotations

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
