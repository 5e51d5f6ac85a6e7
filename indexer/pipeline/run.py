"""``photoqa index``: walk, plan, analyse in worker processes, store with one writer.

The stages, in order: :func:`indexer.pipeline.scan.walk` -> :func:`indexer.pipeline.scan.plan` ->
:func:`indexer.pipeline.analyse.analyse` (workers) -> :class:`db.store.Store` (this process) ->
the stages (:mod:`indexer.pipeline.stages`: matching, sensor statistics, exposure flags)
-> mark rows whose files are gone.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from db import actions as dbactions
from db.store import Store
from indexer.config import IndexSettings
from indexer.decode import SensorData, arrays
from indexer.pipeline.sensorplan import SensorPlan
from indexer.measure.features import FEATURES_VERSION
from indexer.outcomes import Outcome, Task
from indexer.pipeline import scan
from indexer.pipeline.analyse import analyse, init_worker
from indexer.pipeline.pools import WorkerPool, pool_context, worker_count
from indexer.pipeline.stages import Stage, store_outcome

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
    seconds: float = 0.0
    images_per_second: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def worked(self) -> int:
        """Files that needed work (decoded, hashed for a move, or failed)."""
        return self.indexed + self.updated + self.moved + self.failed

    def timed(self, seconds: float) -> "Summary":
        """This summary over ``seconds`` of wall time."""
        self.seconds = round(seconds, 3)
        self.images_per_second = round(self.worked / seconds, 2) if seconds > 0 else 0.0
        return self


def start_pool(settings: IndexSettings, workers: int,
               sensor_data: SensorPlan | SensorData = SensorData.NONE) -> WorkerPool:
    """A long-lived pool of ``workers`` processes running :func:`analyse` (for the daemon).

    Workers ignore SIGINT so a terminal Ctrl-C lets the parent finish or abandon
    in-flight files itself. ``sensor_data`` as for :func:`index_paths`.
    """
    return WorkerPool(workers, init_worker, (settings, frozenset(), sensor_data))


def run_outcomes(tasks: list[Task], settings: IndexSettings, workers: int,
                 move_candidates: frozenset[str], sensor_data: SensorPlan | SensorData = SensorData.NONE,
                 cluster: "str | Cluster" = "") -> Iterator[Outcome]:
    """Analyse ``tasks``; yields outcomes as they complete (in-process when workers == 1;
    on the Dask cluster ``cluster`` when given: :mod:`indexer.pipeline.cluster`)."""
    if cluster:
        from indexer.pipeline.cluster import cluster_outcomes  # Dask only when asked for

        yield from cluster_outcomes(tasks, cluster, settings, move_candidates, sensor_data)
        return
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield analyse(task, settings, move_candidates, sensor_data)
        return
    pending_limit = workers * 4  # a bounded queue keeps memory flat on huge folders
    with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=init_worker,
                             initargs=(settings, move_candidates, sensor_data)) as pool:
        queue = iter(tasks)
        running = set()
        for task in queue:
            running.add(pool.submit(analyse, task))
            if len(running) >= pending_limit:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for future in _as_done(running):
            yield future.result()


def _as_done(futures: set) -> Iterable:
    while futures:
        done, futures = wait(futures, return_when=FIRST_COMPLETED)
        yield from done


def index_paths(roots: list[Path], store: Store, settings: IndexSettings, *, workers: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                stages: Iterable[Stage] = (), log: Callable[[str, Outcome], None] | None = None,
                sensor_data: SensorPlan | SensorData = SensorData.NONE,
                stacks: Callable[[list[Task]], int] | None = None, cluster: "str | Cluster" = "") -> Summary:
    """Index ``roots`` into ``store``; idempotent; one bad file never stops the run.

    ``progress(done, total)`` is called after each file; ``stages`` run after each stored
    image (in this process); ``log(status, outcome)`` gets one line's worth per file.
    ``stacks(tasks)``: stores the array-stack files found (.npy/.npz) in batches and
    returns the frames stored (:func:`indexer.pipeline.stackrun.index_stacks`); without
    it they are left alone. ``cluster``: decode and measure on that Dask cluster
    (``local:N`` or a scheduler address, or an open :class:`~indexer.pipeline.cluster.Cluster`;
    :mod:`indexer.pipeline.cluster`), else here.
    """
    started = time.perf_counter()
    tasks = scan.walk(roots, stacks=stacks is not None)
    stack_tasks = [t for t in tasks if arrays.is_array_file(t.path)]
    tasks = [t for t in tasks if not arrays.is_array_file(t.path)]
    todo = scan.plan(tasks, store.known_files(), store.known_failures(), roots, FEATURES_VERSION)
    scan.drop(todo, dbactions.placed(store.engine, [t.path for t in todo.todo]))  # dupes --apply in flight
    summary = Summary(unchanged=todo.unchanged + todo.failed_unchanged)
    moves = {sha: list(ids) for sha, ids in todo.move_candidates.items()}
    gone = dict(todo.gone)
    total = len(todo.todo)
    if progress:
        progress(0, total)
    for done, outcome in enumerate(run_outcomes(todo.todo, settings, worker_count(workers),
                                                frozenset(moves), sensor_data, cluster), start=1):
        status = _store_outcome(outcome, store, settings, todo.updates, moves, gone, stages)
        setattr(summary, status, getattr(summary, status) + 1)
        if log:
            log(status, outcome)
        if progress:
            progress(done, total)
    store.mark_missing(list(gone.values()))
    store.forget_failures(todo.stale_failures)
    summary.missing = len(gone)
    if stacks is not None:
        summary.frames = stacks(stack_tasks)
    return summary.timed(time.perf_counter() - started)


def _store_outcome(outcome: Outcome, store: Store, settings: IndexSettings, updates: set[str],
                   moves: dict[str, list[int]], gone: dict[str, int], stages: Iterable[Stage]) -> str:
    def claim_move(sha256: str) -> int | None:
        ids = moves.get(sha256) or []
        if not ids:
            return None
        image_id = ids.pop(0)
        for path, gid in list(gone.items()):
            if gid == image_id:
                del gone[path]
        return image_id

    stored = store_outcome(store, outcome, stages, known=outcome.task.path in updates, claim_move=claim_move)
    if stored.status == "reanalyse":
        # the row was claimed by an earlier copy in this run: analyse this one fully
        outcome = analyse(outcome.task, settings, move_candidates=frozenset())
        stored = store_outcome(store, outcome, stages, known=outcome.task.path in updates,
                               claim_move=claim_move)
    for error in stored.stage_errors:
        sys.stderr.write(f"photoqa: {error}\n")
    return stored.status
