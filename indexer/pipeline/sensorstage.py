"""The sensor stage of the pipeline: add each learnt frame's delta to its sensor's statistics.

Runs in the writer process after a frame is stored. The decode worker has already done
the per-site work (``pipeline.sensorplan``: residual, noise, outliers, as a compact
:class:`indexer.sensor.delta.FrameDelta`); here the delta is only added (a Welford step).
Each process keeps, per sensor, a *delta* accumulator of the frames it has seen since its last flush; a flush takes an
exclusive lock on the sensor's file, loads what is there, merges the delta into it
(Chan et al. 1979: exact whatever the split, which is what lets several workers, runs or
daemons share one sensor), replaces the file atomically, reclassifies the defects and
records the frames in the SQL ledger. A frame (by SHA-256) is counted once: identical
frames would make every site look permanent. On a Dask cluster a delta may be a
:class:`~indexer.pipeline.clustersensor.DeltaRef` (left on a worker): the stage keeps the
ledger as always, and the flush gathers the accepted frames' deltas, tree-reduced on the
workers (:mod:`indexer.pipeline.clustersensor`).
"""
from __future__ import annotations

import fcntl
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from db import sensors as dbsensors
from indexer.outcomes import Indexed
from indexer.pipeline.clustersensor import DeltasLost, pending_for, settle
from indexer.pipeline.sensorplan import take_delta
from indexer.sensor.delta import FrameDelta
from indexer.config import SensorSettings
from indexer.sensor import AccumulatorFileError, NotEnoughFrames, SensorAccumulator, classify_defects
from indexer.sensor.accumulator import FORMAT_VERSION

def pattern_name(pattern: np.ndarray | None, colors: str = "RGBG") -> str | None:
    """rawpy (2, 2) colour indices -> e.g. 'RGGB'."""
    if pattern is None:
        return None
    return "".join(colors[int(i)] if int(i) < len(colors) else "?" for i in np.asarray(pattern).ravel())


def delta_of(result: Indexed) -> FrameDelta | None:
    """The frame delta a worker computed, or (a frame decoded in this process with its
    full-size data kept) one computed here; None if the file has none."""
    if result.sensor is not None:
        return result.sensor
    return take_delta(result.decoded)


@contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _merge_locked(path: Path, delta: SensorAccumulator) -> SensorAccumulator:
    merged = SensorAccumulator.load(path).merge(delta) if path.exists() else delta
    merged.save(path)
    return merged


def merge_into_file(path: Path, delta: SensorAccumulator) -> SensorAccumulator:
    """Merge ``delta`` into the accumulator stored at ``path`` (created if absent); returns it."""
    with locked(path):
        return _merge_locked(path, delta)


def _stderr(message: str) -> None:
    sys.stderr.write(f"photoqa: {message}\n")
    sys.stderr.flush()


class SensorStage:
    """Post-store hook; call :meth:`close` at the end of a run (flushes everything).

    A sensor whose stored file cannot be merged (unreadable, truncated, of another
    geometry or parameters) never stops the run and is never reset: its file is left
    exactly as it was, the frames of this flush are not counted (nor entered in the
    ledger), and the problem is reported through ``report`` (default: stderr) and kept
    in :attr:`errors` as (sensor id, message).
    """

    def __init__(self, engine: Engine, settings: SensorSettings, folder: Path, *, report=_stderr):
        self.engine, self.settings, self.folder = engine, settings, folder
        self.report = report
        self.errors: list[tuple[int, str]] = []
        self._deltas: dict[int, SensorAccumulator] = {}
        self._ledger: dict[int, list[tuple[str, int]]] = {}
        self._since: dict[int, float] = {}
        self._seen: set[str] = set()
        self._files: dict[int, str] = {}

    def __call__(self, image_id: int, result: Indexed) -> None:
        sha = result.decoded.sha256
        if sha in self._seen:
            return
        delta = delta_of(result)
        if delta is None:
            return
        camera_id = dbsensors.image_camera(self.engine, image_id)
        if camera_id is None or dbsensors.frame_counted(self.engine, sha):
            return
        sid = dbsensors.sensor_id(self.engine, camera_id, delta.width, delta.height, delta.layout,
                                  pattern_name(delta.pattern, delta.colors), FORMAT_VERSION)
        try:
            acc = self._deltas.get(sid)
            if acc is None:
                acc = SensorAccumulator(delta.height, delta.width, layout=delta.layout,
                                        pattern=delta.pattern, params=delta.params)
            acc = pending_for(acc, delta)  # a delta left on a Dask cluster: merged there at the flush
            acc.add(delta)
        except (ValueError, OverflowError):
            return
        if sid not in self._deltas:
            self._since[sid] = time.monotonic()
        self._deltas[sid] = acc
        self._seen.add(sha)
        self._ledger.setdefault(sid, []).append((sha, image_id))
        if len(self._ledger[sid]) >= self.settings.flush_frames:
            self.flush(sid)
        self.flush_due()

    def flush_due(self) -> None:
        """Flush every sensor whose oldest unflushed frame is ``flush_seconds`` old. Runs on
        each new frame; a daemon should also call it when idle, or frames wait for the next
        frame of the same sensor (or the daemon's stop) to reach the file."""
        now = time.monotonic()
        for sid in [s for s, since in self._since.items() if now - since >= self.settings.flush_seconds]:
            self.flush(sid)

    def path(self, sid: int) -> Path:
        name = self._files.get(sid)
        if name is None:
            name = self._files[sid] = dbsensors.accumulator_name(self.engine, sid)
        return self.folder / name

    def flush(self, sid: int) -> None:
        delta = self._deltas.pop(sid, None)
        ledger = self._ledger.pop(sid, [])
        self._since.pop(sid, None)
        self._seen.difference_update(sha for sha, _ in ledger)  # the SQL ledger has them from now on
        if delta is None or not ledger:
            return
        try:
            delta = settle(delta)  # deltas left on a cluster: tree-reduced there, one accumulator back
        except DeltasLost as exc:
            message = f"sensor {sid}: statistics not updated, {len(ledger)} new frame(s) not counted: {exc}"
            self.errors.append((sid, message))
            self.report(message)
            return
        path = self.path(sid)
        # the SQL row is written under the file's lock too: two writers flushing one
        # sensor must not leave the row with the older of their frame counts
        with locked(path):
            try:
                merged = _merge_locked(path, delta)
            except (AccumulatorFileError, ValueError, OverflowError, OSError) as exc:
                message = (f"sensor {sid}: statistics not updated, {len(ledger)} new frame(s) not counted: "
                           f"{exc} (the file is left as it was; move it away to start this sensor afresh)")
                self.errors.append((sid, message))
                self.report(message)
                return
            try:
                defects = classify_defects(merged, rate=self.settings.rate, min_frames=self.settings.min_frames)
            except NotEnoughFrames:
                defects = []
            dbsensors.record_flush(self.engine, sid, merged.frames, ledger, defects)

    def close(self) -> None:
        for sid in list(self._deltas):
            self.flush(sid)


def sensor_folder(url: str, configured: str) -> Path:
    """Where accumulator files live (see SensorSettings.folder)."""
    from db.engine import sqlite_path

    if configured:
        return Path(configured).expanduser()
    db_file = sqlite_path(url)
    if db_file is not None:
        return db_file.with_name(db_file.name + ".sensors")
    import hashlib

    return Path.home() / ".cache" / "photoqa" / "sensors" / hashlib.sha1(url.encode()).hexdigest()[:12]
