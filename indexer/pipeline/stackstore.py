"""Where a stack detector's parts live (``index --sensor NAME``): files, or rows of the database.

A part is one stack's per-pixel statistics (``PixelStats.as_arrays`` plus ``source``, the
``<size>:<mtime_ns>`` of the file they came from, and ``stack``, ``<path>#<member>``);
the detector's statistics are the Chan merge of its parts (``pipeline.stackrun``).

- SQLite: ``<database>.sensors/<accumulator>.parts/<hash>.npz`` (:class:`FolderParts`),
  and the merge as ``<accumulator>.npz`` beside them: files next to the database,
  copied by ``db backup``.
- PostgreSQL: rows of ``stack_parts`` (:class:`TableParts`), so that every machine and
  user indexing into the database adds to the same detector and ``pg_dump`` backs the
  parts up with the rest. Before, they were files in ``~/.cache/photoqa/sensors/<hash>/``
  of whoever indexed (another user or machine started the detector afresh); such a
  folder, when found, is imported once (:meth:`TableParts.import_folder`). The merge is
  not stored: it is computed from the rows (and its hot and dead sites are
  ``sensor_defects`` rows, as on SQLite).
"""
from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from db import sensors as dbsensors
from db import stackparts


def _stderr(message: str) -> None:
    sys.stderr.write(f"photoqa: {message}\n")
    sys.stderr.flush()


def part_key(stack: str) -> str:
    """SHA-256 (hex) of ``<path>#<member>``: a part's name."""
    import hashlib

    return hashlib.sha256(stack.encode()).hexdigest()


def _npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _source(data) -> str | None:
    try:
        return str(data["source"])
    except (KeyError, ValueError):
        return None


class FolderParts:
    """Parts as files in ``<folder>/<accumulator>.parts/`` (a SQLite database's)."""

    def __init__(self, engine: Engine, folder: Path):
        self.engine, self.folder = engine, folder

    def _dir(self, sensor: int) -> Path:
        return self.folder / f"{dbsensors.accumulator_name(self.engine, sensor)}.parts"

    def _path(self, sensor: int, stack: str) -> Path:
        return self._dir(sensor) / f"{part_key(stack)[:32]}.npz"

    def source(self, sensor: int, stack: str) -> str | None:
        """The part's ``source`` tag; None when there is none (or it is unreadable)."""
        try:
            with np.load(self._path(sensor, stack)) as part:
                return _source(part)
        except (OSError, ValueError):
            return None

    def put(self, sensor: int, stack: str, arrays: dict) -> None:
        """Store (replace) the stack's part; ``arrays`` hold ``source`` and ``stack``."""
        from indexer.atomicfile import replace_with

        replace_with(self._path(sensor, stack), lambda fh: np.savez(fh, **arrays))

    def parts(self, sensor: int) -> Iterator:
        """Each readable part (an opened ``.npz``), by file name; damaged ones left out."""
        for path in sorted(self._dir(sensor).glob("*.npz")):
            try:
                with np.load(path) as part:
                    yield part
            except (OSError, ValueError):
                continue  # a damaged part is left out; its stack's next change rewrites it

    def save_merged(self, sensor: int, arrays: dict) -> None:
        """The detector's statistics as ``<accumulator>.npz`` (the ``.npz`` of ``stack-stats``)."""
        from indexer.atomicfile import replace_with

        replace_with(self.folder / dbsensors.accumulator_name(self.engine, sensor), lambda fh: np.savez(fh, **arrays))


class TableParts:
    """Parts as rows of ``stack_parts`` (a PostgreSQL database)."""

    def __init__(self, engine: Engine, legacy: Path | None = None):
        self.engine, self.legacy = engine, legacy  # legacy: the folder of earlier versions
        self._imported: set[int] = set()

    def source(self, sensor: int, stack: str) -> str | None:
        self._import(sensor)
        return stackparts.source_of(self.engine, sensor, part_key(stack))

    def put(self, sensor: int, stack: str, arrays: dict) -> None:
        self._import(sensor)
        stackparts.write_part(self.engine, sensor, part_key(stack), stack, str(arrays["source"]), _npz(arrays))

    def parts(self, sensor: int) -> Iterator:
        self._import(sensor)
        for _, data in stackparts.parts_of(self.engine, sensor):
            try:
                with np.load(io.BytesIO(data)) as part:
                    yield part
            except (OSError, ValueError):
                continue

    def save_merged(self, sensor: int, arrays: dict) -> None:
        """Nothing: the merge is computed from the rows when needed."""

    def _import(self, sensor: int, report=_stderr) -> None:
        """Once per sensor and process: the parts of ``<legacy>/<accumulator>.parts/``
        (where earlier versions kept them) that the table lacks, copied in; says so."""
        if sensor in self._imported:
            return
        self._imported.add(sensor)
        if self.legacy is None:
            return
        folder = self.legacy / f"{dbsensors.accumulator_name(self.engine, sensor)}.parts"
        done = 0
        for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            try:
                with np.load(path) as part:
                    arrays = {k: part[k] for k in part.files}
            except (OSError, ValueError) as exc:
                report(f"stack part {path}: not imported into the database: {exc}")
                continue
            stack, source = str(arrays.get("stack", "")), _source(arrays)
            if not stack or source is None or stackparts.source_of(self.engine, sensor, part_key(stack)) is not None:
                continue
            stackparts.write_part(self.engine, sensor, part_key(stack), stack, source, _npz(arrays))
            done += 1
        if done:
            report(f"imported {done} stack part(s) of sensor {sensor} from {folder} into the database "
                   "(table stack_parts): every machine and user now reads them from there; the folder is "
                   "no longer used")


def open_parts(engine: Engine, folder: Path) -> FolderParts | TableParts:
    """The part store of this database: rows on PostgreSQL (``folder``: where earlier
    versions kept them, imported once), files in ``folder`` otherwise."""
    if engine.dialect.name == "postgresql":
        return TableParts(engine, folder)
    return FolderParts(engine, folder)


__all__ = ["FolderParts", "TableParts", "open_parts", "part_key"]
