"""kill -9 in the middle of a 200-file ``dupes --apply hardlink|symlink``: every file stays
in exactly one place with its bytes, and ``undo`` (after the next apply reconciled the
journal, or on its own) gives all 200 back as independent files, byte for byte with
their modification times (issue 14). Real files, a real process killed with SIGKILL."""
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
from cli import main
from indexer.synthetic import scenes as synth

REPO = Path(__file__).resolve().parent.parent
N = 200


def run(db: Path, *args):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries(folder: Path) -> dict[str, tuple[str, int]]:
    """Every name in ``folder`` (links and temporary names included) -> (SHA-256, mtime)."""
    return {p.name: (sha(p), p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "Trash"


def copies(folder: Path) -> Path:
    """``a.jpg`` and 199 byte-identical copies, each younger (``a.jpg`` is the keeper)."""
    keeper = F.save(folder / "a.jpg", Image.fromarray(synth.scene(67, 160, 120)), "JPEG", quality=90)
    for i in range(1, N):
        copy = folder / f"copy {i:03d}.jpg"
        shutil.copyfile(keeper, copy)
        later = keeper.stat().st_mtime_ns + i * 10**9
        os.utime(copy, ns=(later, later))
    return keeper


def killed_apply(db: Path, kind: str, progress) -> int:
    """Start ``dupes --apply KIND --yes`` (0.1 s between files), SIGKILL it once
    ``progress()`` counts 5 copies carried out; returns how many were then."""
    env = dict(os.environ, PHOTOQA_TEST_APPLY_PAUSE="0.1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--db", str(db), "dupes", "--apply", kind, "--yes"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and progress() < 5 and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return progress()


def assert_every_file_in_one_place(folder: Path, before: dict, kind: str) -> None:
    """Each of the 200 paths holds its bytes (a copy, or a link to the keeper's equal
    bytes); besides them at most one half-made link, which holds the keeper's bytes too."""
    now = entries(folder)
    assert set(before) <= set(now)
    assert all(now[name][0] == before[name][0] for name in before)
    extra = set(now) - set(before)
    assert len(extra) <= 1 and all(name.endswith(".photoqa-link") for name in extra), extra


@pytest.mark.slow
def test_a_killed_hardlink_apply_then_undo_gives_all_200_back(tmp_path, trash_home):
    folder = tmp_path / "p"
    keeper = copies(folder)
    before = entries(folder)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    ino = keeper.stat().st_ino

    def linked() -> int:
        return sum(1 for p in folder.glob("copy *.jpg") if p.stat().st_ino == ino)

    done = killed_apply(db, "hardlink", linked)
    assert 5 <= done < N - 1, done  # killed in the middle
    assert_every_file_in_one_place(folder, before, "hardlink")
    result = run(db, "undo")  # reconciles the journal first, then restores the batch
    assert result.exit_code == 0, result.output
    assert entries(folder) == before  # all 200 names, bytes and times; no temporary link left
    assert all(p.stat().st_nlink == 1 for p in folder.iterdir())  # independent files again
    assert keeper.stat().st_mtime_ns == before["a.jpg"][1]


@pytest.mark.slow
def test_a_killed_symlink_apply_is_finished_by_the_next_then_both_undone(tmp_path, trash_home):
    folder = tmp_path / "p"
    copies(folder)
    before = entries(folder)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0

    def linked() -> int:
        return sum(1 for p in folder.glob("copy *.jpg") if p.is_symlink())

    done = killed_apply(db, "symlink", linked)
    assert 5 <= done < N - 1, done
    assert_every_file_in_one_place(folder, before, "symlink")
    finish = run(db, "dupes", "--apply", "symlink", "--yes")  # reconciles the killed batch, links the rest
    assert finish.exit_code == 0, finish.output
    assert linked() == N - 1 and not list(folder.glob(".*photoqa-link"))
    batches = [b["batch"] for b in json.loads(run(db, "actions", "--format", "json").stdout)]
    assert len(batches) == 2, batches
    for batch in reversed(batches):  # the last batch first, then the killed one
        result = run(db, "undo", batch)
        assert result.exit_code == 0, result.output
    assert entries(folder) == before
    assert not any(p.is_symlink() for p in folder.iterdir())
