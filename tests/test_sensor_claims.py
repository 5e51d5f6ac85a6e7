"""Two writers (two machines) indexing the same frame at the same moment count it once.

Each writer's sensor stage keeps the frames since its last flush in memory; the frame
ledger is written at the flush. Checking the ledger alone, when a frame arrives, let two
writers that both had it in memory, neither flushed yet, count it twice. Now a writer
claims a frame in ``sensor_claims`` before it counts it (``db.sensors.claim_frame``), and
a claim of a live writer is respected. On SQLite and, with $PHOTOQA_TEST_PG_URL, on the
CI's PostgreSQL (a schema of its own).
"""
from __future__ import annotations

import dataclasses
import os

import pytest
from sqlalchemy import text

from db import sensors as dbsensors
from indexer.pipeline.run import index_paths
from indexer.pipeline.sensorstage import SensorStage
from indexer.pipeline.sensorstore import open_store
from indexer.pipeline.stages import sensor_data
from indexer.session import open_session
from pgschema import database_url
from test_sensor_pipeline import make_camera, raw_frames, sha256, write_png_frames

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")


@pytest.fixture(scope="module", autouse=True)
def _learn_from_rendered_frames(learn_from_rendered_frames):
    """Frames here are PNG: learn sensor statistics from every one."""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    with database_url(request.param, tmp_path, "claims.db") as url:
        yield url


class Machine:
    """A writer of its own: session, engine and sensor stage, flushing only when closed."""

    def __init__(self, url: str):
        self.session = open_session(url)
        settings = dataclasses.replace(self.session.settings.sensor, flush_seconds=3600.0)
        self.stage = SensorStage(self.session.engine, settings,
                                 open_store(self.session.engine, self.session.url, self.session.settings.sensor))

    def index(self, folder) -> None:
        summary = index_paths([folder], self.session.store, self.session.settings.index, workers=1,
                              stages=[self.stage], sensor_data=sensor_data(self.session))
        assert summary.failed == 0

    def close(self) -> None:
        self.stage.close()
        assert self.stage.errors == []
        self.session.engine.dispose()


def count(url: str, sql: str) -> int:
    session = open_session(url, readonly=True)
    try:
        with session.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        session.engine.dispose()


def test_a_frame_two_writers_hold_unflushed_is_counted_once(url, tmp_path):
    camera = make_camera(seed=3)
    frames = raw_frames(camera, 9, seed=4)
    a = write_png_frames(tmp_path / "a", camera, frames[:6])  # frames 0-5
    b = write_png_frames(tmp_path / "b", camera, frames[3:], start=3)  # frames 3-8: 3-5 the same bytes
    assert [sha256(p) for p in a[3:]] == [sha256(p) for p in b[:3]]
    one, two = Machine(url), Machine(url)
    one.index(tmp_path / "a")  # machine one holds frames 0-5 in memory, not flushed
    two.index(tmp_path / "b")  # machine two sees 3-5 claimed by a live writer: counts 6-8
    two.close()
    one.close()
    # machine two's own frames 6-8 were a young body's when it closed (the sensor had no
    # stored frames yet): left in the spool, counted first by the next writer
    assert two.stage.parked == 3 and count(url, "SELECT frames FROM sensors") == 6
    three = Machine(url)
    assert three.stage.recovered == 3
    three.close()
    assert count(url, "SELECT frames FROM sensors") == 9  # 12 when both counted frames 3-5
    assert count(url, "SELECT count(*) FROM sensor_frames") == 9
    assert count(url, "SELECT count(*) FROM sensor_claims") == 0
    session = open_session(url)
    store = open_store(session.engine, session.url, session.settings.sensor)
    sid = count(url, "SELECT id FROM sensors")
    assert store.load(sid).frames == 9  # the statistics themselves, not only the counter
    session.engine.dispose()


def test_a_claim_of_a_writer_that_is_gone_is_taken_over(url, tmp_path):
    """A writer killed before its flush leaves its claims: a writer whose lock is not held
    any more is gone, and its frames are counted by the next one; a live one's are not."""
    camera = make_camera(seed=3)
    write_png_frames(tmp_path / "a", camera, raw_frames(camera, 1, seed=4))
    first = Machine(url)
    first.index(tmp_path / "a")
    engine = first.session.engine
    (sha,) = [s for (s,) in engine.connect().execute(text("SELECT sha256 FROM sensor_claims"))]
    sid = count(url, "SELECT id FROM sensors")
    owner = first.stage.owner
    store = first.stage.store
    assert store.claimer_alive(owner)
    assert not dbsensors.claim_frame(engine, sha, sid, owner + 1, store.claimer_alive)  # alive: respected
    store.release_hold()  # as if its process had been killed: the lock is gone, the row stays
    assert not store.claimer_alive(owner)
    assert dbsensors.claim_frame(engine, sha, sid, owner + 1, store.claimer_alive)  # gone: taken over
    assert count(url, "SELECT owner FROM sensor_claims") == owner + 1
    dbsensors.record_flush(engine, sid, 1, [(sha, None)], None)  # counted: in the ledger, claim ended
    assert count(url, "SELECT count(*) FROM sensor_claims") == 0
    assert not dbsensors.claim_frame(engine, sha, sid, owner + 2, store.claimer_alive)  # in the ledger
    engine.dispose()
