"""Fault injection against real processes and files (issue 16 item 3): a full disk, a
database locked by another process, files vanishing or truncated between scan and read,
SIGKILL during a migration and while the accumulators and the .match-index are saved."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import imagefiles as F
from faults import REPO, one_line_error, photoqa, remount, tmpfs
from indexer.pipeline.analyse import analyse
from indexer.pipeline.run import index_paths
from indexer.session import open_session


def images(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM images WHERE missing_since IS NULL").fetchone()[0]
    finally:
        con.close()


def integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "photos"
    for i in range(120):
        F.write_jpeg(folder / f"p{i:03}.jpg", F.scene(i, 320, 240))
    return folder


def test_disk_full_stops_cleanly_and_a_rerun_completes(tmp_path, photos):
    with tmpfs(tmp_path / "small", "700k") as small:
        db = small / "photoqa.db"
        full = photoqa("--db", db, "index", photos, "-j", "2")
        line = one_line_error(full)
        assert "disk is full" in line and str(db) in line, line
        assert integrity(db) == "ok"
        stored = images(db)
        assert 0 < stored < 120
        remount(small, "size=64m")  # space freed
        again = photoqa("--db", db, "index", photos, "-j", "2")
        assert again.returncode == 0, again.stderr
        assert images(db) == 120 and integrity(db) == "ok"
        assert f"indexed: {120 - stored} " in again.stdout


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("ROLLBACK")
""")


def test_a_database_locked_by_another_process(tmp_path, photos):
    db = tmp_path / "photoqa.db"
    config = tmp_path / "quick.toml"
    config.write_text("[database]\nbusy_timeout_ms = 1500\n")
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(photos.iterdir())[:6]:
        (few / p.name).write_bytes(p.read_bytes())
    assert photoqa("--db", db, "--config", config, "index", few / "p000.jpg", "-j", "1").returncode == 0
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        started = time.monotonic()
        locked = photoqa("--db", db, "--config", config, "index", few, "-j", "1")
        waited = time.monotonic() - started
    finally:
        locker.kill()
        locker.wait()
    line = one_line_error(locked)
    assert "locked by another process" in line, line
    assert 1.5 <= waited < 25  # waited busy_timeout (twice at most), not the locker's 30 s
    assert images(db) == 1 and integrity(db) == "ok"
    again = photoqa("--db", db, "--config", config, "index", few, "-j", "1")
    assert again.returncode == 0 and images(db) == 6, again.stderr  # nothing lost: all indexed now


def vanishing(task, *args):
    """:func:`analyse` after the file changed under it since the scan: ``gone*`` deleted,
    ``cut*`` truncated to 100 bytes."""
    path = Path(task.path)
    if path.name.startswith("gone"):
        path.unlink()
    elif path.name.startswith("cut"):
        os.truncate(path, 100)
    return analyse(task, *args)


def test_files_vanishing_or_truncated_between_scan_and_read(tmp_path):
    folder = tmp_path / "photos"
    for name in ("a.jpg", "b.jpg", "gone.jpg", "cut.jpg"):
        F.write_jpeg(folder / name, F.scene(len(name) * 7, 320, 240))
    session = open_session(str(tmp_path / "photoqa.db"))
    summary = index_paths([folder], session.store, session.settings.index, workers=1, work=vanishing)
    assert (summary.indexed, summary.failed) == (2, 2)
    with session.engine.connect() as conn:
        kinds = dict(conn.exec_driver_sql("SELECT path, kind FROM failures").all())
    assert kinds[str(folder / "gone.jpg")] in ("unreadable", "empty")
    assert kinds[str(folder / "cut.jpg")] in ("truncated", "corrupt")
    # the next run: the vanished file's failure row goes; the truncated one is retried (its
    # size changed since the scan that recorded it) and fails again, then counts as known
    again = index_paths([folder], session.store, session.settings.index, workers=1)
    assert again.failed_paths == [str(folder / "cut.jpg")]
    third = index_paths([folder], session.store, session.settings.index, workers=1)
    assert (third.failed, third.failed_before) == (0, 1)
    with session.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT path FROM failures").scalars().all() == [str(folder / "cut.jpg")]
    session.engine.dispose()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_flipped_between_scan_and_read(tmp_path):
    folder = tmp_path / "photos"
    F.write_jpeg(folder / "locked.jpg", F.scene(3))

    def flip(task, *args):
        os.chmod(task.path, 0)
        return analyse(task, *args)

    session = open_session(str(tmp_path / "photoqa.db"))
    summary = index_paths([folder], session.store, session.settings.index, workers=1, work=flip,
                          inline=True)  # a closure: cannot be sent to a worker
    assert summary.failed == 1
    session.engine.dispose()


