"""``photoqa watch`` with a real inotify observer on temporary folders (daemon in a thread).

One daemon serves the module (each worker process starts an interpreter and imports
NumPy and Pillow: slow); each test works in its own subfolder, which also exercises
folders created after the daemon started. The ``no_thread_leak`` fixture checks every
test, and the last test checks the daemon leaves no thread behind once stopped.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from test_watch_helpers import (ThreadedDaemon, jpeg, no_thread_leak, rows, sha, wait_for,  # noqa: F401
                                write_slowly)

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("watch")
    root = base / "inbox"
    root.mkdir()
    (root / "early.jpg").write_bytes(jpeg(1))  # before the start: the catch-up scan finds it
    before = set(threading.enumerate())
    hooked = []

    flushes = []

    class Recorder:  # a Stage, like the matching or sensor stage: runs after each stored image
        def __call__(self, image_id, outcome):
            if Path(outcome.task.path).name.startswith("hookfail"):
                raise RuntimeError("planted hook failure")
            hooked.append((image_id, outcome.task.path))

        def flush_due(self):  # called when idle, like SensorStage's
            flushes.append(time.monotonic())

        def close(self):
            pass

    with ThreadedDaemon(base / "p.db", [root], stages=[Recorder()]) as d:
        d.hooked, d.flushes = hooked, flushes
        yield d
    time.sleep(0.2)
    leaked = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"the stopped daemon left threads: {leaked}"


@pytest.fixture
def folder(daemon, request):
    path = daemon.roots[0] / request.node.name
    path.mkdir()
    return path


def image_rows(daemon, path) -> list[tuple]:
    return rows(daemon.db, "SELECT id, size, sha256, missing_since FROM images WHERE path = ?", str(path))


def test_catch_up_indexes_files_present_at_start(daemon):
    path = daemon.roots[0] / "early.jpg"
    daemon.wait_status(path, "indexed")
    assert image_rows(daemon, path)[0][2] == sha(jpeg(1))


def test_slow_writer_is_indexed_once_and_whole(daemon, folder):
    data = jpeg(2) * 1 + b"\0" * 40_000  # trailing bytes after EOI: a bigger file, same image
    path = folder / "slow.jpg"
    write_slowly(path, data, seconds=3.0, chunks=20)  # 0.15 s between writes: > debounce
    daemon.wait_status(path, "indexed")
    time.sleep(1.0)  # a second, premature or late index would show up here
    assert daemon.statuses(path) == ["indexed"]
    (_, size, digest, _), = image_rows(daemon, path)
    assert (size, digest) == (len(data), sha(data))


def test_writer_pausing_longer_than_settle_is_read_after_close(daemon, folder):
    # inotify reports close-after-write: an open file that stops changing for more than
    # --settle (0.5 s here) but less than 3 x settle is not read half-written
    data = jpeg(14) + b"\0" * 20_000
    path = folder / "paused.jpg"
    with open(path, "wb") as fh:
        fh.write(data[:2000])
        fh.flush()
        time.sleep(1.0)
        fh.write(data[2000:])
    daemon.wait_status(path, "indexed")
    time.sleep(0.5)
    assert daemon.statuses(path) == ["indexed"]
    assert image_rows(daemon, path)[0][1:3] == (len(data), sha(data))


def test_atomic_rename_indexes_the_final_name_only(daemon, folder):
    for temp in (".shot.jpg.swp", "shot.jpg.part", "shot.jpg.tmp", "shot.jpg.crdownload"):
        write_slowly(folder / temp, jpeg(3), seconds=0.2, chunks=4)
    os.rename(folder / "shot.jpg.part", folder / "shot.jpg")
    daemon.wait_status(folder / "shot.jpg", "indexed")
    time.sleep(0.5)
    stored = rows(daemon.db, "SELECT path FROM images WHERE path LIKE ? UNION "
                             "SELECT path FROM failures WHERE path LIKE ?", f"{folder}/%", f"{folder}/%")
    assert stored == [(str(folder / "shot.jpg"),)]
    assert image_rows(daemon, folder / "shot.jpg")[0][2] == sha(jpeg(3))


def test_burst_of_200_files_each_indexed_once(daemon, folder):
    for i in range(200):
        (folder / f"b{i:03}.jpg").write_bytes(jpeg(1000 + i))
    count = lambda: rows(daemon.db, "SELECT count(*) FROM images WHERE path LIKE ?", f"{folder}/%")[0][0]
    wait_for(lambda: count() == 200, 40, "200 rows")
    logged = [p for s, p, _ in list(daemon.lines) if s == "indexed" and p.startswith(str(folder))]
    assert len(logged) == len(set(logged)) == 200
    assert rows(daemon.db, "SELECT count(*) FROM failures WHERE path LIKE ?", f"{folder}/%")[0][0] == 0


def test_move_keeps_the_row_without_decoding(daemon, folder):
    src, dest = folder / "a.jpg", folder / "sub" / "renamed.jpg"
    src.write_bytes(jpeg(4))
    daemon.wait_status(src, "indexed")
    (image_id, *_), = image_rows(daemon, src)
    dest.parent.mkdir()
    time.sleep(0.3)  # let the new folder's watch exist, so this is a rename, not a copy
    os.rename(src, dest)
    daemon.wait_status(dest, "moved")
    assert [r[0] for r in image_rows(daemon, dest)] == [image_id]
    assert image_rows(daemon, src) == []
    assert "indexed" not in daemon.statuses(dest)


def test_delete_marks_the_row_missing(daemon, folder):
    path = folder / "gone.jpg"
    path.write_bytes(jpeg(5))
    daemon.wait_status(path, "indexed")
    path.unlink()
    daemon.wait_status(path, "missing")
    assert image_rows(daemon, path)[0][3] is not None


def test_new_nested_subfolder_is_watched(daemon, folder):
    deep = folder / "2026" / "11" / "24"
    deep.mkdir(parents=True)
    (deep / "first.jpg").write_bytes(jpeg(6))
    daemon.wait_status(deep / "first.jpg", "indexed")
    time.sleep(0.3)
    (deep / "second.jpg").write_bytes(jpeg(7))
    daemon.wait_status(deep / "second.jpg", "indexed")


def test_folder_copied_in_whole_is_indexed(daemon, folder, tmp_path):
    outside = tmp_path / "card"
    outside.mkdir()
    for i in range(5):
        (outside / f"c{i}.jpg").write_bytes(jpeg(60 + i))
    shutil.move(str(outside), str(folder / "card"))  # same file system: one rename into the tree
    for i in range(5):
        daemon.wait_status(folder / "card" / f"c{i}.jpg", "indexed")


def test_file_moved_in_from_an_unwatched_folder(daemon, folder, tmp_path):
    outside = tmp_path / "tethered.jpg"
    outside.write_bytes(jpeg(18))
    os.rename(outside, folder / "tethered.jpg")  # same file system: IN_MOVED_TO without a source
    daemon.wait_status(folder / "tethered.jpg", "indexed")
    os.rename(folder / "tethered.jpg", tmp_path / "back.jpg")  # moved out: missing
    daemon.wait_status(folder / "tethered.jpg", "missing")
    os.rename(tmp_path / "back.jpg", folder / "tethered.jpg")  # and back: the row returns
    daemon.wait_status(folder / "tethered.jpg", "moved")
    assert daemon.statuses(folder / "tethered.jpg") == ["indexed", "missing", "moved"]
    assert image_rows(daemon, folder / "tethered.jpg")[0][3] is None


def test_changed_file_is_updated_in_place(daemon, folder):
    path = folder / "edit.jpg"
    path.write_bytes(jpeg(8))
    daemon.wait_status(path, "indexed")
    (image_id, *_), = image_rows(daemon, path)
    path.write_bytes(jpeg(9))
    daemon.wait_status(path, "updated")
    assert image_rows(daemon, path) == [(image_id, len(jpeg(9)), sha(jpeg(9)), None)]


def test_failed_file_is_retried_once_fixed(daemon, folder):
    path = folder / "broken.jpg"
    path.write_bytes(jpeg(10)[:300])  # truncated
    daemon.wait_status(path, "failed")
    assert rows(daemon.db, "SELECT count(*) FROM failures WHERE path = ?", str(path)) == [(1,)]
    path.write_bytes(jpeg(10))
    daemon.wait_status(path, "indexed")
    assert rows(daemon.db, "SELECT count(*) FROM failures WHERE path = ?", str(path)) == [(0,)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: permission denied cannot happen")
def test_permission_denied_file_fails_then_recovers(daemon, folder):
    path = folder / "locked.jpg"
    path.write_bytes(jpeg(11))
    os.chmod(path, 0)
    try:
        daemon.wait_status(path, "failed")
        assert "permission denied" in [d for s, p, d in daemon.lines if p == str(path)][0]
    finally:
        os.chmod(path, 0o644)  # a chmod is an attribute change: the file is retried
    daemon.wait_status(path, "indexed")


def test_dotfiles_partials_and_hidden_folders_are_ignored(daemon, folder):
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "in_hidden.jpg").write_bytes(jpeg(12))
    for name in (".dot.jpg", "backup.jpg~", "x.jpg.crdownload", "y.jpg.tmp"):
        (folder / name).write_bytes(jpeg(12))
    (folder / "marker.jpg").write_bytes(jpeg(13))  # indexed after the ignored ones were seen
    daemon.wait_status(folder / "marker.jpg", "indexed")
    time.sleep(0.5)
    assert [p for _, p, _ in list(daemon.lines) if p.startswith(str(folder))] == [str(folder / "marker.jpg")]


def test_stages_run_once_per_stored_image_and_cannot_stop_the_daemon(daemon, folder):
    (folder / "hookfail.jpg").write_bytes(jpeg(15))
    daemon.wait_status(folder / "hookfail.jpg", "indexed")
    assert "warning" in daemon.statuses(folder / "hookfail.jpg")
    (folder / "hooked.jpg").write_bytes(jpeg(16))
    daemon.wait_status(folder / "hooked.jpg", "indexed")
    (image_id, *_), = image_rows(daemon, folder / "hooked.jpg")
    assert [h for h in daemon.hooked if h[1].startswith(str(folder))] == [(image_id, str(folder / "hooked.jpg"))]
    seen = len(daemon.flushes)
    wait_for(lambda: len(daemon.flushes) > seen, 5, "an idle flush_due() call")  # heartbeat: 0.5 s


def test_same_bytes_written_over_a_file_are_unchanged(daemon, folder):
    (folder / "again.jpg").write_bytes(jpeg(18))
    daemon.wait_status(folder / "again.jpg", "indexed")
    (folder / "again.jpg").write_bytes(jpeg(18))  # a copy of the same bytes over it: new mtime
    daemon.wait_status(folder / "again.jpg", "unchanged")
    assert "updated" not in daemon.statuses(folder / "again.jpg")


def test_polling_observer_indexes_moves_and_deletes(tmp_path):
    inbox = tmp_path / "share"
    inbox.mkdir()
    with ThreadedDaemon(tmp_path / "poll.db", [inbox], polling=True, poll_interval=0.3, settle=0.6) as d:
        write_slowly(inbox / "slow.jpg", jpeg(17) + b"\0" * 20_000, seconds=1.5, chunks=15)
        d.wait_status(inbox / "slow.jpg", "indexed")
        os.rename(inbox / "slow.jpg", inbox / "renamed.jpg")
        d.wait_status(inbox / "renamed.jpg", "moved")
        (inbox / "renamed.jpg").unlink()
        d.wait_status(inbox / "renamed.jpg", "missing")
        assert d.statuses(inbox / "slow.jpg") == ["indexed"]


def test_file_being_written_when_the_daemon_starts_is_read_once_whole(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    data = jpeg(19) + b"\0" * 30_000
    with open(inbox / "during.jpg", "wb") as fh:
        fh.write(data[:3000])
        fh.flush()
        # the catch-up scan sees a partial file written < 3 x settle ago: possibly still open
        with ThreadedDaemon(tmp_path / "p.db", [inbox], settle=2.0) as d:
            time.sleep(0.8)
            fh.write(data[3000:])
            fh.close()
            d.wait_status(inbox / "during.jpg", "indexed")
            time.sleep(0.5)
            assert d.statuses(inbox / "during.jpg") == ["indexed"]
    assert rows(tmp_path / "p.db", "SELECT size, sha256 FROM images") == [(len(data), sha(data))]


def test_event_flood_beyond_max_pending_falls_back_to_a_rescan(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    with ThreadedDaemon(tmp_path / "p.db", [inbox], max_pending=5) as d:
        for i in range(30):
            (inbox / f"flood{i:02}.jpg").write_bytes(jpeg(90 + i))
        wait_for(lambda: rows(tmp_path / "p.db", "SELECT count(*) FROM images")[0][0] == 30, 30, "30 rows")
        assert any(s == "rescan" for s, _, _ in d.lines)
    assert rows(tmp_path / "p.db", "SELECT count(DISTINCT path) FROM images") == [(30,)]


def test_folder_renamed_inside_then_moved_out(daemon, folder, tmp_path):
    album = folder / "album"
    album.mkdir()
    time.sleep(0.3)
    for i in range(3):
        (album / f"a{i}.jpg").write_bytes(jpeg(120 + i))
    for i in range(3):
        daemon.wait_status(album / f"a{i}.jpg", "indexed")
    os.rename(album, folder / "renamed")  # its files report their own moves
    for i in range(3):
        daemon.wait_status(folder / "renamed" / f"a{i}.jpg", "moved")
    os.rename(folder / "renamed", tmp_path / "away")  # out of the tree: one folder event
    for i in range(3):
        daemon.wait_status(folder / "renamed" / f"a{i}.jpg", "missing")
    assert all(r[3] is not None for i in range(3) for r in image_rows(daemon, folder / "renamed" / f"a{i}.jpg"))


def test_periodic_rescan_finds_files_no_event_reported(tmp_path):
    """An observer that reports nothing (a polling interval of an hour stands in for an
    overflowed inotify queue or a share written by another machine): the periodic scan
    indexes the file anyway, once, whole."""
    inbox = tmp_path / "share"
    inbox.mkdir()
    with ThreadedDaemon(tmp_path / "r.db", [inbox], polling=True, poll_interval=3600, settle=0.3,
                        rescan=1.0) as d:
        time.sleep(0.5)
        (inbox / "unseen.jpg").write_bytes(jpeg(23))
        d.wait_status(inbox / "unseen.jpg", "indexed")
        assert any(status == "rescan" and "periodic" in detail for status, _, detail in d.lines)
        time.sleep(1.5)  # later scans find it unchanged: indexed once
        assert d.statuses(inbox / "unseen.jpg") == ["indexed"]
