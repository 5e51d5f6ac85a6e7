"""The writer's batches (issue 19): many analysed files in one transaction.

Planted answers: a batch with one row the database refuses stores the others and makes
that one a ``database`` failure; storing a set of copies in batches gives the same rows,
pairs and groups as storing it one file at a time; a writer killed with SIGKILL in the
middle of a batch leaves the batches before it whole and nothing of that one, and the
next run indexes every file exactly once.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from indexer.config import IndexSettings
from indexer.outcomes import Indexed, Task
from indexer.pipeline.analyse import analyse
from indexer.pipeline.run import index_paths, reanalyser, store_outcomes
from indexer.pipeline.stages import build_stages, close_stages, store_batch, store_outcome
from indexer.session import open_session
from imagefiles import jpeg_bytes, scene, write
from pgschema import database_url

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    with database_url(request.param, tmp_path, "t.db") as url:
        yield url


def planted(folder: Path) -> list[Path]:
    """Three scenes, each with a mirrored copy, a byte copy and a re-encoded copy, and
    two scenes alone: 14 files, 3 groups of 4."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s in range(3):
        rgb = scene(s, 320, 240)
        out.append(write(folder / f"s{s}_a.jpg", jpeg_bytes(rgb)))
        out.append(write(folder / f"s{s}_b_mirror.jpg", jpeg_bytes(np.ascontiguousarray(rgb[:, ::-1]))))
        out.append(write(folder / f"s{s}_c_copy.jpg", (folder / f"s{s}_a.jpg").read_bytes()))
        out.append(write(folder / f"s{s}_d_q70.jpg", jpeg_bytes(rgb, quality=70)))
    for s in (7, 8):
        out.append(write(folder / f"alone{s}.jpg", jpeg_bytes(scene(s, 320, 240))))
    return sorted(out)


def outcomes_of(paths: list[Path]) -> list[Indexed]:
    out = []
    for p in paths:
        st = p.stat()
        result = analyse(Task(str(p), st.st_size, st.st_mtime_ns))
        assert isinstance(result, Indexed), result
        out.append(result)
    return out


def no_move(sha256: str) -> None:
    return None


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_a_batch_with_one_bad_row_stores_the_others(url, tmp_path):
    session = open_session(url)
    results = outcomes_of(planted(tmp_path / "f")[:6])
    bad = results[3]
    capture = dataclasses.replace(bad.decoded.meta.capture, iso=2**70)  # no INTEGER column holds it
    results[3] = dataclasses.replace(bad, decoded=dataclasses.replace(
        bad.decoded, meta=dataclasses.replace(bad.decoded.meta, capture=capture)))
    assert store_batch(session.store, [(r, False) for r in results], []) == [None] * 6  # failed: each alone
    stored = store_outcomes(results, session.store, reanalyser(IndexSettings()), set(), {}, {}, [])  # what index does
    assert [status for _, status in stored] == ["indexed"] * 3 + ["failed"] + ["indexed"] * 2
    paths = sorted(r.task.path for i, r in enumerate(results) if i != 3)
    assert [p for (p,) in rows(session.engine, "SELECT path FROM images ORDER BY path")] == paths
    assert rows(session.engine, "SELECT path, kind FROM failures") == [(bad.task.path, "database")]
    session.engine.dispose()


def _groups(engine) -> list[tuple]:
    return rows(engine, "SELECT i.path, k.path, g.is_keeper FROM image_groups g JOIN images i ON i.id = g.image_id "
                        "JOIN images k ON k.id = g.group_id ORDER BY i.path")


def _pairs(engine) -> list[tuple]:
    return rows(engine, "SELECT a.path, b.path, p.verdict, p.transform FROM pairs p JOIN images a ON a.id = p.a_id "
                        "JOIN images b ON b.id = p.b_id ORDER BY a.path, b.path")


_COLUMNS = ("path, size, sha256, width, height, phash, dhash, phash_d4, phash_crops, luma_mean, sharpness, "
            "thumb, hist, matched_at IS NULL, missing_since IS NULL")


