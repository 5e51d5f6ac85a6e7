"""The watch daemon's rules without a file system: settling, event mapping, name filters,
liveness, the inotify-limit message, lock retries; and the two CLI commands' surface."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from watchdog.events import (DirCreatedEvent, DirMovedEvent, FileClosedEvent, FileClosedNoWriteEvent,
                             FileCreatedEvent, FileMovedEvent, FileOpenedEvent)

from db import heartbeat as hb
from indexer.watch.daemon import WatchOptions
from indexer.watch.observe import WatchError, inotify_message, start_observer
from indexer.watch.events import ChangeQueue, ignored
from indexer.watch.settle import Pending
from indexer.watch.status import is_running
from test_watch_helpers import no_thread_leak  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def fake_stat(table: dict):
    return lambda path: table.get(path)


def ready_paths(pending: Pending, now: float, stat) -> list[str]:
    return [e.path for e in pending.ready(now, limit=100, stat=stat)]


def test_closed_file_is_ready_after_debounce_only():
    p = Pending(settle=2.0, debounce=0.2, closes_reported=True)
    stat = fake_stat({"a": (10, 1)})
    p.written("a", 0.0)
    p.closed("a", 0.05)
    assert ready_paths(p, 0.2, stat) == []
    assert ready_paths(p, 0.26, stat) == ["a"]
    assert len(p) == 0


def test_open_writer_waits_for_close_or_three_settles():
    p = Pending(settle=1.0, debounce=0.2, open_factor=3.0, closes_reported=True)
    stat = fake_stat({"a": (10, 1)})
    p.written("a", 0.0)
    assert ready_paths(p, 0.5, stat) == []  # first look starts the stable window
    assert ready_paths(p, 2.0, stat) == []  # stable 1.5 s > settle, but a write is open
    assert ready_paths(p, 3.6, stat) == ["a"]  # 3 x settle: the writer is taken as stalled/gone


def test_without_close_events_size_and_mtime_must_hold_still():
    p = Pending(settle=1.0, debounce=0.2, closes_reported=False)
    sizes = {"a": (10, 1)}
    stat = fake_stat(sizes)
    p.written("a", 0.0)
    assert ready_paths(p, 0.3, stat) == []
    sizes["a"] = (20, 2)  # still growing (no event needed: polling may lag)
    assert ready_paths(p, 1.0, stat) == []
    assert ready_paths(p, 1.9, stat) == []
    assert ready_paths(p, 2.05, stat) == ["a"]


def test_every_event_restarts_the_window():
    p = Pending(settle=1.0, debounce=0.2)
    stat = fake_stat({"a": (10, 1)})
    p.touched("a", 0.0)
    assert ready_paths(p, 0.5, stat) == []
    p.touched("a", 1.4)
    assert ready_paths(p, 1.7, stat) == []
    assert ready_paths(p, 2.8, stat) == ["a"]


def test_deleted_path_is_ready_after_debounce_and_rename_into_place_at_once():
    p = Pending(settle=5.0, debounce=0.2, closes_reported=True)
    stat = fake_stat({"final.jpg": (10, 1)})
    p.moved(None, "final.jpg", 0.0)  # temporary name renamed into place
    p.moved("old.jpg", None, 0.0)  # renamed to an ignored name: gone
    assert sorted(ready_paths(p, 0.25, stat)) == ["final.jpg", "old.jpg"]


def test_rename_remembers_its_source_and_busy_paths_wait():
    p = Pending(settle=1.0, debounce=0.1)
    stat = fake_stat({"b": (1, 1), "c": (1, 1)})
    p.moved("a", "b", 0.0)
    p.closed("c", 0.0)
    entries = list(p.ready(1.0, limit=10, busy={"c"}, stat=stat))
    assert [(e.path, e.moved_from) for e in entries] == [("b", "a")]
    assert list(p.entries) == ["c"]


def test_ready_respects_the_limit_and_overflow_is_flagged():
    p = Pending(settle=0.1, debounce=0.0, max_pending=3)
    stat = fake_stat({k: (1, 1) for k in "abcd"})
    for k in "abc":
        p.closed(k, 0.0)
    assert not p.overflowed
    p.closed("d", 0.0)
    assert p.overflowed
    assert [e.path for e in p.ready(1.0, limit=2, stat=stat)] == ["a", "b"]
    assert list(p.entries) == ["c", "d"]


def test_ignored_names_match_index_rules():
    roots = ["/w"]
    for path in ("/w/.a.jpg", "/w/a.jpg.part", "/w/a.jpg.tmp", "/w/a.jpg.crdownload", "/w/a.jpg~",
                 "/w/.cache/a.jpg", "/w/x/.git/a.jpg", "/elsewhere/a.jpg", "/wx/a.jpg"):
        assert ignored(path, roots), path
    for path in ("/w/a.jpg", "/w/sub/IMG_1.CR2", "/w/x.y/a.jpg"):
        assert not ignored(path, roots), path


def test_change_queue_maps_events_and_drops_reads():
    q = ChangeQueue(["/w"])
    for event in (FileCreatedEvent("/w/a.jpg"), FileOpenedEvent("/w/a.jpg"),
                  FileClosedNoWriteEvent("/w/a.jpg"), FileClosedEvent("/w/a.jpg"),
                  FileMovedEvent("/w/.a.jpg.tmp", "/w/b.jpg"), FileMovedEvent("/w/b.jpg", "/out/b.jpg"),
                  DirCreatedEvent("/w/new"), DirMovedEvent("/w/old", "/out/old"),
                  FileCreatedEvent("/w/c.jpg.part")):
        q.dispatch(event)
    q.dispatch(DirMovedEvent("", "/w/card"))  # inotify full events: moved in from outside
    q.dispatch(DirMovedEvent("/w/x", "/w/y"))  # inside: its files report their own moves
    got = [(c.kind, c.path, c.dest) for c in q.drain()]
    assert got == [("created", "/w/a.jpg", None), ("closed", "/w/a.jpg", None),
                   ("moved", None, "/w/b.jpg"), ("moved", "/w/b.jpg", None),
                   ("dir_created", "/w/new", None), ("dir_deleted", "/w/old", None),
                   ("dir_moved_in", "/w/card", None)]


def test_creation_counts_as_open_write_unless_renamed_into_place():
    p = Pending(settle=1.0, debounce=0.2, open_factor=3.0, closes_reported=True)
    stat = fake_stat({"a": (10, 1), "b": (10, 1)})
    p.created("a", 0.0)  # its first writes may have happened before the folder was watched
    p.moved(None, "b", 0.0)  # a folder moved in whole: its files are complete ...
    p.created("b", 0.01)  # ... even when the observer also reports them as created
    assert ready_paths(p, 0.3, stat) == ["b"]
    assert ready_paths(p, 2.0, stat) == []
    assert ready_paths(p, 3.4, stat) == ["a"]


def test_daemon_liveness_from_heartbeat_and_pid():
    now = datetime(2026, 1, 1, 12, 0, 0)
    host = socket.gethostname()
    row = lambda pid, age, h=host: hb.DaemonRow(1, h, pid, ["/w"], now, now - timedelta(seconds=age), 0, None)
    assert is_running(row(os.getpid(), 2), now, interval=5)
    assert not is_running(row(os.getpid(), 16), now, interval=5)  # heartbeat stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    assert not is_running(row(int(dead), 1), now, interval=5)  # same host, process gone
    assert is_running(row(int(dead), 1, "other-host"), now, interval=5)  # cannot check: trust it


def test_out_of_inotify_watches_is_a_clear_error(tmp_path, no_thread_leak):
    class Full:
        def schedule(self, *a, **k):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        def stop(self):
            pass

    with pytest.raises(WatchError) as err:
        start_observer(ChangeQueue([str(tmp_path)]), [str(tmp_path)], WatchOptions(),
                       factory=lambda options: (Full(), True))
    text = str(err.value)
    assert "--polling" in text and "fs.inotify.max_user_watches" in text
    assert "max_user_instances" in inotify_message(OSError(errno.EMFILE, "x"), ["/w"])


def test_retry_locked_retries_only_lock_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return "done"

    assert hb.retry_locked(flaky, first_wait=0.001) == "done" and len(calls) == 3

    def broken():
        raise OperationalError("SELECT", {}, Exception("no such table: images"))

    with pytest.raises(OperationalError):
        hb.retry_locked(broken, first_wait=0.001)


def test_cli_help_has_examples_and_status_of_empty_database(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command in ("watch", "status"):
        out = subprocess.run([sys.executable, "-m", "cli", command, "--help"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True).stdout
        assert "Example" in out
    db = tmp_path / "p.db"
    from indexer.session import open_session

    open_session(str(db)).engine.dispose()  # an empty database (`db upgrade` refuses a missing one)
    out = subprocess.run([sys.executable, "-m", "cli", "--db", str(db), "status"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "daemon running" in out and "no" in out.split("daemon running")[1].splitlines()[0]


def _writer(tmp_path, lines):
    from indexer.session import open_session
    from indexer.watch.writer import Writer

    session = open_session(str(tmp_path / "p.db"))
    log = lambda status, path, detail="": lines.append((status, path, detail))  # noqa: E731
    return session, Writer(session.store, session.settings.index, workers=1, stages=[], log=log)


def test_writer_close_abandons_files_still_decoding_after_the_grace(tmp_path, no_thread_leak):
    import time

    from indexer.outcomes import Task
    from indexer.watch.writer import Job

    session, writer = _writer(tmp_path, [])
    writer.jobs[writer.pool.submit(time.sleep, 30)] = Job(Task("/nowhere.jpg", 1, 1), False)
    time.sleep(0.3)  # let it reach the worker (a queued job is simply cancelled)
    started = time.monotonic()
    assert writer.close(grace=0.5) == 1
    assert time.monotonic() - started < 5.0
    session.engine.dispose()


def test_a_worker_crash_is_survived_and_innocent_files_are_retried(tmp_path, no_thread_leak):
    from indexer.outcomes import Task
    from indexer.watch.writer import Job
    from test_watch_helpers import jpeg, rows, wait_for

    lines = []
    session, writer = _writer(tmp_path, lines)
    path = tmp_path / "ok.jpg"
    path.write_bytes(jpeg(80))
    st = path.stat()
    # a job whose worker dies (as a decoder segfault would) takes the pool down with it
    writer.jobs[writer.pool.submit(os._exit, 3)] = Job(Task(str(path), st.st_size, st.st_mtime_ns), False)
    try:
        wait_for(lambda: writer.collect(0.1) or ("indexed", str(path), "") in lines, 30, "retry")
    finally:
        writer.close(grace=1.0)
        session.engine.dispose()
    assert rows(tmp_path / "p.db", "SELECT path FROM images") == [(str(path),)]
    assert rows(tmp_path / "p.db", "SELECT count(*) FROM failures") == [(0,)]


def test_status_counts_pending_of_running_daemons_only(tmp_path):
    from db.store import utcnow
    from indexer.session import open_session
    from indexer.watch.status import status

    session = open_session(str(tmp_path / "p.db"))
    engine = session.engine
    live = hb.register(engine, host=socket.gethostname(), pid=os.getpid(), roots=["/a"])
    gone = hb.register(engine, host="elsewhere", pid=1, roots=["/b"])
    hb.beat(engine, live, pending=7, last_activity=None)
    hb.beat(engine, gone, pending=5, last_activity=None)
    with engine.begin() as conn:  # the other host's daemon stopped beating a minute ago
        from sqlalchemy import update

        from db.models import Daemon

        conn.execute(update(Daemon).where(Daemon.id == gone)
                     .values(heartbeat_at=utcnow() - timedelta(seconds=60)))
    report = status(engine)
    assert (report.daemon_running, report.pending) == (True, 7)
    assert [d.running for d in report.daemons] == [True, False]
    hb.stopped(engine, live, last_activity=None)
    report = status(engine)
    assert (report.daemon_running, report.pending, len(report.daemons)) == (False, 0, 1)
    engine.dispose()


def test_a_second_watch_on_watched_folders_is_refused(tmp_path):
    """A live daemon (fresh heartbeat, pid alive on this host) watching the folder, or
    one around it, makes a second `photoqa watch` exit 5 with its host and pid; a dead
    one (pid gone) or an unrelated folder does not."""
    from click.testing import CliRunner

    from cli import EXIT_BUSY, main
    from db import heartbeat as hb
    from indexer.session import open_session
    from indexer.watch.daemon import AlreadyWatched, Daemon, WatchOptions

    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    db = tmp_path / "photoqa.db"
    session = open_session(str(db))
    hb.register(session.engine, host=socket.gethostname(), pid=os.getppid(), roots=[str(photos)])
    result = CliRunner().invoke(main, ["--db", str(db), "watch", str(photos / "2024")])
    assert result.exit_code == EXIT_BUSY
    assert f"pid {os.getppid()}" in result.output and "--force" in result.output

    def check(roots):
        d = Daemon.__new__(Daemon)
        d.roots, d.options = [str(r) for r in roots], WatchOptions()
        d._refuse_if_watched(session.engine)

    with pytest.raises(AlreadyWatched):
        check([tmp_path])  # around the watched folder
    check([tmp_path / "elsewhere"])  # unrelated: allowed
    gone = subprocess.Popen(["true"])
    gone.wait()
    from sqlalchemy import update

    from db.models import Daemon as DaemonModel

    with session.engine.begin() as conn:
        conn.execute(update(DaemonModel).values(pid=gone.pid))
    check([photos])  # the watching process is gone: not blocking
    session.engine.dispose()


def test_a_rename_chain_moves_the_row_from_its_first_name():
    """X -> Y -> Z before the first rename is handled: one entry, Z moved from X (the
    watch soak indexed such a file twice: Z decoded afresh, X's row left live)."""
    p = Pending(closes_reported=True)
    p.moved("x.jpg", "y.jpg", 0.0)
    p.moved("y.jpg", "z.jpg", 0.1)
    entries = list(p.ready(1.0, limit=10, stat=lambda path: None))
    assert [(e.path, e.moved_from) for e in entries] == [("z.jpg", "x.jpg")]
    p.moved("a.jpg", "b.jpg", 0.0)
    p.moved("b.jpg", "a.jpg", 0.1)  # renamed back: a plain look at a.jpg
    assert [(e.path, e.moved_from) for e in p.ready(1.0, limit=10, stat=lambda path: None)] == [("a.jpg", None)]


def test_a_path_that_raised_then_was_stored_starts_its_count_afresh():
    """``MAX_ATTEMPTS`` errors *in a row*: a path that raised once (a locked database),
    then was stored, is forgotten; before, the daemon kept a count for every path that
    ever raised, and two errors months later gave it up."""
    from types import SimpleNamespace

    from indexer.watch.daemon import MAX_ATTEMPTS, Daemon

    logged = []
    daemon = Daemon(None, [], WatchOptions(), stages=[], log=lambda *line: logged.append(line))
    pending = Pending(settle=1.0)
    writer = SimpleNamespace(errors=["/in/a.jpg", "/in/b.jpg"], busy=set(), crashed=[])
    daemon._retry_errors(pending, writer, 0.0)
    assert daemon.attempts == {"/in/a.jpg": 1, "/in/b.jpg": 1}
    assert set(pending.entries) == {"/in/a.jpg", "/in/b.jpg"}  # retried a settle time later
    del pending.entries["/in/a.jpg"], pending.entries["/in/b.jpg"]  # both handed to the workers
    writer.busy = {"/in/b.jpg"}  # a.jpg stored; b.jpg still being decoded
    daemon._retry_errors(pending, writer, 2.0)
    assert daemon.attempts == {"/in/b.jpg": 1}
    for attempt in range(MAX_ATTEMPTS - 1):  # b.jpg fails on every try now: given up after the last
        writer.errors, writer.busy = ["/in/b.jpg"], set()
        pending.entries.pop("/in/b.jpg", None)
        daemon._retry_errors(pending, writer, 3.0 + attempt)
    assert daemon.attempts == {} and [line[0] for line in logged] == ["gave up"]


def test_a_renamed_file_deleted_before_the_rename_is_handled_retires_its_first_name():
    """X -> Y, then Y deleted, before the rename is handled: X and Y are deletions (the
    watch soak left X's row live for a file gone)."""
    p = Pending(closes_reported=True)
    p.moved("x.jpg", "y.jpg", 0.0)
    p.deleted("y.jpg", 0.1)
    entries = list(p.ready(1.0, limit=10, stat=lambda path: None))
    assert sorted((e.path, e.moved_from, e.closed) for e in entries) == [("x.jpg", None, False),
                                                                         ("y.jpg", None, False)]
    p.moved("a.jpg", "b.jpg", 0.0)
    p.moved("b.jpg", "c.jpg", 0.1)
    p.deleted("c.jpg", 0.2)  # a chain, then deleted: a.jpg's row is the one to retire
    assert sorted(e.path for e in p.ready(1.0, limit=10, stat=lambda path: None)) == ["a.jpg", "c.jpg"]


def test_a_file_deleted_while_it_was_read_is_missing_not_failed(tmp_path, no_thread_leak):
    from indexer.outcomes import Task
    from indexer.watch.writer import Job
    from test_watch_helpers import jpeg, rows, wait_for

    lines = []
    session, writer = _writer(tmp_path, lines)
    path = tmp_path / "gone.jpg"
    path.write_bytes(jpeg(80))
    st = path.stat()
    path.unlink()  # settled, queued, then deleted before its worker opened it
    writer.submit(Job(Task(str(path), st.st_size, st.st_mtime_ns), False))
    try:
        wait_for(lambda: writer.collect(0.1) or lines, 30, "the outcome")
    finally:
        writer.close(grace=1.0)
        session.engine.dispose()
    assert lines == [("missing", str(path), "deleted while it was being read")]
    assert rows(tmp_path / "p.db", "SELECT count(*) FROM failures") == [(0,)]
