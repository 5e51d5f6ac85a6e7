"""``photoqa index --cluster``: decoding on Dask workers, storing here (indexer.pipeline.cluster).

A LocalCluster start costs seconds on a loaded machine: the tests are few.
"""
from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import cli
import imagefiles as F
from indexer.pipeline.cluster import ClusterError, parse_cluster
from indexer.pipeline.run import index_paths
from indexer.session import open_session

try:
    import distributed
except ImportError:  # pragma: no cover - the extra is part of [test]
    distributed = None

needs_dask = pytest.mark.skipif(distributed is None, reason="dask distributed not installed "
                                                            "(pip install 'photoqa[cluster]')")


def photos(root: Path, count: int, size=(160, 120)) -> Path:
    """``count`` distinct scenes and two near copies of scene 1 (a re-encode and a resize)."""
    for i in range(count):
        F.write_jpeg(root / f"s{i:02}.jpg", F.scene(i, *size))
    F.write_jpeg(root / "sub" / "s01-q70.jpg", F.scene(1, *size), quality=70)
    F.write_jpeg(root / "sub" / "s01-big.jpg", F.scene(1, size[0] * 2, size[1] * 2))
    return root


def rows(db: str, sql: str) -> list[tuple]:
    s = open_session(db, readonly=True)
    try:
        with s.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        s.engine.dispose()


IMAGES = ("SELECT path, sha256, width, height, format, phash_d4, hist, thumb, features_version "
          "FROM images ORDER BY path")
PAIRS = ("SELECT a.path, b.path, p.verdict, p.hamming, p.transform FROM pairs p "
         "JOIN images a ON a.id = p.a_id JOIN images b ON b.id = p.b_id ORDER BY a.path, b.path")
GROUPS = ("SELECT i.path, k.path, g.is_keeper FROM image_groups g JOIN images i ON i.id = g.image_id "
          "JOIN images k ON k.id = g.group_id ORDER BY i.path")


@needs_dask
def test_a_cluster_stores_what_a_plain_index_stores(tmp_path):
    folder = photos(tmp_path / "p", 6)
    plain, dask = str(tmp_path / "plain.db"), str(tmp_path / "dask.db")
    # verification jobs leave the writer at once (not after 1 s inline), to the pool or the cluster
    (tmp_path / "photoqa.toml").write_text("[match]\npool_after = 0\n")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        for db, extra in ((plain, ["-j", "1"]), (dask, ["--cluster", cluster.scheduler_address])):
            result = CliRunner().invoke(cli.main, ["--db", db, "index", str(folder), *extra])
            assert result.exit_code == 0, result.output
            assert "indexed: 8 " in result.stdout
        ran = set(cluster.scheduler.task_prefixes)
    assert {"analyse_batch", "run_job"} <= ran, ran  # decoding and verification on the workers
    assert len(rows(dask, IMAGES)) == 8
    assert rows(dask, IMAGES) == rows(plain, IMAGES)
    # which pairs of a group are verified, and each pair's a/b order, follow the order
    # outcomes complete in (match.fanout: one member per group), with or without Dask:
    # what must agree is who is paired and the groups
    def paired(db):
        return {Path(p).name for pair in rows(db, PAIRS) for p in pair[:2]}

    assert paired(dask) == paired(plain) == {"s01.jpg", "s01-q70.jpg", "s01-big.jpg"}
    assert len(rows(dask, GROUPS)) == 3 and rows(dask, GROUPS) == rows(plain, GROUPS)
    # a rerun on the cluster finds everything unchanged (the same skip rule as always)
    again = CliRunner().invoke(cli.main, ["--db", dask, "index", str(folder), "--cluster", "local:1"])
    assert "indexed: 0 unchanged: 8 " in again.stdout


def test_without_dask_cluster_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import fails
    folder = photos(tmp_path / "p", 1)
    db = str(tmp_path / "f.db")
    result = CliRunner().invoke(cli.main, ["--db", db, "index", str(folder), "--cluster", "local:2"])
    assert result.exit_code == cli.EXIT_ERROR
    assert result.stderr.splitlines() == [
        "photoqa: --cluster needs Dask distributed, which is not installed: pip install 'photoqa[cluster]'"]
    assert rows(db, "SELECT count(*) FROM images") == [(0,)]


