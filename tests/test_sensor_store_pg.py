"""A PostgreSQL database keeps its sensors' statistics itself (table ``sensor_tiles``).

Against the throw-away server of ``.ci/run`` ($PHOTOQA_TEST_PG_URL; skipped without it),
each test in a schema of its own: two processes merging into one body concurrently give
the one-pass statistics; a second machine (another HOME) sees the same hotpixels and
repairs with them; an old ``~/.cache/photoqa/sensors/<hash>/`` folder is imported once;
``db check`` reads every tile and finds a damaged one.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, text, update

from db import migrate
from db import sensors as dbsensors
from db.engine import open_engine
from db.models import Camera, SensorTile
from indexer.sensor import tiles
from indexer.sensor.accumulator import SensorAccumulator, field_names
from indexer.synthetic import camera as synthetic
from pgschema import fresh_schema
from test_sensor_pipeline import (defect_set, hotpixels_json, make_camera, raw_frames, run,
                                  write_jpeg_frames, write_png_frames)

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)")


@pytest.fixture(scope="module", autouse=True)
def _learn_from_rendered_frames(learn_from_rendered_frames):
    """Frames here are PNG/JPEG: learn from every one of them."""


@pytest.fixture
def pg_url():
    """A fresh schema of our own first on the search path, dropped afterwards."""
    with fresh_schema(PG_URL) as url:
        yield url


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Switch 'machine' (user): each call gives a fresh HOME."""
    def switch(name: str) -> Path:
        path = tmp_path / name
        path.mkdir(exist_ok=True)
        monkeypatch.setenv("HOME", str(path))
        return path
    return switch


# ------------------------------------------------------- concurrent merges into one body
CAM = synthetic.make_camera(96, 128, hot=6, dead=4, stuck=3, seed=3)
ROWS = 16  # small bands: the 96-row sensor is 6 tiles, so a merge spans several rows


