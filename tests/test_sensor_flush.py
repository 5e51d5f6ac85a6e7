"""A young sensor is not written on the clock (issue 17: the cost of learning on a new body).

With ``flush_seconds = 0`` every new frame makes a flush due. A body with fewer than
``min_frames`` frames, stored and unflushed together, has no defects to report, and each
flush writes its whole accumulator: it waits until it has ``min_frames`` (then flushes on
the clock as before); still young at the end of the run, it is not written at all.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from indexer.pipeline.sensorstore import FolderStore
from test_sensor_pipeline import defect_set, hotpixels_json, make_camera, raw_frames, run, write_png_frames


@pytest.fixture(scope="module", autouse=True)
def _learn_from_rendered_frames(learn_from_rendered_frames):
    """Frames here are PNG: learn sensor statistics from them."""


def _index_counting_merges(tmp_path: Path, count: int, monkeypatch) -> tuple[Path, list[int]]:
    """Index ``count`` frames of one body with flush_seconds = 0, min_frames = 5; (db,
    the frame count of each flush's merged statistics, in order)."""
    camera = make_camera(seed=3)
    folder = tmp_path / f"frames{count}"
    write_png_frames(folder, camera, raw_frames(camera, count, seed=4))
    config = tmp_path / "flush.toml"
    config.write_text("[sensor]\nlearn_every_frame = true\nflush_seconds = 0.0\nmin_frames = 5\n")
    merged_frames: list[int] = []
    original = FolderStore.merge

    def counted(self, sid, delta, after):
        merged = original(self, sid, delta, after)
        merged_frames.append(merged.frames)
        return merged

    monkeypatch.setattr(FolderStore, "merge", counted)
    db = tmp_path / f"flush{count}.db"
    result = run(db, "index", folder, "--workers", "1", config=config)
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    return db, merged_frames


def test_a_body_below_min_frames_is_never_written(tmp_path, monkeypatch):
    """Still young at the end of the run: no merge, no accumulator file; its 3 frames wait
    in the spool for the next run (tests/test_sensor_young.py)."""
    db, merges = _index_counting_merges(tmp_path, 3, monkeypatch)
    assert merges == []
    (sensor,) = hotpixels_json(db)
    assert (sensor["frames"], sensor["waiting"]) == (0, 3)
    assert not list(db.with_name(db.name + ".sensors").glob("sensor-*.npz"))


def test_a_body_flushes_on_the_clock_once_it_has_min_frames(tmp_path, monkeypatch):
    db, merges = _index_counting_merges(tmp_path, 8, monkeypatch)
    assert merges == [5, 6, 7, 8]  # frames 1-4 wait; from the 5th on, every due flush
    sensor = hotpixels_json(db)[0]
    assert sensor["frames"] == 8 and defect_set(sensor)
