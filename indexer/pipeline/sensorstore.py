"""Where a sensor's per-site statistics live, and the one way they change (an exact merge
under a lock that every writer on every machine respects).

- SQLite: one ``.npz`` file per sensor in ``<database>.sensors/`` (:class:`FolderStore`),
  merged under an ``flock`` on ``<file>.lock``. Files beside the database: ``db backup``
  copies them with it.
- PostgreSQL: rows of ``sensor_tiles`` (:class:`TableStore`), one per band of rows
  (``indexer.sensor.tiles``), merged in one transaction under the sensor's advisory lock
  (``db.sensortiles``) together with the sensor's frame count, frame ledger and defects:
  statistics and bookkeeping commit together, any machine or user reads the same
  statistics, and ``pg_dump`` backs them up with the rest. Before, they lived in
  ``~/.cache/photoqa/sensors/<hash>/`` of whoever indexed; such a folder, when found, is
  imported once (:meth:`TableStore.import_folder`).

Both merge with :func:`indexer.sensor.tiles.merge_in_place` (Chan et al. 1979, band by
band): a flush holds the stored statistics (26 bytes a site) and the delta, plus one
band's float64 temporaries, never a third full copy.
"""
from __future__ import annotations

import fcntl
import hashlib
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from sqlalchemy import Connection, Engine

from db import sensors as dbsensors
from db import sensortiles
from indexer.config import SensorSettings
from indexer.sensor.accumulator import AccumulatorFileError, SensorAccumulator, check_file
from indexer.sensor.tiles import assemble, band, bands, merge_in_place

# what a flush does under the lock once the statistics are merged: classify and record
# (the bind is the engine, or on PostgreSQL the connection of the merge's transaction)
After = Callable[[Engine | Connection, SensorAccumulator], None]


def _stderr(message: str) -> None:
    sys.stderr.write(f"photoqa: {message}\n")
    sys.stderr.flush()