def test_batched_store_equals_one_at_a_time(tmp_path):
    """The same 14 files, stored one by one and in batches of 5 (every default stage
    run after each): the same image rows, revisions in the same order, the same pairs
    and the same groups and keepers."""
    results = outcomes_of(planted(tmp_path / "f"))
    found = []
    for name, size in (("one", 1), ("batched", 5)):
        session = open_session(str(tmp_path / f"{name}.db"))
        stages = build_stages(session)
        for k in range(0, len(results), size):
            chunk = results[k:k + size]
            if size == 1:
                store_outcome(session.store, chunk[0], stages, known=False, claim_move=no_move)
            else:
                assert None not in store_batch(session.store, [(r, False) for r in chunk], stages)
        assert close_stages(stages) == []
        found.append((rows(session.engine, f"SELECT {_COLUMNS} FROM images ORDER BY revision"),
                      _pairs(session.engine), _groups(session.engine),
                      rows(session.engine, "SELECT i.path, f.name, f.value FROM image_flags f JOIN images i ON i.id = f.image_id "
                                           "ORDER BY 1, 2")))
        session.engine.dispose()
    one, batched = found
    assert len(one[0]) == 14 and len({keeper for _, keeper, _ in one[2]}) == 3  # the planted groups
    assert batched == one


_CHILD = r"""
import sys, time
from pathlib import Path
from sqlalchemy import event
from indexer.outcomes import Task
from indexer.pipeline.analyse import analyse
from indexer.pipeline.stages import store_batch
from indexer.session import open_session

db, folder, marker = sys.argv[1:4]
session = open_session(db)
paths = sorted(Path(folder).glob("*.jpg"))
results = [analyse(Task(str(p), p.stat().st_size, p.stat().st_mtime_ns)) for p in paths]
inserts = []

@event.listens_for(session.engine, "after_cursor_execute")
def stall(conn, cursor, statement, params, context, many):
    if statement.lstrip().upper().startswith("INSERT INTO IMAGES"):
        inserts.append(statement)
        if len(inserts) == 2:  # the second batch's rows are written, not committed
            Path(marker).write_text("in the batch")
            time.sleep(120)

for k in range(0, len(results), 5):
    store_batch(session.store, [(r, False) for r in results[k:k + 5]], [])
"""


def test_kill_9_in_the_middle_of_a_batch(tmp_path):
    folder = tmp_path / "f"
    paths = planted(folder)
    db, marker = tmp_path / "k.db", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(db), str(folder), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the child never reached its batch"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    session = open_session(str(db))
    assert rows(session.engine, "PRAGMA integrity_check") == [("ok",)]
    # the first batch whole, nothing of the second
    assert [p for (p,) in rows(session.engine, "SELECT path FROM images ORDER BY path")] == \
        [str(p) for p in paths[:5]]
    summary = index_paths([folder], session.store, IndexSettings(), workers=1)
    assert (summary.indexed, summary.unchanged, summary.failed) == (len(paths) - 5, 5, 0)
    assert rows(session.engine, "SELECT count(*), count(DISTINCT path) FROM images") == [(len(paths), len(paths))]
    session.engine.dispose()


def _with_iso(result: Indexed, iso: int) -> Indexed:
    capture = dataclasses.replace(result.decoded.meta.capture, iso=iso)
    return dataclasses.replace(result, decoded=dataclasses.replace(
        result.decoded, meta=dataclasses.replace(result.decoded.meta, capture=capture)))


@pytest.mark.parametrize("iso", [2**40, -2**31 - 1])
def test_a_batch_refuses_an_integer_its_column_cannot_hold(url, tmp_path, iso):
    """2**40 fits the driver's 64-bit integers, not the INTEGER column: psycopg's binary
    COPY would have stored its low 32 bits (0); the batch must fail whole instead, as an
    INSERT fails (SQLite's INTEGER holds 64 bits: PostgreSQL only)."""
    if not url.startswith("postgresql"):
        pytest.skip("SQLite stores any 64-bit integer in an INTEGER column")
    session = open_session(url)
    results = outcomes_of(planted(tmp_path / "f")[:3])
    results[1] = _with_iso(results[1], iso)
    with pytest.raises(Exception, match="out of range"):
        session.store.save_batch(results)
    assert rows(session.engine, "SELECT count(*) FROM images") == [(0,)]
    assert len(session.store.save_batch([results[0], results[2]])) == 2  # the connection is usable after it
    assert rows(session.engine, "SELECT count(*) FROM images") == [(2,)]
    session.engine.dispose()


