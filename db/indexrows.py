"""Reading the matching index's columns: every present row at a cold start, or only the
rows changed since a saved index's revision (``images.revision``, migration 0004).

Both go through the driver's own cursor (SQLAlchemy's row objects cost more than the
read itself at a million rows); the information gate and the SHA-256 prefix are computed
in SQL; no thumbnails (the matcher fetches those of candidate pairs).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select

from db.models import Meta
from indexer.measure import hashes
from indexer.match.records import IndexRows, sha_prefix
from indexer.match.verdict import MatchThresholds

_COLUMNS = ("id, substr(sha256, 1, 16), phash, phash_d4, phash_crops, "
            "CASE WHEN entropy >= ? AND luma_std >= ? AND thumb_width >= ? AND thumb_height >= ? "
            "THEN 1 ELSE 0 END")


def _gate(th: MatchThresholds) -> tuple:
    return th.min_entropy, th.min_luma_std, th.min_side, th.min_side


def _fetch(engine: Engine, sql: str, params: tuple) -> list[tuple]:
    """All rows of one statement through the driver cursor (``?`` placeholders)."""
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql if engine.dialect.paramstyle == "qmark" else sql.replace("?", "%s"), params)
            return cursor.fetchall()
        finally:
            cursor.close()


def load_index_rows(engine: Engine, th: MatchThresholds, ids: Iterable[int] | None = None) -> IndexRows:
    """The index columns of every present image (or of the present ones among ``ids``),
    as arrays ordered by id."""
    where = "missing_since IS NULL"
    params = _gate(th)
    if ids is not None:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return to_index_rows([])
        where += f" AND id IN ({', '.join('?' * len(wanted))})"
        params += tuple(wanted)
    return to_index_rows(_fetch(engine, f"SELECT {_COLUMNS} FROM images WHERE {where} ORDER BY id", params))


@dataclass
class Changes:
    """What changed in ``images`` after a revision, read in one statement (one snapshot).

    ``present``: index rows of the changed rows that are present now (ordered by id);
    ``gone``: ids of changed rows that are missing now; ``revision``: the table's highest
    revision (the next catch-up starts there); ``n_present``: present rows in the table
    (a caught-up index holding another number missed deleted rows: see :func:`present_ids`).
    """

    present: IndexRows
    gone: list[int]
    revision: int
    n_present: int


def changes_since(engine: Engine, th: MatchThresholds, revision: int) -> Changes:
    """Rows whose ``revision`` exceeds ``revision``, and the table's counters (both
    through indexes: ``ix_images_revision``, ``ix_images_missing_since``).

    A ``UNION ALL`` with the counters' row makes it one statement, so the counters and
    the rows are of one snapshot (a SQLite read transaction, a PostgreSQL statement)."""
    sql = (f"SELECT {_COLUMNS}, CASE WHEN missing_since IS NULL THEN 1 ELSE 0 END FROM images "
           "WHERE revision > ? UNION ALL "
           "SELECT -1, NULL, (SELECT coalesce(max(revision), 0) FROM images), NULL, NULL, "
           "(SELECT count(*) FROM images WHERE missing_since IS NULL), 0")
    rows = _fetch(engine, sql, (*_gate(th), int(revision)))
    head = next(r for r in rows if r[0] == -1)
    changed = sorted((r for r in rows if r[0] != -1), key=lambda r: r[0])
    return Changes(present=to_index_rows([r[:6] for r in changed if r[6]]),
                   gone=[int(r[0]) for r in changed if not r[6]],
                   revision=int(head[2]), n_present=int(head[5]))


def present_ids(engine: Engine) -> np.ndarray:
    """Every present image's id, int64 ascending."""
    rows = _fetch(engine, "SELECT id FROM images WHERE missing_since IS NULL ORDER BY id", ())
    return np.array([r[0] for r in rows], dtype=np.int64)


def instance_id(engine: Engine) -> str | None:
    """The database's random instance id (``photoqa_meta``), None before migration 0004."""
    with engine.connect() as conn:
        return conn.execute(select(Meta.value).where(Meta.key == "instance")).scalar()


def to_index_rows(rows: list[tuple]) -> IndexRows:
    """Driver rows ``(id, sha256 prefix, phash, d4 blob, crops blob, gate)`` -> arrays."""
    ids, shas, phash, d4, crops, gate = (list(c) for c in zip(*rows)) if rows else [[]] * 6
    n = len(ids)
    crops_arr, n_crops = _crop_matrix(crops, phash)
    return IndexRows(
        ids=np.array(ids, dtype=np.int64), sha=_sha_prefixes(shas), phash=np.array(phash, dtype=np.int64),
        d4=np.frombuffer(b"".join(d4), dtype="<i8").astype(np.int64).reshape(n, 8),
        crops=crops_arr, n_crops=n_crops, informative=np.array(gate, dtype=bool))


def _sha_prefixes(prefixes: list[str]) -> np.ndarray:
    """16-hex-digit SHA-256 prefixes -> signed int64 (n,), as :func:`sha_prefix`."""
    if all(len(p) == 16 for p in prefixes):
        try:
            return np.frombuffer(bytes.fromhex("".join(prefixes)), dtype=">i8").astype(np.int64)
        except ValueError:
            pass
    return np.array([sha_prefix(p) for p in prefixes], dtype=np.int64)


def _crop_matrix(blobs: list[bytes], phash: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Stored crop-hash BLOBs -> int64 (n, 10) padded with the pHash, and counts (n,)."""
    k = len(hashes.CROP_SPECS)
    n = len(blobs)
    if all(len(b) == 8 * k for b in blobs):  # the usual case: one buffer, no Python loop
        return np.frombuffer(b"".join(blobs), dtype="<i8").astype(np.int64).reshape(n, k), np.full(n, k)
    out = np.repeat(np.array(phash, dtype=np.int64)[:, None], k, axis=1)
    counts = np.zeros(n, dtype=np.int64)
    for i, blob in enumerate(blobs):
        c = hashes.unpack(blob)[:k]
        out[i, :len(c)], counts[i] = c, len(c)
    return out, counts
