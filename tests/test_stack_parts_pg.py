"""A stack detector's parts (``index --sensor NAME``) on PostgreSQL live in the database.

Against the throw-away server of ``.ci/run`` ($PHOTOQA_TEST_PG_URL; skipped without it),
in a schema of its own: two halves of one planted stack indexed by two 'machines' (two
HOMEs) add up to the whole stack's statistics, nothing is written under either HOME,
an unchanged stack indexed again from the other machine is not counted twice, and the
parts an earlier version left in ``~/.cache/photoqa/sensors/<hash>/`` are imported once.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from sqlalchemy import text

from db.engine import open_engine
from indexer.pipeline.sensorstore import sensor_folder
from indexer.pipeline.stackstore import TableParts
from indexer.stacks import pixelstats
from pgschema import SKIP_REASON, fresh_schema
from test_stacks import DEAD, HOT, planted_stack, run

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)


@pytest.fixture
def pg_url():
    with fresh_schema(PG_URL) as url:
        yield url


def detector(url: str) -> tuple[int, pixelstats.PixelStats, set]:
    """(sensors.frames, the Chan merge of its stack_parts rows, defects) of the one stack sensor."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            sid, frames = conn.execute(text("SELECT id, frames FROM sensors WHERE kind = 'stack'")).one()
            defects = {(y, x, kind) for x, y, kind in conn.execute(text("SELECT x, y, kind FROM sensor_defects"))}
        total = None
        for part in TableParts(engine).parts(sid):
            stats = pixelstats.PixelStats.from_arrays(part)
            total = stats if total is None else total.merge(stats)
        return frames, total, defects
    finally:
        engine.dispose()


def test_two_machines_add_to_one_detector_in_the_database(pg_url, tmp_path, monkeypatch):
    whole = planted_stack(1000, seed=3)
    for name, part in (("a", whole[:400]), ("b", whole[400:])):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "det.npy", part)
    x = whole.astype(np.float64)[:, None]
    homes = []
    for machine, folder in (("m1", "a"), ("m2", "b"), ("m1", "b"), ("m2", "a")):  # then each again, unchanged
        home = tmp_path / machine
        home.mkdir(exist_ok=True)
        homes.append(home)
        monkeypatch.setenv("HOME", str(home))
        assert run(pg_url, "index", tmp_path / folder, "--sensor", "det7", "-j", "1").exit_code == 0
    frames, stats, defects = detector(pg_url)
    assert frames == 1000
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-9, atol=0)
    np.testing.assert_allclose(stats.variance(), x.var(axis=0, ddof=1), rtol=1e-9, atol=0)
    assert int(stats.hist.sum()) == x.size
    assert defects == {(y, x_, "hot") for y, x_ in HOT} | {(y, x_, "dead") for y, x_ in DEAD}
    assert not [p for home in homes for p in home.rglob("*") if p.is_file()]  # nothing under either HOME


def test_parts_left_in_the_old_cache_folder_are_imported_once(pg_url, tmp_path, monkeypatch):
    """Parts an earlier version wrote to ``~/.cache/photoqa/sensors/<hash>/`` join the
    table on the next run with the detector; the folder is left as it was."""
    from indexer.config import SensorSettings
    from indexer.pipeline.stackstore import FolderParts

    whole = planted_stack(600, seed=5)
    for name, part in (("a", whole[:200]), ("b", whole[200:])):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "det.npy", part)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert run(pg_url, "index", tmp_path / "a", "--sensor", "det7", "-j", "1").exit_code == 0
    # what an earlier version kept: a's part as a file in the cache folder, not in the table
    old = sensor_folder(pg_url, SensorSettings().folder)
    assert str(old).startswith(str(tmp_path / "home" / ".cache"))
    engine = open_engine(pg_url)
    with engine.begin() as conn:
        sid = conn.execute(text("SELECT id FROM sensors WHERE kind = 'stack'")).scalar_one()
        (stack, data), = [(r[0], bytes(r[1])) for r in conn.execute(text("SELECT stack, data FROM stack_parts"))]
        conn.execute(text("DELETE FROM stack_parts"))
    import io
    with np.load(io.BytesIO(data)) as part:
        FolderParts(engine, old).put(sid, stack, {k: part[k] for k in part.files})
    engine.dispose()
    result = run(pg_url, "index", tmp_path / "b", "--sensor", "det7", "-j", "1")
    assert result.exit_code == 0
    assert "imported 1 stack part(s)" in result.stderr
    frames, stats, _ = detector(pg_url)
    assert frames == 600
    np.testing.assert_allclose(stats.mean, whole.astype(np.float64)[:, None].mean(axis=0), rtol=1e-9, atol=0)
    again = run(pg_url, "index", tmp_path / "a", "--sensor", "det7", "-j", "1")  # unchanged: no second import
    assert again.exit_code == 0 and "imported" not in again.stderr
    assert detector(pg_url)[0] == 600
