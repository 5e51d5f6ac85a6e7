"""The sensor stage of the pipeline: feed each new frame to its sensor's statistics.

Runs in the writer process after a frame is stored. Each process keeps, per sensor, a
*delta* accumulator of the frames it has seen since its last flush; a flush takes an
exclusive lock on the sensor's file, loads what is there, merges the delta into it
(Chan et al. 1979: exact whatever the split, which is what lets several workers, runs or
daemons share one sensor), replaces the file atomically, reclassifies the defects and
records the frames in the SQL ledger. A frame (by SHA-256) is counted once: identical
frames would make every site look permanent.
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
from indexer.config import SensorSettings
from indexer.sensor import AccumulatorFileError, NotEnoughFrames, SensorAccumulator, classify_defects
from indexer.sensor.accumulator import FORMAT_VERSION

_COLOURS = "RGBG"


def pattern_name(pattern: np.ndarray | None, colors: str = "RGBG") -> str | None:
    """rawpy (2, 2) colour indices -> e.g. 'RGGB'."""
    if pattern is None:
        return None
    return "".join(colors[int(i)] if int(i) < len(colors) else "?" for i in np.asarray(pattern).ravel())


def frame_of(result: Indexed):
    """(data, layout, pattern, black, white) of a stored frame, or None if it has none."""
    d = result.decoded
    if d.cfa is not None:
        return d.cfa.data, "cfa", d.cfa.pattern, list(d.cfa.black), d.cfa.white
    if d.frame is not None:
        return d.frame, "rgb", None, 0, None
    return None


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
        frame = frame_of(result)
        sha = result.decoded.sha256
        if frame is None or sha in self._seen:
            return
        camera_id = dbsensors.image_camera(self.engine, image_id)
        if camera_id is None or dbsensors.frame_counted(self.engine, sha):
            return
        data, layout, pattern, black, white = frame
        height, width = data.shape[:2]
        if min(height, width) < 6 or (layout == "cfa" and np.asarray(pattern).shape != (2, 2)):
            return  # too small, or X-Trans (6x6): no statistics for it (documented limit)
        sid = dbsensors.sensor_id(self.engine, camera_id, width, height, layout,
                                  pattern_name(pattern, result.decoded.cfa.colors if result.decoded.cfa else _COLOURS),
                                  FORMAT_VERSION)
        try:
            delta = self._deltas.get(sid)
            if delta is None:
                delta = SensorAccumulator(height, width, layout=layout, pattern=pattern)
            delta.update(data, black_level=black, white_level=white)
        except (ValueError, OverflowError):
            return
        if sid not in self._deltas:
            self._deltas[sid], self._since[sid] = delta, time.monotonic()
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
