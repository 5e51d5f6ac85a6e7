"""The frames of young sensors, kept on disk until their statistics are flushed.

A body below ``[sensor] min_frames`` is not flushed on the clock (``pipeline.sensorstage``):
its frames' deltas wait in the writer's memory until it has ``min_frames``, at
``flush_frames``, on eviction or at the end of the run. Its files are indexed meanwhile,
so a writer that dies then (kill -9, out of memory, power loss of a laptop's daemon)
would lose them for good: the next run finds those files unchanged and never decodes
them again. Each such frame's :class:`~indexer.sensor.delta.FrameDelta` is therefore also
written here, one ``.npz`` per frame (~2.4 bytes a site for 8-bit frames: 29 MB for a 12 MP
JPEG, at most ``min_frames - 1`` per body), and removed once a flush has counted it (or
refused it: then it is not counted, as for any frame of a failed flush).

Layout: ``<root>/<owner>/`` per writer process, holding a ``lock`` file the owner keeps
``flock``-ed while it lives, and ``<seq>.npz`` files (``seq`` in arrival order). The kernel
drops a lock with its process however that ends, so a folder whose lock can be taken
belongs to a dead writer: :func:`recover` reads its frames back (in arrival order, so
consecutive pairs count as they would have) and removes the folder. Several writers
(two daemons on one SQLite database) each keep their own folder and never take a live
one's frames.

Files are renamed into place, not fsynced: a killed process's writes are in the page
cache and survive it; a power cut may lose the newest frames (the price of not syncing
29 MB per frame). They are written by one background thread: a 12 MP frame's file took
21-72 ms of CPU and 0.17-0.6 s of wall time at load ~18 (2026-12-07), which the writer
thread, the run's bottleneck, no longer waits for; a frame whose write has not finished
when the writer dies is lost, as before.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from indexer.sensor.delta import FrameDelta
from indexer.sensor.residual import ResidualParams

_ARRAYS = ("residual", "value", "bright", "dark", "judgeable", "strong", "wide_at", "wide_values")
_STOOD = ("sampled", "stood_v", "stood_m")  # absent from files of before the stuck fit: none


def _unreadable() -> tuple[type[BaseException], ...]:
    import zipfile
    import zlib

    return (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class Spool:
    """This writer's spool folder under ``root`` (created on the first frame)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.folder = self.root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = None
        self._seq = 0
        self._files: dict[tuple[int, str], tuple[Path, Future]] = {}  # (sensor id, sha256) -> file
        self._writer: ThreadPoolExecutor | None = None

    def _open(self) -> None:
        if self._lock is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.folder / "lock", "a+b")  # noqa: SIM115 - held for the process's life
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def keep(self, sid: int, sha256: str, image_id: int, delta: FrameDelta) -> None:
        """Have one frame's delta written, in the background (a failure to write is
        ignored: the frame is only as safe as before). ``delta`` must not change after."""
        try:
            self._open()
        except OSError:
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sensor-spool")
        self._seq += 1
        path = self.folder / f"{self._seq:09d}.npz"
        self._files[(sid, sha256)] = (path, self._writer.submit(_write, path, _payload(sid, sha256, image_id, delta)))

    def drop(self, sid: int, shas) -> None:
        """Forget the frames a flush has dealt with."""
        for sha in shas:
            kept = self._files.pop((sid, sha), None)
            if kept is not None:
                path, pending = kept
                if not pending.cancel():
                    pending.result()  # being written: let it finish, then remove it
                path.unlink(missing_ok=True)

    def wait(self) -> None:
        """Until every frame handed to :meth:`keep` so far is on disk."""
        for _, pending in list(self._files.values()):
            pending.result()

    def close(self) -> None:
        """Remove this writer's folder (every frame flushed) and release its lock."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._lock is not None:
            if not self._files:
                shutil.rmtree(self.folder, ignore_errors=True)
            self._lock.close()
            self._lock = None


def _write(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _payload(sid: int, sha256: str, image_id: int, delta: FrameDelta) -> dict:
    meta = {"sid": sid, "sha256": sha256, "image_id": image_id, "layout": delta.layout,
            "height": delta.height, "width": delta.width, "time": delta.time, "colors": delta.colors,
            "white": delta.white,
            "params": asdict(delta.params)}
    pattern = delta.pattern if delta.pattern is not None else np.zeros((0,), np.int8)
    return {"meta": np.array(json.dumps(meta)), "pattern": np.asarray(pattern, np.int8),
            **{name: getattr(delta, name) for name in _ARRAYS + _STOOD}}


def _read(path) -> tuple[int, str, int, FrameDelta]:
    """A spooled frame from its ``.npz`` (a path or a binary file object)."""
    with np.load(path, allow_pickle=False) as data:
        content = {key: data[key] for key in data.files}
    meta = json.loads(str(content["meta"]))
    pattern = content["pattern"] if content["pattern"].size else None
    delta = FrameDelta(meta["layout"], meta["height"], meta["width"], pattern, ResidualParams(**meta["params"]),
                       time=meta["time"], colors=meta["colors"], white=meta.get("white", 0),
                       **{name: content[name] for name in _ARRAYS + _STOOD if name in content})
    return meta["sid"], meta["sha256"], meta["image_id"], delta


def recover(root: Path) -> Iterator[tuple[int, str, int, FrameDelta]]:
    """(sensor id, sha256, image id, delta) of every frame left by writers that died, in
    each one's arrival order; each dead writer's folder is removed once read. Unreadable
    files (a write cut short) are skipped."""
    root = Path(root)
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            lock = open(folder / "lock", "a+b")  # noqa: SIM115 - closed below
        except OSError:
            continue
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its writer lives
            for path in sorted(folder.glob("*.npz")):
                try:
                    frame = _read(path)
                except _unreadable():
                    continue
                yield frame
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.close()


class TableSpool:
    """:class:`Spool` for a PostgreSQL database: the frames are rows of ``sensor_spool``
    (``db.sensorspool``), tagged with the writer's token (``owner()``: its token in
    ``sensor_claims``, set before its first frame is kept), whose liveness is the session
    lock of its claims (``db.sensortiles.claimer_alive``): a killed writer's connection
    closes and its rows become the next writer's to count (:func:`recover_table`), on
    whichever machine. Rather than a folder per machine: one database's young frames
    stay in that database, whoever and wherever its next writer is. Rows are written and
    deleted by one background thread, as files are (a 12 MP frame is ~29 MB of ``bytea``)."""

    def __init__(self, engine, owner):
        self.engine, self._owner = engine, owner
        self._rows: dict[tuple[int, str], Future] = {}  # (sensor id, sha256) -> row id
        self._writer: ThreadPoolExecutor | None = None

    def keep(self, sid: int, sha256: str, image_id: int, delta: FrameDelta) -> None:
        """Have one frame's delta inserted in the background (a failure is ignored: the
        frame is only as safe as before). ``delta`` must not change after."""
        owner = self._owner()
        if owner is None:
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sensor-spool")
        payload = _payload(sid, sha256, image_id, delta)
        self._rows[(sid, sha256)] = self._writer.submit(_insert, self.engine, owner, sid, sha256, image_id, payload)

    def drop(self, sid: int, shas) -> None:
        """Forget the frames a flush has dealt with (deleted in the background, after
        their inserts: the thread runs in order)."""
        ids = [self._rows.pop((sid, sha), None) for sha in shas]
        ids = [f for f in ids if f is not None]
        if ids:
            self._writer.submit(_remove, self.engine, ids)

    def wait(self) -> None:
        """Until every frame handed to :meth:`keep` so far is stored."""
        for pending in list(self._rows.values()):
            pending.result()

    def close(self) -> None:
        """Finish the background work (every frame flushed: nothing of this writer left)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


