"""What happens to a worker's outcome in the writer: store it, then run the stages.

Two functions, :func:`store_outcome` (one outcome) and :func:`store_batch` (what the
writer found ready: the analysed files in one transaction), are used by ``photoqa
index`` (:mod:`indexer.pipeline.run`) and ``photoqa watch`` (:mod:`indexer.watch.writer`):
the rows are written, then every :class:`Stage` sees each stored image in order. The stage list is built in one place,
:func:`build_stages`; to add a stage, write a class with the three methods of
:class:`Stage` and append it there.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from db.health import fatal_message
from db.store import Store
from indexer.decode import SensorData
from indexer.pipeline.sensorplan import SensorPlan
from indexer.outcomes import Failed, Indexed, Moved, Outcome, Unchanged
from indexer.session import Session

T = TypeVar("T")
# what a database refuses of a row: its errors, and Python's sqlite3 refusing an integer
# wider than 64 bits before SQLAlchemy sees it (OverflowError, not wrapped)
REFUSED: tuple[type[Exception], ...] = (SQLAlchemyError, OverflowError)


class Stage(Protocol):
    """A step that runs in the writer's process after each stored image."""

    def __call__(self, image_id: int, indexed: Indexed) -> None:
        """Work on one image just stored (``indexed.decoded.rgb`` is empty by now)."""

    def flush_due(self) -> None:
        """Write state that has waited long enough (a daemon calls this when idle)."""

    def close(self) -> None:
        """Write everything still held; called once at the end of a run or daemon."""

    # Optional: ``prepare()``, called before a batch of rows is stored (store_batch), for
    # a stage that reads the database on its first image (the matching stage opens its
    # index there, the flag stage reads size quartiles): it reads it as it was before the
    # batch, as it would have before the batch's first image stored alone.
    # Optional: ``end_batch()``, called after every image of that batch went through the
    # stages (also when the batch could not be stored): a stage that held the batch's
    # writes (the flag stage) writes them in one transaction there.
    # Optional: ``expect(files)``, called by ``index`` once it knows how many files it
    # will analyse, before the first is stored (the matching stage decides there whether
    # verification goes to its pool from the first job: ``[match] pool_files``).


@dataclass
class StageError:
    """A stage that raised: reported, never allowed to stop the run."""

    stage: str
    path: str  # the image's path, or "" for flush_due/close
    error: str

    def __str__(self) -> str:
        where = f" on {self.path}" if self.path else ""
        return f"{self.stage} failed{where}: {self.error}"


def _stage_name(stage: Stage) -> str:
    return type(stage).__name__


def _guard(stage: Stage, path: str, call: Callable[[], None]) -> StageError | None:
    try:
        call()
        return None
    except Exception as exc:  # noqa: BLE001 - one stage on one image never stops a run
        if fatal_message(exc):
            raise  # ...but a damaged, full or read-only database stops every stage and file after it
        return StageError(_stage_name(stage), path, f"{type(exc).__name__}: {exc}"[:500])


def build_stages(session: Session) -> list[Stage]:
    """The stages of ``index`` and ``watch``, in order: near-duplicate matching (when
    ``[match] enabled``), sensor statistics (when ``[sensor] enabled``), exposure flags."""
    stages: list[Stage] = []
    if session.settings.match.enabled:
        from indexer.pipeline.matchstage import MatchStage

        stages.append(MatchStage(session))
    if session.settings.sensor.enabled:
        from indexer.pipeline.sensorstage import SensorStage
        from indexer.pipeline.sensorstore import open_store

        stages.append(SensorStage(session.engine, session.settings.sensor,
                                  open_store(session.engine, session.url, session.settings.sensor)))
    from indexer.pipeline.exposurestage import FlagStage

    stages.append(FlagStage(session))
    return stages


def expect_files(stages: Iterable[Stage], files: int) -> None:
    """Tell the stages that have ``expect`` how many files the run will analyse."""
    for stage in stages:
        told = getattr(stage, "expect", None)
        if told is not None:
            _guard(stage, "", lambda told=told: told(files))


def body_states(engine) -> dict:
    """Each camera body's learning state (make, model, serial) -> budget.BodyState."""
    from db.sensors import frames_per_body
    from indexer.sensor.budget import settled

    return {body: settled(sensors) for body, sensors in frames_per_body(engine).items()}


def sensor_data(session: Session) -> SensorPlan:
    """What full-size data the workers keep for the sensor stage, and the learning budget."""
    sensor = session.settings.sensor
    if not sensor.enabled:
        return SensorPlan(SensorData.NONE, sensor)
    known = body_states(session.engine) if sensor.learn_first > 0 or sensor.stable_frames > 0 else {}
    return SensorPlan(SensorData.ALL if sensor.rendered_frames else SensorData.RAW, sensor, known)


