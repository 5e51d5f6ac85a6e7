"""The daemon's single writer: decide what a complete file needs, analyse it in a worker
process, store the outcome (with the others done by then: one transaction), log one line.

Runs on the daemon's main thread only (``Store`` is not thread-safe). Decoding happens
in the long-lived pool of :func:`indexer.pipeline.run.start_pool`; at most ``in_flight``
files are in the pool at once, so memory stays flat however fast files arrive.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import ExitStack
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from db import actions as dbactions
from db import heartbeat as hb
from db.health import fatal_message
from db.store import Store, utcnow
from indexer.pipeline import scan
from indexer.pipeline.analyse import analyse
from indexer.outcomes import Failed, Indexed, Moved, Outcome, Task
from indexer.config import IndexSettings
from indexer.decode import SensorData, arrays
from indexer.pipeline.sensorplan import LivePlan, SensorPlan, exposure_marks
from indexer.measure.features import FEATURES_VERSION
from indexer.pipeline.run import start_pool
from indexer.pipeline.stages import Stage, body_states, flush_due, store_batch, store_outcome

LogLine = Callable[[str, str, str], None]  # (status, path, detail)


def _finished(outcome: Outcome) -> Future:
    """A future already holding ``outcome`` (an outcome put back among the jobs)."""
    future: Future = Future()
    future.set_result(outcome)
    return future


@dataclass
class Job:
    task: Task
    known: bool  # the path had a row before: an update
    alone: bool = False  # re-run by itself after a worker died: if it dies again, it is the cause


class Writer:
    """Owns the worker pool and every database write of the daemon."""

    def __init__(self, store: Store, settings: IndexSettings, *, workers: int, stages: Iterable[Stage],
                 log: LogLine, move_candidate_limit: int = 1024, stop: threading.Event | None = None,
                 sensor_data: SensorPlan | SensorData = SensorData.NONE, stacks=None):
        self.store, self.engine, self.settings = store, store.engine, settings
        # array stacks (.npy/.npz): indexed frame by frame in this thread
        # (indexer.pipeline.stackrun.StackWatch); None leaves them alone
        self.stacks = stacks
        self.workers, self.stages, self.log = workers, list(stages), log
        # each exposure learnt once, through the first of its files the workers see
        # (sensorplan.exposure_marks: the marks live as long as the daemon)
        self._marks = ExitStack()
        sensor_data = self._marks.enter_context(exposure_marks(sensor_data))
        self.sensor_data = sensor_data  # full-size data for the sensor stage, as `index` asks
        # the budget's per-body state, refreshed as frames are learnt (a daemon runs for months)
        self.sensor_plan = LivePlan(sensor_data, lambda: body_states(self.engine))
        self.stop = stop or threading.Event()  # set on SIGTERM: stop waiting for workers to start
        self.in_flight = workers * 4  # as `index`: workers never wait for the writer
        self.move_candidate_limit = move_candidate_limit
        self.pool = self._warm(start_pool(settings, workers, sensor_data))
        self.jobs: dict[Future, Job] = {}
        self.crashed: list[Job] = []  # in flight when a worker died: re-run one at a time
        self.broken = self.closing = False
        self.errors: list[str] = []  # paths whose handling raised: the daemon retries them
        self.moves: frozenset[str] = frozenset()
        self.last_activity: datetime | None = None
        self.counts: dict[str, int] = {}

    def _warm(self, pool):
        # start every worker now (interpreter, numpy, Pillow imports: 1-3 s) rather than
        # on the first files, whose latency it would add to
        futures = [pool.submit(abs, 0) for _ in range(self.workers)]
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            if not wait(futures, timeout=0.1).not_done:
                break
        return pool

    # --- bookkeeping ---------------------------------------------------------------------

    @property
    def busy(self) -> set[str]:
        return {job.task.path for job in self.jobs.values()}

    @property
    def free_slots(self) -> int:
        if self.crashed or any(job.alone for job in self.jobs.values()):
            return 0  # isolating the file that kills workers
        return self.in_flight - len(self.jobs)

    def refresh_moves(self) -> None:
        """Reload the SHA-256s of rows whose files are gone (workers hash, not decode, those)."""
        self.moves = hb.retry_locked(lambda: hb.missing_shas(self.engine, self.move_candidate_limit + 1))

    def _done(self, status: str, path: str, detail: str = "") -> None:
        self.last_activity = utcnow()
        self.counts[status] = self.counts.get(status, 0) + 1
        self.log(status, path, detail)

    # --- deciding ------------------------------------------------------------------------

    def handle(self, path: str, moved_from: str | None = None) -> None:
        """Act on a complete (or vanished) ``path``: mark missing, move, skip or analyse."""
        path = arrays.stack_of(path) or path  # a frame's row (a folder deleted whole): its stack
        if arrays.is_array_file(path) or (moved_from is not None and arrays.is_array_file(moved_from)):
            if self.stacks is not None:
                self.handle_stack(path, moved_from)
            if arrays.is_array_file(path):
                return
            moved_from = None  # a stack renamed to an image's name: its frames retired, the file is new
        if not Path(path).exists():
            self.gone(path)
            return
        task = scan.candidate(Path(path))
        if moved_from:
            if task is not None and self._move(moved_from, task):
                return
            if not Path(moved_from).exists():
                self.gone(moved_from)  # changed on the way: the old row is retired
        if task is None:
            return  # not an image (or vanished in between)
        if hb.retry_locked(lambda: dbactions.placed(self.engine, [path])):
            self._done("unchanged", path, "being put there by photoqa dupes --apply")
            return
        state = hb.retry_locked(lambda: hb.file_state(self.engine, path))
        if state and (state.size, state.mtime_ns) == (task.size, task.mtime_ns) \
                and state.features_version == FEATURES_VERSION:
            if state.missing:  # moved away and back again: the row simply returns
                hb.retry_locked(lambda: self.store.save_moved(state.id, task))
                self._done("moved", path, "back in place")
            else:
                self._done("unchanged", path)
            return
        if state is None and hb.retry_locked(lambda: hb.failure_state(self.engine, path)) == \
                (task.size, task.mtime_ns):
            self._done("unchanged", path, "failed before, not changed since")
            return
        if state is not None and not state.missing and state.features_version == FEATURES_VERSION:
            task = dataclasses.replace(task, sha256=state.sha256)  # touched? hashed, not decoded
        self.submit(Job(task, state is not None))

    def handle_stack(self, path: str, moved_from: str | None = None) -> None:
        """An array stack: a renamed one is its old path gone and its new one indexed (its
        frames' paths name the file); a vanished one's frames marked missing; a present
        one indexed unless unchanged, in this thread (batches, no worker pool)."""
        if moved_from is not None and moved_from != path and arrays.is_array_file(moved_from) \
                and not Path(moved_from).exists():
            self.stack_gone(moved_from)
        if not Path(path).exists():
            self.stack_gone(path)
            return
        task = scan.candidate(Path(path), stacks=True)
        if task is None or not arrays.is_array_file(path):
            return
        done = hb.retry_locked(lambda: self.stacks.index(task))
        if done.failed:
            self._done("failed", path, "not a readable array stack (see photoqa status)")
        elif done.frames:
            near = f", {done.near_pairs} near-duplicate pair(s)" if done.near_pairs else ""
            self._done("indexed", path, f"{done.frames} frames{near}")
        else:
            self._done("unchanged", path, f"{done.unchanged_frames} frames")

    def stack_gone(self, path: str) -> None:
        gone = hb.retry_locked(lambda: self.stacks.gone(path))
        if gone:
            self._done("missing", path, f"{gone} frames")

    def _guarded(self, path: str, action: Callable[[], None]) -> bool:
        """Run one file's action; an unexpected error (database gone, disk full) is logged
        and the path queued in :attr:`errors` for another try, never raised."""
        try:
            action()
            return True
        except Exception as exc:  # noqa: BLE001 - one file never stops the daemon...
            if fatal_message(exc):
                raise  # ...but a database unusable as a whole does (Daemon.run: one line)
            self.log("error", path, f"{type(exc).__name__}: {str(exc)[:300]}")
            self.errors.append(path)
            return False

    def safe_handle(self, path: str, moved_from: str | None = None) -> bool:
        return self._guarded(path, lambda: self.handle(path, moved_from))

    def submit(self, job: Job, moves: frozenset[str] | None = None) -> None:
        if moves is None:
            moves = self.moves if len(self.moves) <= self.move_candidate_limit else frozenset()
        try:
            future = self.pool.submit(analyse, job.task, None, moves, self.sensor_plan.current())
        except BrokenProcessPool:
            self.broken = True
            self.crashed.append(job)
            return
        self.jobs[future] = job

    def gone(self, path: str, detail: str = "") -> bool:
        """``path`` left the disk: mark its row missing, drop its failure row; True when it
        had a row still present (then one ``missing`` line is logged)."""
        state = hb.retry_locked(lambda: hb.file_state(self.engine, path))
        hb.retry_locked(lambda: self.store.forget_failure(path))
        if state is not None and not state.missing:
            hb.retry_locked(lambda: self.store.mark_missing([state.id]))
            self.moves = self.moves | {state.sha256}
            self._done("missing", path, detail)
            return True
        return False

    def _vanished(self, job: Job, outcome: Outcome) -> bool:
        """True when ``outcome`` failed because the file left the disk while a worker read
        it (deleted, or renamed away: its new name has its own event). Such a file is gone,
        not broken: no failure row is kept for it, its old row (if any) is marked missing,
        and the log says so instead of ``failed ... [Errno 2] No such file``."""
        if not isinstance(outcome, Failed) or outcome.kind == "crash" or Path(job.task.path).exists():
            return False
        detail = "deleted while it was being read"
        if not self.gone(job.task.path, detail):
            self._done("missing", job.task.path, detail)
        return True

    def _move(self, src: str, task: Task) -> bool:
        """A rename whose size and mtime match the old row: update the path, no decoding."""
        old = hb.retry_locked(lambda: hb.file_state(self.engine, src))
        if old is None or (old.size, old.mtime_ns) != (task.size, task.mtime_ns) \
                or old.features_version != FEATURES_VERSION or Path(src).exists():
            return False
        hb.retry_locked(lambda: self.store.save_moved(old.id, task))
        hb.retry_locked(lambda: self.store.forget_failure(src))
        self._done("moved", task.path, f"from {src}")
        return True

    # --- storing -------------------------------------------------------------------------

    def collect(self, timeout: float, deadline: float | None = None) -> None:
        """Store the outcomes that complete within ``timeout`` seconds.

        What is done when the first completes is stored as one batch (one transaction,
        :func:`~indexer.pipeline.stages.store_batch`; nothing is waited for to fill it, so
        a lone file's latency is unchanged). Stops early (leaving finished outcomes in
        :attr:`jobs`) once ``stop`` is set or ``deadline`` (monotonic) passes: post-store
        stages may take a second per file, and a stop must not wait for a whole batch of them.
        """
        if self.jobs:
            done, _ = wait(list(self.jobs), timeout=timeout, return_when=FIRST_COMPLETED)
            ready: list[tuple[Job, Outcome]] = []
            for future in sorted(done, key=lambda f: self.jobs[f].task.path)[:self.settings.write_batch]:
                job = self.jobs.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    self.broken = True
                    if job.alone:
                        outcome = Failed(job.task, "crash", "the worker process died decoding it (a native decoder "
                                                         "crashed: segfault or abort)")
                    else:
                        self.crashed.append(job)
                        continue
                ready.append((job, outcome))
            self._store_ready(ready, deadline)
        if self.crashed and not self.jobs and not self.closing:
            self._retry_alone()

    def _store_ready(self, ready: list[tuple[Job, Outcome]], deadline: float | None) -> None:
        """Store ``ready``: its analysed files in one transaction, the rest one by one;
        a file whose handling raised is logged and queued in :attr:`errors`."""
        if (self.stop.is_set() and not self.closing) or (deadline is not None and time.monotonic() >= deadline):
            for job, outcome in ready:  # left for later, as if not collected yet
                self.jobs[_finished(outcome)] = job
            return
        ready = [(job, self._as_move(job, outcome)) for job, outcome in ready if not self._vanished(job, outcome)]
        try:
            stored = store_batch(self.store, [(o, job.known) for job, o in ready], self.stages,
                                 retry=hb.retry_locked)
        except Exception:  # noqa: BLE001 - a fatal database error: each file below logs it and is retried
            stored = [None] * len(ready)
        for (job, outcome), done in zip(ready, stored):
            if done is not None:
                for error in done.stage_errors:  # the row is stored; a stage never stops the daemon
                    self.log("warning", job.task.path, str(error))
                self._done(done.status, job.task.path, done.detail)
            elif (self.stop.is_set() and not self.closing) or \
                    (deadline is not None and time.monotonic() >= deadline):
                self.jobs[_finished(outcome)] = job  # left for later, as if not collected yet
            else:
                self._guarded(job.task.path, lambda job=job, outcome=outcome: self.store_outcome(job, outcome))

    def _retry_alone(self) -> None:
        if self.broken:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = self._warm(start_pool(self.settings, self.workers, self.sensor_data))
            self.broken = False
        job = self.crashed.pop(0)
        job.alone = True
        self.submit(job)

    def _as_move(self, job: Job, outcome: Outcome) -> Outcome:
        if isinstance(outcome, Indexed) and not job.known:
            ids = hb.retry_locked(lambda: hb.missing_ids_with_sha(self.engine, outcome.decoded.sha256))
            if ids:  # bytes of a row whose file left: a move seen as delete + create
                return Moved(outcome.task, outcome.decoded.sha256)
        return outcome

    def store_outcome(self, job: Job, outcome: Outcome) -> None:
        path = job.task.path
        outcome = self._as_move(job, outcome)

        def claim_move(sha256: str) -> int | None:
            ids = hb.retry_locked(lambda: hb.missing_ids_with_sha(self.engine, sha256))
            return ids[0] if ids else None

        stored = store_outcome(self.store, outcome, self.stages, known=job.known, claim_move=claim_move,
                               retry=hb.retry_locked, refused=())
        if stored.status == "reanalyse":  # claimed meanwhile: analyse it fully
            self.submit(job, moves=frozenset())
            return
        for error in stored.stage_errors:  # the row is stored; a stage never stops the daemon
            self.log("warning", path, str(error))
        self._done(stored.status, path, stored.detail)

    def idle_stages(self) -> None:
        """Let stages write state that has waited long enough (the sensor stage's
        accumulators), even when no new image arrives (called every heartbeat)."""
        for error in flush_due(self.stages):
            self.log("error", "", str(error))

    # --- stopping ------------------------------------------------------------------------

    def close(self, grace: float) -> int:
        """Store what finishes within ``grace`` seconds, abandon the rest; returns abandoned."""
        self.closing = True  # no pool restarts now (systemd may have sent SIGTERM to the workers too)
        dropped = len(self.crashed)
        self.crashed.clear()
        for future in [f for f in self.jobs if f.cancel()]:
            del self.jobs[future]  # never started: nothing to abandon
        if self.jobs:
            self.collect_all(grace)
        abandoned = len(self.jobs)
        if any(not f.done() for f in self.jobs):
            # still decoding after the grace period: stop those workers (the files are
            # simply not stored; the next start's catch-up scan picks them up)
            self.pool.terminate_workers()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.jobs.clear()
        self._marks.close()
        return abandoned + dropped

    def collect_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.jobs and (left := deadline - time.monotonic()) > 0:
            self.collect(left, deadline)