@pytest.mark.parametrize("spec", ["local:0", "local:x", "8786", "http://h:8786", "tcp://"])
def test_bad_cluster_address_is_a_usage_error(tmp_path, spec):
    with pytest.raises(ClusterError):
        parse_cluster(spec)
    result = CliRunner().invoke(cli.main, ["--db", str(tmp_path / "f.db"), "index", str(tmp_path), "--cluster", spec])
    assert result.exit_code == cli.EXIT_USAGE and len(result.stderr.splitlines()) == 1
    assert parse_cluster("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert parse_cluster("local:3").local == 3


@needs_dask
@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_every_file_indexed_once(tmp_path):
    folder = photos(tmp_path / "p", 30, size=(640, 480))
    session = open_session(str(tmp_path / "k.db"))
    killed: list[int] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        def kill_busiest(done: int, total: int) -> None:
            if done == 3 and not killed:
                busy = max(client.processing().items(), key=lambda kv: len(kv[1]))
                assert busy[1], "no task in flight when the worker was killed"
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        settings = dataclasses.replace(session.settings.index, cluster_wait=30.0)
        summary = index_paths([folder], session.store, settings, progress=kill_busiest,
                              cluster=cluster.scheduler_address)
        assert killed and killed[0] not in client.run(os.getpid).values()
    session.engine.dispose()
    assert (summary.indexed, summary.failed) == (32, 0)
    paths = [p for (p,) in rows(str(tmp_path / "k.db"), "SELECT path FROM images")]
    assert sorted(paths) == sorted(str(p.resolve()) for p in folder.rglob("*.jpg"))  # each once
    assert len(paths) == len(set(paths)) == 32


@needs_dask
@pytest.mark.slow
def test_losing_the_scheduler_stops_within_seconds_with_one_line_and_a_rerun_continues(tmp_path):
    import json
    import sqlite3
    import subprocess
    import sys
    import time

    folder = photos(tmp_path / "p", 78, size=(640, 480))
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).resolve().parent)}
    file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(file)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = run = None
    try:
        for _ in range(300):
            if file.exists() and file.stat().st_size:
                break
            time.sleep(0.1)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(file), "--nthreads", "1", "--no-nanny", "--no-dashboard"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        address = json.loads(file.read_text())["address"]
        db = tmp_path / "lost.db"
        # the real command, with the default [index] cluster_wait (60 s)
        run = subprocess.Popen([sys.executable, cli.__file__, "--db", str(db), "index", str(folder),
                                "--cluster", address], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        stored = 0
        while stored < 3 and run.poll() is None:
            time.sleep(0.05)
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    stored = conn.execute("SELECT count(*) FROM images").fetchone()[0]
            except sqlite3.OperationalError:  # the schema is not there yet
                pass
        assert run.poll() is None, "the run ended before the scheduler was killed"
        scheduler.kill()
        killed = time.perf_counter()
        out, err = run.communicate(timeout=60)
        stopped = time.perf_counter() - killed
        assert run.returncode == cli.EXIT_ERROR
        assert err.splitlines() == [f"photoqa: lost the Dask cluster {address} (the connection to the scheduler "
                                    "was lost); what was stored is kept, run the same command again to continue"]
        assert stopped < 8, f"{stopped:.1f} s from the scheduler's death to the exit"
        stored = rows(str(db), "SELECT count(*) FROM images")[0][0]
        assert 3 <= stored < 80
        session = open_session(str(db))
        summary = index_paths([folder], session.store, session.settings.index, workers=1)  # the rerun continues
        session.engine.dispose()
        assert (summary.unchanged, summary.indexed) == (stored, 80 - stored)
        paths = [p for (p,) in rows(str(db), "SELECT path FROM images")]
        assert len(paths) == len(set(paths)) == 80
    finally:
        for process in (run, worker, scheduler):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


@needs_dask
def test_nothing_to_index_starts_no_local_cluster(tmp_path, monkeypatch):
    folder = photos(tmp_path / "p", 2)
    (tmp_path / "empty").mkdir()
    db = str(tmp_path / "n.db")
    assert CliRunner().invoke(cli.main, ["--db", db, "index", str(folder), "-j", "1"]).exit_code == 0
    started: list = []
    monkeypatch.setattr(distributed, "LocalCluster", lambda *a, **k: started.append(k) or 1 / 0)
    for path in (folder, tmp_path / "empty"):  # all indexed already; an empty folder
        result = CliRunner().invoke(cli.main, ["--db", db, "index", str(path), "--cluster", "local:2"])
        assert result.exit_code == 0, result.output
    assert "indexed: 0 unchanged: 4 " in CliRunner().invoke(
        cli.main, ["--db", db, "index", str(folder), "--cluster", "local:2"]).stdout
    assert started == []


PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")


def learnt(db: str) -> set[tuple]:
    """(width, height, kind, sha256) of the frames a database counted or holds in its
    spool (a young body's: SQLite's folder, PostgreSQL's sensor_spool rows)."""
    from pathlib import Path

    from indexer.pipeline.sensorspool import spool_root, waiting

    geometry = {sid: (w, h, kind) for sid, w, h, kind in rows(db, "SELECT id, width, height, kind FROM sensors")}
    if db.startswith("postgresql"):
        spooled = rows(db, "SELECT DISTINCT sensor_id, sha256 FROM sensor_spool")
    else:
        folder = Path(db).with_name(Path(db).name + ".sensors")
        spooled = [(sid, sha) for sid, shas in waiting(spool_root(folder)).items() for sha in shas]
    counted = rows(db, "SELECT sensor_id, sha256 FROM sensor_frames")
    assert not set(spooled) & set(counted)  # a frame counted is no longer waiting
    return {(*geometry[sid], sha) for sid, sha in spooled + counted}


@needs_dask
@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)")
def test_real_photos_into_postgresql_on_a_cluster_equal_a_plain_index(tmp_path, shared_data):
    import uuid

    from db.engine import open_engine

    folder = shared_data / "scenes"
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    pg = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    plain = str(tmp_path / "plain.db")
    try:
        for db, extra in ((plain, ["-j", "2"]), (pg, ["--cluster", "local:2"])):
            result = CliRunner().invoke(cli.main, ["--db", db, "index", str(folder), *extra])
            assert result.exit_code == 0, result.output
        images = rows(pg, IMAGES)
        assert len(images) > 40 and images == rows(plain, IMAGES)
        assert rows(pg, "SELECT path, kind FROM failures ORDER BY path") == rows(
            plain, "SELECT path, kind FROM failures ORDER BY path")
        paired = {p for pair in rows(pg, PAIRS) for p in pair[:2]}
        assert len(paired) >= 4 and paired == {p for pair in rows(plain, PAIRS) for p in pair[:2]}
        assert rows(pg, GROUPS) == rows(plain, GROUPS)
        # sensor statistics: the workers computed each learnt frame's delta, the writer added them
        sensors = ("SELECT s.width, s.height, s.kind, s.frames, f.sha256 FROM sensors s "
                   "JOIN sensor_frames f ON f.sensor_id = s.id ORDER BY 1, 2, 3, 4, 5")
        defects = ("SELECT s.width, s.height, d.x, d.y, d.kind FROM sensor_defects d "
                   "JOIN sensors s ON s.id = d.sensor_id ORDER BY 1, 2, 3, 4, 5")
        # each frame counted once, or waiting in the spool: a body below min_frames (5) is
        # counted on the cluster when deltas of it were left on the workers (not spooled:
        # flushed at the end as before); the plain run leaves its frames for the next run
        counted = rows(pg, sensors)
        assert counted and [r for r in counted if r[3] >= 5] == [r for r in rows(plain, sensors) if r[3] >= 5]
        assert learnt(pg) == learnt(plain)
        assert rows(pg, defects) == rows(plain, defects)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_a_stalled_cluster_has_its_batches_sent_again(monkeypatch):
    """Nothing finishes and no worker is busy (a killed worker once left the client waiting
    for ever on results the scheduler held): the batches out are sent again, once the
    stall has lasted STALL_SECONDS; a busy worker is never taken for a stall."""
    from indexer.pipeline import cluster as clustermod

    monkeypatch.setattr(clustermod, "STALL_SECONDS", 0.05)

    class Nothing:  # distributed.as_completed where nothing ever finishes
        def next_batch(self, block=False):
            return []

    class Client:
        def __init__(self, busy):
            self.busy, self.asked = busy, 0

        def processing(self):
            self.asked += 1
            if self.asked > 3:  # a busy worker ends its task at last
                running.clear()
            return {"tcp://w": ["task"] if self.busy else []}

    running, sent = {"future": ("batch", None)}, []
    assert list(clustermod.finished_batches(Nothing(), running, Client(busy=False),
                                     lambda: (sent.append(dict(running)), running.clear()))) == []
    assert sent == [{"future": ("batch", None)}]
    running, sent = {"future": ("batch", None)}, []
    list(clustermod.finished_batches(Nothing(), running, Client(busy=True), lambda: sent.append(1)))
    assert sent == []


    class Failing(Client):  # the probe itself fails (tornado's stream buffer, once in CI)
        def processing(self):
            super().processing()
            raise AssertionError

    running, sent = {"future": ("batch", None)}, []
    list(clustermod.finished_batches(Nothing(), running, Failing(busy=False), lambda: sent.append(1)))
    assert sent == []  # no stall declared on a failed probe, and the run goes on


