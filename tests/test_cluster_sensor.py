"""Sensor statistics on a Dask cluster: deltas tree-reduced on the workers, each frame once.

30 PNG frames of a synthetic camera (planted hot, dead and stuck sites; the helpers of
test_sensor_pipeline.py) are indexed with ``-j 1`` (the writer adds every delta: the
one-pass accumulator) and on a 2-worker ``LocalCluster`` (deltas stay on the workers,
one accumulator per batch, merged pairwise there: indexer.pipeline.clustersensor).
"""
from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest

from indexer.pipeline.cluster import open_cluster
from indexer.pipeline.clustersensor import DeltaRef, Pending, accumulate_part, keep_deltas, tree_reduce
from indexer.pipeline.run import index_paths
from indexer.pipeline.stages import build_stages, close_stages, sensor_data
from indexer.sensor.accumulator import SensorAccumulator
from indexer.session import open_session
from test_sensor_pipeline import FRAMES, accumulator_path, index, make_camera, raw_frames, write_png_frames

distributed = pytest.importorskip("distributed", reason="dask distributed not installed (pip install 'photoqa[cluster]')")


@pytest.fixture(scope="module", autouse=True)
def _every_frame_one_flush(tmp_path_factory):
    """Learn from every rendered frame; one flush per run (flush_frames above the frames)."""
    config = tmp_path_factory.mktemp("config") / "sensor.toml"
    config.write_text("[sensor]\nrendered_frames = true\nlearn_every_frame = true\nflush_frames = 1000\n"
                      "flush_seconds = 3600\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHOTOQA_CONFIG", str(config))
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    write_png_frames(root, make_camera(seed=3), raw_frames(make_camera(seed=3), FRAMES, seed=5))
    return root


@pytest.fixture(scope="module")
def one_pass(folder, tmp_path_factory):
    """The accumulator of ``-j 1``: the writer adds the 30 deltas one by one."""
    db = tmp_path_factory.mktemp("one") / "p.db"
    assert index(db, folder)["indexed"] == FRAMES
    return SensorAccumulator.load(accumulator_path(db))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as local:
        yield local


def cluster_index(db, folder, address, progress=None):
    """``index_paths`` on the cluster with the session's stages (sensor stage included);
    returns (summary, stage errors, frames in the ledger, distinct frames in it)."""
    session = open_session(str(db))
    settings = dataclasses.replace(session.settings.index, cluster_wait=30.0)
    with open_cluster(address, settings) as opened:  # open until the stages close, as run_index does
        stages = build_stages(dataclasses.replace(session, verify_executor=opened.executor))
        try:
            summary = index_paths([folder], session.store, settings, progress=progress, stages=stages,
                                  sensor_data=sensor_data(session), cluster=opened)
        finally:
            errors = close_stages(stages)
    with session.engine.connect() as conn:
        from sqlalchemy import text

        ledger = conn.execute(text("SELECT count(*), count(DISTINCT sha256) FROM sensor_frames")).one()
    session.engine.dispose()
    return summary, errors, tuple(ledger)


def assert_same_statistics(merged: SensorAccumulator, one: SensorAccumulator, parts: int) -> None:
    """Counts bitwise; mean and M2 within float32 rounding of a one-pass Welford (both are
    float32 arrays: 1e-9 relative is below their resolution, 6e-8)."""
    assert merged.frames == one.frames == FRAMES
    for name in ("bright", "dark", "strong", "first", "last"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(one, name), err_msg=name)
    assert sorted(merged.times.tolist()) == sorted(one.times.tolist())
    scale = np.abs(one.mean).max()
    assert np.abs(merged.mean - one.mean).max() <= 1e-6 * scale
    assert np.abs(merged.m2 - one.m2).max() <= 1e-5 * np.abs(one.m2).max()
    assert one.pairs - parts < merged.pairs <= one.pairs  # each split loses the pair that straddles it
    assert (merged.unchanged <= one.unchanged).all()


def test_the_tree_of_batch_accumulators_equals_one_pass_over_the_frames(folder, one_pass, cluster, tmp_path):
    db = tmp_path / "c.db"
    summary, errors, ledger = cluster_index(db, folder, cluster.scheduler_address)
    assert (summary.indexed, summary.failed, errors) == (FRAMES, 0, [])
    assert ledger == (FRAMES, FRAMES)
    ran = cluster.scheduler.task_prefixes
    # 30 files, 2 workers: batches of 3 files (pipeline.cluster), one part each, merged pairwise
    assert {"analyse_batch", "accumulate_part", "merge_pair"} <= set(ran), set(ran)
    assert_same_statistics(SensorAccumulator.load(accumulator_path(db)), one_pass, parts=FRAMES)


