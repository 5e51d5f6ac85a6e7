"""Worker processes: how many, how they start, and how a stop ends them.

Every pool uses forkserver (else spawn): rawpy's Linux wheels use OpenMP, and a process
forked from one that has started OpenMP threads can deadlock in them.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from indexer.decode.sniff import is_array_file


def worker_count(requested: int | None) -> int:
    """``requested`` workers, or one per available core when 0/None."""
    if requested:
        return max(1, requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def pool_context():
    """The multiprocessing context of every pool (see module docstring)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def preload(modules: list[str]) -> None:
    """Have the forkserver import ``modules`` (after ``__main__``, its default) before it
    forks the first worker, so every worker inherits them imported. No effect once this
    process's forkserver runs (it lives as long as the process), nor under spawn."""
    context = pool_context()
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(["__main__", *modules])


# what an analysing worker imports to unpickle its initialiser and work (analyse.init_worker,
# analyse.analyse): NumPy, Pillow, the decoders and measures, ~0.2 s CPU
WORKER_MODULES = ["indexer.pipeline.pools", "indexer.pipeline.analyse"]


def warms_kernels(learns_rendered: bool, workers: int, files: int) -> bool:
    """Whether a run's forkserver preloads the compiled sensor kernels (``kernelwarm``):
    only when it learns rendered frames and two workers or more would each load them (a
    run of one file spent 0.8 s waiting for its worker while the forkserver loaded
    kernels its frame never needed)."""
    return learns_rendered and min(workers, files) >= 2


def prestart(paths: list[Path], *, kernels: bool = False, many: bool = False) -> bool:
    """For ``photoqa index``: start this process's forkserver now, before the command's own
    imports and database set-up, so that it loads what the workers need meanwhile and the
    first worker is forked with it loaded.

    One image file: :data:`WORKER_MODULES`. Several paths or a folder (``many``: the
    caller is the process's own command, see ``cli._PROCESS``): the same, and the
    compiled sensor kernels (``kernelwarm``) when ``kernels`` (:func:`warms_kernels`
    with the settings' worker count, a folder counted as two files or more); the run's
    pool then finds the forkserver running and its own preload has no effect.
    Returns whether it started one. A file still decodes in a worker process (a native
    crash stays a row, as for any run). An array stack alone starts none.

    Why: on 2 idle cores, a one-file index into a 20-photo database waited ~0.25 s for
    its worker after its own imports (cProfile, 2026-12-07; bench/startup.py). The 72
    files of ``bench/end_to_end.py --sets camera`` waited 1.64 s for their first decode
    (the writer's imports and migration 0.73 s, then the forkserver's numba and kernels
    0.64 s, then each worker's Pillow and measures 0.15 s, one after the other); started
    here, the forkserver's ~0.75 s of CPU run beside the writer's ~0.75 s on idle cores
    (at load 4-5, with the cores held by other jobs, the first decode moved little; the
    workers' own imports are gone either way: docs/BENCHMARKS.md, 2026-12-07).
    """
    one = len(paths) == 1 and Path(paths[0]).is_file()
    if one and is_array_file(paths[0]):
        return False
    if not one and not many:
        return False
    context = pool_context()
    if context.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    # not ``__main__`` (the default preload: cli.py and click, ~0.03 s CPU, and each worker
    # imported it again, ~0.1 s): no worker function lives there, and a forkserver
    # started by a later pool of this process cannot exist (one per process); forkfreeze
    # last (see there)
    warm = ["indexer.pipeline.kernelwarm"] if kernels and not one else []
    context.set_forkserver_preload([*WORKER_MODULES, *warm, "indexer.pipeline.forkfreeze"])
    forkserver.ensure_running()  # spawns it and returns: the imports run in the forkserver
    return True


# Workers run at a lower priority than the writer: one process stores every outcome and
# plans every verification, so when workers and writer contend for the cores the writer
# is the run's bottleneck. At equal priority, 4 workers and the writer on 2 cores left
# the writer with ~40% of a core: a 432-image run with matching spent 42 s of wall time
# for 8 s of the writer's CPU (2026-12-07).
WORKER_NICE = 5


def lower_priority() -> None:
    """Worker initialiser: step down by :data:`WORKER_NICE` (see there)."""
    try:
        os.nice(WORKER_NICE)
    except OSError:  # pragma: no cover - not permitted: run at the same priority
        pass


def ignore_sigint() -> None:
    """Worker initialiser: Ctrl-C reaches the whole process group; the parent alone
    decides when to stop, and finishes or abandons the work in flight itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def die_with(parent: int) -> None:
    """End this process as soon as process ``parent`` exits, however it exits (kill -9 too).

    A worker's own parent is the forkserver, not the command, so ``PR_SET_PDEATHSIG``
    alone would tie it to the wrong process; a daemon thread blocks on a pidfd of the
    command's process instead (Linux 5.3; no polling, no pid-reuse race) and falls back
    to checking every second. Without it, a ``watch`` killed with -9 left its forkserver,
    resource tracker and a 140 MB worker running for minutes.
    """
    import threading

    def watch() -> None:
        try:
            fd = os.pidfd_open(parent)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            import select

            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll()  # readable once the process has exited
        else:  # pragma: no cover - no pidfd on this kernel
            import time

            while True:
                try:
                    os.kill(parent, 0)
                except ProcessLookupError:
                    break
                time.sleep(1.0)
        os._exit(1)

    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        os._exit(1)
    threading.Thread(target=watch, name="photoqa-parent-watch", daemon=True).start()


def _start_worker(pids, parent: int, initializer: Callable | None, initargs: tuple, nice: bool = True) -> None:
    pids.put(os.getpid())
    ignore_sigint()
    if nice:
        lower_priority()
    die_with(parent)
    if initializer is not None:
        initializer(*initargs)


class WorkerPool(ProcessPoolExecutor):
    """A process pool whose workers ignore SIGINT, die with the process that made the
    pool (:func:`die_with`) and report their pids, so that a
    stop can end workers still busy after its grace period (:meth:`terminate_workers`;
    ``ProcessPoolExecutor`` offers no public way before Python 3.14)."""

    def __init__(self, workers: int, initializer: Callable | None = None, initargs: tuple = (), *,
                 nice: bool = True):
        """``nice``: workers step down by :data:`WORKER_NICE`; False for a pool whose
        writer has nothing to do while it works (one file: see ``run._pooled``)."""
        context = pool_context()
        self.pids: set[int] = set()
        self.pid_queue = context.SimpleQueue()
        super().__init__(max(1, workers), mp_context=context, initializer=_start_worker,
                         initargs=(self.pid_queue, os.getpid(), initializer, initargs, nice))

    def terminate_workers(self) -> int:
        """SIGTERM every worker that has started; returns how many were signalled."""
        while True:
            try:
                if self.pid_queue.empty():
                    break
                self.pids.add(self.pid_queue.get())
            except (OSError, EOFError, queue.Empty):  # pragma: no cover - queue closed
                break
        signalled = 0
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
                signalled += 1
            except ProcessLookupError:
                pass
        return signalled
