"""``photoqa index``: index paths with the stages of the session's settings, a progress bar
on a terminal, and a line per file when asked."""
from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from indexer.outcomes import Failed, Outcome
from indexer.pipeline.run import Summary, index_paths
from indexer.pipeline.stages import build_stages, close_stages, sensor_data
from indexer.session import Session


@contextmanager
def progress_bar(label: str, enabled: bool | None = None):
    """A ``progress(done, total)`` callback drawing a rich bar on a terminal, else silent."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def file_logger(stream=None) -> Callable[[str, Outcome], None]:
    """One line per file: status, path and, for failures, the reason."""
    stream = stream or sys.stderr

    def log(status: str, outcome: Outcome) -> None:
        reason = f" ({outcome.kind}: {outcome.message})" if isinstance(outcome, Failed) else ""
        stream.write(f"{status:9} {outcome.task.path}{reason}\n")
        stream.flush()

    return log


def stack_indexer(session: Session, paths: list[Path], sensor: str | None):
    """The ``stacks`` callback of :func:`index_paths`: array stacks stored in batches,
    with per-pixel sensor statistics under the name ``sensor`` when given."""
    from indexer.pipeline.sensorstore import sensor_folder
    from indexer.pipeline.stackrun import index_stacks

    def run(tasks) -> int:
        folder = sensor_folder(session.url, session.settings.sensor.folder)
        settings = session.settings
        match = settings.match.params(settings.verdict) if settings.match.enabled else None
        result = index_stacks(tasks, session.store, paths, sensor_name=sensor, sensor_dir=folder,
                              thresholds=settings.flags, match=match,
                              match_min_side=settings.stacks.match_min_side)
        for s in result.defects:
            sys.stderr.write(f"photoqa: sensor {sensor}: {s.kind} site at x={s.x} y={s.y} "
                             f"(mean {s.mean:.4g}, sites' median {s.centre:.4g})\n")
        return result.frames

    return run


@contextmanager
def open_cluster(spec: str, settings):
    """The run's Dask cluster (:func:`indexer.pipeline.cluster.open_cluster`), or None
    without ``spec``; Dask is imported only when one is asked for."""
    if not spec:
        yield None
        return
    from indexer.pipeline.cluster import open_cluster as connect

    with connect(spec, settings) as cluster:
        yield cluster


def run_index(session: Session, paths: list[Path], *, workers: int | None = None,
              verbose: bool = False, show_progress: bool | None = None, sensor: str | None = None,
              cluster: str | None = None) -> Summary:
    """Index ``paths`` into the session's database, with a progress bar on a terminal;
    array stacks (.npy/.npz) frame by frame, ``sensor`` naming their detector; decoding
    on the Dask cluster ``cluster`` (default ``[index] cluster``; '' for none)."""
    settings = session.settings.index
    started = time.perf_counter()
    with open_cluster(settings.cluster if cluster is None else cluster, settings) as opened:
        if opened is not None:  # verification jobs go to the cluster too
            session = dataclasses.replace(session, verify_executor=opened.executor)
        stages = build_stages(session)
        try:
            with progress_bar("indexing", show_progress) as progress:
                summary = index_paths(paths, session.store, settings,
                                      workers=workers if workers is not None else settings.workers,
                                      progress=progress, stages=stages,
                                      log=file_logger() if verbose else None,
                                      sensor_data=sensor_data(session),
                                      stacks=stack_indexer(session, paths, sensor),
                                      cluster=opened or "")
        finally:
            for error in close_stages(stages):
                sys.stderr.write(f"photoqa: {error}\n")
    # the stages' last work (pairs still being verified, groups, sensor statistics) is
    # part of the run the user waits for
    return summary.timed(time.perf_counter() - started)