@pytest.mark.slow
def test_a_worker_killed_mid_run_still_counts_every_frame_once(folder, one_pass, cluster, tmp_path):
    killed: list[int] = []
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)  # the nanny may still be restarting one an earlier test killed
        def kill_busiest(done: int, total: int) -> None:
            # after 12 stored files the workers hold the deltas of the batches done so far:
            # the dead worker's are recomputed for the tree (and its running batch redone)
            if done >= 12 and not killed:
                busy = max(client.processing().items(), key=lambda kv: len(kv[1]))
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        summary, errors, ledger = cluster_index(tmp_path / "k.db", folder, cluster.scheduler_address,
                                                progress=kill_busiest)
    assert killed
    assert (summary.indexed, summary.failed, errors) == (FRAMES, 0, [])
    assert ledger == (FRAMES, FRAMES)  # every frame once in the ledger
    assert_same_statistics(SensorAccumulator.load(accumulator_path(tmp_path / "k.db")), one_pass, parts=FRAMES)


@pytest.mark.slow
def test_every_worker_killed_at_once_loses_nothing(folder, one_pass, cluster, tmp_path):
    """Both workers die together: every result held on the cluster is gone, the data the
    batches share (gone rows' SHA-256s, the sensor plan) included. Scattered, that data
    was lost for good and every later batch cancelled ("lost dependencies": CI, after
    Dask's memory manager had dropped a broadcast's second replica); as tasks it is
    recomputed, like the batches whose deltas the tree still needs."""
    killed: list[int] = []
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)  # the nanny may still be restarting one an earlier test killed
        def kill_all(done: int, total: int) -> None:
            if done >= 12 and not killed:
                for pid in client.run(os.getpid).values():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        summary, errors, ledger = cluster_index(tmp_path / "a.db", folder, cluster.scheduler_address,
                                                progress=kill_all)
    assert len(killed) == 2
    assert (summary.indexed, summary.failed, errors) == (FRAMES, 0, [])
    assert ledger == (FRAMES, FRAMES)
    assert_same_statistics(SensorAccumulator.load(accumulator_path(tmp_path / "a.db")), one_pass, parts=FRAMES)


def test_pending_refs_reduce_to_the_one_pass_accumulator_without_a_cluster(folder):
    """The tree itself, with futures replaced by values: 30 deltas in batches of 4 and 7,
    a few local ones, give the accumulator of adding all 30 in order."""
    from indexer.decode import SensorData
    from indexer.pipeline.analyse import analyse
    from indexer.pipeline.scan import walk
    from indexer.config import IndexSettings
    from indexer.pipeline.sensorplan import SensorPlan
    from indexer.config import SensorSettings

    plan = SensorPlan(SensorData.ALL, SensorSettings(rendered_frames=True, learn_every_frame=True))
    outcomes = [analyse(t, IndexSettings(), frozenset(), plan) for t in walk([folder])]
    deltas = [o.sensor for o in outcomes]
    one = SensorAccumulator(deltas[0].height, deltas[0].width, layout=deltas[0].layout, params=deltas[0].params)
    for d in deltas:
        one.add(d)

    class Done:  # a finished future: its value, a key, and a client that runs at once
        def __init__(self, value):
            self.value, self.key, self.client = value, id(self), self

        def result(self):
            return self.value

        def submit(self, fn, *args, pure=False):
            return Done(fn(*(a.value if isinstance(a, Done) else a for a in args)))

    pending = Pending(SensorAccumulator(one.height, one.width, layout=one.layout, params=one.params))
    for d in deltas[:3]:
        pending.add(d)  # decoded by the writer while the cluster started
    for start, stop in ((3, 7), (7, 14), (14, 21), (21, 30)):
        batch = keep_deltas([dataclasses.replace(o) for o in outcomes[start:stop]])
        source = Done(batch)
        for o in batch.outcomes:
            assert isinstance(o.sensor, DeltaRef)
            o.sensor.source = source
            pending.add(o.sensor)
    assert pending.frames == FRAMES
    assert_same_statistics(pending.gather(), one, parts=5)
    # the tree of four parts is two levels of pairwise merges
    merged = tree_reduce(Done(None).submit, [Done(accumulate_part(keep_deltas(outcomes[i:i + 1]), [0]))
                                             for i in range(4)])
    assert merged.value.frames == 4
