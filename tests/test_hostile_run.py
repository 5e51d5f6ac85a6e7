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


REANALYSE_RUN = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from crashers import crash_on_full_decode
from indexer.pipeline.run import index_paths
from indexer.session import open_session

def main():
    session = open_session({db!r})
    s = index_paths([Path({photos!r})], session.store, session.settings.index, workers=1, work=crash_on_full_decode)
    print(json.dumps(s.as_dict()))

if __name__ == "__main__":
    main()
"""


def test_a_crash_while_reanalysing_a_claimed_move_is_a_row(tmp_path):
    """Two copies of a moved file in one run: the first takes the row, the second is
    analysed afresh. That analysis ran in the command's own process: a decoder crash
    there ended the run (the child below died of SIGSEGV). It runs in a worker now."""
    photos = tmp_path / "photos"
    for i in range(4):
        F.write_jpeg(photos / f"p{i}.jpg", F.scene(i))
    original = F.write_jpeg(photos / "orig.jpg", F.scene(9))
    db = tmp_path / "photoqa.db"
    session = open_session(str(db))
    index_paths([photos], session.store, session.settings.index, workers=1)
    session.engine.dispose()
    data = original.read_bytes()
    original.unlink()
    (photos / "segv-a.jpg").write_bytes(data)  # hashed as the move of orig.jpg: no crash
    (photos / "segv-b.jpg").write_bytes(data)  # its move claimed by the other: decoded in full: crash
    script = tmp_path / "run.py"
    script.write_text(REANALYSE_RUN.format(tests=str(Path(__file__).parent), db=str(db), photos=str(photos)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    summary = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert (summary["moved"], summary["failed"], summary["unchanged"], summary["missing"]) == (1, 1, 4, 0)
    con = sqlite3.connect(db)
    try:
        failures = con.execute("SELECT path, kind, message FROM failures").fetchall()
        moved = con.execute("SELECT path FROM images WHERE path LIKE '%segv-%'").fetchall()
    finally:
        con.close()
    assert len(failures) == 1 and failures[0][1:] == ("crash", CRASH_MESSAGE)
    assert {failures[0][0], moved[0][0]} == {str(photos / "segv-a.jpg"), str(photos / "segv-b.jpg")}