def _frames(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scenes = [synthetic.generated_scene(rng, 120, 170) for _ in range(3)]
    return list(synthetic.camera_frames(CAM, scenes, count, seed=seed))


def _small_bands(height, width):
    return tiles.bands(height, width, tile_bytes=tiles.SITE_BYTES * width * ROWS)


def _writer(url: str, sid: int, seed: int, chunks: int, per_chunk: int, start, out) -> None:
    """A 'machine': merges ``chunks`` deltas of ``per_chunk`` frames into sensor ``sid``."""
    from indexer.pipeline import sensorstore

    sensorstore.bands = _small_bands
    engine = open_engine(url)
    store = sensorstore.TableStore(engine)
    frames = _frames(seed, chunks * per_chunk)
    start.wait()
    seen = []
    for c in range(chunks):
        delta = SensorAccumulator(CAM.height, CAM.width)
        for f in frames[c * per_chunk:(c + 1) * per_chunk]:
            delta.update(f, black_level=CAM.black, white_level=CAM.white)
        seen.append(store.merge(sid, delta, lambda bind, merged: None).frames)
    engine.dispose()
    out.put(seen)


def test_two_processes_merging_into_one_body_equal_one_pass(pg_url):
    engine = open_engine(pg_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        camera = conn.execute(insert(Camera).values(make="Test", model="Body", serial="")
                              .returning(Camera.id)).scalar_one()
    sid = dbsensors.sensor_id(engine, camera, CAM.width, CAM.height, "cfa", "RGBG", 2)
    chunks, per_chunk = 6, 3
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_writer, args=(pg_url, sid, seed, chunks, per_chunk, start, out))
               for seed in (11, 12)]
    for w in workers:
        w.start()
    seen = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    from indexer.pipeline.sensorstore import TableStore

    stored = TableStore(engine).load(sid)
    total = 2 * chunks * per_chunk
    # every merge saw the result of all merges before it: the 12 counts are 3, 6, ..., 36
    assert sorted(n for s in seen for n in s) == list(range(per_chunk, total + 1, per_chunk))
    one = SensorAccumulator(CAM.height, CAM.width)
    for f in _frames(11, chunks * per_chunk) + _frames(12, chunks * per_chunk):
        one.update(f, black_level=CAM.black, white_level=CAM.white)
    assert stored.frames == one.frames == total
    for name in ("bright", "dark", "strong", "first", "last"):
        assert np.array_equal(getattr(stored, name), getattr(one, name)), name
    np.testing.assert_allclose(stored.mean, one.mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(stored.m2, one.m2, rtol=1e-4, atol=1e-2)
    # each of the 12 deltas starts its own chain of consecutive pairs
    assert stored.pairs == total - 2 * chunks
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tile, y0, y1, frames FROM sensor_tiles ORDER BY tile")).all()
    assert [tuple(r) for r in rows] == [(i, 16 * i, 16 * (i + 1), total) for i in range(6)]
    engine.dispose()


# ------------------------------------------------------- a second machine
def _repair_bytes(db, source: Path, out: Path) -> bytes:
    result = run(db, "repair", source, "--out", out)
    assert result.exit_code == 0, result.output
    return (out / source.name).read_bytes()


def test_second_machine_sees_the_same_hotpixels_and_repairs_with_them(pg_url, home, tmp_path):
    camera = make_camera(seed=0)
    frames = write_jpeg_frames(tmp_path / "frames", camera, raw_frames(camera), rotate_odd=False)
    first = home("machine-a")
    result = run(pg_url, "index", tmp_path / "frames", "--workers", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert not (first / ".cache" / "photoqa" / "sensors").exists()  # nothing kept per user any more
    (here,) = hotpixels_json(pg_url)
    assert here["error"] is None and here["frames"] == len(frames) and here["defects"]

    home("machine-b")
    (there,) = hotpixels_json(pg_url)
    assert there["error"] is None and defect_set(there) == defect_set(here)

    # the same frames in a SQLite database (statistics in <db>.sensors/) repair the same
    lite = tmp_path / "lite.db"
    assert run(lite, "index", tmp_path / "frames", "--workers", "1").exit_code == 0
    source = frames[7]
    repaired = _repair_bytes(pg_url, source, tmp_path / "from-b")
    assert repaired == _repair_bytes(lite, source, tmp_path / "from-sqlite")
    # ...and the statistics are what made it so: without them only the sites are repaired
    engine = open_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sensor_tiles"))
    engine.dispose()
    assert _repair_bytes(pg_url, source, tmp_path / "without") != repaired


# ------------------------------------------------------- the old cache folder
def test_old_cache_folder_is_imported_once(pg_url, home, tmp_path):
    from indexer.pipeline.sensorstore import TableStore, sensor_folder

    camera = make_camera(seed=1)
    write_png_frames(tmp_path / "frames", camera, raw_frames(camera, 12))
    home("indexer")
    assert run(pg_url, "index", tmp_path / "frames", "--workers", "1").exit_code == 0
    engine = open_engine(pg_url)
    (row,) = dbsensors.list_sensors(engine)
    learnt = TableStore(engine).load(row.id)
    # as an earlier version left it: the statistics only in the indexing user's cache
    old_home = home("old-user")
    folder = sensor_folder(pg_url, "")
    assert folder.is_relative_to(old_home / ".cache" / "photoqa" / "sensors")
    folder.mkdir(parents=True)
    learnt.save(folder / row.accumulator)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sensor_tiles"))

    (sensor,) = hotpixels_json(pg_url)  # a reader points at it, imports nothing
    assert "not imported yet" in sensor["error"] and str(folder) in sensor["error"]
    result = run(pg_url, "index", tmp_path / "frames", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert f"imported the statistics of 1 sensor(s) (12 frames) from {folder}" in result.stderr
    result = run(pg_url, "index", tmp_path / "frames", "--workers", "1")
    assert "imported" not in result.stderr  # once
    assert hotpixels_json(pg_url)[0]["error"] is None
    back = TableStore(engine).load(row.id)
    for name in field_names():
        assert np.array_equal(getattr(back, name), getattr(learnt, name)), name
    assert (folder / row.accumulator).exists()  # the user's folder is left as it was
    engine.dispose()


def test_db_check_reads_every_tile(pg_url, home, tmp_path):
    camera = make_camera(seed=2)
    write_png_frames(tmp_path / "frames", camera, raw_frames(camera, 6))
    home("checker")
    assert run(pg_url, "index", tmp_path / "frames", "--workers", "1").exit_code == 0
    result = run(pg_url, "db", "check", "--format", "json")
    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout)["checked"]
    (tile_check,) = [c for c in checked if "sensor_tiles" in c["what"]]
    assert tile_check["ok"] and "6 frames, 1 tiles" in tile_check["detail"]
    engine = open_engine(pg_url)
    with engine.begin() as conn:
        data = conn.execute(text("SELECT data FROM sensor_tiles")).scalar_one()
        damaged = bytes(data[:100]) + bytes(len(data) - 100)
        conn.execute(update(SensorTile).values(data=damaged))
    engine.dispose()
    result = run(pg_url, "db", "check", "--format", "json")
    assert result.exit_code != 0
    (tile_check,) = [c for c in json.loads(result.stdout)["checked"] if "sensor_tiles" in c["what"]]
    assert not tile_check["ok"] and "not a readable sensor accumulator" in tile_check["detail"]


def test_stuck_candidates_round_trip_through_sensor_tiles(pg_url):
    """The sparse stuck record of an "rgb" sensor is cut into the bands' rows and merged
    with them: what the tiles give back equals the in-memory merge."""
    from indexer.pipeline.sensorstore import TableStore

    cam = synthetic.make_camera(64, 96, hot=3, dead=2, stuck=3, seed=11)
    rng = np.random.default_rng(12)
    scenes = [synthetic.generated_scene(rng, 80, 120) for _ in range(4)]
    images = [synthetic.develop(f, cam) for f in synthetic.camera_frames(cam, scenes, 12, seed=13)]
    a, b = SensorAccumulator(64, 96, layout="rgb"), SensorAccumulator(64, 96, layout="rgb")
    for i, image in enumerate(images):
        (a if i < 6 else b).update(image)
    expected = a.merge(b)
    assert len(expected.stuck_fit) > 0
    engine = open_engine(pg_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        camera = conn.execute(insert(Camera).values(make="Test", model="Rendered", serial="")
                              .returning(Camera.id)).scalar_one()
    sid = dbsensors.sensor_id(engine, camera, 96, 64, "rgb", None, 2)
    store = TableStore(engine)
    store.merge(sid, a, lambda bind, merged: None)
    store.merge(sid, b, lambda bind, merged: None)
    stored = store.load(sid)
    assert np.array_equal(stored.stuck_fit.at, expected.stuck_fit.at)
    assert np.array_equal(stored.stuck_fit.since, expected.stuck_fit.since)
    np.testing.assert_allclose(stored.stuck_fit.sums, expected.stuck_fit.sums, rtol=1e-12)
    engine.dispose()