def test_sigkill_during_a_migration_leaves_a_known_revision(tmp_path):
    from db import migrate
    from db.engine import open_engine

    base = tmp_path / "base.db"
    engine = open_engine("sqlite:///" + str(base))
    migrate.upgrade(engine, "0001")
    engine.dispose()
    head = migrate.head_revision()
    revisions = {"0001", head} | {p.name[:4] for p in (REPO / "alembic" / "versions").glob("0*.py")}
    rng = random.Random(7)
    seen = set()
    for attempt in range(6):
        db = tmp_path / f"kill{attempt}.db"
        db.write_bytes(base.read_bytes())
        process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "--db", str(db), "db", "upgrade"],
                                   env={**os.environ, "PYTHONPATH": str(REPO)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert integrity(db) == "ok"
        engine = open_engine("sqlite:///" + str(db))
        revision = migrate.current_revision(engine)
        engine.dispose()
        assert revision in revisions, revision
        seen.add(revision)
        result = photoqa("--db", db, "db", "upgrade")  # the restart reaches head
        assert result.returncode == 0 and head in result.stdout, result.stderr
    assert seen  # which revisions the kills landed on is printed by -v runs
    print("revisions at kill:", sorted(seen))


KILL_AFTER_DDL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from alembic.operations import Operations
    from db import migrate
    from db.engine import open_engine
    real, made = Operations.create_table, []

    def create_then_die(self, name, *columns, **kw):
        made.append(real(self, name, *columns, **kw))
        if len(made) == 2:  # two tables of migration 0002 are written: the process dies
            os.kill(os.getpid(), signal.SIGKILL)
        return made[-1]

    Operations.create_table = create_then_die
    migrate.upgrade(open_engine("sqlite:///" + sys.argv[2]))
""")


def test_a_migration_killed_after_its_first_tables_leaves_none_of_them(tmp_path):
    """Python's sqlite3 commits each CREATE TABLE on its own unless the upgrade opens the
    transaction itself: a kill then left 0002's first tables with the revision at 0001,
    and every restart failed on "table already exists" (found by the CI run of the test
    above, whose restart hung for the 120 s lock wait)."""
    from db import migrate
    from db.engine import open_engine

    db = tmp_path / "half.db"
    engine = open_engine("sqlite:///" + str(db))
    migrate.upgrade(engine, "0001")
    engine.dispose()
    before = tables(db)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_DDL, str(REPO), str(db)], capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert integrity(db) == "ok"
    assert tables(db) == before  # nothing of 0002 survived the kill
    engine = open_engine("sqlite:///" + str(db))
    assert migrate.current_revision(engine) == "0001"
    engine.dispose()
    result = photoqa("--db", db, "db", "upgrade")
    assert result.returncode == 0 and migrate.head_revision() in result.stdout, result.stderr


def tables(db: Path) -> set[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path[:0] = [sys.argv[2], sys.argv[2] + "/tests"]
    kind, path = sys.argv[1], sys.argv[3]
    n = 0
    if kind == "accumulator":
        from indexer.sensor import SensorAccumulator
        acc = SensorAccumulator(600, 800, "rgb", None)
        while True:
            n += 1
            acc.frames = n % 60000
            acc.save(path)
            print(n, flush=True)
    else:
        from indexer.match import snapshot
        from indexer.match.engine import Matcher, MatchParams
        from test_match_snapshot import rand_rows
        m = Matcher.from_rows(rand_rows(list(range(1, 20000)), np.random.default_rng(0)), MatchParams())
        state = snapshot.state_of(m)
        while True:
            n += 1
            snapshot.save(path, state, {"config": snapshot.config_key(MatchParams()), "n": n, "mark": {}})
            print(n, flush=True)
""")


@pytest.mark.parametrize("kind", ["accumulator", "match_index"])
def test_sigkill_while_saving_leaves_a_whole_file(tmp_path, kind):
    from indexer.match import snapshot
    from indexer.match.engine import MatchParams
    from indexer.sensor import SensorAccumulator

    path = tmp_path / ("s.npz" if kind == "accumulator" else "x.match-index")
    rng = random.Random(3)
    for _ in range(5):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, kind, str(REPO), str(path)],
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline()  # one save done: the file exists
        time.sleep(rng.uniform(0.0, 0.5))
        saver.kill()
        saver.wait()
        if kind == "accumulator":
            assert SensorAccumulator.load(path).shape == (600, 800)
        else:
            matcher, info = snapshot.load(path, snapshot.config_key(MatchParams()))
            assert info["n"] >= 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 5  # a kill mid-write leaves its temp file; never the target half-written
