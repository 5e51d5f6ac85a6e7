"""A young body's frames survive a writer killed before its first flush (issue 17).

A body below ``min_frames`` is not flushed on the clock, so its frames' statistics wait
in the writer's memory while the files themselves are already indexed. Here ``photoqa
index`` of 3 frames (min_frames 5) is killed with SIGKILL at the very end of the run, just
before it closes: nothing of the body reached the store. The next run finds the three
files unchanged and decodes none of them, yet takes the three frames (read back from
``pipeline.sensorspool``), still too few to count: it leaves them in the spool when it
closes, and ``photoqa hotpixels`` says they wait; a third run adds 4 more frames and the
planted defects come back from all 7, with the statistics of one pass over the 7 frames,
bit for bit (the frames were never split into flushes).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.sensor import SensorAccumulator
from test_sensor_pipeline import (accumulator_path, defect_set, hotpixels_json, index, make_camera, raw_frames,
                                  write_png_frames)

REPO = Path(__file__).resolve().parent.parent
KILLED_RUN = '''
import os, signal, sys
from indexer.pipeline.sensorstage import SensorStage
from cli import main

def killed(self):  # the writer dies (kill -9) after storing every file, before the final flush
    self.spool.wait()  # some time after the frames were spooled (the files are written in the background)
    os.kill(os.getpid(), signal.SIGKILL)

SensorStage.close = killed
main(["--db", sys.argv[1], "index", sys.argv[2], "--workers", "1"])
'''


@pytest.fixture()
def config(tmp_path, monkeypatch):
    path = tmp_path / "young.toml"
    path.write_text("[sensor]\nrendered_frames = true\nlearn_every_frame = true\nmin_frames = 5\n")
    monkeypatch.setenv("PHOTOQA_CONFIG", str(path))
    return path


def killed_index(db: Path, folder: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", KILLED_RUN, str(db), str(folder)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])


def test_a_young_body_killed_before_its_first_flush_keeps_its_frames(tmp_path, config):
    camera = make_camera(seed=5)
    frames = raw_frames(camera, 7, seed=6)
    folder = tmp_path / "frames"
    write_png_frames(folder, camera, frames[:3])
    db = tmp_path / "p.db"
    killed_index(db, folder)
    assert hotpixels_json(db) == [] or hotpixels_json(db)[0]["frames"] == 0  # nothing flushed
    pending = list((db.with_name(db.name + ".sensors") / "pending").glob("*/*.npz"))
    assert len(pending) == 3

    summary = index(db, folder)
    assert summary["indexed"] == 0 and summary["unchanged"] == 3  # no file decoded again
    (sensor,) = hotpixels_json(db)
    assert (sensor["frames"], sensor["waiting"]) == (0, 3)  # taken from the spool, parked again: still young
    assert "3 more waiting" in sensor["status"]
    assert len(list((db.with_name(db.name + ".sensors") / "pending").glob("*/*.npz"))) == 3

    write_png_frames(folder, camera, frames[3:], start=3)
    assert index(db, folder)["indexed"] == 4
    (sensor,) = hotpixels_json(db)
    assert (sensor["frames"], sensor["waiting"]) == (7, 0)
    assert not list((db.with_name(db.name + ".sensors") / "pending").glob("*/*.npz"))

    # the same statistics as one uninterrupted run over the 7 frames
    one_pass = tmp_path / "one"
    write_png_frames(one_pass, camera, frames)
    db1 = tmp_path / "one.db"
    index(db1, one_pass)
    assert defect_set(sensor) == defect_set(hotpixels_json(db1)[0])
    assert camera.truth(("hot",)) <= defect_set(sensor)
    a, b = SensorAccumulator.load(accumulator_path(db)), SensorAccumulator.load(accumulator_path(db1))
    assert a.frames == b.frames == 7 and a.pairs == b.pairs == 6
    assert_same_statistics(a, b)


def assert_same_statistics(a: SensorAccumulator, b: SensorAccumulator) -> None:
    """Every array and count of two accumulators equal, bit for bit."""
    from indexer.sensor.accumulator import field_names

    assert (a.frames, a.pairs) == (b.frames, b.pairs)
    for name in field_names():
        got, want = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    np.testing.assert_array_equal(a.times, b.times)
    for name in ("at", "since", "sums"):  # the stuck candidates of rendered frames
        np.testing.assert_array_equal(getattr(a.stuck_fit, name), getattr(b.stuck_fit, name))


def test_a_living_writers_frames_are_not_taken(tmp_path):
    """Two writers on one store: the second never counts the first's pending frames."""
    from indexer.pipeline.sensorspool import Spool, recover
    from indexer.sensor.delta import rgb_delta

    frame = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    alive = Spool(tmp_path / "pending")
    alive.keep(1, "a" * 64, 7, rgb_delta(frame, time=1700000000))
    alive.wait()
    assert list(recover(tmp_path / "pending")) == []  # its lock is held: it lives
    assert len(list(alive.folder.glob("*.npz"))) == 1
    alive._lock.close()  # as the kernel does when the process dies
    alive._lock = None
    ((sid, sha, image_id, delta, where),) = list(recover(tmp_path / "pending"))
    assert (sid, sha, image_id, delta.time) == (1, "a" * 64, 7, 1700000000)
    assert where.parent == alive.folder
    np.testing.assert_array_equal(delta.residual, rgb_delta(frame).residual)
    assert not alive.folder.exists()


def test_frames_spooled_for_another_database_are_not_counted(tmp_path, config):
    """A database deleted and rebuilt beside its sensor folder reuses image and sensor
    ids: the spool of a writer killed on the old one must not count into the new one.
    (The first run on the new database finds no sensor row of the spooled id yet and
    discards it; the image's SHA-256 is checked too, for a spool met later.)"""
    camera = make_camera(seed=5)
    frames = raw_frames(camera, 6, seed=6)
    db = tmp_path / "p.db"
    killed_index(db, _frames_folder(tmp_path / "old", camera, frames[:3]))
    db.unlink()
    summary = index(db, _frames_folder(tmp_path / "new", camera, frames[3:]))
    assert summary["indexed"] == 3
    (sensor,) = hotpixels_json(db)
    assert (sensor["frames"], sensor["waiting"]) == (0, 3)  # its own three (parked: young), not the old database's
    pending = list((db.with_name(db.name + ".sensors") / "pending").glob("*/*.npz"))
    assert len(pending) == 3  # the old database's three removed


def _frames_folder(folder: Path, camera, frames) -> Path:
    write_png_frames(folder, camera, frames)
    return folder
