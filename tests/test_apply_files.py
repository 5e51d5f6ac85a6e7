"""dupes --apply hardlink/symlink, sidecars, [dupes] reference, file systems and the
indexer's view of the trash; real files in temp folders (a tmpfs mount for the second
file system, skipped where mounting is not allowed)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import imagefiles as F
from cli import EXIT_SKIPPED, main
from db import actions as dbactions
from indexer.commands import act
from indexer.fileops import files, trash
from indexer.fileops.sidecars import sidecars_of
from indexer.pipeline import scan
from indexer.session import open_session
from indexer.synthetic import scenes as synth
from indexer.watch.events import ignored


def run(db: Path, *args):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(path: Path) -> tuple[str, int]:
    return sha(path), path.stat().st_mtime_ns


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "Trash"


def copies(folder: Path, n: int = 5, seed: int = 61) -> list[Path]:
    """``a.jpg`` and ``n - 1`` byte-identical copies, each a second younger (so ``a.jpg`` is the keeper)."""
    F.save(folder / "a.jpg", Image.fromarray(synth.scene(seed, 240, 180)), "JPEG", quality=90)
    out = [folder / "a.jpg"]
    for i in range(1, n):
        out.append(folder / f"b{i}.jpg")
        shutil.copyfile(out[0], out[-1])
        later = out[0].stat().st_mtime_ns + i * 10**9
        os.utime(out[-1], ns=(later, later))
    return out


def indexed(tmp_path: Path, folder: Path) -> Path:
    db = tmp_path / "photoqa.db"
    result = run(db, "index", folder, "--workers", "1")
    assert result.exit_code == 0, result.output
    return db


def the_group(db: Path) -> dict:
    (g,) = json.loads(run(db, "dupes", "--format", "json").stdout)["groups"]
    return g


def test_hardlink_then_undo_gives_independent_files(tmp_path, trash_home):
    folder = tmp_path / "p"
    paths = copies(folder)
    db = indexed(tmp_path, folder)
    before = {p: state(p) for p in paths}
    keeper = Path(the_group(db)["keeper"])
    plan = run(db, "dupes", "--apply", "hardlink")
    assert plan.exit_code == 0 and "nothing changed" in plan.stdout
    assert all(p.stat().st_nlink == 1 for p in paths)
    result = run(db, "dupes", "--apply", "hardlink", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [a["state"] for a in report["actions"]] == ["done"] * 4 and report["bytes"] == 4 * keeper.stat().st_size
    for p in paths:
        assert p.stat().st_ino == keeper.stat().st_ino and sha(p) == before[p][0]
    assert len(the_group(db)["files"]) == 5  # linked copies keep their rows
    again = json.loads(run(db, "dupes", "--apply", "hardlink", "--format", "json").stdout)
    assert again["actions"] == []  # already linked: nothing to do
    undone = run(db, "undo")
    assert undone.exit_code == 0 and "4 files restored" in undone.stdout, undone.output
    assert {p: state(p) for p in paths} == before  # bytes and modification times
    assert len({p.stat().st_ino for p in paths}) == 5  # independent files again
    assert all(p.stat().st_nlink == 1 for p in paths)


def test_symlink_then_undo(tmp_path, trash_home):
    folder = tmp_path / "p"
    paths = copies(folder, 3)
    db = indexed(tmp_path, folder)
    before = {p: state(p) for p in paths}
    keeper = Path(the_group(db)["keeper"])
    assert run(db, "dupes", "--apply", "symlink", "--yes").exit_code == 0
    for p in paths:
        if p != keeper:
            assert p.is_symlink() and os.readlink(p) == str(keeper)
    assert not keeper.is_symlink() and state(keeper) == before[keeper]
    assert run(db, "undo").exit_code == 0
    assert not any(p.is_symlink() for p in paths) and {p: state(p) for p in paths} == before


def test_links_only_for_byte_identical_copies(tmp_path, trash_home):
    folder = tmp_path / "p"
    img = Image.fromarray(synth.scene(62, 320, 240))
    F.save(folder / "a.png", img, "PNG")
    F.save(folder / "a.jpg", img, "JPEG", quality=95)  # same pixels? no: another encoding of them
    db = indexed(tmp_path, folder)
    if not json.loads(run(db, "dupes", "--format", "json").stdout)["groups"]:
        pytest.skip("the two encodings were not grouped")
    result = run(db, "dupes", "--apply", "hardlink", "--yes", "--format", "json")
    assert result.exit_code == EXIT_SKIPPED
    (action,) = json.loads(result.stdout)["actions"]
    assert "not byte-identical" in action["state"]
    assert (folder / "a.png").stat().st_nlink == 1 and (folder / "a.jpg").stat().st_nlink == 1


def test_undoing_a_link_needs_the_keeper_bytes(tmp_path, trash_home):
    folder = tmp_path / "p"
    paths = copies(folder, 2)
    db = indexed(tmp_path, folder)
    keeper = Path(the_group(db)["keeper"])
    copy = next(p for p in paths if p != keeper)
    assert run(db, "dupes", "--apply", "symlink", "--yes").exit_code == 0
    keeper.write_bytes(b"not the photo any more")
    result = run(db, "undo")
    assert result.exit_code == EXIT_SKIPPED and "must still hold them" in result.output
    assert copy.is_symlink()  # left as it was


def test_sidecars_travel_with_their_photo_and_come_back(tmp_path, trash_home):
    folder = tmp_path / "p"
    copies(folder, 3)
    (folder / "b1.xmp").write_text("<x:xmpmeta>b1</x:xmpmeta>")
    (folder / "b2.jpg.xmp").write_text("<x:xmpmeta>b2</x:xmpmeta>")
    (folder / "b2.AAE").write_text("edits")
    db = indexed(tmp_path, folder)
    keeper = Path(the_group(db)["keeper"])
    assert keeper == folder / "a.jpg"  # names that say nothing: the earliest file
    before = {p: state(p) for p in folder.iterdir()}
    plan = json.loads(run(db, "dupes", "--apply", "trash", "--format", "json").stdout)
    sidecars = {Path(a["path"]).name: Path(a["sidecar_of"]).name for a in plan["actions"] if a["sidecar_of"]}
    assert sidecars == {"b1.xmp": "b1.jpg", "b2.jpg.xmp": "b2.jpg", "b2.AAE": "b2.jpg"}
    assert run(db, "dupes", "--apply", "trash", "--yes").exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]
    trashed = sorted(p.name for p in (trash_home / "files").iterdir())
    assert trashed == ["b1.jpg", "b1.xmp", "b2.AAE", "b2.jpg", "b2.jpg.xmp"]
    assert all((trash_home / "info" / f"{n}.trashinfo").is_file() for n in trashed)
    assert run(db, "undo").exit_code == 0
    assert {p: state(p) for p in folder.iterdir()} == before


def test_sidecar_rules(tmp_path):
    (tmp_path / "IMG_1.CR2").write_bytes(b"raw")
    (tmp_path / "IMG_1.jpg").write_bytes(b"jpg")
    (tmp_path / "IMG_1.xmp").write_text("shared by the RAW and the JPEG")
    (tmp_path / "IMG_1.jpg.xmp").write_text("the JPEG's own")
    (tmp_path / "IMG_2.jpg").write_bytes(b"jpg")
    (tmp_path / "IMG_2.THM").write_bytes(b"thm")
    (tmp_path / "IMG_22.xmp").write_text("another photo's")
    assert [p.name for p in sidecars_of(tmp_path / "IMG_1.jpg")] == ["IMG_1.jpg.xmp"]
    assert [p.name for p in sidecars_of(tmp_path / "IMG_2.jpg")] == ["IMG_2.THM"]


def test_reference_folders_from_the_settings_are_never_touched(tmp_path, trash_home):
    folder = tmp_path / "p"
    paths = copies(folder, 3)
    archive = folder / "archive"
    archive.mkdir()
    shutil.copy2(paths[1], archive / "b1.jpg")
    db = indexed(tmp_path, folder)
    (tmp_path / "photoqa.toml").write_text(f'[dupes]\nreference = ["{archive}"]\n')
    before = state(archive / "b1.jpg")
    result = run(db, "dupes", "--apply", "delete", "--yes", "--format", "json")
    assert result.exit_code == EXIT_SKIPPED
    states = {Path(a["path"]).name if Path(a["path"]).parent == folder else "archive": a["state"]
              for a in json.loads(result.stdout)["actions"]}
    assert states["archive"] == "skipped: under a reference folder"
    assert state(archive / "b1.jpg") == before


def test_the_index_and_the_watcher_skip_the_trash(tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "data"))
    F.write_jpeg(root / "a.jpg")
    F.write_jpeg(root / "data" / "Trash" / "files" / "b.jpg")
    F.write_jpeg(root / "mnt" / ".Trash-0" / "files" / "c.jpg")
    assert [Path(t.path).name for t in scan.walk([root])] == ["a.jpg"]
    roots = [str(root)]
    assert ignored(str(root / "data" / "Trash" / "files" / "b.jpg"), roots)
    assert ignored(str(root / "mnt" / ".Trash-0" / "files" / "c.jpg"), roots)
    assert not ignored(str(root / "a.jpg"), roots)


def test_a_file_being_placed_is_not_a_new_photo(tmp_path, trash_home):
    folder = tmp_path / "p"
    copies(folder, 2)
    db = indexed(tmp_path, folder)
    arriving = folder / "review" / "b1.jpg"
    session = open_session(str(db))
    dbactions.plan(session.engine, "test", [dict(action="move", path=str(folder / "b1.jpg"), destination=str(arriving),
                                                 image_id=None, keeper_path=str(folder / "a.jpg"), size=1,
                                                 mtime_ns=1, sha256="0" * 64)])
    assert dbactions.placed(session.engine, [str(arriving), str(folder / "a.jpg")]) == {str(arriving)}
    F.write_jpeg(arriving, synth.scene(99, 160, 120))
    result = json.loads(run(db, "index", folder, "--workers", "1", "--format", "json").stdout)
    assert result["indexed"] == 0
    session.engine.dispose()


def test_an_interrupted_link_is_reconciled(tmp_path, trash_home):
    folder = tmp_path / "p"
    paths = copies(folder, 3)
    db = indexed(tmp_path, folder)
    session = open_session(str(db))
    keeper = str(paths[0])
    rows = [dict(action="symlink", path=str(p), destination=keeper, image_id=None, keeper_path=keeper,
                 size=p.stat().st_size, mtime_ns=p.stat().st_mtime_ns, sha256=sha(p)) for p in paths[1:]]
    dbactions.plan(session.engine, "killed", rows)
    files.replace_with_link(paths[1], paths[0], "symlink")  # the first was carried out, then kill -9
    (folder / ".b2.jpg.photoqa-link").symlink_to(keeper)  # the second half-made
    assert act.reconcile(session) == 2
    states = {Path(r.path).name: r.state for r in dbactions.rows_of(session.engine, "killed")}
    assert states == {"b1.jpg": "done", "b2.jpg": "skipped"}
    assert not os.path.lexists(folder / ".b2.jpg.photoqa-link") and not paths[2].is_symlink()
    assert act.undo(session, "killed").restored == 1 and not paths[1].is_symlink()
    session.engine.dispose()


def test_trashinfo_follows_the_specification(tmp_path, trash_home):
    photo = tmp_path / "p" / "my photo #1.jpg"
    F.write_jpeg(photo)
    first = trash.reserve(photo)
    photo2 = tmp_path / "q" / "my photo #1.jpg"
    F.write_jpeg(photo2)
    second = trash.reserve(photo2)
    assert first.file == trash_home / "files" / "my photo #1.jpg"
    assert second.file == trash_home / "files" / "my photo #1.2.jpg"  # unique names
    lines = first.info.read_text().splitlines()
    assert lines[0] == "[Trash Info]"
    assert lines[1] == f"Path={tmp_path.as_posix().replace(' ', '%20')}/p/my%20photo%20%231.jpg"
    assert len(lines[2]) == len("DeletionDate=2026-12-03T10:15:00") and lines[2][23] == "T"
    assert oct(os.stat(trash_home).st_mode & 0o777) == "0o700"


@pytest.fixture
def other_fs(tmp_path):
    """A tmpfs mounted on a temp folder: a second file system."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True,
                       capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {exc}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True, timeout=20)