def run_stages(stages: Iterable[Stage], image_id: int, indexed: Indexed) -> list[StageError]:
    """Every stage on one stored image; a stage that raises is reported and the others run."""
    path = indexed.task.path
    errors = [_guard(s, path, lambda s=s: s(image_id, indexed)) for s in stages]
    return [e for e in errors if e is not None]


def flush_due(stages: Iterable[Stage]) -> list[StageError]:
    errors = [_guard(s, "", s.flush_due) for s in stages]
    return [e for e in errors if e is not None]


def close_stages(stages: Iterable[Stage]) -> list[StageError]:
    errors = [_guard(s, "", s.close) for s in stages]
    return [e for e in errors if e is not None]


@dataclass
class Stored:
    """What :func:`store_outcome` did with one outcome.

    ``status``: "indexed", "updated", "moved", "unchanged", "failed", or "reanalyse" (a :class:`Moved`
    whose row was claimed meanwhile: the caller analyses the file fully and stores again).
    """

    status: str
    image_id: int | None = None
    detail: str = ""
    stage_errors: list[StageError] = field(default_factory=list)


def _direct(call: Callable[[], T]) -> T:
    return call()


def store_outcome(store: Store, outcome: Outcome, stages: Iterable[Stage], *, known: bool,
                  claim_move: Callable[[str], int | None],
                  retry: Callable[[Callable[[], T]], T] = _direct,
                  refused: tuple[type[Exception], ...] = REFUSED) -> Stored:
    """Store one worker outcome in one transaction, then run the stages on it.

    ``known``: the path had a row before (an update). ``claim_move(sha256)``: the id of a
    row whose file left with these bytes, taken so no other file claims it, or None.
    ``retry(call)``: how each database call is made (the daemon retries on a locked
    SQLite). ``refused``: errors of saving the row that fail this file instead of being
    raised (``index``: a value the database refuses fails the file, not the run; the
    daemon passes none and retries the file later).
    """
    if isinstance(outcome, Moved):
        image_id = claim_move(outcome.sha256)
        if image_id is None:
            return Stored("reanalyse")
        retry(lambda: store.save_moved(image_id, outcome.task))
        return Stored("moved", image_id)
    if isinstance(outcome, Unchanged):
        retry(lambda: store.save_unchanged(outcome))
        return Stored("unchanged", detail="same bytes as indexed (touched or copied over)")
    if isinstance(outcome, Failed):
        retry(lambda: store.save_failure(outcome))
        return Stored("failed", detail=f"{outcome.kind}: {outcome.message}")
    try:
        image_id = retry(lambda: store.save_indexed(outcome))
    except refused as exc:
        if fatal_message(exc):
            raise
        failed = Failed(outcome.task, "database", f"{type(exc).__name__}: {exc}"[:2000])
        retry(lambda: store.save_failure(failed))
        return Stored("failed", detail=f"{failed.kind}: {failed.message}")
    return Stored("updated" if known else "indexed", image_id,
                  stage_errors=run_stages(stages, image_id, outcome))


def store_batch(store: Store, batch: list[tuple[Outcome, bool]], stages: Iterable[Stage], *,
                retry: Callable[[Callable[[], T]], T] = _direct) -> list[Stored | None]:
    """Store the analysed files of ``batch`` ((outcome, known) pairs, in arrival order)
    in one transaction, then run the stages on each in that order; returns a
    :class:`Stored` for each outcome stored so, None for each the caller stores alone
    with :func:`store_outcome` (moves, unchanged files and failures: they are few).

    One transaction (:meth:`db.store.Store.save_batch`): a kill -9 leaves all of the
    batch stored or none, and what is not stored is found again by the next run's plan.
    If it fails (one value the database refuses, a path twice), every outcome comes back
    None: stored alone, the bad file becomes its own failure row (or error) and the
    others are stored. A database error :func:`db.health.fatal_message` recognises is
    raised. A batch of one is stored alone too (nothing to gain).
    """
    stages = list(stages)
    indexed = [i for i, (outcome, _) in enumerate(batch) if isinstance(outcome, Indexed)]
    out: list[Stored | None] = [None] * len(batch)
    if len(indexed) < 2:
        return out
    for stage in stages:
        prepare = getattr(stage, "prepare", None)
        if prepare is not None:
            _guard(stage, "", prepare)
    try:
        ids = retry(lambda: store.save_batch([batch[i][0] for i in indexed]))
    except Exception as exc:  # noqa: BLE001 - the caller stores the files one by one instead
        if fatal_message(exc):
            raise
        _end_batch(stages)
        return out
    for i, image_id in zip(indexed, ids):
        outcome, known = batch[i]
        out[i] = Stored("updated" if known else "indexed", image_id, stage_errors=run_stages(stages, image_id, outcome))
    out[indexed[-1]].stage_errors.extend(_end_batch(stages))
    return out


def _end_batch(stages: list[Stage]) -> list[StageError]:
    errors = [_guard(s, "", s.end_batch) for s in stages if hasattr(s, "end_batch")]
    return [e for e in errors if e is not None]
