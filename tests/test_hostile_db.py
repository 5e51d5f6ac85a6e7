"""A missing, damaged, foreign or read-only database: one clear line and a non-zero exit
from every command, nothing created by a typo; ``db check`` and ``db backup`` (issue 16)."""
from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import imagefiles as F
from faults import cli_in_process, damage_tables, one_line_error, photoqa, remount, tmpfs
from indexer.pipeline.run import index_paths
from indexer.session import open_session


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    """A folder of 5 photos indexed into its photoqa.db (returns the folder's parent)."""
    root = tmp_path_factory.mktemp("hostile-db")
    for i in range(5):
        F.write_jpeg(root / "photos" / f"p{i}.jpg", F.scene(i))
    session = open_session(str(root / "photoqa.db"))
    index_paths([root / "photos"], session.store, session.settings.index, workers=1)
    session.engine.dispose()
    return root


MAY_NOT_CREATE = [["dupes"], ["hotpixels"], ["db", "upgrade"], ["undo"], ["actions"], ["exposure", "--refresh"],
                  ["status"], ["sql", "SELECT 1"], ["db", "check"], ["db", "backup", "{tmp}/copy.db"],
                  ["repair", "{photo}", "--out", "{tmp}/fixed"]]


@pytest.mark.parametrize("command", MAY_NOT_CREATE, ids=lambda c: " ".join(c[:2]))
def test_a_mistyped_db_is_refused_not_created(tmp_path, indexed, command):
    typo = tmp_path / "photoqa-typo.db"
    args = [a.format(tmp=tmp_path, photo=indexed / "photos" / "p0.jpg") for a in command]
    line = one_line_error(cli_in_process("--db", typo, *args))
    assert f"no database at {typo}" in line
    assert not typo.exists() and not (tmp_path / "copy.db").exists()


def test_index_still_creates_a_database(tmp_path, indexed):
    result = photoqa("--db", tmp_path / "new.db", "index", indexed / "photos", "-j", "1")
    assert result.returncode == 0, result.stderr
    assert "indexed: 5" in result.stdout


NOT_A_DB_COMMANDS = [["status"], ["sql", "SELECT 1"], ["dupes"], ["index", "{photos}", "-j", "1"], ["hotpixels"],
                     ["exposure"], ["db", "upgrade"], ["db", "check"], ["db", "backup", "{tmp}/copy.db"]]


@pytest.mark.parametrize("command", NOT_A_DB_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_file_that_is_not_a_database(tmp_path, indexed, command):
    fake = tmp_path / "photos.db"
    fake.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    before = fake.read_bytes()
    args = [a.format(tmp=tmp_path, photos=indexed / "photos") for a in command]
    started = time.monotonic()
    line = one_line_error(cli_in_process("--db", fake, *args))
    assert time.monotonic() - started < 20  # not SQLite's 30 s busy wait
    assert "is not a SQLite database" in line
    assert fake.read_bytes() == before  # untouched


def test_damage_in_the_middle_stops_index_with_one_line(tmp_path, indexed):
    db = tmp_path / "photoqa.db"
    shutil.copy(indexed / "photoqa.db", db)
    photos = tmp_path / "photos"
    shutil.copytree(indexed / "photos", photos)
    assert photoqa("--db", db, "status").returncode == 0
    damage_tables(db, ("pairs", "image_groups"))
    shutil.copy(photos / "p0.jpg", photos / "copy.jpg")  # a copy: matching reads the damaged pairs
    result = photoqa("--db", db, "index", photos, "-j", "1")
    line = one_line_error(result)
    assert result.returncode == 1 and "is damaged" in line and str(db) in line
    check = photoqa("--db", db, "db", "check")
    assert check.returncode == 1 and "FAILED" in check.stdout and "malformed" in check.stdout, check
    for command in (["dupes"], ["exposure"]):
        assert "is damaged" in one_line_error(photoqa("--db", db, *command))


def test_read_only_folder(tmp_path, indexed):
    with tmpfs(tmp_path / "ro") as ro:
        db = ro / "photoqa.db"
        assert photoqa("--db", db, "index", indexed / "photos", "-j", "1").returncode == 0
        remount(ro, "ro")
        for command in (["status"], ["sql", "SELECT count(*) FROM images"], ["dupes"],
                        ["index", indexed / "photos", "-j", "1"], ["hotpixels"]):
            line = one_line_error(photoqa("--db", db, *command))
            assert str(db) in line and "read-only folder" in line, line


def test_db_check_reports_every_file_beside_the_database(tmp_path, indexed):
    from indexer.sensor import SensorAccumulator

    db = tmp_path / "photoqa.db"
    shutil.copy(indexed / "photoqa.db", db)
    sensors = tmp_path / "photoqa.db.sensors"
    sensors.mkdir()
    SensorAccumulator(8, 8, "rgb", None).save(sensors / "good.npz")
    (sensors / "bad.npz").write_bytes((sensors / "good.npz").read_bytes()[:300])
    (tmp_path / "photoqa.db.match-index").write_bytes(b"junk")
    result = photoqa("--db", db, "db", "check", "--format", "json")
    import json

    report = json.loads(result.stdout)
    states = {Path(c["what"]).name: c["ok"] for c in report["checked"]}
    assert states == {"photoqa.db": True, "good.npz": True, "bad.npz": False, "photoqa.db.match-index": True}
    assert result.returncode == 1 and report["ok"] is False
    (sensors / "bad.npz").unlink()
    assert photoqa("--db", db, "db", "check").returncode == 0


def test_db_backup_is_consistent_while_another_process_writes(tmp_path, indexed):
    from indexer.sensor import SensorAccumulator

    db = tmp_path / "photoqa.db"
    shutil.copy(indexed / "photoqa.db", db)
    (tmp_path / "photoqa.db.sensors").mkdir()
    SensorAccumulator(8, 8, "rgb", None).save(tmp_path / "photoqa.db.sensors" / "s1.npz")
    stop = threading.Event()
    written = []

    def writer() -> None:  # a second connection committing failures rows as fast as it can
        con = sqlite3.connect(db, timeout=30)
        con.execute("PRAGMA journal_mode = WAL")
        n = 0
        while not stop.is_set():
            con.execute("INSERT INTO failures (path, kind, message, failed_at, attempts) "
                        "VALUES (?, 'x', 'm', '2026-01-01', 1)", (f"/w/{n}",))
            con.commit()
            n += 1
            written.append(n)
        con.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 50:
            time.sleep(0.01)
        result = photoqa("--db", db, "db", "backup", tmp_path / "copy.db")
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert "1 sensor files" in result.stdout
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = [r[0] for r in copy.execute("SELECT path FROM failures WHERE path LIKE '/w/%'")]
    copy.close()
    numbers = sorted(int(p[3:]) for p in rows)
    assert len(numbers) >= 50 and numbers == list(range(len(numbers)))  # a prefix of the commits: consistent
    assert (tmp_path / "copy.db.sensors" / "s1.npz").read_bytes() == \
        (tmp_path / "photoqa.db.sensors" / "s1.npz").read_bytes()
    status = photoqa("--db", tmp_path / "copy.db", "db", "check")
    assert status.returncode == 0, status.stdout
    assert one_line_error(photoqa("--db", db, "db", "backup", tmp_path / "copy.db")).endswith("add --force")
