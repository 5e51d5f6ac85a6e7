"""Acting on duplicates: plan, apply (trash, move), journal, undo; real files in temp folders."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import imagefiles as F
from cli import EXIT_SKIPPED, main
from indexer.synthetic import scenes as synth

REPO = Path(__file__).resolve().parent.parent


def run(db: Path, *args):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "Trash"


@pytest.fixture
def group(tmp_path):
    """The original JPEG (camera EXIF), its PNG conversion, a 50% resize, a mirror and a
    1.5x upscale without EXIF; indexed."""
    folder = tmp_path / "photos"
    img = Image.fromarray(synth.scene(51, 480, 360))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D Mark II"
    exif.get_ifd(0x8769)[0x9003] = "2015:09:19 03:39:21"
    F.save(folder / "IMG_2601.jpg", img, "JPEG", quality=92, exif=exif)
    F.save(folder / "IMG_2601.png", img, "PNG")
    F.save(folder / "small" / "IMG_2601.jpg", img.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=90)
    F.save(folder / "IMG_2601_mirror.jpg", img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", quality=92)
    F.save(folder / "export.jpg", img.resize((720, 540), Image.Resampling.LANCZOS), "JPEG", quality=92)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    return folder, db


def files_of(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (sha(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_plan_then_trash_then_undo(group, trash_home):
    folder, db = group
    before = files_of(folder)
    (g,) = json.loads(run(db, "dupes", "--format", "json").stdout)["groups"]
    assert Path(g["keeper"]).name == "IMG_2601.jpg" and Path(g["keeper"]).parent == folder
    assert "camera EXIF" in g["keeper_reason"]
    plan = run(db, "dupes", "--apply", "trash")
    assert plan.exit_code == 0 and "nothing changed" in plan.stdout and files_of(folder) == before
    applied = run(db, "dupes", "--apply", "trash", "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    report = json.loads(applied.stdout)
    assert [a["state"] for a in report["actions"]] == ["done"] * 4
    assert list(files_of(folder)) == ["IMG_2601.jpg"]
    trashed = sorted(p.name for p in (trash_home / "files").iterdir())
    assert len(trashed) == 4
    for name in trashed:
        info = (trash_home / "info" / f"{name}.trashinfo").read_text().splitlines()
        assert info[0] == "[Trash Info]" and info[1].startswith(f"Path={folder}") and info[2].startswith("DeletionDate=")
    assert json.loads(run(db, "dupes", "--format", "json").stdout)["groups"] == []  # rows marked missing
    undone = run(db, "undo")
    assert undone.exit_code == 0 and "4 files restored" in undone.stdout
    assert files_of(folder) == before  # bytes and modification times
    assert not list((trash_home / "info").iterdir())
    (g,) = json.loads(run(db, "dupes", "--format", "json").stdout)["groups"]
    assert len(g["files"]) == 5
    assert "trash" in run(db, "actions").stdout


def test_changed_copies_and_reference_folders_are_skipped(group, trash_home):
    folder, db = group
    (folder / "export.jpg").write_bytes((folder / "export.jpg").read_bytes() + b"\0")  # changed after indexing
    result = run(db, "dupes", "--apply", "move:" + str(folder.parent / "dupes"), "--yes", "--reference",
                 folder / "small", "--format", "json")
    assert result.exit_code == EXIT_SKIPPED
    states = {Path(a["path"]).relative_to(folder).as_posix(): a["state"] for a in json.loads(result.stdout)["actions"]}
    assert states["export.jpg"].startswith("skipped: changed since indexing")
    assert states["small/IMG_2601.jpg"] == "skipped: under a reference folder"
    assert (folder / "small" / "IMG_2601.jpg").exists() and (folder / "export.jpg").exists()
    moved = folder.parent / "dupes"
    assert sorted(p.name for p in moved.rglob("*") if p.is_file()) == ["IMG_2601.png", "IMG_2601_mirror.jpg"]
    assert run(db, "undo").exit_code == 0
    assert (folder / "IMG_2601.png").exists() and not any(p.is_file() for p in moved.rglob("*"))


def test_a_symlinked_copy_is_moved_as_a_link(tmp_path, trash_home):
    folder = tmp_path / "p"
    img = Image.fromarray(synth.scene(52, 320, 240))
    F.save(folder / "a.jpg", img, "JPEG", quality=90)
    F.save(tmp_path / "elsewhere" / "b.jpg", img.resize((160, 120)), "JPEG", quality=90)
    (folder / "b_link.jpg").symlink_to(tmp_path / "elsewhere" / "b.jpg")
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    assert run(db, "dupes", "--apply", "trash", "--yes").exit_code == 0
    assert (tmp_path / "elsewhere" / "b.jpg").is_file() and not os.path.lexists(folder / "b_link.jpg")
    assert (trash_home / "files" / "b_link.jpg").is_symlink()
    assert run(db, "undo").exit_code == 0 and (folder / "b_link.jpg").is_symlink()


def test_a_killed_apply_is_reconciled_and_undone(tmp_path, trash_home):
    """kill -9 between two files of a 200-file apply; then undo: all 200 back, none lost."""
    folder = tmp_path / "p"
    img = Image.fromarray(synth.scene(53, 160, 120))
    F.save(folder / "a.jpg", img, "JPEG", quality=90)
    for i in range(199):
        shutil.copy(folder / "a.jpg", folder / f"copy {i:03d}.jpg")
    before = files_of(folder)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    env = dict(os.environ, PHOTOQA_TEST_APPLY_PAUSE="0.1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--db", str(db), "dupes", "--apply", "trash", "--yes"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((trash_home / "files").glob("*"))) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    moved = len(list((trash_home / "files").glob("*")))
    assert 5 <= moved < 199
    result = run(db, "undo")
    assert result.exit_code == 0, result.output
    assert files_of(folder) == before


def test_a_running_watch_does_not_index_the_trash(tmp_path, monkeypatch):
    """The trash inside a watched folder: files trashed while `watch` runs are not indexed
    as new photos; their rows are marked missing."""
    from test_watch_helpers import ThreadedDaemon

    root = tmp_path / "photos"
    img = Image.fromarray(synth.scene(54, 320, 240))
    F.save(root / "a.jpg", img, "JPEG", quality=90)
    for i in range(3):
        shutil.copy(root / "a.jpg", root / f"a {i}.jpg")
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "xdg"))  # a visible folder under the watched root
    db = tmp_path / "photoqa.db"
    assert run(db, "index", root, "--workers", "1").exit_code == 0
    with ThreadedDaemon(db, [root]) as daemon:
        time.sleep(1.0)
        assert run(db, "dupes", "--apply", "trash", "--yes").exit_code == 0
        time.sleep(3.0)  # several settle periods: events of the trash have been seen
        lines = list(daemon.lines)
    session_rows = CliRunner().invoke(main, ["--db", str(db), "sql", "--format", "json",
                                             "SELECT path, missing_since IS NOT NULL AS gone FROM images"])
    stored = {Path(r["path"]).relative_to(root).as_posix(): r["gone"] for r in json.loads(session_rows.stdout)}
    assert len(list((root / "xdg" / "Trash" / "files").iterdir())) == 3
    assert not any("Trash" in p for p in stored), (stored, lines)
    assert sorted(p for p, gone in stored.items() if gone) == ["a 0.jpg", "a 1.jpg", "a 2.jpg"]


def test_a_second_apply_or_undo_waits_for_none_and_touches_nothing(group, trash_home):
    """While one apply holds the database's action lock, another apply and an undo exit
    with EXIT_BUSY and a one-line message, and no file moves; afterwards both work."""
    from cli import EXIT_BUSY
    from db import actions as dbactions
    from indexer.session import open_session

    folder, db = group
    before = files_of(folder)
    session = open_session(str(db))
    with dbactions.exclusive(session.engine):
        busy = run(db, "dupes", "--apply", "trash", "--yes")
        assert busy.exit_code == EXIT_BUSY, busy.output
        assert "another photoqa apply or undo" in busy.output and len(busy.output.strip().splitlines()) == 1
        assert files_of(folder) == before
        assert run(db, "undo").exit_code == EXIT_BUSY
    session.engine.dispose()
    assert run(db, "dupes", "--apply", "trash", "--yes").exit_code == 0
    assert list(files_of(folder)) == ["IMG_2601.jpg"]
    assert run(db, "undo").exit_code == 0 and files_of(folder) == before


def test_the_report_marks_copies_already_linked_to_their_keeper(group, trash_home):
    """After ``--apply hardlink`` the byte copy is another name of the keeper's file: the
    report says so and counts no bytes to free for it; a symlink likewise."""
    folder, db = group
    keeper = folder / "IMG_2601.jpg"
    os.link(keeper, folder / "IMG_2601 (1).jpg")
    os.symlink(keeper, folder / "IMG_2601 link.jpg")
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    (g,) = json.loads(run(db, "dupes", "--format", "json").stdout)["groups"]
    by_name = {Path(m["path"]).name: m for m in g["members"]}
    assert by_name["IMG_2601 (1).jpg"]["linked"] == "hardlink"
    assert by_name["IMG_2601 link.jpg"]["linked"] == "symlink"
    assert by_name["IMG_2601 (1).jpg"]["relation"] == "already a hard link to the keeper"
    assert by_name["IMG_2601.png"]["linked"] is None
    assert g["bytes_reclaimable"] == sum(m["bytes"] for m in g["members"][1:] if not m["linked"])
    table = run(db, "dupes").stdout
    assert "already a symbolic link to the keeper" in table


def test_a_whole_group_declared_not_duplicates_stays_apart(group):
    """``--not-duplicates-group ID`` splits the group for good: no group after it, nor after
    --rematch; an unknown id is a one-line usage error."""
    folder, db = group
    (g,) = json.loads(run(db, "dupes", "--format", "json").stdout)["groups"]
    split = run(db, "dupes", "--not-duplicates-group", g["id"], "--format", "json")
    assert split.exit_code == 0 and json.loads(split.stdout)["groups"] == []
    assert json.loads(run(db, "dupes", "--rematch", "--format", "json").stdout)["groups"] == []
    bad = run(db, "dupes", "--not-duplicates-group", 999999)
    assert bad.exit_code != 0 and "no duplicate group 999999" in bad.output
