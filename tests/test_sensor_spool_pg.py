"""On PostgreSQL too, a young body's frames survive a writer killed before its first flush.

As ``tests/test_sensor_spool.py`` does on SQLite: ``photoqa index`` of 3 frames
(min_frames 5) is killed with SIGKILL just before the final flush; the frames were kept as
rows of ``sensor_spool`` (a PostgreSQL database keeps nothing on a machine's disk). The
next run finds the three files unchanged and decodes none of them, yet takes the three
frames from those rows (still young: parked again, as rows of its own); a third run adds 4
frames and the planted hot sites come back from all 7. Against ``$PHOTOQA_TEST_PG_URL`` (skipped without it), in a
schema of the test's own.
"""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from db.engine import open_engine
from db.models import SensorSpool
from pgschema import PG_URL, SKIP_REASON, fresh_schema
from test_sensor_pipeline import defect_set, hotpixels_json, index, make_camera, raw_frames, write_png_frames
from test_sensor_spool import killed_index

pytestmark = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)

@pytest.fixture
def pg_url(tmp_path, monkeypatch):
    """A fresh schema; young bodies of fewer than 5 frames; HOME of the test's own (no
    earlier version's cache folder is imported from the real one)."""
    config = tmp_path / "young.toml"
    config.write_text("[sensor]\nrendered_frames = true\nlearn_every_frame = true\nmin_frames = 5\n")
    monkeypatch.setenv("PHOTOQA_CONFIG", str(config))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with fresh_schema(PG_URL) as url:
        yield url

def _spooled(url: str) -> int:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(SensorSpool)).scalar_one())
    finally:
        engine.dispose()

def test_a_young_body_killed_before_its_first_flush_keeps_its_frames_on_postgresql(tmp_path, pg_url):
    camera = make_camera(seed=5)
    frames = raw_frames(camera, 7, seed=6)
    folder = tmp_path / "frames"
    write_png_frames(folder, camera, frames[:3])
    killed_index(pg_url, folder)
    assert hotpixels_json(pg_url) == [] or hotpixels_json(pg_url)[0]["frames"] == 0  # nothing flushed
    assert _spooled(pg_url) == 3
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*.npz"))  # no disk spool

    summary = index(pg_url, folder)
    assert summary["indexed"] == 0 and summary["unchanged"] == 3  # no file decoded again
    (sensor,) = hotpixels_json(pg_url)
    assert (sensor["frames"], sensor["waiting"]) == (0, 3)  # taken from sensor_spool, still young
    assert _spooled(pg_url) == 3

    write_png_frames(folder, camera, frames[3:], start=3)
    assert index(pg_url, folder)["indexed"] == 4
    (sensor,) = hotpixels_json(pg_url)
    assert sensor["frames"] == 7
    assert camera.truth(("hot",)) <= defect_set(sensor)
    assert _spooled(pg_url) == 0  # flushed frames leave no row

def test_a_living_writers_rows_are_not_taken(pg_url):
    """Rows of a writer whose claim lock is held stay its own; once its connection's lock
    ends (the process died), the next writer takes them over and reads them back."""
    from db import migrate
    from db import sensors as dbsensors
    from db.models import Camera
    from indexer.sensor.accumulator import FORMAT_VERSION
    from indexer.pipeline.sensorspool import TableSpool, recover_table
    from indexer.pipeline.sensorstore import TableStore
    from indexer.sensor.delta import rgb_delta
    from sqlalchemy import insert

    engine = open_engine(pg_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        camera = conn.execute(insert(Camera).values(make="M", model="X").returning(Camera.id)).scalar_one()
    sid = dbsensors.sensor_id(engine, camera, 48, 32, "rgb", None, FORMAT_VERSION)
    frame = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    store = TableStore(engine)
    store.hold_claims(4242)
    alive = TableSpool(engine, lambda: 4242)
    alive.keep(sid, "a" * 64, 7, rgb_delta(frame, time=1700000000))
    alive.wait()
    assert list(recover_table(engine, store.claimer_alive, lambda: 4343)) == []  # its lock is held: it lives
    assert _spooled(pg_url) == 1
    store.release_hold()  # as the server does when the process's connection ends
    store.hold_claims(4343)  # the next writer, alive
    ((got_sid, sha, image_id, delta, row),) = list(recover_table(engine, store.claimer_alive, lambda: 4343))
    assert (got_sid, sha, image_id, delta.time) == (sid, "a" * 64, 7, 1700000000)
    np.testing.assert_array_equal(delta.residual, rgb_delta(frame).residual)
    with engine.connect() as conn:  # handed over to the writer that read it back
        assert conn.execute(select(SensorSpool.owner).where(SensorSpool.id == row)).scalar_one() == 4343
    assert list(recover_table(engine, store.claimer_alive, lambda: 4444)) == []  # 4343 lives: its own now
    TableSpool(engine, lambda: 4343).discard(row)  # not counted: removed
    assert _spooled(pg_url) == 0
    store.release_hold()
    alive.close()
    engine.dispose()