def test_across_file_systems(tmp_path, trash_home, other_fs):
    """A hard link is refused across file systems; trash goes to that file system's own
    $topdir/.Trash-$uid; a move to it is a checked copy; undo brings everything back."""
    folder = tmp_path / "p"
    paths = copies(folder, 2)
    far = other_fs / "b2.jpg"
    shutil.copyfile(paths[0], far)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, other_fs, "--workers", "1").exit_code == 0
    keeper = Path(the_group(db)["keeper"])
    assert keeper.parent == folder
    result = run(db, "dupes", "--apply", "hardlink", "--yes", "--format", "json")
    assert result.exit_code == EXIT_SKIPPED
    states = {Path(a["path"]).name: a["state"] for a in json.loads(result.stdout)["actions"]}
    assert "hard link cannot cross file systems" in states["b2.jpg"] and states["b1.jpg"] == "done"
    assert far.stat().st_nlink == 1
    assert run(db, "undo").exit_code == 0
    before = {p: state(p) for p in (*paths, far)}
    assert run(db, "dupes", "--apply", "trash", "--yes").exit_code == 0
    assert (other_fs / f".Trash-{os.getuid()}" / "files" / "b2.jpg").is_file()
    assert (trash_home / "files" / "b1.jpg").is_file()
    assert run(db, "undo").exit_code == 0
    assert {p: state(p) for p in before} == before
    move_to = other_fs / "review"
    assert run(db, "dupes", "--apply", f"move:{move_to}", "--yes").exit_code == 0
    assert not paths[1].exists() and any(move_to.rglob("b1.jpg"))
    assert run(db, "undo").exit_code == 0
    assert {p: state(p) for p in before} == before
