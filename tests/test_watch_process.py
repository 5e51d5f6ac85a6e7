"""``photoqa watch`` as a real process: SIGTERM, ``kill -9`` then restart, two daemons on
one SQLite database, ``photoqa status``; PostgreSQL when ``$PHOTOQA_TEST_PG_URL`` is set."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_watch_helpers import ThreadedDaemon, jpeg, no_thread_leak, rows, sha, wait_for  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_thread_leak")

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


class DaemonProcess:
    def __init__(self, db: Path, roots: list[Path], log: Path):
        self.log = log
        self.stderr = open(log.with_suffix(".stderr"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "--db", str(db), "watch", *map(str, roots),
             "-j", "1", "--settle", "0.5", "--log-file", str(log)],
            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=self.stderr)
        wait_for(lambda: self.proc.poll() is not None or "catch-up" in self.text(), 30, "catch-up")
        assert self.proc.poll() is None, self.text() + self.stderr_text()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stderr_text(self) -> str:
        return self.log.with_suffix(".stderr").read_text()

    def indexed(self) -> list[str]:
        return [line.split()[2] for line in self.text().splitlines() if line.split()[1:2] == ["indexed"]]

    def stop(self, sig=signal.SIGTERM, timeout: float = 5.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()


def count(db: Path, folder: Path) -> int:
    return rows(db, "SELECT count(*) FROM images WHERE path LIKE ? AND missing_since IS NULL",
                f"{folder}/%")[0][0]


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def burst(folder: Path, n: int, seed: int, pause: float = 0.0) -> threading.Thread:
    def write():
        for i in range(n):
            (folder / f"f{i:03}.jpg").write_bytes(jpeg(seed + i))
            time.sleep(pause)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def status_json(db: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "cli", "--db", str(db), "status", "--format", "json"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_sigterm_mid_burst_exits_0_within_5_s_and_restart_resumes(tmp_path):
    inbox, db = tmp_path / "in", tmp_path / "p.db"
    inbox.mkdir()
    daemon = DaemonProcess(db, [inbox], tmp_path / "a.log")
    burst(inbox, 80, 2000).join()
    wait_for(lambda: count(db, inbox) >= 5, 20, "some rows")
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=5.0) == 0
    assert time.monotonic() - started < 5.0
    assert "stopped" in daemon.text() and "Traceback" not in daemon.stderr_text()
    assert integrity(db) == "ok"
    assert rows(db, "SELECT is_active, stopped_at IS NOT NULL FROM daemons") == [(0, 1)]
    assert status_json(db)["daemon_running"] is False

    again = DaemonProcess(db, [inbox], tmp_path / "b.log")
    wait_for(lambda: count(db, inbox) == 80, 40, "all 80 rows after restart")
    assert again.stop() == 0
    assert not set(daemon.indexed()) & set(again.indexed()), "a stored file was decoded again"


def test_kill_9_mid_burst_then_restart_indexes_every_file_exactly_once(tmp_path):
    inbox, db = tmp_path / "in", tmp_path / "p.db"
    inbox.mkdir()
    daemon = DaemonProcess(db, [inbox], tmp_path / "a.log")
    writer = burst(inbox, 100, 3000, pause=0.01)
    wait_for(lambda: count(db, inbox) >= 15, 30, "15 rows")
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(5)
    daemon.stderr.close()
    writer.join()
    assert integrity(db) == "ok"
    assert status_json(db)["daemon_running"] is False  # same host, pid gone

    again = DaemonProcess(db, [inbox], tmp_path / "b.log")
    wait_for(lambda: count(db, inbox) == 100, 40, "all 100 rows after restart")
    time.sleep(0.5)
    assert again.stop() == 0
    stored = dict(rows(db, "SELECT path, sha256 FROM images"))
    assert stored == {str(inbox / f"f{i:03}.jpg"): sha(jpeg(3000 + i)) for i in range(100)}
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]
    assert not set(daemon.indexed()) & set(again.indexed()), "a stored file was decoded again"
    assert integrity(db) == "ok"


def test_two_daemons_on_one_sqlite_database(tmp_path):
    a, b, db = tmp_path / "a", tmp_path / "b", tmp_path / "p.db"
    a.mkdir()
    b.mkdir()
    first = DaemonProcess(db, [a], tmp_path / "a.log")
    second = DaemonProcess(db, [b], tmp_path / "b.log")
    try:
        report = status_json(db)
        assert report["daemon_running"] is True and len(report["daemons"]) == 2
        writers = [burst(a, 60, 4000), burst(b, 60, 5000)]
        for w in writers:
            w.join()
        wait_for(lambda: count(db, a) == 60 and count(db, b) == 60, 40, "60 + 60 rows")
    finally:
        codes = [first.stop(), second.stop()]
    assert codes == [0, 0]
    logs = first.text() + second.text() + first.stderr_text() + second.stderr_text()
    assert "locked" not in logs and "failed" not in logs
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]
    assert integrity(db) == "ok"


@pytest.mark.skipif(not os.environ.get("PHOTOQA_TEST_PG_URL"),
                    reason="set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write) to run")
def test_watch_into_postgresql(tmp_path):
    from sqlalchemy import create_engine, text

    url = os.environ["PHOTOQA_TEST_PG_URL"]
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "early.jpg").write_bytes(jpeg(70))
    daemon = ThreadedDaemon(url, [inbox])  # any SQLAlchemy URL
    with daemon:
        (inbox / "late.jpg").write_bytes(jpeg(71))
        daemon.wait_status(inbox / "early.jpg", "indexed")
        daemon.wait_status(inbox / "late.jpg", "indexed")
        os.rename(inbox / "late.jpg", inbox / "later.jpg")
        daemon.wait_status(inbox / "later.jpg", "moved")
    engine = create_engine(url)
    with engine.connect() as conn:
        got = dict(conn.execute(text("SELECT path, sha256 FROM images WHERE path LIKE :p"),
                                {"p": f"{inbox}/%"}).all())
    engine.dispose()
    assert got == {str(inbox / "early.jpg"): sha(jpeg(70)), str(inbox / "later.jpg"): sha(jpeg(71))}


def test_a_copy_of_a_photo_another_writer_stored_after_the_daemon_started_is_paired(tmp_path):
    """A running daemon's index catches up with rows other writers store: ``photoqa index``
    of another folder stores a photo while the daemon runs; a mirrored copy of it that
    lands in the watched folder afterwards is paired with it (before, the daemon's index
    held only the rows of its start and stored the copy with no pair)."""
    from imagefiles import scene, write_jpeg

    watched, other, db = tmp_path / "w", tmp_path / "x", tmp_path / "p.db"
    watched.mkdir()
    other.mkdir()
    daemon = DaemonProcess(db, [watched], tmp_path / "w.log")
    try:
        write_jpeg(watched / "first.jpg", scene(11, 320, 240))  # the daemon's index opens for it
        wait_for(lambda: "first.jpg" in " ".join(daemon.indexed()), 30, "first.jpg indexed")
        photo = scene(21, 320, 240)
        write_jpeg(other / "photo.jpg", photo)
        subprocess.run([sys.executable, "-m", "cli", "--db", str(db), "index", str(other)],
                       cwd=REPO, env=ENV, capture_output=True, check=True)
        time.sleep(2.5)  # past the stage's catch_up_every: the next batch catches up first
        write_jpeg(watched / "mirror.jpg", np.ascontiguousarray(photo[:, ::-1]))
        wait_for(lambda: "mirror.jpg" in " ".join(daemon.indexed()), 30, "mirror.jpg indexed")
        sql = ("SELECT a.path, b.path, p.verdict FROM pairs p JOIN images a ON a.id = p.a_id "
               "JOIN images b ON b.id = p.b_id")
        wait_for(lambda: len(rows(db, sql)) == 1, 30, "the pair stored")
        # seen by other connections while the daemon runs (its heartbeat once dropped its
        # SQLite locks: index then deleted the WAL under it, db.health.HeaderWatch)
        names = {Path(p).name for (p,) in rows(db, "SELECT path FROM images")}
        assert names == {"first.jpg", "photo.jpg", "mirror.jpg"}
    finally:
        assert daemon.stop() == 0
    (a, b, verdict), = rows(db, sql)
    assert {Path(a).name, Path(b).name} == {"photo.jpg", "mirror.jpg"} and verdict == "derived"
    assert {Path(p).name for (p,) in rows(db, "SELECT path FROM images")} == {"first.jpg", "photo.jpg", "mirror.jpg"}
    assert integrity(db) == "ok"
