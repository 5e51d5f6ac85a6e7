"""``photoqa watch`` (the real daemon process) and array stacks (issue 18): a stack there at
start-up is indexed by the catch-up, one arriving is indexed frame by frame (its mirrored
copy of another stack's frame paired as derived), a changed one re-indexed (its new frames
only), a deleted one's frames marked missing; photos beside them are handled as before."""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np

from test_frame_matching import smooth_frames
from test_watch_helpers import jpeg, rows, wait_for
from test_watch_process import DaemonProcess


def frames(db: Path, container: Path, present: bool = True) -> int:
    cond = "IS NULL" if present else "IS NOT NULL"
    return rows(db, f"SELECT count(*) FROM images WHERE container = ? AND missing_since {cond}", str(container))[0][0]


def save(path: Path, data: np.ndarray) -> None:
    tmp = path.with_name("." + path.name + ".tmp.npy")  # hidden while written, renamed in whole
    np.save(tmp, data)
    tmp.replace(path)


def test_watch_indexes_changes_and_retires_array_stacks(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    a = smooth_frames(12, 1, size=40)
    save(root / "a.npy", a)
    db, log = tmp_path / "w.db", tmp_path / "w.log"
    daemon = DaemonProcess(db, [root], log)
    try:
        wait_for(lambda: frames(db, root / "a.npy") == 12, 60, "catch-up indexes a.npy")
        b = smooth_frames(6, 2, size=40)
        b[3, 0] = a[7, 0, :, ::-1]
        save(root / "b.npy", b)
        (root / "p.jpg").write_bytes(jpeg(5))
        wait_for(lambda: frames(db, root / "b.npy") == 6, 60, "b.npy indexed")
        wait_for(lambda: rows(db, "SELECT count(*) FROM images WHERE path = ?", str(root / "p.jpg"))[0][0] == 1,
                 60, "the photo beside the stacks")
        pairs = rows(db, "SELECT a.path, b.path, p.verdict FROM pairs p JOIN images a ON a.id = p.a_id "
                         "JOIN images b ON b.id = p.b_id")
        assert pairs == [(f"{root / 'a.npy'}#7", f"{root / 'b.npy'}#3", "derived")]
        save(root / "b.npy", smooth_frames(9, 3, size=40))  # changed: its rows (and pair) replaced
        wait_for(lambda: frames(db, root / "b.npy") == 9, 60, "b.npy re-indexed")
        assert rows(db, "SELECT count(*) FROM images WHERE container = ?", str(root / "b.npy"))[0][0] == 9
        assert rows(db, "SELECT count(*) FROM pairs")[0][0] == 0
        (root / "a.npy").unlink()
        wait_for(lambda: frames(db, root / "a.npy", present=False) == 12, 60, "a.npy's frames missing")
        assert frames(db, root / "a.npy") == 0 and frames(db, root / "b.npy") == 9
    finally:
        code = daemon.stop(signal.SIGTERM, timeout=20)
    text = daemon.text()
    assert code == 0, text + daemon.stderr_text()
    lines = text.splitlines()
    assert any("indexed" in x and "b.npy" in x and "6 frames, 1 near-duplicate pair(s)" in x for x in lines), text
    assert any("missing" in x and "a.npy" in x and "12 frames" in x for x in lines), text