@contextmanager
def locked(path: Path):
    """An exclusive ``flock`` on ``<path>.lock`` (the sensor file's merge lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sensor_folder(url: str, configured: str) -> Path:
    """The accumulator folder of a SQLite database (``[sensor] folder``, else
    ``<database>.sensors/``); for other URLs the folder their statistics were kept in
    before ``sensor_tiles`` (``~/.cache/photoqa/sensors/<hash of the URL>/``)."""
    from db.engine import sqlite_path

    if configured:
        return Path(configured).expanduser()
    db_file = sqlite_path(url)
    if db_file is not None:
        return db_file.with_name(db_file.name + ".sensors")
    return Path.home() / ".cache" / "photoqa" / "sensors" / hashlib.sha1(url.encode()).hexdigest()[:12]


class FolderStore:
    """Accumulator files in a folder (a SQLite database's ``<database>.sensors/``)."""

    def __init__(self, engine: Engine, folder: Path):
        self.engine, self.folder = engine, folder
        self._names: dict[int, str] = {}

    def path(self, sid: int) -> Path:
        name = self._names.get(sid)
        if name is None:
            name = self._names[sid] = dbsensors.accumulator_name(self.engine, sid)
        return self.folder / name

    def where(self, sid: int) -> str:
        return str(self.path(sid))

    def merge(self, sid: int, delta: SensorAccumulator, after: After) -> SensorAccumulator:
        """Merge ``delta`` into the sensor's file (created if absent), then ``after``,
        all under the file's lock: two writers flushing one sensor must not leave the SQL
        row with the older of their frame counts. Raises AccumulatorFileError, ValueError,
        OverflowError or OSError with the file left as it was."""
        path = self.path(sid)
        with locked(path):
            if path.exists():
                merged = SensorAccumulator.load(path)
                merge_in_place(merged, delta)
            else:
                merged = delta
            merged.save(path)
            after(self.engine, merged)
        return merged

    def load(self, sid: int) -> SensorAccumulator:
        return SensorAccumulator.load(self.path(sid))

    def stamp(self, sid: int):
        """Changes whenever the statistics do (a cache key)."""
        return self.path(sid).stat().st_mtime_ns

    def problem(self, row: dbsensors.SensorRow) -> str:
        """Why the sensor's file cannot carry on its statistics ('' when it can):
        missing, unreadable, or disagreeing with the SQL row (header only: cheap)."""
        if row.frames == 0 or not row.accumulator or row.kind == "stack":
            return ""  # a stack detector's file holds per-pixel statistics (photoqa stack-stats)
        path = self.folder / row.accumulator
        if not path.exists():
            # no sensor folder at all: a database copied without it; the defects in SQL stand
            return f"{path} is missing ({row.frames} frames recorded)" if self.folder.is_dir() else ""
        try:
            height, width, frames = check_file(path)
        except AccumulatorFileError as exc:
            return str(exc)
        if (height, width) != (row.height, row.width):
            return f"{path} is {width}x{height}, the sensor {row.width}x{row.height}"
        if frames < row.frames:
            return f"{path} holds {frames} frames, the database recorded {row.frames}"
        return ""

    def hold_claims(self, owner: int) -> None:
        """Say that writer ``owner`` is alive (its frame claims stand) until
        :meth:`release_hold`: an ``flock`` on ``claims/<owner>.lock`` in the folder,
        which ends with the process however it ends."""
        path = self.folder / "claims" / f"{owner}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._hold = open(path, "a+b")  # noqa: SIM115 - held open until release_hold
        fcntl.flock(self._hold, fcntl.LOCK_EX)

    def release_hold(self) -> None:
        hold = getattr(self, "_hold", None)
        if hold is not None:
            Path(hold.name).unlink(missing_ok=True)
            hold.close()
            self._hold = None

    def claimer_alive(self, owner: int) -> bool:
        """Whether writer ``owner``'s lock (:meth:`hold_claims`) is held by some process."""
        path = self.folder / "claims" / f"{owner}.lock"
        try:
            with open(path, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
                return False
        except FileNotFoundError:
            return False

    def checks(self) -> list[tuple[str, bool, str]]:
        """(where, ok, message) per accumulator file, every array read (zip CRCs checked)."""
        found = []
        for file in sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []:
            try:
                acc = SensorAccumulator.load(file)
                found.append((str(file), True, f"sensor {acc.width}x{acc.height}, {acc.frames} frames"))
            except AccumulatorFileError as exc:
                found.append((str(file), False, str(exc)))
        return found


class TableStore:
    """Accumulators as rows of ``sensor_tiles`` (a PostgreSQL database)."""

    def __init__(self, engine: Engine, legacy: Path | None = None):
        self.engine, self.legacy = engine, legacy  # legacy: the folder of earlier versions

    @staticmethod
    def where(sid: int) -> str:
        return f"sensor {sid} (table sensor_tiles)"

    def hold_claims(self, owner: int) -> None:
        """Say that writer ``owner`` is alive (its frame claims stand) until
        :meth:`release_hold`: a session-level advisory lock on a connection of its own,
        which ends with the connection however the process ends."""
        self._hold = self.engine.connect()
        sensortiles.hold_claimer(self._hold, owner)

    def release_hold(self) -> None:
        hold = getattr(self, "_hold", None)
        if hold is not None:
            hold.invalidate()  # closed, not returned to the pool: the session lock ends with it
            hold.close()
            self._hold = None

    def claimer_alive(self, owner: int) -> bool:
        return sensortiles.claimer_alive(self.engine, owner)

    def merge(self, sid: int, delta: SensorAccumulator, after: After) -> SensorAccumulator:
        """Merge ``delta`` into the sensor's tiles (created if absent), then ``after`` on
        the same connection, in one transaction under the sensor's advisory lock: a
        writer on another machine merging into the same sensor waits, then merges into
        this result. Raises AccumulatorFileError or ValueError/OverflowError with nothing
        written (the transaction rolls back)."""
        with self.engine.begin() as conn:
            sensortiles.lock_sensor(conn, sid)
            rows = sensortiles.tiles_of(conn, sid)
            if rows:
                merged = self._assemble(conn, sid, rows)
                ranges = [(y0, y1) for _, y0, y1, _ in rows]
                merge_in_place(merged, delta, ranges)
            else:
                merged, ranges = delta, bands(delta.height, delta.width)
            self._write(conn, sid, merged, ranges)
            after(conn, merged)
        return merged

    def load(self, sid: int) -> SensorAccumulator:
        """The sensor's statistics as of the last committed merge (a merge under way is
        waited for). Raises AccumulatorFileError when there are none or they are damaged."""
        with self.engine.begin() as conn:
            sensortiles.lock_sensor_shared(conn, sid)
            rows = sensortiles.tiles_of(conn, sid)
            if not rows:
                raise AccumulatorFileError(f"{self.where(sid)}: no statistics stored")
            return self._assemble(conn, sid, rows)

    def stamp(self, sid: int):
        row = dbsensors.list_sensors(self.engine, only=sid)
        return (row[0].frames, row[0].updated_at) if row else None

    def _assemble(self, conn: Connection, sid: int, rows: list) -> SensorAccumulator:
        def parts():
            for tile, y0, _, _ in rows:
                yield y0, SensorAccumulator.from_bytes(sensortiles.read_tile(conn, sid, tile),
                                                       f"{self.where(sid)} tile {tile}")
        try:
            return assemble(parts(), rows[-1][2])
        except ValueError as exc:
            if isinstance(exc, AccumulatorFileError):
                raise
            raise AccumulatorFileError(f"{self.where(sid)}: {exc}") from exc

    @staticmethod
    def _write(conn: Connection, sid: int, acc: SensorAccumulator, ranges: list[tuple[int, int]]) -> None:
        for tile, (y0, y1) in enumerate(ranges):
            data = band(acc, y0, y1, with_times=tile == 0).to_bytes()
            sensortiles.write_tile(conn, sid, tile, y0, y1, acc.frames, data)

    def problem(self, row: dbsensors.SensorRow, stored: dict | None = None) -> str:
        """Why the sensor's tiles cannot carry on its statistics ('' when they can), from
        their row counts only (cheap); ``stored``: :func:`db.sensortiles.stored`, once
        for many rows."""
        if row.frames == 0 or row.kind == "stack":
            return ""
        stored = sensortiles.stored(self.engine) if stored is None else stored
        if row.id not in stored:
            old = self.legacy / row.accumulator if self.legacy is not None and row.accumulator else None
            if old is not None and old.is_file():
                return (f"{self.where(row.id)}: not imported yet from {old} (the next `photoqa index` or "
                        f"`watch` by this user imports it)")
            return f"{self.where(row.id)}: no statistics stored ({row.frames} frames recorded)"
        _, low, high, _ = stored[row.id]
        if low != high:
            return f"{self.where(row.id)}: bands of {low} and {high} frames (damaged)"
        if high < row.frames:
            return f"{self.where(row.id)} holds {high} frames, the database recorded {row.frames}"
        return ""

    def checks(self) -> list[tuple[str, bool, str]]:
        """(where, ok, message) per sensor with frames: every tile read and parsed."""
        stored = sensortiles.stored(self.engine)
        found = []
        for row in dbsensors.list_sensors(self.engine):
            if row.kind == "stack" or (row.frames == 0 and row.id not in stored):
                continue
            if (why := self.problem(row, stored)):
                found.append((self.where(row.id), False, why))
                continue
            try:
                acc = self.load(row.id)
            except AccumulatorFileError as exc:
                found.append((self.where(row.id), False, str(exc)))
                continue
            tiles, _, _, size = stored[row.id]
            found.append((self.where(row.id), True, f"sensor {acc.width}x{acc.height}, {acc.frames} frames, "
                                                    f"{tiles} tiles, {size / 1e6:.1f} MB"))
        return found

    def import_folder(self, folder: Path, report=_stderr) -> int:
        """Copy the accumulator files of ``folder`` (where the statistics lived before
        ``sensor_tiles``) into the table, for each sensor that has no tiles yet; says so
        through ``report``. The files are left where they are; a sensor imported once has
        tiles and is never imported again. Returns the number of sensors imported."""
        if not folder.is_dir():
            return 0
        stored = sensortiles.stored(self.engine)
        done = frames = 0
        for row in dbsensors.list_sensors(self.engine):
            path = folder / row.accumulator if row.accumulator else None
            if row.kind == "stack" or row.id in stored or path is None or not path.is_file():
                continue
            try:
                acc = SensorAccumulator.load(path)
            except AccumulatorFileError as exc:
                report(f"sensor {row.id}: not imported into the database: {exc}")
                continue
            if acc.shape != (row.height, row.width):
                report(f"sensor {row.id}: not imported into the database: {path} is {acc.width}x{acc.height}, "
                       f"the sensor {row.width}x{row.height}")
                continue
            with self.engine.begin() as conn:
                sensortiles.lock_sensor(conn, row.id)
                if sensortiles.tiles_of(conn, row.id):
                    continue  # another process imported or merged it meanwhile
                self._write(conn, row.id, acc, bands(acc.height, acc.width))
            done, frames = done + 1, frames + acc.frames
        if done:
            report(f"imported the statistics of {done} sensor(s) ({frames} frames) from {folder} into the "
                   "database (table sensor_tiles): every machine and user now reads them from there; "
                   "the folder is no longer used")
        return done


def open_store(engine: Engine, url: str, settings: SensorSettings, *, writer: bool = True,
               report=_stderr) -> FolderStore | TableStore:
    """The store of this database: a :class:`TableStore` on PostgreSQL, a
    :class:`FolderStore` otherwise. A ``writer`` on PostgreSQL first imports the folder
    where earlier versions kept the statistics (``~/.cache/photoqa/sensors/<hash>/``, or
    ``[sensor] folder``) when it finds one with sensors not in the table yet; readers
    (read-only sessions) only point at it."""
    folder = sensor_folder(url, settings.folder)
    if engine.dialect.name != "postgresql":
        return FolderStore(engine, folder)
    store = TableStore(engine, folder)
    if writer:
        store.import_folder(folder, report)
    return store


__all__ = ["FolderStore", "TableStore", "locked", "open_store", "sensor_folder"]
