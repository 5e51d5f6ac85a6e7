"""``photoqa index``: walk, plan, analyse in worker processes, store with one writer.

The stages, in order: :func:`indexer.pipeline.scan.walk` -> :func:`indexer.pipeline.scan.plan` ->
:func:`indexer.pipeline.analyse.analyse` (workers) -> :class:`db.store.Store` (this process) ->
the stages (:mod:`indexer.pipeline.stages`: matching, sensor statistics, exposure flags)
-> mark rows whose files are gone.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from db import actions as dbactions
from db.store import Store
from indexer.config import IndexSettings
from indexer.decode import SensorData, arrays
from indexer.pipeline.sensorplan import LivePlan, SensorPlan, exposure_marks
from indexer.measure.features import FEATURES_VERSION
from indexer.outcomes import Failed, Outcome, Task
from indexer.pipeline import scan
from indexer.pipeline.analyse import analyse, init_worker
from indexer.pipeline.pools import WorkerPool, preload, warms_kernels, worker_count
from indexer.pipeline.stages import Stage, body_states, expect_files, store_batch, store_outcome

if TYPE_CHECKING:
    from indexer.pipeline.cluster import Cluster


@dataclass
class Summary:
    indexed: int = 0
    unchanged: int = 0
    updated: int = 0
    moved: int = 0
    missing: int = 0
    failed: int = 0
    frames: int = 0  # frames of array stacks stored (indexer.pipeline.stackrun)
    failed_before: int = 0  # of `unchanged`: files under the roots that failed before, unchanged since
    seconds: float = 0.0
    images_per_second: float = 0.0
    frames_per_second: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C: what is counted was stored
    failed_paths: list[str] = field(default_factory=list)  # failed now, then failed before

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["failed_paths"]
        if not self.interrupted:
            del out["interrupted"]
        return out

    @property
    def worked(self) -> int:
        """Files that needed work (decoded, hashed for a move, or failed)."""
        return self.indexed + self.updated + self.moved + self.failed

    def timed(self, seconds: float) -> "Summary":
        """This summary over ``seconds`` of wall time."""
        self.seconds = round(seconds, 3)
        self.images_per_second = round(self.worked / seconds, 2) if seconds > 0 else 0.0
        self.frames_per_second = round(self.frames / seconds, 1) if seconds > 0 else 0.0
        return self


def start_pool(settings: IndexSettings, workers: int,
               sensor_data: SensorPlan | SensorData = SensorData.NONE) -> WorkerPool:
    """A long-lived pool of ``workers`` processes running :func:`analyse` (for the daemon).

    Workers ignore SIGINT so a terminal Ctrl-C lets the parent finish or abandon
    in-flight files itself. ``sensor_data`` as for :func:`index_paths`.

    When the plan learns rendered frames the workers fork from a forkserver that has
    loaded the compiled sensor kernels (:mod:`indexer.pipeline.kernelwarm`), whatever
    the worker count: this pool lives for months and replaces workers that die, and
    each replacement would otherwise load numba and the kernels again (~0.65 s CPU).
    """
    if SensorPlan.of(sensor_data).data is SensorData.ALL:
        preload(["indexer.pipeline.kernelwarm"])
    return WorkerPool(workers, init_worker, (settings, frozenset(), sensor_data))


CRASH_MESSAGE = ("the worker process died decoding it (a native decoder crashed: segfault or abort); "
                 "the run went on with a fresh worker")


def run_outcomes(tasks: list[Task], settings: IndexSettings, workers: int,
                 move_candidates: frozenset[str], sensor_data: SensorPlan | SensorData = SensorData.NONE,
                 work: Callable[[Task], Outcome] = analyse, cluster: "str | Cluster" = "",
                 plan_now: Callable[[], SensorPlan | None] | None = None,
                 inline: bool = False) -> Iterator[Outcome]:
    """Analyse ``tasks``; yields outcomes as they complete: :func:`run_batches`, one by one."""
    for batch in run_batches(tasks, settings, workers, move_candidates, sensor_data, work, cluster, plan_now,
                             inline=inline):
        yield from batch


def run_batches(tasks: list[Task], settings: IndexSettings, workers: int,
                move_candidates: frozenset[str], sensor_data: SensorPlan | SensorData = SensorData.NONE,
                work: Callable[[Task], Outcome] = analyse, cluster: "str | Cluster" = "",
                plan_now: Callable[[], SensorPlan | None] | None = None,
                inline: bool = False) -> Iterator[list[Outcome]]:
    """Analyse ``tasks``; yields lists of outcomes as they complete, for the writer to
    store a list in one transaction, in worker processes (one at least: ``-j 1`` too
    decodes in a child, so a native crash there is a row as well), or on the Dask
    cluster ``cluster`` when given (:mod:`indexer.pipeline.cluster`, one outcome a
    list). ``inline``: in this process instead, one outcome a list (no isolation: a
    segfault ends the caller; for ``work`` functions that cannot be pickled, as some
    tests pass).

    From the pool, a list is what has completed when the writer comes back for more
    (it stored the last list meanwhile), plus what completes within
    ``settings.write_wait_ms``, at most ``settings.write_batch``; the pool is refilled
    before a list is handed over, so workers decode while the writer stores.
    ``work`` runs in the workers, called as :func:`analyse` (tests pass one that crashes). A
    worker that dies (a segfault or abort in LibRaw, libheif, libtiff...) breaks the
    whole pool and every file in flight with it: those files are run again one at a
    time, each in a fresh one-worker pool, so the file that kills its worker again
    becomes a ``crash`` failure and the others are indexed; then a fresh pool goes on.
    Closing the generator (Ctrl-C in the caller) cancels the queued files and waits
    only for the ones being decoded. ``plan_now()``: the sensor plan to send with each
    file (:class:`~indexer.pipeline.sensorplan.LivePlan`), None: the workers' own.
    """
    if cluster:
        from indexer.pipeline.cluster import cluster_outcomes  # Dask only when asked for

        for outcome in cluster_outcomes(tasks, cluster, settings, move_candidates, sensor_data):
            yield [outcome]
        return
    plan_now = plan_now or (lambda: None)
    if inline:
        for task in tasks:
            yield [work(task, settings, move_candidates, plan_now() or sensor_data)]
        return
    # rendered frames: the kernels loaded once in the forkserver (kernelwarm), unless
    # cli.index started it already (pools.prestart): then this has no effect
    if warms_kernels(SensorPlan.of(sensor_data).data is SensorData.ALL, workers, len(tasks)):
        preload(["indexer.pipeline.kernelwarm"])
    initargs = (settings, move_candidates, sensor_data)
    pending = deque(tasks)
    limit = (max(1, settings.write_batch), settings.write_wait_ms / 1000)
    while pending:
        suspects = yield from _pooled(pending, workers, initargs, work, plan_now, limit)
        for task in suspects:
            yield [_alone(task, initargs, work)]


def _pooled(pending: deque, workers: int, initargs: tuple, work: Callable,
            plan_now: Callable[[], SensorPlan | None] = lambda: None,
            limit: tuple[int, float] = (1, 0.0)) -> Generator[list[Outcome], None, list[Task]]:
    """Lists of outcomes of ``pending`` (consumed) from one pool, at most ``limit[0]``
    each, waiting ``limit[1]`` s for more once one is done; returns the tasks in flight
    when a worker died (empty when all went through)."""
    batch_max, batch_wait = limit
    # a bounded queue keeps memory flat on huge folders, and the sensor plan sent with a
    # file (plan_now) no older than a few files: a batch is what of these is done
    pending_limit = workers * 4
    # one file: the writer only waits for it, so its worker need not yield to the writer
    # (WORKER_NICE); at nice +5 on a loaded machine its decode took a third of a share
    pool = WorkerPool(workers, init_worker, initargs, nice=len(pending) > 1)
    running: dict = {}

    def refill() -> None:
        while pending and len(running) < pending_limit:
            task = pending.popleft()
            plan = plan_now()
            running[pool.submit(work, task) if plan is None else pool.submit(work, task, None, None, plan)] = task

    try:
        while pending or running:
            refill()
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            if batch_wait > 0 and len(done) < batch_max and len(done) < len(running):
                done, _ = wait(list(running), timeout=batch_wait, return_when=ALL_COMPLETED)
            batch = []
            for future in sorted(done, key=lambda f: running[f].path)[:batch_max]:
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    if batch:
                        yield batch
                    return list(running.values())  # this one and every other in flight
                del running[future]
                batch.append(outcome)
            refill()
            yield batch
        return []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _alone(task: Task, initargs: tuple, work: Callable) -> Outcome:
    """``task`` in a one-worker pool of its own: its outcome, or a ``crash`` failure."""
    pool = WorkerPool(1, init_worker, initargs)
    try:
        return pool.submit(work, task).result()
    except BrokenProcessPool:
        return Failed(task, "crash", CRASH_MESSAGE)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def index_paths(roots: list[Path], store: Store, settings: IndexSettings, *, workers: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                stages: Iterable[Stage] = (), log: Callable[[str, Outcome], None] | None = None,
                sensor_data: SensorPlan | SensorData = SensorData.NONE,
                stacks: Callable[[list[Task]], int] | None = None,
                work: Callable[[Task], Outcome] = analyse, cluster: "str | Cluster" = "",
                inline: bool = False) -> Summary:
    """Index ``roots`` into ``store``; idempotent; one bad file never stops the run.

    ``progress(done, total)`` is called after each file; ``stages`` run after each stored
    image (in this process); ``log(status, outcome)`` gets one line's worth per file.
    ``stacks(tasks)``: stores the array-stack files found (.npy/.npz) in batches and
    returns the frames stored (:func:`indexer.pipeline.stackrun.index_stacks`); without
    it they are left alone.
    Ctrl-C (KeyboardInterrupt) stops it cleanly: the files stored so far stay stored,
    the ones in flight are dropped (the next run does them), and the summary says
    ``interrupted``. ``work`` and ``inline`` as for :func:`run_outcomes`.
    ``cluster``: decode and measure on that Dask cluster (``local:N`` or a scheduler
    address, or an open :class:`~indexer.pipeline.cluster.Cluster`;
    :mod:`indexer.pipeline.cluster`), else here.
    """
    started = time.perf_counter()
    tasks = scan.walk(roots, stacks=stacks is not None)
    stack_tasks = [t for t in tasks if arrays.is_array_file(t.path)]
    tasks = [t for t in tasks if not arrays.is_array_file(t.path)]
    todo = scan.plan(tasks, store.known_files(), store.known_failures(), roots, FEATURES_VERSION)
    scan.drop(todo, dbactions.placed(store.engine, [t.path for t in todo.todo]))  # dupes --apply in flight
    summary = Summary(unchanged=todo.unchanged + todo.failed_unchanged, failed_before=todo.failed_unchanged)
    moves = {sha: list(ids) for sha, ids in todo.move_candidates.items()}
    gone = dict(todo.gone)
    total = len(todo.todo)
    expect_files(stages, total)
    if progress:
        progress(0, total)
    # A new camera learns its mapping share (learn_megapixels) until its map is stable,
    # then its sample; the plan follows its state during a long first import too, not
    # only at the next run (indexer.sensor.budget).
    # each exposure learnt once, through the first of its files the workers see (sensorplan)
    with exposure_marks(sensor_data) as sensor_data:
        live = LivePlan(sensor_data, lambda: body_states(store.engine))
        outcomes = run_batches(todo.todo, settings, worker_count(workers), frozenset(moves), sensor_data, work,
                               cluster, plan_now=live.current, inline=inline)
        reanalyse = reanalyser(settings, sensor_data, work, plan_now=live.current, inline=inline)
        done = 0
        try:
            with _sigint_between_files() as stop:
                for batch in outcomes:
                    for outcome, status in store_outcomes(batch, store, reanalyse, todo.updates, moves, gone, stages):
                        done += 1
                        setattr(summary, status, getattr(summary, status) + 1)
                        if status == "failed":
                            summary.failed_paths.append(outcome.task.path)
                        if log:
                            log(status, outcome)
                        if progress:
                            progress(done, total)
                    if stop.is_set():
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            outcomes.close()  # cancels the queued files, waits for those being decoded
            summary.interrupted = True
            summary.failed_paths += todo.failed_paths
            return summary.timed(time.perf_counter() - started)
        store.mark_missing(list(gone.values()))
        store.forget_failures(todo.stale_failures)
        summary.missing = len(gone)
        if stacks is not None:
            summary.frames = stacks(stack_tasks)
        summary.failed_paths += todo.failed_paths
        return summary.timed(time.perf_counter() - started)


@contextmanager
def _sigint_between_files():
    """Ctrl-C while a file is stored takes effect after it (the summary then counts every
    stored row); a second Ctrl-C stops at once. Only the main thread gets signals."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def reanalyser(settings: IndexSettings, sensor_data: SensorPlan | SensorData = SensorData.NONE,
               work: Callable[[Task], Outcome] = analyse, *,
               plan_now: Callable[[], SensorPlan | None] | None = None,
               inline: bool = False) -> Callable[[Task], Outcome]:
    """How :func:`store_outcomes` analyses afresh a file whose move was claimed by an
    earlier copy in this run: ``work`` with no move candidates (so it is decoded, not
    hashed as a move), in a one-worker pool of its own, as a file that crashed a pool
    is (:func:`_alone`): a native crash decoding it is a ``crash`` row, never the end of
    the command. (It ran in the command's own process before; a pool of one costs a
    worker's start and stop, 1.1-1.6 s of wall time for a small JPEG at load 13 on 2
    cores, and this happens only when two copies of a moved file are found in one run;
    with ``--cluster`` too, in a local worker.) ``inline``: in this
    process, as :func:`run_batches` does."""
    def run(task: Task) -> Outcome:
        plan = (plan_now() if plan_now else None) or sensor_data
        if inline:
            return work(task, settings, frozenset(), plan)
        return _alone(task, (settings, frozenset(), plan), work)

    return run


