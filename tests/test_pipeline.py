"""``index`` end to end on generated files in a temp folder, against a temp SQLite db."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import imagefiles as F
from db import store as dbstore
from indexer.pipeline.run import index_paths
from indexer.session import open_session


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    for i in range(4):
        F.write_jpeg(root / f"s{i}.jpg", F.scene(i))
    F.write_jpeg(root / "sub" / "deep.jpg", F.scene(9))
    return root


@pytest.fixture
def session(tmp_path):
    s = open_session(str(tmp_path / "db" / "photoqa.db"))
    yield s
    s.engine.dispose()


def run(session, *roots, workers=1):
    # one worker: decoded in this process, as these tests check the pipeline's logic (and one
    # monkeypatches the decoder); tests/test_hostile_run.py checks that -j 1 isolates a crash
    return index_paths(list(roots), session.store, session.settings.index, workers=workers, inline=workers == 1)


def rows(session, sql, **params):
    with session.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def touch(path: Path, seconds_later: int = 10) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds_later * 1_000_000_000))


def test_first_run_indexes_everything(session, folder):
    s = run(session, folder)
    assert (s.indexed, s.unchanged, s.updated, s.moved, s.missing, s.failed) == (5, 0, 0, 0, 0, 0)
    paths = [p for (p,) in rows(session, "SELECT path FROM images ORDER BY path")]
    assert paths == sorted(str(p.resolve()) for p in folder.rglob("*.jpg"))
    (w, h, fmt, version, d4, hist, thumb, tw, th) = rows(
        session, "SELECT width, height, format, features_version, phash_d4, hist, thumb, thumb_width, "
                 "thumb_height FROM images WHERE path LIKE '%s0.jpg'")[0]
    assert (w, h, fmt, version) == (160, 120, "JPEG", 2)
    assert len(d4) == 64
    assert dbstore.unpack_hist(hist).sum(axis=1).tolist() == [160 * 120] * 4
    assert dbstore.unpack_thumb(thumb, tw, th).shape == (th, tw) == (96, 128)


def test_rerun_is_idempotent(session, folder):
    run(session, folder)
    before = rows(session, "SELECT id, path, sha256, indexed_at FROM images ORDER BY id")
    s = run(session, folder)
    assert (s.indexed, s.unchanged, s.updated, s.moved, s.missing, s.failed) == (0, 5, 0, 0, 0, 0)
    assert rows(session, "SELECT id, path, sha256, indexed_at FROM images ORDER BY id") == before


def test_changed_file_is_updated(session, folder):
    run(session, folder)
    target = folder / "s1.jpg"
    (old_id, old_sha), = rows(session, "SELECT id, sha256 FROM images WHERE path = :p", p=str(target))
    F.write_jpeg(target, F.scene(42))
    touch(target)
    s = run(session, folder)
    assert (s.indexed, s.updated, s.unchanged) == (0, 1, 4)
    (new_id, new_sha), = rows(session, "SELECT id, sha256 FROM images WHERE path = :p", p=str(target))
    assert new_id == old_id and new_sha != old_sha
    assert rows(session, "SELECT count(*) FROM images") == [(5,)]


def test_touched_but_same_bytes_is_unchanged_and_not_decoded(session, folder, monkeypatch):
    run(session, folder)
    (before,) = rows(session, "SELECT indexed_at, revision FROM images WHERE path LIKE '%s2.jpg'")
    touch(folder / "s2.jpg")
    from indexer import decode

    decoded = []
    original = decode.decode_bytes
    monkeypatch.setattr(decode, "decode_bytes", lambda *a, **k: decoded.append(a[1]) or original(*a, **k))
    s = run(session, folder)
    assert (s.unchanged, s.updated, s.indexed) == (5, 0, 0) and decoded == []
    mtime = (folder / "s2.jpg").stat().st_mtime_ns
    assert rows(session, "SELECT mtime_ns, indexed_at, revision FROM images WHERE path LIKE '%s2.jpg'") == \
        [(mtime, *before)]
    assert run(session, folder).unchanged == 5  # the row now has the new time: not even hashed


def test_same_size_new_bytes_is_updated(session, folder):
    run(session, folder)
    data = bytearray((folder / "s2.jpg").read_bytes())
    data[-3] ^= 0xFF  # inside the entropy-coded data, before EOI: same size, new bytes
    (folder / "s2.jpg").write_bytes(bytes(data))
    s = run(session, folder)
    assert s.unchanged == 4 and s.updated + s.failed == 1
    assert rows(session, "SELECT count(*) FROM images") == [(5,)]


def test_moved_file_keeps_its_row(session, folder):
    run(session, folder)
    src, dst = folder / "s3.jpg", folder / "sub" / "renamed.jpg"
    (old_id, sha), = rows(session, "SELECT id, sha256 FROM images WHERE path = :p", p=str(src))
    shutil.move(src, dst)
    s = run(session, folder)
    assert (s.moved, s.indexed, s.missing, s.unchanged) == (1, 0, 0, 4)
    assert rows(session, "SELECT id, sha256, missing_since FROM images WHERE path = :p", p=str(dst)) == \
        [(old_id, sha, None)]
    assert rows(session, "SELECT count(*) FROM images") == [(5,)]
    assert run(session, folder).unchanged == 5


def test_deleted_file_is_marked_missing(session, folder):
    run(session, folder)
    (folder / "s0.jpg").unlink()
    s = run(session, folder)
    assert (s.missing, s.unchanged) == (1, 4)
    (missing_since,), = rows(session, "SELECT missing_since FROM images WHERE path LIKE '%s0.jpg'")
    assert missing_since is not None
    assert rows(session, "SELECT count(*) FROM images") == [(5,)]
    assert run(session, folder).missing == 0  # already marked: not counted again


def test_missing_file_moved_back_later_is_recognised(session, folder, tmp_path):
    run(session, folder)
    parked = tmp_path / "parked.jpg"
    shutil.move(folder / "s1.jpg", parked)
    assert run(session, folder).missing == 1
    shutil.move(parked, folder / "back.jpg")
    s = run(session, folder)
    assert (s.moved, s.indexed) == (1, 0)
    assert rows(session, "SELECT count(*) FROM images WHERE missing_since IS NULL") == [(5,)]


def test_only_roots_being_indexed_mark_missing(session, folder, tmp_path):
    other = tmp_path / "other"
    F.write_jpeg(other / "x.jpg", F.scene(7))
    run(session, folder)
    run(session, other)  # indexing another folder must not mark folder's files missing
    assert rows(session, "SELECT count(*) FROM images WHERE missing_since IS NOT NULL") == [(0,)]
    assert rows(session, "SELECT count(*) FROM images") == [(6,)]


def test_corrupt_file_is_a_failure_row_not_retried(session, folder):
    bad = F.write(folder / "broken.jpg", F.jpeg_bytes(F.scene(5))[:500])
    s = run(session, folder)
    assert (s.indexed, s.failed) == (5, 1)
    (kind, message, attempts), = rows(session, "SELECT kind, message, attempts FROM failures WHERE path = :p",
                                      p=str(bad))
    assert kind in ("truncated", "corrupt") and message
    s = run(session, folder)
    assert (s.failed, s.unchanged) == (0, 6)
    assert rows(session, "SELECT attempts FROM failures") == [(1,)]
    # changed (still broken): retried once
    F.write(bad, F.jpeg_bytes(F.scene(5))[:700])
    touch(bad)
    assert run(session, folder).failed == 1
    assert rows(session, "SELECT attempts FROM failures") == [(2,)]


def test_failure_row_removed_when_file_later_indexes(session, folder):
    bad = F.write(folder / "later.jpg", b"\xff\xd8\xff")
    assert run(session, folder).failed == 1
    F.write_jpeg(bad, F.scene(11))
    touch(bad)
    s = run(session, folder)
    assert (s.indexed, s.failed) == (1, 0)
    assert rows(session, "SELECT count(*) FROM failures") == [(0,)]
    assert rows(session, "SELECT count(*) FROM images WHERE path = :p", p=str(bad)) == [(1,)]


def test_indexed_file_that_becomes_corrupt_is_not_retried_until_changed(session, folder):
    target = folder / "s0.jpg"
    run(session, folder)
    F.write(target, b"\xff\xd8\xff garbage")
    touch(target)
    assert run(session, folder).failed == 1
    s = run(session, folder)
    assert s.failed == 0 and s.updated == 0
    assert rows(session, "SELECT attempts FROM failures") == [(1,)]


def test_empty_and_non_image_files(session, folder):
    F.write(folder / "empty.jpg", b"")
    F.write(folder / "notes.txt", b"just text")
    F.write(folder / ".hidden.jpg", F.jpeg_bytes(F.scene(1)))
    s = run(session, folder)
    assert (s.indexed, s.failed) == (5, 1)
    assert rows(session, "SELECT kind FROM failures") == [("empty",)]


def test_byte_identical_copies_get_their_own_rows(session, folder):
    shutil.copy(folder / "s0.jpg", folder / "s0_copy.jpg")
    assert run(session, folder).indexed == 6
    assert rows(session, "SELECT count(DISTINCT sha256), count(*) FROM images") == [(5, 6)]


FEATURE_COLUMNS = ("sha256, format, width, height, display_width, display_height, phash, dhash, phash_d4, "
                   "phash_crops, hist, luma_mean, luma_std, luma_p1, luma_p50, luma_p99, clip_high, clip_low, "
                   "entropy, sharpness, colourfulness, ev, thumb, decoder")


def test_two_workers_store_the_same_features(tmp_path, folder):
    F.write(folder / "broken.jpg", b"\xff\xd8\xff")
    results = []
    for workers in (1, 2):
        s = open_session(str(tmp_path / f"w{workers}.db"))
        summary = run(s, folder, workers=workers)
        assert (summary.indexed, summary.failed) == (5, 1)
        results.append(rows(s, f"SELECT path, {FEATURE_COLUMNS} FROM images ORDER BY path"))
        results.append(rows(s, "SELECT path, kind, message FROM failures ORDER BY path"))
        s.engine.dispose()
    assert results[0] == results[2]
    assert results[1] == results[3]


def test_index_format_json(tmp_path, folder):
    from cli import main

    db = tmp_path / "cli.db"
    result = CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "--workers", "1",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert set(summary) >= {"indexed", "unchanged", "updated", "moved", "missing", "failed", "seconds",
                            "images_per_second"}
    assert summary["indexed"] == 5 and summary["failed"] == 0
    again = json.loads(CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1",
                                                 "--format", "json"]).stdout)
    assert again["unchanged"] == 5 and again["indexed"] == 0


def test_plan_with_many_rows_outside_the_roots_is_fast_and_marks_nothing():
    # indexing a new card into a big database: rows elsewhere are neither gone nor moves
    from db.store import FileState
    from indexer.pipeline import scan

    known = {f"/elsewhere/x{i}.jpg": FileState(i, 1, 1, f"s{i}", 1, False) for i in range(50_000)}
    plan = scan.plan([], known, {}, [Path("/card")], 1)
    assert plan.gone == {} and plan.move_candidates == {}
    assert scan.under("/card/a/b.jpg", [Path("/card")]) and not scan.under("/cardx/b.jpg", [Path("/card")])


def test_camera_inserted_by_another_writer_meanwhile(tmp_path, monkeypatch):
    # two daemons meet the same new body: the loser of the insert race reuses the row
    from db.store import Store
    from indexer.pipeline.analyse import analyse
    from indexer.outcomes import Task

    path = F.write_jpeg(tmp_path / "p" / "a.jpg", F.scene(1), exif=F.exif_with(1, "Canon", "EOS 5D"))
    session = open_session(str(tmp_path / "race.db"))
    st = path.stat()
    outcome = analyse(Task(str(path), st.st_size, st.st_mtime_ns), session.settings.index, frozenset())
    first = Store(session.engine)
    first.save_indexed(outcome)
    second = Store(session.engine)
    real = Store._find_camera
    calls = []

    def stale_then_real(conn, key):  # the second writer looked before the first committed
        calls.append(key)
        return None if len(calls) == 1 else real(conn, key)

    monkeypatch.setattr(Store, "_find_camera", staticmethod(stale_then_real))
    second.save_indexed(outcome)
    assert len(calls) == 2
    assert rows(session, "SELECT count(*) FROM cameras") == [(1,)]
    assert rows(session, "SELECT count(DISTINCT camera_id) FROM images") == [(1,)]
    session.engine.dispose()


def test_file_roots_and_overlapping_roots(session, folder):
    s = run(session, folder / "s0.jpg", folder, folder / "sub")
    assert (s.indexed, s.failed) == (5, 0)  # each file once
    (folder / "s1.jpg").unlink()
    s = run(session, folder / "s0.jpg")  # a single-file root says nothing about its siblings
    assert (s.unchanged, s.missing) == (1, 0)
    assert run(session, folder).missing == 1


def test_plan_lists_failure_rows_of_deleted_files(session, folder):
    from indexer.pipeline import scan

    F.write(folder / "broken.jpg", b"")
    F.write(folder / "sub" / "bad.jpg", b"\xff\xd8\xff")
    run(session, folder)
    (folder / "broken.jpg").unlink()
    tasks = scan.walk([folder])
    plan = scan.plan(tasks, session.store.known_files(), session.store.known_failures(), [folder], 1)
    assert plan.stale_failures == [str((folder / "broken.jpg").resolve())]
    outside = scan.plan([], {}, session.store.known_failures(), [folder / "sub"], 1)
    assert outside.stale_failures == [str((folder / "sub" / "bad.jpg").resolve())]
    session.store.forget_failures(plan.stale_failures)
    assert rows(session, "SELECT count(*) FROM failures") == [(1,)]


def test_failure_row_of_a_deleted_file_is_forgotten(session, folder):
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    assert run(session, folder).failed == 1
    assert rows(session, "SELECT count(*) FROM failures") == [(1,)]
    bad.unlink()
    run(session, folder)
    assert rows(session, "SELECT count(*) FROM failures") == [(0,)]


def test_a_failing_stage_does_not_stop_the_run(session, folder, capsys):
    seen = []

    class Broken:
        def __call__(self, image_id, outcome):
            seen.append(image_id)
            raise RuntimeError("stage bug")

        def flush_due(self):
            pass

        def close(self):
            pass

    s = index_paths([folder], session.store, session.settings.index, workers=1, stages=[Broken()])
    assert s.indexed == 5 and len(seen) == 5
    assert capsys.readouterr().err.count("stage bug") == 5


def test_a_row_the_database_refuses_becomes_a_failure(session, folder, monkeypatch):
    from sqlalchemy.exc import DataError

    original = dbstore.Store.save_indexed

    def refuse_one(self, result):
        if result.task.path.endswith("s2.jpg"):
            raise DataError("INSERT", {}, ValueError("value out of range"))
        return original(self, result)

    monkeypatch.setattr(dbstore.Store, "save_indexed", refuse_one)
    s = run(session, folder)
    assert (s.indexed, s.failed) == (4, 1)
    assert rows(session, "SELECT kind FROM failures WHERE path LIKE '%s2.jpg'") == [("database",)]


def test_symbolic_links_one_rule_for_walks_and_arguments(session, folder, tmp_path, caplog):
    """Paths are stored as found, links not resolved: a linked folder is walked under the
    link's name, a linked file given as an argument keeps the link's path, and a link
    back to a parent folder is walked once with a warning, not forever."""
    outside = tmp_path / "elsewhere"
    F.write_jpeg(outside / "far.jpg", F.scene(20))
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    single = tmp_path / "single.jpg"
    single.symlink_to(folder / "s0.jpg")
    with caplog.at_level("WARNING", logger="photoqa.scan"):
        run(session, folder)
    paths = {Path(p).relative_to(folder).as_posix() for (p,) in rows(session, "SELECT path FROM images")}
    assert paths == {"s0.jpg", "s1.jpg", "s2.jpg", "s3.jpg", "sub/deep.jpg", "linked/far.jpg"}
    assert "loop" in caplog.text and "skipped" in caplog.text
    run(session, single)
    assert (str(single),) in rows(session, "SELECT path FROM images")
    run(session, folder)  # walking again finds every file where it was: nothing marked missing
    assert rows(session, "SELECT count(*) FROM images WHERE missing_since IS NULL") == [(7,)]
