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


def _read(path: Path) -> tuple[int, str, int, FrameDelta]:
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


__all__ = ["Spool", "recover"]