def test_copy_stores_what_executemany_stores(url, tmp_path):
    """On PostgreSQL the same files stored by COPY and by executemany give the same
    values in every column but the id, the path and the time of indexing."""
    if not url.startswith("postgresql"):
        pytest.skip("COPY is PostgreSQL's")
    session = open_session(url)
    results = outcomes_of(planted(tmp_path / "f"))
    for way, copy in (("copy", True), ("many", False)):
        session.store.copy_on_postgresql = copy
        renamed = [dataclasses.replace(r, task=dataclasses.replace(r.task, path=f"/{way}/{i:02d}.jpg"))
                   for i, r in enumerate(results)]
        assert len(session.store.save_batch(renamed)) == len(results)
    with session.engine.connect() as conn:
        table = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM images ORDER BY path"))]
    copied, many = table[:len(results)], table[len(results):]
    assert [r["path"] for r in copied] == [f"/copy/{i:02d}.jpg" for i in range(len(results))]
    for a, b in zip(copied, many):
        assert b["revision"] == a["revision"] + len(results)
        for row in (a, b):
            for column in ("id", "path", "indexed_at", "revision"):
                del row[column]
        assert a == b
    assert copied[0]["thumb"] and copied[0]["phash_d4"]  # blobs came through, not NULL
    session.engine.dispose()


def test_flag_stage_writes_a_batch_in_one_transaction(tmp_path):
    """Two dark and two blown-out files (flags fire) and two plain ones, stored one by
    one and as one batch: the same flag rows, written by one DELETE/INSERT per batch
    instead of one per image."""
    from sqlalchemy import event

    from indexer.pipeline.exposurestage import FlagStage

    folder = tmp_path / "f"
    folder.mkdir()
    paths = []
    for s in range(6):
        rgb = scene(s, 320, 240).astype(np.float32)
        rgb = rgb * 0.04 if s < 2 else np.minimum(rgb * 4 + 120, 255) if s < 4 else rgb
        paths.append(write(folder / f"s{s}.jpg", jpeg_bytes(rgb.astype(np.uint8))))
    results = outcomes_of(paths)
    found = []
    for name, batched in (("one", False), ("batched", True)):
        session = open_session(str(tmp_path / f"{name}.db"))
        deletes = []
        event.listen(session.engine, "after_cursor_execute",
                     lambda conn, cur, stmt, *a: deletes.append(stmt)
                     if stmt.lstrip().upper().startswith("DELETE FROM IMAGE_FLAGS") else None)
        stages = [FlagStage(session)]
        if batched:
            assert None not in store_batch(session.store, [(r, False) for r in results], stages)
        else:
            for r in results:
                store_outcome(session.store, r, stages, known=False, claim_move=no_move)
        assert close_stages(stages) == []
        found.append(rows(session.engine, "SELECT i.path, f.name, f.value FROM image_flags f "
                                          "JOIN images i ON i.id = f.image_id ORDER BY 1, 2"))
        assert len(deletes) == (1 if batched else len(results))
        session.engine.dispose()
    one, batched = found
    flagged = {Path(p).name for p, _, _ in one}
    assert {"s0.jpg", "s1.jpg", "s2.jpg", "s3.jpg"} <= flagged  # the planted exposures fired
    assert batched == one


def test_a_refused_flag_batch_loses_only_the_refused_images_flags(tmp_path):
    """The batch's one flag write is refused (an image id that is gone: its foreign key):
    the other images' flags are still stored, one by one, and the error names the id."""
    from indexer.pipeline.exposurestage import FlagStage

    folder = tmp_path / "f"
    folder.mkdir()
    paths = [write(folder / f"d{s}.jpg", jpeg_bytes((scene(s, 320, 240) * 0.04).astype(np.uint8)))
             for s in range(3)]
    session = open_session(str(tmp_path / "x.db"))
    stage = FlagStage(session)
    stage.prepare()
    stored = [store_outcome(session.store, r, [], known=False, claim_move=no_move) for r in outcomes_of(paths)]
    ids = [s.image_id for s in stored]
    for image_id, r in zip(ids, outcomes_of(paths)):
        stage(image_id, r)
    gone = max(ids) + 1000
    stage.held[gone] = list(stage.held[ids[0]])  # flags of an image no longer in the table
    with pytest.raises(RuntimeError, match=str(gone)):
        stage.end_batch()
    flagged = {r[0] for r in rows(session.engine, "SELECT DISTINCT image_id FROM image_flags")}
    assert flagged == set(ids)  # the dark files kept their flags
    session.engine.dispose()
