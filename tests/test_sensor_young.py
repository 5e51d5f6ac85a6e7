"""A young body (fewer than ``min_frames`` frames) costs no accumulator (issue 17).

Below ``min_frames`` a sensor has nothing to report, yet a dense accumulator (26 bytes a
site) and its end-of-run merge and save were the writer's whole tail on a new camera. Now
a young body's frames are kept as deltas and, still young when the run ends, left in the
spool (parked): no accumulator is made or saved, ``photoqa hotpixels`` says how many frames
wait, and the next run counts them first. Planted answers: after a 3-frame run (min_frames
5) no accumulator was constructed, merged or written and 3 frames wait; a later run that
brings the body to 5 frames gives, bit for bit, the statistics of one run over the 5 (in
the same order), whether the run between was killed (SIGKILL) or closed cleanly, and each
frame is in the ledger once. Two live writers: only one adopts the parked frames. SQLite,
and PostgreSQL with $PHOTOQA_TEST_PG_URL (a schema of its own).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from indexer.pipeline.sensorstore import FolderStore, TableStore, open_store
from indexer.sensor.accumulator import SensorAccumulator
from indexer.session import open_session
from pgschema import database_url
from test_sensor_pipeline import hotpixels_json, index, make_camera, raw_frames, run, write_png_frames
from test_sensor_claims import Machine, count
from test_sensor_spool import killed_index, assert_same_statistics


@pytest.fixture()
def config(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "young.toml"
    path.write_text("[sensor]\nrendered_frames = true\nlearn_every_frame = true\nmin_frames = 5\n")
    monkeypatch.setenv("PHOTOQA_CONFIG", str(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # PostgreSQL: no earlier version's cache folder
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path, config):
    with database_url(request.param, tmp_path, "young.db") as url:
        yield url


@pytest.fixture(scope="module")
def frames():
    camera = make_camera(seed=7)
    return camera, raw_frames(camera, 5, seed=8)


def statistics(url: str, sid: int = 1) -> SensorAccumulator:
    session = open_session(url, readonly=True)
    try:
        return open_store(session.engine, session.url, session.settings.sensor, writer=False).load(sid)
    finally:
        session.engine.dispose()


def one_pass(tmp_path: Path, camera, frames) -> SensorAccumulator:
    """The statistics of one run over ``frames`` (one worker: arrival in file order)."""
    folder = tmp_path / "one-pass"
    write_png_frames(folder, camera, frames)
    db = tmp_path / "one-pass.db"
    assert index(db, folder)["indexed"] == len(frames)
    assert hotpixels_json(db)[0]["frames"] == len(frames)
    return statistics(str(db))


def test_a_young_body_has_no_accumulator_made_or_saved(tmp_path, config, frames, monkeypatch):
    camera, shots = frames
    folder = tmp_path / "frames"
    write_png_frames(folder, camera, shots[:3])
    made, merges = [], []
    post_init, merge = SensorAccumulator.__post_init__, FolderStore.merge

    def counted_init(self):
        made.append(self.shape)
        post_init(self)

    def counted_merge(self, sid, delta, after):
        merges.append(delta.frames)
        return merge(self, sid, delta, after)

    monkeypatch.setattr(SensorAccumulator, "__post_init__", counted_init)
    monkeypatch.setattr(FolderStore, "merge", counted_merge)
    db = tmp_path / "young.db"
    assert index(db, folder)["indexed"] == 3
    monkeypatch.undo()
    monkeypatch.setenv("PHOTOQA_CONFIG", str(config))
    assert made == [] and merges == []
    assert not list(db.with_name(db.name + ".sensors").glob("sensor-*.npz"))
    (sensor,) = hotpixels_json(db)
    assert (sensor["frames"], sensor["waiting"], sensor["defects"]) == (0, 3, [])
    assert sensor["status"] == "not enough frames (0 of 5; 3 more waiting, counted once the body has 5)"
    table = run(db, "hotpixels").output
    assert "3 more waiting" in table and "stable since" not in table  # no map yet to be stable
    assert count(str(db), "SELECT count(*) FROM sensor_frames") == 0  # nothing counted yet
    assert count(str(db), "SELECT count(*) FROM sensor_claims") == 0


def test_a_second_run_completes_the_body_as_one_pass_would(tmp_path, url, frames):
    camera, shots = frames
    folder = tmp_path / "frames"
    write_png_frames(folder, camera, shots[:3])
    assert index(url, folder)["indexed"] == 3
    write_png_frames(folder, camera, shots[3:], start=3)
    assert index(url, folder)["indexed"] == 2
    (sensor,) = hotpixels_json(url)
    assert (sensor["frames"], sensor["waiting"]) == (5, 0)
    assert_same_statistics(statistics(url), one_pass(tmp_path, camera, shots))
    assert count(url, "SELECT count(*) FROM sensor_frames") == 5
    assert index(url, folder)["unchanged"] == 5  # nothing counted again
    assert count(url, "SELECT frames FROM sensors") == 5


@pytest.mark.parametrize("middle", ["killed", "closed"])
def test_a_run_between_killed_or_closed_loses_and_repeats_nothing(tmp_path, url, frames, middle):
    """3 frames (parked), then a run that adopts them and adds a 4th (still young) and is
    killed with SIGKILL before it closes, or closes; then a 5th frame: the body has the
    five frames once each, as one pass over them."""
    camera, shots = frames
    folder = tmp_path / "frames"
    write_png_frames(folder, camera, shots[:3])
    assert index(url, folder)["indexed"] == 3
    write_png_frames(folder, camera, shots[3:4], start=3)
    if middle == "killed":
        killed_index(url, folder)
    else:
        assert index(url, folder)["indexed"] == 1
    (sensor,) = hotpixels_json(url)
    assert (sensor["frames"], sensor["waiting"]) == (0, 4)
    write_png_frames(folder, camera, shots[4:], start=4)
    assert index(url, folder)["indexed"] == 1
    (sensor,) = hotpixels_json(url)
    assert (sensor["frames"], sensor["waiting"]) == (5, 0)
    assert count(url, "SELECT count(*) FROM sensor_frames") == 5
    assert count(url, "SELECT count(*) FROM sensor_claims") == 0
    assert_same_statistics(statistics(url), one_pass(tmp_path, camera, shots))


def test_two_live_writers_never_both_adopt_parked_frames(tmp_path, url, frames):
    camera, shots = frames
    folder = tmp_path / "frames"
    write_png_frames(folder, camera, shots[:3])
    assert index(url, folder)["indexed"] == 3  # parked
    first = Machine(url)
    second = Machine(url)  # while the first lives
    assert (first.stage.recovered, second.stage.recovered) == (3, 0)
    assert first.stage.young() == [1] and second.stage.young() == []
    assert isinstance(first.stage.store, FolderStore if "postgresql" not in url else TableStore)
    second.close()
    first.close()
    assert first.stage.parked == 3
    assert hotpixels_json(url)[0]["waiting"] == 3  # parked again, once
    write_png_frames(folder, camera, shots[3:], start=3)
    assert index(url, folder)["indexed"] == 2
    assert count(url, "SELECT frames FROM sensors") == 5
    assert count(url, "SELECT count(*) FROM sensor_frames") == 5
