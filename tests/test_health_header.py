"""``db.health.HeaderWatch``: a running process reads its SQLite file's header without
dropping SQLite's locks (closing any descriptor of a file releases every POSIX lock the
process holds on it), and still notices the file overwritten or replaced."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from db.health import HeaderWatch, sniff_sqlite


def wal_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    return conn


def other_process_opens_and_closes(path: Path) -> None:
    """Another process's connection comes and goes, as ``photoqa index`` beside ``watch``."""
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('SELECT count(*) FROM t').fetchone(); c.close()", str(path)], check=True)


def test_reading_the_header_keeps_this_process_s_wal_alive(tmp_path):
    db = tmp_path / "w.db"
    conn = wal_database(db)
    try:
        watch = HeaderWatch(db)
        for _ in range(3):
            assert watch.check() is None
        other_process_opens_and_closes(db)
        # the other process's close saw this one's SHARED lock: it left the WAL in place
        assert Path(f"{db}-wal").exists()
        conn.execute("INSERT INTO t VALUES (2)")
        conn.commit()
        seen = sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone()[0]
        assert seen == 2  # this process's commit is visible to others
    finally:
        conn.close()


def test_the_open_and_close_it_replaces_loses_the_wal(tmp_path):
    """The control: sniff_sqlite's open and close drops the lock, and the other process's
    close deletes the WAL under the open connection (what the daemon's heartbeat did)."""
    db = tmp_path / "w.db"
    conn = wal_database(db)
    try:
        assert sniff_sqlite(db) is None
        other_process_opens_and_closes(db)
        assert not Path(f"{db}-wal").exists()
    finally:
        conn.close()


def test_an_overwritten_or_replaced_file_is_reported(tmp_path):
    db = tmp_path / "w.db"
    conn = wal_database(db)
    conn.close()
    watch = HeaderWatch(db)
    assert watch.check() is None
    size = db.stat().st_size
    with open(db, "r+b") as handle:  # in place: the same inode
        handle.write(os.urandom(size))
    assert "is not a SQLite database" in watch.check()

    other = tmp_path / "other.db"
    wal_database(other).close()
    fresh = HeaderWatch(other)
    assert fresh.check() is None
    replacement = tmp_path / "restored.db"
    wal_database(replacement).close()
    os.replace(replacement, other)  # a restored backup renamed over it
    assert "was replaced by another file" in fresh.check()
    db.unlink()
    assert HeaderWatch(db).check() is None  # nothing there to judge, as sniff_sqlite
