"""``photoqa index``: walk, plan, analyse in worker processes, store with one writer.

The stages, in order: :func:`indexer.pipeline.scan.walk` -> :func:`indexer.pipeline.scan.plan` ->
:func:`indexer.pipeline.analyse.analyse` (workers) -> :class:`db.store.Store` (this process) ->
post-store hooks (matching, sensor statistics) -> mark rows whose files are gone.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from db.store import Store
from indexer.pipeline import scan
from indexer.pipeline.analyse import Failed, Indexed, Moved, Outcome, Task, analyse, init_worker
from indexer.config import IndexSettings
from indexer.measure.features import FEATURES_VERSION

Hook = Callable[[int, Indexed], None]


@dataclass
class Summary:
    indexed: int = 0
    unchanged: int = 0
    updated: int = 0
    moved: int = 0
    missing: int = 0
    failed: int = 0
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


def worker_count(requested: int | None) -> int:
    """``requested`` workers, or one per available core when 0/None."""
    if requested:
        return max(1, requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _init_daemon_worker(settings: IndexSettings, want_sensor) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_worker(settings, frozenset(), want_sensor)


def start_pool(settings: IndexSettings, workers: int, want_sensor=False) -> ProcessPoolExecutor:
    """A long-lived pool of ``workers`` processes running :func:`analyse` (for the daemon).

    Same start method as :func:`run_outcomes` (forkserver, else spawn: rawpy's OpenMP and
    fork do not mix); workers ignore SIGINT so a terminal Ctrl-C lets the parent finish
    or abandon in-flight files itself. ``want_sensor`` as for :func:`index_paths`.
    """
    return ProcessPoolExecutor(max(1, workers), mp_context=_pool_context(),
                               initializer=_init_daemon_worker, initargs=(settings, want_sensor))


def run_outcomes(tasks: list[Task], settings: IndexSettings, workers: int,
                 move_candidates: frozenset[str], want_sensor: bool = False) -> Iterator[Outcome]:
    """Analyse ``tasks``; yields outcomes as they complete (in-process when workers == 1)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield analyse(task, settings, move_candidates, want_sensor)
        return
    pending_limit = workers * 4  # a bounded queue keeps memory flat on huge folders
    with ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=init_worker,
                             initargs=(settings, move_candidates, want_sensor)) as pool:
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
                hooks: Iterable[Hook] = (), log: Callable[[str, Outcome], None] | None = None,
                want_sensor: bool = False) -> Summary:
    """Index ``roots`` into ``store``; idempotent; one bad file never stops the run.

    ``progress(done, total)`` is called after each file; ``hooks`` run after each stored
    image (in this process); ``log(status, outcome)`` gets one line's worth per file.
    """
    started = time.perf_counter()
    tasks = scan.walk(roots)
    todo = scan.plan(tasks, store.known_files(), store.known_failures(), roots, FEATURES_VERSION)
    summary = Summary(unchanged=todo.unchanged + todo.failed_unchanged)
    moves = {sha: list(ids) for sha, ids in todo.move_candidates.items()}
    gone = dict(todo.gone)
    total = len(todo.todo)
    if progress:
        progress(0, total)
    for done, outcome in enumerate(run_outcomes(todo.todo, settings, worker_count(workers),
                                                frozenset(moves), want_sensor), start=1):
        status = _store_outcome(outcome, store, settings, todo.updates, moves, gone, hooks)
        setattr(summary, status, getattr(summary, status) + 1)
        if log:
            log(status, outcome)
        if progress:
            progress(done, total)
    store.mark_missing(list(gone.values()))
    store.forget_failures(todo.stale_failures)
    summary.missing = len(gone)
    return summary.timed(time.perf_counter() - started)


def _store_outcome(outcome: Outcome, store: Store, settings: IndexSettings, updates: set[str],
                   moves: dict[str, list[int]],
                   gone: dict[str, int], hooks: Iterable[Hook]) -> str:
    if isinstance(outcome, Moved):
        ids = moves.get(outcome.sha256) or []
        if ids:
            image_id = ids.pop(0)
            store.save_moved(image_id, outcome.task)
            for path, gid in list(gone.items()):
                if gid == image_id:
                    del gone[path]
            return "moved"
        # the row was claimed by an earlier copy in this run: analyse this one fully
        outcome = analyse(outcome.task, settings, move_candidates=frozenset())
    if isinstance(outcome, Failed):
        store.save_failure(outcome)
        return "failed"
    try:
        image_id = store.save_indexed(outcome)
    except SQLAlchemyError as exc:  # e.g. a value the database refuses: this file fails, not the run
        store.save_failure(Failed(outcome.task, "database", f"{type(exc).__name__}: {exc}"[:2000]))
        return "failed"
    run_hooks(hooks, image_id, outcome)
    return "updated" if outcome.task.path in updates else "indexed"


def run_hooks(hooks: Iterable[Hook], image_id: int, outcome: Indexed) -> None:
    """Post-store stages; a stage that fails on one image is reported, the run goes on."""
    for hook in hooks:
        try:
            hook(image_id, outcome)
        except Exception as exc:  # noqa: BLE001
            name = getattr(hook, "__class__", type(hook)).__name__
            sys.stderr.write(f"photoqa: {name} failed on {outcome.task.path}: {type(exc).__name__}: {exc}\n")
