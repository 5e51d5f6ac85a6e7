"""What a worker sends the writer about one file: the messages between the layers.

A :class:`Task` (a file seen on disk) goes to a worker; an :class:`Outcome` comes back:
:class:`Indexed` (decoded and measured), :class:`Moved` (its bytes equal a row whose file
left), :class:`Unchanged` (its bytes equal its own row's) or :class:`Failed` (an error that becomes a ``failures`` row). Plain dataclasses,
picklable, with no behaviour, so the writer (``db.store``) and the workers
(``indexer.pipeline.analyse``) agree on them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: a Task must not import NumPy and Pillow (reports import it)
    from indexer.decode import Decoded
    from indexer.measure.features import Features
    from indexer.sensor.delta import FrameDelta


@dataclass
class Task:
    path: str
    size: int
    mtime_ns: int
    # the SHA-256 of the row this path has, when only its size or time changed since and
    # its features are current: equal bytes make the outcome Unchanged, with no decode
    sha256: str | None = None


@dataclass
class Indexed:
    task: Task
    decoded: Decoded  # rgb dropped before crossing the process boundary
    features: Features
    warnings: list[str] = field(default_factory=list)
    # a learnt frame's residual statistics, computed by the worker (full-size data dropped)
    sensor: FrameDelta | None = None
    # (thumb, hist) as stored (db.blobs), packed by the worker: zlib was half of the one
    # writer's CPU per row in batches (issue 19); None: the writer packs them
    blobs: tuple[bytes, bytes] | None = None


@dataclass
class Moved:
    """The file's bytes equal a row whose file left the disk: a move, not a new image."""

    task: Task
    sha256: str


@dataclass
class Unchanged:
    """The file's bytes equal its own row's (touched, or the same bytes copied over it):
    only its size/time bookkeeping is updated."""

    task: Task
    sha256: str


@dataclass
class Failed:
    task: Task
    kind: str
    message: str


Outcome = Indexed | Moved | Unchanged | Failed
