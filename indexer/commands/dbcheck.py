"""``photoqa db check`` and ``photoqa db backup``: the database and the files beside it.

Beside a SQLite database live the per-camera sensor accumulators (``<db>.sensors/``, the
only copy of statistics learnt from every frame ever indexed) and the saved matching index
(``<db>.match-index``, a cache rebuilt from the database when unusable). A PostgreSQL
database holds its accumulators itself (table ``sensor_tiles``): ``check`` reads every
tile, and ``pg_dump`` backs them up with the rest.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from db import engine as dbengine
from db.health import Check, HeaderWatch, backup_sqlite, integrity
from indexer.pipeline.matchindex import index_file
from indexer.pipeline.sensorstore import locked, open_store, sensor_folder
from indexer.session import Session


class BackupError(Exception):
    """The backup could not be made (message for the user)."""


def check(session: Session) -> list[Check]:
    """The database's integrity, every sensor accumulator file, the saved matching index."""
    from indexer.match import snapshot

    path = dbengine.sqlite_path(session.url)
    where = str(path) if path else "database"
    found = [integrity(session.engine, where)]
    # every array read: zip CRCs catch damage inside a file or a tile
    store = open_store(session.engine, session.url, session.settings.sensor, writer=False)
    found.extend(Check(*item) for item in store.checks())
    saved = index_file(session.url, session.settings.match.index_file)
    if saved is not None and saved.exists():
        try:
            state, _info = snapshot.read(saved)
            found.append(Check(str(saved), True, f"matching index readable ({len(state)} arrays)"))
        except snapshot.Unusable as exc:
            # a cache: not a loss, but worth knowing why the next start is slower
            found.append(Check(str(saved), True, f"{exc}: rebuilt from the database on the next run"))
    return found


@dataclass
class Backup:
    database: Path
    pages: int
    sensor_files: int
    match_index: bool


def backup(session: Session, dest: Path, *, force: bool = False) -> Backup:
    """A consistent copy of the SQLite database at ``dest``, its sensor accumulators in
    ``<dest>.sensors/`` and its matching index at ``<dest>.match-index`` (so that
    ``--db DEST`` opens the copy whole), safe while a daemon writes.

    Each accumulator is copied under the lock the sensor stage merges under, so no copy
    is of a half-merged file; the matching index is only ever replaced by a rename, so
    copying the file open at the time gives one whole version (or it is left out: a
    cache the copy rebuilds).
    """
    source = dbengine.sqlite_path(session.url)
    if source is None:
        # its sensor statistics are rows (sensor_tiles): pg_dump copies them with the rest
        raise BackupError("db backup copies SQLite databases; for PostgreSQL use pg_dump")
    dest = dest.expanduser().resolve()
    if dest == source:
        raise BackupError(f"{dest} is the database itself")
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists; choose a new name or add --force")
    if not dest.parent.is_dir():
        raise BackupError(f"no folder {dest.parent}")
    if (why := HeaderWatch(source).check()) is not None:  # the session holds it open: no open/close (HeaderWatch)
        raise BackupError(why)
    pages = backup_sqlite(source, dest, busy_timeout_ms=session.settings.database.busy_timeout_ms)
    copied = 0
    folder = sensor_folder(session.url, session.settings.sensor.folder)
    target = dest.with_name(dest.name + ".sensors")
    for file in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        target.mkdir(exist_ok=True)
        with locked(file):
            shutil.copy2(file, target / (file.name + ".partial"))
        (target / (file.name + ".partial")).replace(target / file.name)
        copied += 1
    saved = index_file(session.url, session.settings.match.index_file)
    has_index = False
    if saved is not None and saved.exists():
        partial = dest.with_name(dest.name + ".match-index.partial")
        try:
            shutil.copy2(saved, partial)
            partial.replace(dest.with_name(dest.name + ".match-index"))
            has_index = True
        except FileNotFoundError:  # replaced between exists() and the copy: left out, rebuilt
            partial.unlink(missing_ok=True)
    return Backup(dest, pages, copied, has_index)
