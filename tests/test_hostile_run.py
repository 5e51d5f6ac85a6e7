"""``photoqa index`` in a hostile world (issue 16): Ctrl-C, kill -9, native crashes in a
worker, known failures under --strict."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import imagefiles as F
from cli import EXIT_FILES_FAILED, EXIT_INTERRUPTED
from crashers import crash_on_planted
from faults import REPO, photoqa
from indexer.pipeline.run import CRASH_MESSAGE, index_paths
from indexer.session import open_session


def count(db: Path, table: str = "images") -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many") / "photos"
    for i in range(80):
        F.write_jpeg(folder / f"p{i:03}.jpg", F.scene(i, 640, 480))
    return folder


def start(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, **kwargs)


def wait_for_rows(db: Path, n: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while count(db) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no rows arrived"
        time.sleep(0.1)


def test_ctrl_c_stops_index_cleanly_with_a_summary(tmp_path, many):
    db = tmp_path / "photoqa.db"
    process = start("--db", db, "index", many, "-j", "2")
    wait_for_rows(db, 5, process)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole foreground group
    out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Aborted" not in err, err
    assert "interrupted" in err
    stored = count(db)
    assert f"indexed: {stored} " in out and "interrupted: True" in out, (out, stored)
    assert 5 <= stored < 80
    assert descendants(process.pid) == set()
    # the next run goes on from there
    again = photoqa("--db", db, "index", many, "-j", "2")
    assert again.returncode == 0 and f"indexed: {80 - stored}" in again.stdout, again


@pytest.mark.parametrize("command", ["index", "watch"])
def test_kill_9_leaves_no_worker_behind(tmp_path, many, command):
    db = tmp_path / "photoqa.db"
    process = start("--db", db, command, many, "-j", "2")
    wait_for_rows(db, 3, process)
    below = descendants(process.pid)
    assert below, "no worker processes were started"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in below if alive(p)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"still alive 15 s after kill -9 of {command}: {left}"
    process.communicate()


def test_strict_counts_known_failures_and_names_them(tmp_path):
    photos = tmp_path / "photos"
    F.write_jpeg(photos / "good.jpg", F.scene(1))
    F.write(photos / "bad1.jpg", b"\xff\xd8\xff not really")
    F.write(photos / "sub" / "bad2.png", b"\x89PNG\r\n\x1a\n broken")
    F.write(tmp_path / "elsewhere" / "bad3.jpg", b"\xff\xd8\xff")
    db = tmp_path / "photoqa.db"
    assert photoqa("--db", db, "index", tmp_path / "elsewhere", "-j", "1").returncode == 0
    first = photoqa("--db", db, "index", photos, "-j", "1", "--strict")
    assert first.returncode == EXIT_FILES_FAILED, first
    again = photoqa("--db", db, "index", photos, "-j", "1", "--strict")
    assert again.returncode == EXIT_FILES_FAILED, again
    assert "failed: 0" in again.stdout and "failed before: 2" in again.stdout
    named = [line.split()[1] for line in again.stderr.splitlines() if line.startswith("failed: ")]
    assert sorted(named) == sorted([str(photos / "bad1.jpg"), str(photos / "sub" / "bad2.png")])  # not bad3
    good = photoqa("--db", db, "index", photos / "good.jpg", "-j", "1", "--strict")
    assert good.returncode == 0, good


@pytest.mark.parametrize("planted", ["abort", "segv"])
def test_a_crashing_decoder_becomes_a_crash_row_and_the_run_goes_on(tmp_path, planted):
    photos = tmp_path / "photos"
    for i in range(12):
        F.write_jpeg(photos / f"p{i:02}.jpg", F.scene(i))
    F.write_jpeg(photos / f"{planted}-me.jpg", F.scene(20))
    session = open_session(str(tmp_path / "photoqa.db"))
    summary = index_paths([photos], session.store, session.settings.index, workers=2, work=crash_on_planted)
    assert (summary.indexed, summary.failed) == (12, 1)
    with session.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT path, kind, message FROM failures").all()
    session.engine.dispose()
    assert rows == [(str(photos / f"{planted}-me.jpg"), "crash", CRASH_MESSAGE)]


def test_one_worker_still_decodes_in_a_child_so_a_crash_is_a_row(tmp_path):
    """``-j 1`` decoded in the command's own process: a segfault there ended the whole run
    (no summary, no rows after it). One worker is a child process too."""
    photos = tmp_path / "photos"
    for i, name in enumerate(("a0", "a1", "a2", "z0", "z1")):
        F.write_jpeg(photos / f"{name}.jpg", F.scene(i))
    F.write_jpeg(photos / "segv-me.jpg", F.scene(20))  # in the middle of the run (walked in name order)
    session = open_session(str(tmp_path / "photoqa.db"))
    summary = index_paths([photos], session.store, session.settings.index, workers=1, work=crash_on_planted)
    assert (summary.indexed, summary.failed) == (5, 1)
    with session.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT path, kind, message FROM failures").all()
        assert conn.exec_driver_sql("SELECT count(*) FROM images").scalar() == 5
    session.engine.dispose()
    assert rows == [(str(photos / "segv-me.jpg"), "crash", CRASH_MESSAGE)]