def store_outcomes(batch: list[Outcome], store: Store, reanalyse: Callable[[Task], Outcome], updates: set[str],
                   moves: dict[str, list[int]], gone: dict[str, int],
                   stages: Iterable[Stage]) -> list[tuple[Outcome, str]]:
    """Store one list of outcomes (one transaction for the analysed files:
    :func:`~indexer.pipeline.stages.store_batch`); (outcome, status) of each, in order.
    ``reanalyse(task)``: the outcome of a full analysis of a file whose move an earlier
    copy claimed (:func:`reanalyser`: in a worker)."""
    def claim_move(sha256: str) -> int | None:
        ids = moves.get(sha256) or []
        if not ids:
            return None
        image_id = ids.pop(0)
        for path, gid in list(gone.items()):
            if gid == image_id:
                del gone[path]
        return image_id

    out = []
    stored_all = store_batch(store, [(o, o.task.path in updates) for o in batch], stages)
    for outcome, stored in zip(batch, stored_all):
        if stored is None:  # not an analysed file, or the batch's transaction failed: alone
            stored = store_outcome(store, outcome, stages, known=outcome.task.path in updates,
                                   claim_move=claim_move)
        if stored.status == "reanalyse":
            # the row was claimed by an earlier copy in this run: analyse this one fully
            outcome = reanalyse(outcome.task)
            stored = store_outcome(store, outcome, stages, known=outcome.task.path in updates,
                                   claim_move=claim_move)
        for error in stored.stage_errors:
            sys.stderr.write(f"photoqa: {error}\n")
        out.append((outcome, stored.status))
    return out
