"""Pixel verification of candidate pairs off the writer's thread of work.

The single writer (``index``'s main process, ``watch``'s writer) finds candidates in the
Hamming index in microseconds, but aligning a pair's thumbnails costs tens of
milliseconds; done inline, a folder of copies and look-alikes leaves the decoding workers
waiting on the writer. :class:`Verifier` takes :class:`~indexer.match.engine.Job` s and
runs :func:`~indexer.match.engine.run_job` inline while verification has cost the writer
less than ``pool_after`` seconds (small runs never pay for starting processes), then in a
pool of worker processes (forkserver, as the decoding pool: rawpy's OpenMP and fork do
not mix). At most ``max_pending`` distinct jobs are in flight; a submit past that waits
for the oldest, so memory and the time a stop waits for stay bounded.

Results are memoised by :meth:`Job.key` (content of both records), and a job whose key
is already in flight waits for that one instead of running again.

The same workers compute full-size pixel digests (:meth:`Verifier.submit_digest`) for
``same_pixels`` proofs: a full decode of a 12 MP JPEG costs ~0.2 s, which the writer
must not spend (10 of them were 1.9 s of a 12.2 s run); only files of at most
``inline_pixels`` are digested in the writer, and only before the pool has started.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ALL_COMPLETED, Executor, FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool

from indexer import decode
from indexer.match.jobs import Job, Memo, Verified, run_job
from indexer.match.verdict import MatchThresholds
from indexer.pipeline.pools import WorkerPool

Done = tuple[Hashable, Job, Verified]  # (caller's tag, job, result)
WARM_WAIT = 30.0  # seconds jobs wait for a new pool's warm-up before the writer verifies them itself


def warm_up() -> bool:
    """Run in a new pool worker: import what verification needs (NumPy, the numba kernels)
    so the first real job does not pay for it while the writer waits on it."""
    from indexer.exposure import thumbev_kernels  # noqa: F401 - imported for its load time
    from indexer.match import verify
    from indexer.measure import align_kernels, smallfilters_kernels  # noqa: F401 - as above

    verify.kernels()
    return True


def digest_or_none(path: str, max_pixels: int) -> str | None:
    """:func:`indexer.decode.pixel_digest` of ``path``; None when it cannot be decoded."""
    try:
        return decode.pixel_digest(path, max_pixels=max_pixels)
    except (decode.DecodeError, OSError, MemoryError):
        return None


class Verifier:
    """Verification jobs in, ``(tag, job, verified)`` out (see module docstring).

    ``workers``: processes of the pool once it starts (>= 1); ``pool_after``: seconds of
    inline verification after which the pool starts (``float('inf')``: never, 0: at
    once); ``memo``: shared with the matcher so batch and incremental results agree;
    ``executor(workers)``: makes the pool (default: a local
    :class:`~indexer.pipeline.pools.WorkerPool`; ``index --cluster``: the Dask cluster's,
    :meth:`indexer.pipeline.cluster.Cluster.executor`); ``warm_given``: start a pool
    from ``executor`` with the warm-up task as a local one (a cluster's workers, already
    running the decoding, are not); ``patient``: at the end of a run, jobs waiting for a
    warming pool wait for it (at most ``warm_wait`` seconds from its start) instead of
    being verified here, so this process never loads the kernels (``index`` of
    ``[match] pool_files`` files or more, with ``pool_after`` 0).
    """

    def __init__(self, th: MatchThresholds, max_transforms: int, *, workers: int, pool_after: float = 1.0,
                 max_pending: int | None = None, memo: Memo | None = None,
                 executor: Callable[[int], Executor] | None = None, warm_given: bool = False,
                 warm_wait: float = WARM_WAIT, patient: bool = False):
        self.th, self.max_transforms = th, max_transforms
        self.executor = executor  # the pool's factory (of ``workers``): a local WorkerPool, or a Dask cluster's
        self.warm_given = warm_given  # warm up a pool from ``executor`` too (a Dask cluster's workers: no)
        self.workers, self.pool_after = max(1, workers), pool_after
        self.max_pending = max_pending or 8 * self.workers
        self.memo = memo if memo is not None else Memo()
        self.pool: Executor | None = None
        self.warming: Future | None = None  # the new pool's warm-up (see _inline)
        self.warm_started = 0.0  # when it was sent (time.monotonic)
        self.warm_wait = warm_wait
        self.patient = patient  # results(block=True) waits for a warming pool (see _drain)
        self.backlog: list[tuple[Hashable, Hashable, Job]] = []  # (tag, key, job) waiting for the warm-up
        self.spent_inline = 0.0
        self.in_flight: dict[Future, tuple[Hashable, list[tuple[Hashable, Job]]]] = {}  # future -> key, waiters
        self.by_key: dict[Hashable, Future] = {}
        self.ready: list[Done] = []
        # tasks beside the jobs (pixel digests, detail measures): future -> (kind, tag,
        # value if it fails), and the finished ones by kind
        self.side: dict[Future, tuple[str, Hashable, object]] = {}
        self.side_done: dict[str, list] = {}

    def submit_digest(self, image_id: int, path: str, *, max_pixels: int, inline: bool = False) -> None:
        """Compute the full-size pixel digest of ``path`` (:func:`digest_or_none`); the
        result comes out of :meth:`digests`. ``inline``: a small file, digested here when
        no pool runs yet; every other file goes to the pool."""
        self._side("digest", image_id, None, inline, digest_or_none, path, max_pixels)

    def digests(self, *, block: bool = False) -> list[tuple[int, str | None]]:
        """``(image id, digest or None)`` of the digests finished since the last call;
        ``block``: wait for every one in flight."""
        return self._finished("digest", block)

    def submit_detail(self, tag: Hashable, tasks: list, *, max_pixels: int, inline: bool = False) -> None:
        """Measure the detail of resized pairs (:func:`indexer.pipeline.detailstage.measure_detail`
        of ``tasks``: full-size decodes of both sides, so in the pool, not the writer,
        unless ``inline``: small files and no pool yet); the result, ``{pair key: (gain,
        above)}`` (empty if the worker failed), comes out of :meth:`details` with ``tag``."""
        from indexer.pipeline.detailstage import measure_detail

        self._side("detail", tag, {}, inline, measure_detail, tasks, max_pixels)

    def details(self, *, block: bool = False) -> list[tuple[Hashable, dict]]:
        """``(tag, measures)`` of the detail tasks finished since the last call; ``block``:
        wait for every one in flight."""
        return self._finished("detail", block)

    def _side(self, kind: str, tag: Hashable, failed, inline: bool, fn, *args) -> None:
        """Run ``fn(*args)`` in the pool (here when ``inline`` and no pool runs yet); its
        value, or ``failed`` when it raised or its worker died, is kept for
        :meth:`_finished` of ``kind``."""
        if inline and self.pool is None:
            try:
                value = fn(*args)
            except Exception:  # noqa: BLE001 - as a worker's failure: no measure, no crash
                value = failed
            self.side_done.setdefault(kind, []).append((tag, value))
            return
        try:
            future = self._pool().submit(fn, *args)
        except BrokenProcessPool:
            self._restart()
            future = self._pool().submit(fn, *args)
        self.side[future] = (kind, tag, failed)

    def _finished(self, kind: str, block: bool) -> list:
        """The side tasks of ``kind`` finished since the last call (``block``: all of them)."""
        futures = [f for f, (k, _, _) in self.side.items() if k == kind]
        if futures:
            done, _ = wait(futures, timeout=None if block else 0, return_when=ALL_COMPLETED)
            for future in done:
                _, tag, failed = self.side.pop(future)
                try:
                    value = future.result()
                except Exception:  # noqa: BLE001 - a worker that died on the file: no measure, no crash
                    value = failed
                self.side_done.setdefault(kind, []).append((tag, value))
        return self.side_done.pop(kind, [])

    def submit(self, tag: Hashable, job: Job) -> None:
        """Verify ``job`` for ``tag``; its result comes out of :meth:`results`."""
        self._drain()
        key = job.key(self.max_transforms)
        if key is not None and (self.memo.get(key) is not None or key in self.by_key):
            self._dispatch(tag, key, job)  # known, or the same content in flight: no new work
        elif key is None or self._inline():
            self.ready.append((tag, job, self._run_here(key, job)))
        elif self.warming is not None:
            self.backlog.append((tag, key, job))  # the pool is warming up: sent when it is warm
        else:
            self._send(tag, key, job)

    def _dispatch(self, tag: Hashable, key: Hashable, job: Job) -> None:
        """To the pool, unless its result is known or the same content is in flight."""
        known = self.memo.get(key)
        if known is not None:
            self.ready.append((tag, job, known))
        elif key in self.by_key:
            self.in_flight[self.by_key[key]][1].append((tag, job))
        else:
            self._send(tag, key, job)

    def _inline(self) -> bool:
        """Run this job here: the pool is not worth starting yet, or is starting slowly.

        A pool's workers import NumPy and load the numba kernels before their first job
        (~1 s CPU each; at load 20 the watch soak measured a 57 s writer stall waiting on
        them when jobs queued behind that). So the pool is started with a warm-up task;
        jobs submitted meanwhile wait aside (:attr:`backlog`, the writer does not block)
        and go to the pool when it is warm, unless the warm-up takes more than
        ``warm_wait`` seconds: then the writer verifies inline, as before, until it is
        done. Verifying inline, the writer loads the kernels itself and pays each job:
        on the dense set of bench/end_to_end.py 54 jobs while the pool warmed cost the
        writer 0.8 s CPU of its 5.1 s (2026-12-07); with ``warm_wait`` 2 s, at load 17
        the warm-up outlasted it and the writer ran 93-107 jobs. What waiting costs is
        the pairs' latency, once per pool start; the writer stores files meanwhile."""
        if self.pool is None:
            if self.spent_inline < self.pool_after:
                return True
            self._pool()
        if self.warming is not None:
            if not self.warming.done():
                return time.monotonic() - self.warm_started >= self.warm_wait
            self.warming = None
        return False

    def _drain(self, *, block: bool = False) -> None:
        """Send the backlog to the pool once it is warm; run it here if the warm-up
        takes longer than ``warm_wait``, or if the caller would block on it (``block``:
        the writer has nothing else to do; a run of a few files would wait ~1 s for
        the warm-up instead of ~10 ms a job), unless ``patient``: then it waits for the
        warm-up (a run that started the pool at its first job did so long before, and
        verifying here would load numba in the writer, ~0.5 s, for nothing)."""
        if not self.backlog:
            return
        if self.warming is not None:
            left = self.warm_wait - (time.monotonic() - self.warm_started)
            if block and self.patient and left > 0 and not self.warming.done():
                try:
                    self.warming.result(timeout=left)
                except Exception:  # noqa: BLE001 - a warm-up past warm_wait, or a broken pool: as below
                    pass
            if not self.warming.done():
                if not block and left > 0:
                    return
                backlog, self.backlog = self.backlog, []
                for tag, key, job in backlog:
                    self.ready.append((tag, job, self._run_here(key, job)))  # a known result is not run again
                return
            self.warming = None
        backlog, self.backlog = self.backlog, []
        for tag, key, job in backlog:
            self._dispatch(tag, key, job)

    def _run_here(self, key, job: Job) -> Verified:
        known = self.memo.get(key)  # a waiter of a failed pool job after the first re-ran it
        if known is not None:
            return known
        started = time.process_time()
        try:
            verified = run_job(job, self.th, self.max_transforms)
        except Exception as exc:  # noqa: BLE001 - one pair that cannot be verified is not found; the run goes on
            sys.stderr.write(f"photoqa: verifying images {job.a.id} and {job.b.id} failed: "
                             f"{type(exc).__name__}: {exc}\n")
            return Verified(None)
        self.spent_inline += time.process_time() - started
        return self.memo.put(key, verified)

    def _send(self, tag: Hashable, key, job: Job) -> None:
        while len(self.in_flight) >= self.max_pending:
            self._collect(FIRST_COMPLETED)
        try:
            future = self._pool().submit(run_job, job, self.th, self.max_transforms)
        except BrokenProcessPool:
            self._restart()
            self.ready.append((tag, job, self._run_here(key, job)))
            return
        self.in_flight[future] = (key, [(tag, job)])
        self.by_key[key] = future

    def start(self, *, wait_ready: bool = False) -> None:
        """Start the pool now (``wait_ready``: and wait until its warm-up is done, so the
        next jobs go to it)."""
        self._pool()
        if wait_ready and self.warming is not None:
            try:
                self.warming.result()
            except Exception:  # noqa: BLE001 - a broken pool is found by the jobs
                pass
            self.warming = None

    def _pool(self) -> Executor:
        if self.pool is None:
            self.pool = (self.executor or WorkerPool)(self.workers)
            if self.executor is None or self.warm_given:  # a cluster's workers are already up
                try:
                    self.warming = self.pool.submit(warm_up)
                    self.warm_started = time.monotonic()
                except BrokenProcessPool:  # pragma: no cover - a pool that cannot start: jobs find out
                    self.warming = None
        return self.pool

    def _restart(self) -> None:
        """A worker died (killed, out of memory): the pool is unusable; start afresh."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool, self.warming = None, None

    def _collect(self, return_when: str, timeout: float | None = None) -> None:
        if not self.in_flight:
            return
        done, _ = wait(list(self.in_flight), timeout=timeout, return_when=return_when)
        for future in done:
            key, waiters = self.in_flight.pop(future)
            del self.by_key[key]
            try:
                verified = self.memo.put(key, future.result())
            except BrokenProcessPool:
                self._restart()
                verified = None
            except Exception:  # noqa: BLE001 - raised by run_job in the worker: run here, which reports it
                verified = None
            for tag, job in waiters:
                self.ready.append((tag, job, verified or self._run_here(key, job)))

    def results(self, *, block: bool = False) -> list[Done]:
        """Finished jobs since the last call; ``block``: wait for every job in flight."""
        self._drain(block=block)
        self._collect(ALL_COMPLETED if block else FIRST_COMPLETED, timeout=None if block else 0)
        out, self.ready = self.ready, []
        return out

    @property
    def pending(self) -> int:
        return sum(len(waiters) for _, waiters in self.in_flight.values()) + len(self.side) + len(self.backlog)

    def close(self) -> None:
        """Stop the pool (after :meth:`results` with ``block=True``, nothing is lost)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool, self.warming = None, None
