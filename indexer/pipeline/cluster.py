"""Decoding and measuring on a Dask cluster (``photoqa index --cluster``); the writer stays here.

The run's other stages do not change: :func:`cluster_outcomes` yields the same outcomes
as the local process pool of :func:`indexer.pipeline.run.run_outcomes`, as they complete,
and the one writer (this process) stores them with
:func:`indexer.pipeline.stages.store_outcome` exactly as without a cluster. Only
:func:`indexer.pipeline.analyse.analyse` runs on the workers, which read each file from
its path: every worker must see the indexed folders at the same paths (docs/CLUSTER.md).

Dask (``distributed``) is an optional dependency, imported here only, and only when a
run asks for a cluster, so read commands never load it.

Faults: a worker that dies mid-task has its tasks rescheduled by the scheduler on the
others, and the writer still receives one result per file (one future each), so every
file is stored once. A file whose worker died ``distributed.scheduler.allowed-failures``
times (a decoder that crashes the process) becomes a ``failures`` row, not a stop. Losing
the scheduler stops the run with :class:`ClusterError`; what was stored stays, and a
rerun skips it as unchanged.
"""
from __future__ import annotations

import threading
from itertools import islice
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass

from indexer.config import IndexSettings
from indexer.decode import SensorData
from indexer.measure.features import FEATURES_VERSION
from indexer.outcomes import Failed, Outcome, Task
from indexer.pipeline.analyse import analyse
from indexer.pipeline.pools import lower_priority
from indexer.pipeline.sensorplan import SensorPlan

INSTALL_HINT = "pip install 'photoqa[cluster]'"


class ClusterError(Exception):
    """The cluster is unusable: Dask missing, a bad address, no workers, or the scheduler lost."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where the work runs: ``local`` workers in a ``LocalCluster`` here, else ``address``."""

    address: str = ""
    local: int = 0

    def __str__(self) -> str:
        return f"local:{self.local}" if self.local else self.address


def parse_cluster(spec: str) -> ClusterSpec:
    """``'local:N'`` (N >= 1 worker processes here) or a scheduler address (``tcp://host:8786``,
    ``tls://...``); anything else raises :class:`ClusterError`."""
    spec = spec.strip()
    if spec.startswith("local:"):
        count = spec.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(f"cluster {spec!r}: local:N needs a worker count N >= 1, e.g. local:2")
        return ClusterSpec(local=int(count))
    scheme, sep, rest = spec.partition("://")
    if not sep or not rest or scheme not in ("tcp", "tls", "ucx", "ws", "wss"):
        raise ClusterError(f"cluster {spec!r}: give a scheduler address such as tcp://HOST:8786, or local:N")
    return ClusterSpec(address=spec)


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(f"--cluster needs Dask distributed, which is not installed: {INSTALL_HINT}") from exc
    return distributed


@contextmanager
def connect(spec: ClusterSpec, wait: float) -> Iterator:
    """A ``distributed.Client`` of ``spec`` with at least one worker (waiting up to ``wait``
    seconds), closed on exit; a ``local:N`` cluster (N worker processes of one thread: the
    decoders are single-threaded NumPy/Pillow code) is started and stopped with it."""
    distributed = _distributed()
    cluster = None
    try:
        if spec.local:
            # no dashboard: it needs bokeh, and a port nobody asked for
            cluster = distributed.LocalCluster(n_workers=spec.local, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(spec.address, timeout=wait)
    except (OSError, TimeoutError, RuntimeError) as exc:  # RuntimeError: a LocalCluster's workers did not start
        if cluster is not None:
            cluster.close()
        what = "cannot start" if spec.local else "cannot reach the Dask scheduler at"
        raise ClusterError(f"{what} {spec}: {type(exc).__name__}: {exc}") from exc
    try:
        try:
            client.wait_for_workers(1, timeout=wait)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"no Dask worker joined the scheduler at {spec} within {wait:g} s "
                               f"(start some with: dask worker {spec})") from exc
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_features_version() -> int:
    """Run on each worker: the features version of the photoqa it imports."""
    return FEATURES_VERSION


def check_workers(client, spec: ClusterSpec) -> None:
    """Every worker imports photoqa, with this process's features version (else a worker
    running another release would store other measurements under the same version)."""
    try:
        versions = client.run(worker_features_version)
    except Exception as exc:  # noqa: BLE001 - unpickling fails where photoqa is not installed
        raise ClusterError(f"workers of {spec} cannot run photoqa (is it installed there?): "
                           f"{type(exc).__name__}: {exc}") from exc
    wrong = {w: v for w, v in versions.items() if v != FEATURES_VERSION}
    if wrong:
        raise ClusterError(f"workers of {spec} run another photoqa (features version {wrong}, "
                           f"here {FEATURES_VERSION}): install the same release everywhere")


_thread = threading.local()


def analyse_on_worker(task: Task, settings: IndexSettings, move_candidates: frozenset[str],
                      sensor_data: SensorPlan | SensorData, nice: bool) -> Outcome:
    """A Dask task: :func:`analyse` with the settings ``init_worker`` gives a pool's workers.

    ``nice``: the executing thread steps down in priority once (Linux nice values are per
    thread), as local pool workers do, so that a ``local:N`` cluster leaves the writer
    its share of the cores."""
    if nice and not getattr(_thread, "reniced", False):
        lower_priority()
        _thread.reniced = True
    return analyse(task, settings, move_candidates, sensor_data)