@needs_dask
def test_an_unreachable_scheduler_is_one_error_once_cluster_wait_has_passed():
    """The first connection is tried again (each try with the client's short public
    ``timeout``, which is also its reconnection time) until ``cluster_wait``, then fails."""
    import socket
    import time

    from indexer.pipeline.cluster import ClusterSpec, connect

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(ClusterError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        connect(ClusterSpec(address=f"tcp://127.0.0.1:{port}"), wait=3.0)
    assert 3.0 <= time.perf_counter() - started < 15


@needs_dask
@pytest.mark.slow
def test_local_workers_keep_glibc_malloc_defaults():
    """Dask's nanny puts MALLOC_TRIM_THRESHOLD_=65536 into the environment the workers
    start with; with it every 1280x960 decode took ~10x the page faults and ~60% more
    CPU. A local:N cluster's workers must not have it (a fresh interpreter, as a user's
    command: a forkserver started earlier in this test process would hide it)."""
    import subprocess
    import sys

    code = ("from indexer.pipeline.cluster import ClusterSpec, _close, connect\n"
            "import os\n"
            "if __name__ == '__main__':\n"
            "    client, cluster = connect(ClusterSpec(local=1), 60)\n"
            "    print(sorted(set(client.run(os.environ.get, 'MALLOC_TRIM_THRESHOLD_').values()), key=str))\n"
            "    _close(client, cluster)\n")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env["PYTHONPATH"] = str(Path(cli.__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[None]"


@needs_dask
@pytest.mark.slow
def test_workers_of_a_dask_nanny_decode_without_a_page_fault_per_array(tmp_path):
    """A ``dask worker`` (here a LocalCluster with Dask's defaults: spawned by a nanny
    with MALLOC_TRIM_THRESHOLD_=65536) had glibc mmap every array of an image afresh:
    ~3,900 page faults per 1280x960 JPEG; ~400 in a pool worker. The task sets the
    allocator back (allocator_for_images) before it decodes."""
    from indexer.config import IndexSettings
    from indexer.decode import SensorData
    from indexer.outcomes import Task
    from indexer.pipeline.cluster import analyse_batch

    paths = [F.write_jpeg(tmp_path / f"s{i}.jpg", F.scene(i, 1280, 960)) for i in range(6)]
    tasks = [Task(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]

    def faults_per_file(batch):
        import resource

        analyse_batch(batch[:1], IndexSettings(), frozenset(), SensorData.NONE, False, False)  # warm
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        analyse_batch(batch, IndexSettings(), frozenset(), SensorData.NONE, False, False)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(batch), \
            os.environ.get("MALLOC_TRIM_THRESHOLD_")

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        faults, trim = client.submit(faults_per_file, tasks, pure=False).result()
    assert trim == "65536"  # Dask's nanny set it, as on any `dask worker`
    assert faults < 1000, f"{faults:.0f} page faults per file"
