"""``photoqa index``: index paths with the stages of the session's settings, a progress bar
on a terminal, and a line per file when asked."""
from __future__ import annotations

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


def run_index(session: Session, paths: list[Path], *, workers: int | None = None,
              verbose: bool = False, show_progress: bool | None = None) -> Summary:
    """Index ``paths`` into the session's database, with a progress bar on a terminal."""
    settings = session.settings.index
    stages = build_stages(session)
    started = time.perf_counter()
    try:
        with progress_bar("indexing", show_progress) as progress:
            summary = index_paths(paths, session.store, settings,
                                  workers=workers if workers is not None else settings.workers,
                                  progress=progress, stages=stages,
                                  log=file_logger() if verbose else None,
                                  sensor_data=sensor_data(session))
    finally:
        for error in close_stages(stages):
            sys.stderr.write(f"photoqa: {error}\n")
    # the stages' last work (pairs still being verified, groups, sensor statistics) is
    # part of the run the user waits for
    return summary.timed(time.perf_counter() - started)
