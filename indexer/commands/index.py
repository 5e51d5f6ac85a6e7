"""Library functions behind the CLI commands (the CLI only parses and renders)."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from indexer.pipeline.analyse import Failed, Outcome
from indexer.pipeline.run import Summary, index_paths
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


def post_store_hooks(session: Session) -> list:
    """Stages that run after each stored image (matching, sensor statistics).

    A hook is called as ``hook(image_id, indexed)``; hooks with a ``close()`` method get
    it called once at the end of the run (or daemon), where they flush their state.
    """
    hooks = []
    if session.settings.match.enabled:
        from indexer.pipeline.matchstage import MatchStage

        hooks.append(MatchStage(session))
    if session.settings.sensor.enabled:
        from indexer.pipeline.sensorstage import SensorStage, sensor_folder

        hooks.append(SensorStage(session.engine, session.settings.sensor,
                                 sensor_folder(session.url, session.settings.sensor.folder)))
    from indexer.pipeline.exposurestage import FlagStage

    hooks.append(FlagStage(session))
    return hooks


def wants_sensor_data(session: Session) -> str | bool:
    """What full-size data workers keep for the sensor stage: False, "raw" or "all"."""
    sensor = session.settings.sensor
    if not sensor.enabled:
        return False
    return "all" if sensor.rendered_frames else "raw"


def close_hooks(hooks: list) -> None:
    for hook in hooks:
        close = getattr(hook, "close", None)
        if close:
            close()


def run_index(session: Session, paths: list[Path], *, workers: int | None = None,
              verbose: bool = False, show_progress: bool | None = None) -> Summary:
    """Index ``paths`` into the session's database, with a progress bar on a terminal."""
    settings = session.settings.index
    hooks = post_store_hooks(session)
    started = time.perf_counter()
    try:
        with progress_bar("indexing", show_progress) as progress:
            summary = index_paths(paths, session.store, settings,
                                  workers=workers if workers is not None else settings.workers,
                                  progress=progress, hooks=hooks,
                                  log=file_logger() if verbose else None,
                                  want_sensor=wants_sensor_data(session))
    finally:
        close_hooks(hooks)
    # the hooks' last work (pairs still being verified, groups, sensor statistics) is
    # part of the run the user waits for
    return summary.timed(time.perf_counter() - started)
