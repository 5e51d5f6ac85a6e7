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

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass

from indexer.config import IndexSettings
from indexer.decode import SensorData
from indexer.measure.features import FEATURES_VERSION
from indexer.outcomes import Failed, Outcome, Task
from indexer.pipeline.analyse import analyse
from indexer.pipeline.clustersensor import Batch, DeltaRef, keep_deltas, outcomes_of
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


def _check_installed() -> None:
    """Raise the :func:`_distributed` error now when Dask distributed is not installed,
    without importing it."""
    import importlib.util

    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        found = False
    if not found:
        _distributed()


def connect(spec: ClusterSpec, wait: float, distributed=None) -> tuple:
    """(a ``distributed.Client`` of ``spec`` with at least one worker, waiting up to
    ``wait`` seconds; the ``LocalCluster`` started for a ``local:N`` spec, else None).
    ``local:N``: N worker processes of one thread (the decoders are single-threaded
    NumPy/Pillow code), no dashboard. Close both with :func:`_close`.

    Once connected, the client gives up :data:`RECONNECT_SECONDS` after losing the
    scheduler (its public ``timeout``; Dask's default: the whole connect timeout), and
    the first connection is tried again until ``wait`` has passed; Dask's own log
    lines about it are silenced: the run reports the loss in one line
    (:func:`_outcome`)."""
    distributed = distributed or _distributed()
    cluster = None
    # Client(timeout=...): Dask's one public knob for how long the client waits for its
    # scheduler; it also bounds every later reconnection (Client._reconnect) and the
    # default timeout of scatter. Here it is RECONNECT_SECONDS, so a lost scheduler
    # stops the run within seconds; the first connection still has ``wait`` seconds, by
    # trying again (each try gives up after at most RECONNECT_SECONDS)
    reconnect = min(wait, RECONNECT_SECONDS)
    try:
        if spec.local:
            import dask

            # no dashboard: it needs bokeh, and a port nobody asked for; LOCAL_CONFIG: the
            # housekeeping of every process (profiler, event-loop ticks) off or slowed
            with dask.config.set(LOCAL_CONFIG):
                _preload_forkserver()
                cluster = distributed.LocalCluster(n_workers=spec.local, threads_per_worker=1, processes=True,
                                                   dashboard_address=None)
            client = _client_within(distributed, cluster, wait, reconnect)
        else:
            client = _client_within(distributed, spec.address, wait, reconnect)
    except (OSError, TimeoutError, RuntimeError) as exc:  # RuntimeError: a LocalCluster's workers did not start
        if cluster is not None:
            cluster.close()
        what = "cannot start" if spec.local else "cannot reach the Dask scheduler at"
        raise ClusterError(f"{what} {spec}: {type(exc).__name__}: {exc}") from exc
    try:
        client.wait_for_workers(1, timeout=wait)
    except (OSError, TimeoutError) as exc:
        _close(client, cluster)
        raise ClusterError(f"no Dask worker joined the scheduler at {spec} within {wait:g} s "
                           f"(start some with: dask worker {spec})") from exc
    for name in ("distributed.client", "distributed.batched", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return client, cluster


# seconds the client tries to reach a lost scheduler again before the run stops
RECONNECT_SECONDS = 2.0


def _client_within(distributed, address, wait: float, timeout: float):
    """A ``distributed.Client(address, timeout=timeout)`` (``address``: a scheduler's, or a
    ``LocalCluster``), tried again until ``wait``
    seconds have passed (the last error raised then): the client keeps ``timeout`` for
    its reconnections, while the first connection may wait for a scheduler starting up."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        try:
            return distributed.Client(address, timeout=max(0.1, min(timeout, left)))
        except (OSError, TimeoutError):
            if time.monotonic() + 0.1 >= deadline:
                raise
            time.sleep(0.1)

# Dask settings of a local:N cluster (its scheduler and nannies run in this process, the
# writer's; the workers get them from their nanny). On one machine every CPU second Dask
# spends on itself is taken from decoding: its statistical profiler samples every worker
# thread each 10 ms, the event loops check their health each 20 ms.
LOCAL_CONFIG = {
    # forked from one server that imported Dask and photoqa's decoders once, not spawned
    # and importing both from scratch each (Dask's default): under load 20-28 here a
    # local:2 run's workers joined 10-15 s after the start, and cost ~2 CPU-s each in imports
    "distributed.worker.multiprocessing-method": "forkserver",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    # Dask's default minus MALLOC_TRIM_THRESHOLD_=65536: the nanny writes it into this
    # process's os.environ before starting a worker, so the forkserver started then (and
    # every worker forked from it) had glibc hand each freed block of 64 KiB or more back
    # to the OS (setting it also turns off glibc's adaptive mmap threshold): a worker took
    # 3,900 page faults and 18.5-19.7 ms of CPU per 1280x960 JPEG against 380-470 and
    # 11.2-11.9 ms in a pool worker; 11.1-11.6 ms without it (thread CPU inside the task, 2026-12-07)
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
}


# what the forkserver of a local:N cluster's workers imports before forking them: Dask and
# the decoding and measuring code (0.47 s of CPU in a fresh interpreter here, 0.37 s of it
# distributed's), once, not once per worker
FORKSERVER_PRELOAD = ["dask", "distributed", "numpy", "indexer.pipeline.cluster"]


def start_forkserver() -> None:
    """Start the forkserver a ``local:N`` cluster forks its workers from, importing
    :data:`FORKSERVER_PRELOAD`, now: it imports them in its own process while this one
    imports Dask and starts the scheduler (one after the other, a local:2 cluster's
    start took 0.8 s of CPU more). Dask's ``get_mp_context`` later sets its own preload
    list, which no longer matters once the server runs. The local pools use the same
    forkserver (``pipeline.pools``): these modules are theirs too. Started from this
    process's environment before a nanny changes it (``LOCAL_CONFIG``)."""
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    forkserver.ensure_running()


def _preload_forkserver() -> None:
    """Dask's own preload list (``distributed.utils.get_mp_context``), replaced by
    :data:`FORKSERVER_PRELOAD` in case the forkserver is not running yet."""
    from distributed.utils import get_mp_context

    get_mp_context().set_forkserver_preload(FORKSERVER_PRELOAD)


def _close(client, cluster) -> None:
    """Close the client (a few seconds at most, the scheduler may be gone) and the local cluster."""
    if client is not None:
        try:
            client.close(timeout=RECONNECT_SECONDS + 1)
        except Exception:  # noqa: BLE001 - closing a client whose scheduler is gone raises; nothing to keep
            pass
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

# Files per Dask task, at most: one task per file cost 3-12 ms of scheduling and round trips
# against 20-45 ms to decode and measure a 1280x960 JPEG here (bench/cluster_scale.py)
BATCH_FILES = 8
CANCELLED_RETRIES = 2  # times a batch Dask cancelled or stalled on (not a lost scheduler) is sent again
STALL_SECONDS = 15.0  # nothing finished and no worker busy for this long: the batches out are sent again


# glibc's mallopt parameters (malloc.h) and the values its adaptive thresholds reach on
# image-sized blocks: arrays up to 32 MiB come from the heap, 64 MiB of freed heap is kept
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 32 << 20, 64 << 20
_allocator = {"checked": False}


def allocator_for_images() -> bool:
    """Once per worker process: when Dask's nanny started it with
    ``MALLOC_TRIM_THRESHOLD_`` (its default, 65536, on every ``dask worker``), set glibc's
    mmap and trim thresholds to what its adaptive defaults reach on image-sized blocks
    (setting the variable turns that adaptation off: every array of 128 KiB or more was
    a fresh mmap). Measured on a plain ``LocalCluster``: 20.0 ms of CPU and 3,941 page
    faults per 1280x960 JPEG before, 10.5-10.8 ms and 8-68 after. Returns whether it
    changed them (False without the variable, or without glibc)."""
    if _allocator["checked"]:
        return False
    _allocator["checked"] = True
    import os

    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc: its allocator has no such switch
        return False


def analyse_on_worker(task: Task, settings: IndexSettings, move_candidates: frozenset[str],
                      sensor_data: SensorPlan | SensorData, nice: bool) -> Outcome:
    """A Dask task: :func:`analyse` with the settings ``init_worker`` gives a pool's workers.

    ``nice``: the executing thread steps down in priority once (Linux nice values are per
    thread), as local pool workers do, so that a ``local:N`` cluster leaves the writer
    its share of the cores. The worker's allocator is set for images first
    (:func:`allocator_for_images`)."""
    allocator_for_images()
    if nice and not getattr(_thread, "reniced", False):
        lower_priority()
        _thread.reniced = True
    return analyse(task, settings, move_candidates, sensor_data)


def shared_value(value):
    """A Dask task whose result is ``value``: data every batch needs, held on the cluster
    and recomputed from the task itself should every worker holding it die."""
    return value


def analyse_batch(tasks: list[Task], settings: IndexSettings, move_candidates: frozenset[str],
                  sensor_data: SensorPlan | SensorData, nice: bool, keep: bool) -> list[Outcome] | Batch:
    """A Dask task: :func:`analyse_on_worker` of each of ``tasks``; their outcomes, or with
    ``keep`` a :class:`~indexer.pipeline.clustersensor.Batch` that keeps the frame
    deltas on this worker (the writer fetches ``outcomes_of`` it)."""
    outcomes = [analyse_on_worker(t, settings, move_candidates, sensor_data, nice) for t in tasks]
    return keep_deltas(outcomes) if keep else outcomes


class Cluster:
    """The Dask cluster of one run, connected lazily: decoding (:meth:`outcomes`) and the
    matching stage's verification jobs (:meth:`executor`) share it. Nothing is started
    or connected until a run has files to analyse (a rerun with nothing new starts no
    ``local:N`` cluster); then the connection is made in a thread while the writer
    analyses files itself (:meth:`outcomes`). Use as a context manager
    (:func:`open_cluster`): the client is closed, and a ``local:N`` cluster stopped, when
    the run and its stages are done."""

    def __init__(self, spec: ClusterSpec, wait: float):
        self.spec, self.wait = spec, wait
        _check_installed()  # imported in the starting thread: 0.4 s of CPU, beside the forkserver's
        self.distributed = None
        self._client = None
        self._local = None
        self._error: BaseException | None = None
        self._starting: threading.Thread | None = None

    def start(self) -> None:
        """Begin connecting (in a thread), once; a ``local:N`` cluster's forkserver first."""
        if self._starting is None:
            if self.spec.local:
                start_forkserver()
            self._starting = threading.Thread(target=self._connect, name="photoqa-cluster-start", daemon=True)
            self._starting.start()

    def ready(self) -> bool:
        """Connected (or failed): :attr:`client` would not wait."""
        return self._starting is not None and not self._starting.is_alive()

    @property
    def started(self) -> bool:
        return self._starting is not None

    def _connect(self) -> None:
        try:
            self.distributed = _distributed()
            self._client, self._local = connect(self.spec, self.wait, self.distributed)
            check_workers(self._client, self.spec)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asks for the client
            self._error = exc

    @property
    def client(self):
        """The connected ``distributed.Client`` (connecting now if not started); raises
        :class:`ClusterError` when the cluster is unusable."""
        self.start()
        self._starting.join()
        if self._error is not None:
            raise self._error
        return self._client

    def close(self) -> None:
        if self._starting is None:
            return
        self._starting.join()
        _close(self._client, self._local)
        self._client = self._local = None

    def outcomes(self, tasks: list[Task], settings: IndexSettings, move_candidates: frozenset[str],
                 sensor_data: SensorPlan | SensorData = SensorData.NONE, *,
                 remote_deltas: bool = True) -> Iterator[Outcome]:
        """Analyse ``tasks`` on the workers; yields outcomes as they complete.

        While a ``local:N`` cluster starts (1-3 s here) the writer analyses files itself,
        one at a time, as ``-j 1`` would. Then tasks of up to
        :data:`BATCH_FILES` files go to the workers (fewer when there are few files, so
        every worker gets some), at most three per worker thread in flight (at least 4),
        so memory stays flat on huge folders. The SHA-256s of gone rows and the sensor
        plan are sent to the workers once, not with every task. Learnt frames' deltas
        stay on the workers (:mod:`indexer.pipeline.clustersensor`) unless
        ``remote_deltas`` is False (a cluster closed before the sensor stage flushes).
        Raises :class:`ClusterError` when the cluster is lost; the outcomes yielded before are
        the caller's to keep.
        """
        if not tasks:
            return
        self.start()
        queue = deque(tasks)
        # a local:N cluster takes seconds to start: meanwhile this process works. A scheduler
        # is connected to in a fraction of a second, or is unreachable: then nothing is stored
        while queue and self.spec.local and not self.ready():
            yield analyse(queue.popleft(), settings, move_candidates, sensor_data)
        if not queue:
            return
        client, spec, distributed = self.client, self.spec, self.distributed
        threads = max(1, sum(client.nthreads().values()))
        size = max(1, min(BATCH_FILES, len(queue) // (4 * threads)))
        limit = max(4, 3 * threads)
        plan = SensorPlan.of(sensor_data)
        keep = remote_deltas and plan.data is not SensorData.NONE
        # sent once, not pickled into each task: the SHA-256s of gone rows and the sensor plan
        # (frames learnt per camera body so far). Tasks, not scattered data: Dask's active
        # memory manager drops a broadcast's extra replicas within seconds, and a scattered
        # value whose last holder dies is gone for good, with every batch depending on it
        # cancelled ("lost dependencies", CI at load 2 after a SIGKILL); a task is recomputed
        moves = client.submit(shared_value, move_candidates, pure=False)
        plan = client.submit(shared_value, plan, pure=False)
        running: dict = {}

        alone: deque[Task] = deque()  # files of a batch whose worker died repeatedly, one per task now
        retried: dict[tuple[str, ...], int] = {}  # batches sent again after a cancellation

        def submit():
            if alone:
                batch = [alone.popleft()]
            else:  # smaller tasks at the end, so that no worker waits while another has 8 files left
                batch = [queue.popleft() for _ in range(max(1, min(size, len(queue) // (2 * threads))))]
            whole = client.submit(analyse_batch, batch, settings, moves, plan, bool(spec.local), keep, pure=False)
            fetched = client.submit(outcomes_of, whole, pure=False) if keep else whole
            running[fetched] = (batch, whole if keep else None)
            return fetched

        # with_results: the client fetches results on its event loop as tasks finish, instead
        # of one blocking round trip per future from this thread
        done = distributed.as_completed([submit() for _ in range(limit) if queue], with_results=True,
                                        raise_errors=False)
        def stalled() -> None:
            """Nothing finished for STALL_SECONDS and no worker is busy: send every batch
            still out again (its old future, should it ever finish, is ignored)."""
            for fetched in list(running):
                batch, _ = running.pop(fetched)
                key = tuple(task.path for task in batch)
                if retried.get(key, 0) >= CANCELLED_RETRIES:
                    raise ClusterError(f"the Dask cluster {spec} stopped returning results; what was stored is "
                                       f"kept, run the same command again to continue")
                retried[key] = retried.get(key, 0) + 1
                queue.extendleft(reversed(batch))
            while (queue or alone) and len(running) < limit:
                done.add(submit())

        for future, value in finished_batches(done, running, client, stalled):
            if future not in running:
                continue  # a batch sent again after a stall: its first future came back late
            batch, whole = running.pop(future)
            if isinstance(value, distributed.KilledWorker) and len(batch) > 1:
                alone.extend(batch)  # only the file that kills its worker becomes a failure
                outcomes = []
            elif isinstance(value, BaseException):
                lost = client.status != "running"  # "connecting" (then "closed") once the scheduler is gone
                key = tuple(task.path for task in batch)
                if not lost and _cancelled(value) and retried.get(key, 0) < CANCELLED_RETRIES:
                    # a worker killed while holding a batch another task depended on: the
                    # scheduler may cancel the dependant ("already forgotten") although the
                    # cluster is fine (seen at load 20); the batch is simply sent again
                    retried[key] = retried.get(key, 0) + 1
                    queue.extendleft(reversed(batch))
                    outcomes = []
                else:
                    outcomes = [_outcome(value, task, spec, distributed, lost) for task in batch]
            else:
                outcomes = value
                for outcome in outcomes:  # the sensor stage holds the batch while it needs a delta
                    if isinstance(getattr(outcome, "sensor", None), DeltaRef):
                        outcome.sensor.source = whole
            future.release()
            del whole
            while (queue or alone) and len(running) < limit:
                done.add(submit())
            yield from outcomes

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
    """The :class:`Cluster` of ``spec``, connected when first needed (:func:`connect`,
    then a check that its workers run this photoqa: :func:`check_workers`), closed on
    exit; its use raises :class:`ClusterError` when it is unusable."""
    if isinstance(spec, str):
        spec = parse_cluster(spec)
    cluster = Cluster(spec, settings.cluster_wait)
    try:
        yield cluster
    finally:
        cluster.close()


def cluster_outcomes(tasks: list[Task], cluster: str | Cluster, settings: IndexSettings,
                     move_candidates: frozenset[str],
                     sensor_data: SensorPlan | SensorData = SensorData.NONE) -> Iterator[Outcome]:
    """:meth:`Cluster.outcomes` on ``cluster``, an open one or a spec opened for these tasks."""
    if isinstance(cluster, Cluster):
        yield from cluster.outcomes(tasks, settings, move_candidates, sensor_data)
        return
    if not tasks:
        return
    with open_cluster(cluster, settings) as opened:  # closed before the stages flush: deltas come here
        yield from opened.outcomes(tasks, settings, move_candidates, sensor_data, remote_deltas=False)


def finished_batches(done, running: dict, client, stalled: Callable[[], None]) -> Iterator[tuple]:
    """``(future, value)`` of ``done`` (a ``distributed.as_completed`` with results) while
    ``running`` holds futures; calls ``stalled()`` when none has finished for
    :data:`STALL_SECONDS` while no worker is processing anything. A worker killed while
    another task depended on its result once left the client waiting for ever on a future
    the scheduler held in memory (at load 20; every task 'memory', none processing)."""
    last = time.monotonic()
    while running:
        batch = done.next_batch(block=False)
        if batch:
            last = time.monotonic()
            yield from batch
            continue
        if time.monotonic() - last >= STALL_SECONDS and _idle(client):
            stalled()
            last = time.monotonic()
        time.sleep(0.005)


def _idle(client) -> bool:
    """Whether no worker is processing anything; False when the scheduler cannot say.

    The question is a probe, not the run's work: once (CI, distributed 2026.11, a worker
    just killed) it raised an AssertionError from inside tornado's stream buffer and
    ended the run. The batches' own futures report a lost scheduler; here an error only
    means "ask again at the next stall check"."""
    try:
        return not any(client.processing().values())
    except Exception:  # noqa: BLE001 - see the docstring
        return False


def _cancelled(value: BaseException) -> bool:
    """Whether Dask cancelled the task (a ``CancelledError``) for a reason other than a
    lost scheduler connection."""
    from concurrent.futures import CancelledError

    return isinstance(value, CancelledError) and "scheduler-connection-lost" not in str(value)


def _outcome(value, task: Task, spec: ClusterSpec, distributed, lost: bool = False) -> Outcome:
    """A finished task's outcome; ``value`` is the outcome, or the exception it ended with;
    ``lost``: the client has lost its scheduler."""
    if not isinstance(value, BaseException):
        return value
    if isinstance(value, distributed.KilledWorker):
        # the scheduler gave up after the file's worker died again and again: the file
        # (a decoder crash) is the likely cause, so it is a failure row like any other
        return Failed(task, "internal", f"the Dask worker analysing it died repeatedly ({value})")
    # analyse returns every file error as Failed: anything else is the cluster's
    # every future is cancelled, with this reason or (distributed 2026.8, a result being
    # fetched) "unknown"
    if lost or "scheduler-connection-lost" in str(value):
        reason = "the connection to the scheduler was lost"
    else:
        reason = f"{type(value).__name__}: " + (str(value).splitlines() or [""])[0]
    raise ClusterError(f"lost the Dask cluster {spec} ({reason}); "
                       f"what was stored is kept, run the same command again to continue") from value
