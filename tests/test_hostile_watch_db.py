"""The database damaged under a running ``photoqa watch`` (issue 16): the daemon stops with
one line and a non-zero exit instead of logging an error per file for ever after; the
files that arrive after the damage stay unindexed (a later start catches them up)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import EXIT_ERROR
from faults import REPO, damage_tables
from test_watch_helpers import jpeg, wait_for


def overwrite_whole(db: Path) -> None:
    """Random bytes over the whole file, in place (the same inode the daemon has open)."""
    size = db.stat().st_size
    with open(db, "r+b") as handle:
        handle.write(os.urandom(size))


@pytest.mark.parametrize("damage", ["middle", "whole"])
def test_a_database_damaged_under_watch_stops_it_with_one_line(tmp_path, damage):
    inbox, db, log = tmp_path / "in", tmp_path / "w.db", tmp_path / "watch.log"
    inbox.mkdir()
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "--db", str(db), "watch", str(inbox),
                                 "-j", "1", "--settle", "0.5", "--log-file", str(log)],
                                env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                stderr=stderr)
    try:
        for i in range(3):
            (inbox / f"before{i}.jpg").write_bytes(jpeg(600 + i))

        def indexed() -> int:
            return log.read_text().count(" indexed ") if log.exists() else 0

        wait_for(lambda: proc.poll() is not None or indexed() >= 3, 120, "the first 3 files indexed")
        assert proc.poll() is None, stderr_path.read_text()
        if damage == "middle":  # the images table's pages and its indexes' (faults.damage_tables)
            damage_tables(db, ("images",))
        else:
            overwrite_whole(db)
        for i in range(5):
            (inbox / f"after{i}.jpg").write_bytes(jpeg(610 + i))
            time.sleep(0.3)
        # the heartbeat (every 5 s) notices an overwritten header; a damaged page, the next write
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    errors = stderr_path.read_text()
    mine = [line for line in errors.splitlines() if line.startswith("photoqa:")]
    assert returncode == EXIT_ERROR, errors
    assert len(mine) == 1 and "watch stopped" in mine[0], errors
    assert ("is damaged" if damage == "middle" else "is not a SQLite database") in mine[0], errors
    assert "Traceback" not in errors
    # no error line per file: the first unusable write stopped the daemon
    assert not [line for line in log.read_text().splitlines() if line.split()[1:2] in (["error"], ["gave"])]
