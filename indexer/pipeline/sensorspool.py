"""The frames of young sensors, kept on disk until their statistics are flushed.

A body below ``[sensor] min_frames`` is not flushed on the clock (``pipeline.sensorstage``):
its frames' deltas wait in the writer's memory until it has ``min_frames``, at
``flush_frames`` or on eviction; a body still young when the writer closes is not flushed
at all. Its files are indexed meanwhile, so a writer that dies then (kill -9, out of
memory, power loss of a laptop's daemon) would lose them for good: the next run finds
those files unchanged and never decodes them again. Each such frame's
:class:`~indexer.sensor.delta.FrameDelta` is therefore also written here, one ``.npz``
per frame (~2.4 bytes a site for 8-bit frames: 29 MB for a 12 MP JPEG, at most
``min_frames - 1`` per body), and removed once a flush has counted it (or refused it:
then it is not counted, as for any frame of a failed flush).

*Parked* frames: a writer that closes cleanly with a body still young leaves that body's
frames here, as a dead writer would (its lock released, its rows' owner no longer
alive): the next writer on the store *adopts* them (:meth:`Spool.adopt`: the file renamed
into its own folder; :meth:`TableSpool.adopt`: the rows handed to its owner in one
``UPDATE``, so two live writers never both take a row) before its first new frame and
counts them first, in their arrival order. An adopted frame stays in the spool, now the
adopter's, until a flush counts it: at no moment is it only in a process's memory.
:func:`waiting_frames` counts them per sensor for ``photoqa hotpixels``.

Layout: ``<root>/<owner>/`` per writer process, holding a ``lock`` file the owner keeps
``flock``-ed while it lives, and ``<seq>.npz`` files (``seq`` in arrival order). The kernel
drops a lock with its process however that ends, so a folder whose lock can be taken
belongs to a writer that died or closed: :func:`recover` reads its frames back (in arrival
order, so consecutive pairs count as they would have), holding its lock, and removes the
folder once the adopter has renamed the frames it counts into its own. Several writers
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
from typing import Iterator, NamedTuple

import numpy as np

from indexer.sensor.delta import FrameDelta
from indexer.sensor.residual import ResidualParams

_ARRAYS = ("residual", "value", "bright", "dark", "judgeable", "strong", "wide_at", "wide_values")
_STOOD = ("sampled", "stood_v", "stood_m")  # absent from files of before the stuck fit: none


class Spooled(NamedTuple):
    """One frame read back from a spool: its sensor, content, image and delta, and
    ``where`` it is (a file path, or a ``sensor_spool`` row id), for :meth:`Spool.adopt`
    or :meth:`Spool.discard`."""

    sid: int
    sha256: str
    image_id: int
    delta: FrameDelta
    where: Path | int


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


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

    def adopt(self, sid: int, sha256: str, where: Path) -> None:
        """Take over a frame another writer left (:func:`recover`): its file renamed into
        this writer's folder, as if :meth:`keep` had written it (written anew if the
        rename fails: another file system)."""
        try:
            self._open()
            self._seq += 1
            path = self.folder / f"{self._seq:09d}.npz"
            os.replace(where, path)
        except OSError:
            try:
                frame = _read(where)
            except _unreadable():
                return
            self.keep(sid, sha256, frame.image_id, frame.delta)
            return
        self._files[(sid, sha256)] = (path, _done(True))

    @staticmethod
    def discard(where: Path) -> None:
        """Remove a frame read back by :func:`recover` that is not counted."""
        Path(where).unlink(missing_ok=True)

    def load(self, sid: int, sha256: str) -> FrameDelta:
        """A frame this writer kept, read back (OSError or ValueError when it cannot be)."""
        kept = self._files.get((sid, sha256))
        if kept is None or not kept[1].result():
            raise ValueError(f"frame {sha256[:12]} of sensor {sid} is not in the spool")
        try:
            return _read(kept[0]).delta
        except _unreadable() as exc:
            raise ValueError(f"{kept[0]}: {exc}") from exc

    def safe(self, sid: int, shas) -> bool:
        """Whether every one of these frames is on disk (waits for writes under way): a
        body whose frames all are can be left for the next writer (parked)."""
        kept = [self._files.get((sid, sha)) for sha in shas]
        return all(k is not None and k[1].result() for k in kept)

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
        """Release this writer's lock; its folder is removed when no frame is left in it
        (frames of bodies still young stay: parked, the next writer's to adopt)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._lock is not None:
            if not self._files:
                shutil.rmtree(self.folder, ignore_errors=True)
            self._lock.close()
            self._lock = None


def _write(path: Path, payload: dict) -> bool:
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
        os.replace(tmp, path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


def _payload(sid: int, sha256: str, image_id: int, delta: FrameDelta) -> dict:
    meta = {"sid": sid, "sha256": sha256, "image_id": image_id, "layout": delta.layout,
            "height": delta.height, "width": delta.width, "time": delta.time, "colors": delta.colors,
            "white": delta.white,
            "params": asdict(delta.params)}
    pattern = delta.pattern if delta.pattern is not None else np.zeros((0,), np.int8)
    return {"meta": np.array(json.dumps(meta)), "pattern": np.asarray(pattern, np.int8),
            **{name: getattr(delta, name) for name in _ARRAYS + _STOOD}}


def _read(path, where: Path | int | None = None) -> Spooled:
    """A spooled frame from its ``.npz`` (a path or a binary file object)."""
    with np.load(path, allow_pickle=False) as data:
        content = {key: data[key] for key in data.files}
    meta = json.loads(str(content["meta"]))
    pattern = content["pattern"] if content["pattern"].size else None
    delta = FrameDelta(meta["layout"], meta["height"], meta["width"], pattern, ResidualParams(**meta["params"]),
                       time=meta["time"], colors=meta["colors"], white=meta.get("white", 0),
                       **{name: content[name] for name in _ARRAYS + _STOOD if name in content})
    return Spooled(meta["sid"], meta["sha256"], meta["image_id"], delta, path if where is None else where)


def _meta(path: Path) -> tuple[int, str]:
    """(sensor id, sha256) of a spooled frame, its ``meta`` member alone read."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    return meta["sid"], meta["sha256"]


def recover(root: Path) -> Iterator[Spooled]:
    """Every frame left by writers that died or closed with bodies still young (parked),
    in each one's arrival order, for the caller to :meth:`Spool.adopt` or
    :meth:`Spool.discard` as it goes; each such writer's folder is removed once read (a
    frame neither adopted nor discarded goes with it). Unreadable files (a write cut
    short) are skipped. The folder's lock is held while it is read: a second writer
    recovering at the same time skips it."""
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


def spool_root(folder: Path) -> Path:
    """The spool of a SQLite database's sensor folder (``<database>.sensors/``)."""
    return Path(folder) / "pending"


def waiting_frames(engine, folder: Path | None) -> dict[int, int]:
    """Per sensor id, how many frames wait in the spool and are not counted yet (in the
    frame ledger): a young body's, parked by a writer that closed (or left by one that
    died, or held by one running). ``folder``: a SQLite database's sensor folder; None:
    the rows of ``sensor_spool`` (PostgreSQL)."""
    from db import sensors as dbsensors
    from db import sensorspool as rows

    found = waiting(spool_root(folder)) if folder is not None else rows.waiting(engine)
    counted = dbsensors.counted(engine, sorted(set().union(*found.values()))) if found else set()
    return {sid: len(shas - counted) for sid, shas in found.items() if shas - counted}


def waiting(root: Path) -> dict[int, set[str]]:
    """Per sensor id, the SHA-256s of the frames in the spool under ``root`` (parked,
    left by a dead writer, or held by a live one), without reading their arrays."""
    found: dict[int, set[str]] = {}
    root = Path(root)
    for path in sorted(root.glob("*/*.npz")) if root.is_dir() else []:
        try:
            sid, sha = _meta(path)
        except _unreadable():
            continue
        found.setdefault(sid, set()).add(sha)
    return found


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

    def _thread(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sensor-spool")
        return self._writer

    def keep(self, sid: int, sha256: str, image_id: int, delta: FrameDelta) -> None:
        """Have one frame's delta inserted in the background (a failure is ignored: the
        frame is only as safe as before). ``delta`` must not change after."""
        owner = self._owner()
        if owner is None:
            return
        payload = _payload(sid, sha256, image_id, delta)
        self._rows[(sid, sha256)] = self._thread().submit(_insert, self.engine, owner, sid, sha256, image_id, payload)

    def adopt(self, sid: int, sha256: str, where: int) -> None:
        """Take over a row :func:`recover_table` handed to this writer's owner."""
        self._rows[(sid, sha256)] = _done(where)

    def discard(self, where: int) -> None:
        """Delete a row read back by :func:`recover_table` that is not counted."""
        from sqlalchemy.exc import SQLAlchemyError

        from db import sensorspool as rows

        try:
            rows.remove(self.engine, [where])
        except SQLAlchemyError:
            pass  # left for a later writer, which finds the frame counted or claimed and skips it

    def load(self, sid: int, sha256: str) -> FrameDelta:
        """A frame this writer kept, read back (ValueError when it cannot be)."""
        from sqlalchemy.exc import SQLAlchemyError

        from db import sensorspool as rows

        kept = self._rows.get((sid, sha256))
        row_id = kept.result() if kept is not None else None
        try:
            found = list(rows.rows_of(self.engine, self._owner(), [row_id])) if row_id is not None else []
            if not found:
                raise ValueError(f"frame {sha256[:12]} of sensor {sid} is not in sensor_spool")
            return _read(io.BytesIO(found[0][4])).delta
        except (SQLAlchemyError, *_unreadable()) as exc:
            raise ValueError(f"sensor_spool row {row_id}: {exc}") from exc

    def safe(self, sid: int, shas) -> bool:
        """Whether every one of these frames is stored (waits for inserts under way)."""
        kept = [self._rows.get((sid, sha)) for sha in shas]
        return all(k is not None and k.result() is not None for k in kept)

    def drop(self, sid: int, shas) -> None:
        """Forget the frames a flush has dealt with (deleted in the background, after
        their inserts: the thread runs in order)."""
        ids = [self._rows.pop((sid, sha), None) for sha in shas]
        ids = [f for f in ids if f is not None]
        if ids:
            self._thread().submit(_remove, self.engine, ids)

    def wait(self) -> None:
        """Until every frame handed to :meth:`keep` so far is stored."""
        for pending in list(self._rows.values()):
            pending.result()

    def close(self) -> None:
        """Finish the background work (rows of bodies still young stay: parked, theirs to
        adopt whose owner is not alive, as this one is not once its stage closes)."""
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


def recover_table(engine, alive, owner) -> Iterator[Spooled]:
    """:func:`recover` for ``sensor_spool``: the frames of every owner not ``alive(owner)``
    (dead, or closed with bodies still young), each owner's in arrival order. Its rows are
    first handed to this writer (``owner()``: its token) in one ``UPDATE``, so of two live
    writers recovering at once each row goes to one; the caller then adopts or discards
    each frame. Unreadable rows are deleted."""
    from db import sensorspool as rows

    for dead in rows.owners(engine):
        if alive(dead):
            continue
        mine = owner()
        if dead == mine:
            continue
        for row_id, sid, sha, image_id, data in rows.rows_of(engine, mine, rows.hand_over(engine, dead, mine)):
            try:
                frame = _read(io.BytesIO(data), row_id)
            except _unreadable():
                rows.remove(engine, [row_id])
                continue
            yield frame


__all__ = ["Spool", "Spooled", "TableSpool", "recover", "recover_table", "spool_root", "waiting", "waiting_frames"]