def _insert(engine, owner: int, sid: int, sha256: str, image_id: int, payload: dict) -> int | None:
    from sqlalchemy.exc import SQLAlchemyError

    from db import sensorspool as rows

    buf = io.BytesIO()
    np.savez(buf, **payload)
    try:
        return rows.add(engine, owner, sid, sha256, image_id, buf.getvalue())
    except SQLAlchemyError:
        return None


def _remove(engine, inserts: list[Future]) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from db import sensorspool as rows

    try:
        rows.remove(engine, [i for f in inserts if (i := f.result()) is not None])
    except SQLAlchemyError:
        pass  # left for a later writer, which finds the frames counted and skips them


def recover_table(engine, alive) -> Iterator[tuple[int, str, int, FrameDelta]]:
    """:func:`recover` for ``sensor_spool``: the frames of every owner not ``alive(owner)``,
    each owner's in arrival order, its rows deleted once read. Unreadable rows are skipped."""
    from db import sensorspool as rows

    for owner in rows.owners(engine):
        if alive(owner):
            continue
        for row_id, sid, sha, image_id, data in rows.rows_of(engine, owner):
            try:
                _, _, _, delta = _read(io.BytesIO(data))
            except _unreadable():
                continue
            yield sid, sha, image_id, delta
        rows.remove_owner(engine, owner)


__all__ = ["Spool", "TableSpool", "recover", "recover_table"]