class Cluster:
    """An open connection to a Dask cluster for one run: decoding (:meth:`outcomes`) and
    the matching stage's verification jobs (:meth:`executor`) share it. Use as a context
    manager (:func:`open_cluster`); the client is closed, and a ``local:N`` cluster
    stopped, when the run and its stages are done."""

    def __init__(self, client, spec: ClusterSpec):
        self.client, self.spec = client, spec
        self.distributed = _distributed()

    def outcomes(self, tasks: list[Task], settings: IndexSettings, move_candidates: frozenset[str],
                 sensor_data: SensorPlan | SensorData = SensorData.NONE) -> Iterator[Outcome]:
        """Analyse ``tasks`` on the workers; yields outcomes as they complete.

        At most 4 tasks per worker thread are in flight (at least 8), as the local pool
        does, so memory stays flat on huge folders. The SHA-256s of gone rows and the
        sensor plan are sent to the workers once, not with every task. Raises
        :class:`ClusterError` when the cluster is lost; the outcomes yielded before are
        the caller's to keep.
        """
        if not tasks:
            return
        client, spec = self.client, self.spec
        limit = max(8, 4 * sum(client.nthreads().values()))
        # sent once to every worker, not pickled into each task: the SHA-256s of gone rows and
        # the sensor plan (frames learnt per camera body so far)
        moves, plan = client.scatter([move_candidates, SensorPlan.of(sensor_data)], broadcast=True, hash=False)
        queue = iter(tasks)
        running: dict = {}

        def submit(task: Task):
            future = client.submit(analyse_on_worker, task, settings, moves, plan, bool(spec.local),
                                   pure=False)
            running[future] = task
            return future

        # with_results: the client fetches results on its event loop as tasks finish, instead
        # of one blocking round trip per future from this thread (not measured apart: the
        # machine was too loaded to tell the two apart, bench/cluster_scale.py)
        done = self.distributed.as_completed([submit(t) for t in islice(queue, limit)], with_results=True,
                                             raise_errors=False)
        for future, value in done:
            task = running.pop(future)
            yield _outcome(value, task, spec, self.distributed)
            future.release()
            for following in queue:
                done.add(submit(following))
                break

    def executor(self, workers: int = 0) -> "ClusterExecutor":
        """A ``concurrent.futures`` executor on the cluster, for
        :class:`indexer.pipeline.verifypool.Verifier` (``workers`` is the cluster's
        business and unused)."""
        return ClusterExecutor(self.client)


class ClusterExecutor(Executor):
    """``client.get_executor()`` with the ``shutdown(wait, cancel_futures)`` of Python's
    executors; shutting it down cancels its own futures, never the run's client."""

    def __init__(self, client):
        self.inner = client.get_executor(pure=False)
        self.futures: set = set()

    def submit(self, fn, /, *args, **kwargs):
        future = self.inner.submit(fn, *args, **kwargs)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for future in list(self.futures):
                future.cancel()
        self.inner.shutdown(wait=wait)


@contextmanager
def open_cluster(spec: str | ClusterSpec, settings: IndexSettings) -> Iterator[Cluster]:
    """Connect to ``spec`` (:func:`connect`), check its workers run this photoqa, and
    yield the :class:`Cluster`; raises :class:`ClusterError` when it is unusable."""
    if isinstance(spec, str):
        spec = parse_cluster(spec)
    with connect(spec, settings.cluster_wait) as client:
        check_workers(client, spec)
        yield Cluster(client, spec)


def cluster_outcomes(tasks: list[Task], cluster: str | Cluster, settings: IndexSettings,
                     move_candidates: frozenset[str],
                     sensor_data: SensorPlan | SensorData = SensorData.NONE) -> Iterator[Outcome]:
    """:meth:`Cluster.outcomes` on ``cluster``, an open one or a spec opened for these tasks."""
    if isinstance(cluster, Cluster):
        yield from cluster.outcomes(tasks, settings, move_candidates, sensor_data)
        return
    if not tasks:
        return
    with open_cluster(cluster, settings) as opened:
        yield from opened.outcomes(tasks, settings, move_candidates, sensor_data)


def _outcome(value, task: Task, spec: ClusterSpec, distributed) -> Outcome:
    """A finished task's outcome; ``value`` is the outcome, or the exception it ended with."""
    if not isinstance(value, BaseException):
        return value
    if isinstance(value, distributed.KilledWorker):
        # the scheduler gave up after the file's worker died again and again: the file
        # (a decoder crash) is the likely cause, so it is a failure row like any other
        return Failed(task, "internal", f"the Dask worker analysing it died repeatedly ({value})")
    # analyse returns every file error as Failed: anything else is the cluster's
    if "scheduler-connection-lost" in str(value):  # every future is cancelled with this reason
        reason = "the connection to the scheduler was lost"
    else:
        reason = f"{type(value).__name__}: " + (str(value).splitlines() or [""])[0]
    raise ClusterError(f"lost the Dask cluster {spec} ({reason}); "
                       f"what was stored is kept, run the same command again to continue") from value
