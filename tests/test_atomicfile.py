"""indexer.atomicfile: a replace leaves the old or the new file, and cleans up what a
killed replace left behind."""
from __future__ import annotations

import os
import time

from indexer import atomicfile


def test_a_replace_removes_stale_leftovers_of_killed_replaces_only(tmp_path):
    target = tmp_path / "photoqa.db.match-index"
    stale = tmp_path / ".photoqa.db.match-index.abc123.tmp"  # a writer killed an hour ago
    fresh = tmp_path / ".photoqa.db.match-index.def456.tmp"  # another writer, still writing
    other = tmp_path / ".sensor-1.npz.zzz.tmp"  # another target's: not this replace's business
    for leftover in (stale, fresh, other):
        leftover.write_bytes(b"half")
    old = time.time() - 2 * atomicfile.STALE_AFTER
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomicfile.write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and fresh.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, fresh.name, other.name])


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.bin"
    atomicfile.write_bytes(target, b"old")

    def broken(handle):
        handle.write(b"new but half")
        raise OSError("disk full")

    try:
        atomicfile.replace_with(target, broken)
    except OSError:
        pass
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]
