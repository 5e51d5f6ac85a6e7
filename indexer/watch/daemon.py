"""``photoqa watch``: catch up with a folder scan, then index every file as it lands.

The loop, on the main thread (the single writer)::

    observer (watchdog threads) -> ChangeQueue -> Pending (debounce, settle)
        -> Writer.handle (skip / move / mark missing / submit to worker processes)
        -> Writer.collect (one transaction per file, then the stages, one log line)
        -> heartbeat every few seconds

The observer starts before the catch-up scan so nothing that lands during the scan is
missed; the scan's files are fed to the writer as slots free up (a bounded backlog).
SIGINT/SIGTERM set a flag: the loop stops taking work, stores what finishes within a
grace period, abandons the rest (the next start catches up) and returns.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from db import actions as dbactions
from db import heartbeat as hb
from db.health import HeaderWatch, fatal_message
from db.store import utcnow
from indexer.pipeline import scan
from indexer.decode import SensorData, arrays
from indexer.pipeline.sensorplan import SensorPlan
from indexer.measure.features import FEATURES_VERSION
from indexer.pipeline.pools import worker_count
from indexer.pipeline.stages import Stage, build_stages, close_stages, sensor_data as stage_data
from indexer.session import Session
from indexer.watch.events import Change, ChangeQueue
from indexer.watch.observe import (WatchError, count_dirs, inotify_limit, inotify_message,
                                   make_observer, start_observer)
from indexer.watch.settle import Pending
from indexer.watch.writer import LogLine, Writer


MAX_ATTEMPTS = 3  # tries for a file whose handling raised (database unreachable, disk full)


@dataclass(frozen=True)
class WatchOptions:
    """Tuning of ``photoqa watch`` (seconds unless stated).

    settle: a file whose size and mtime hold still this long is complete (where no
        close-after-write is reported: polling, network shares, files moved in).
    debounce: quiet time after a path's last event before acting on it.
    open_factor: with inotify, a file still open for writing must hold still
        ``open_factor * settle`` before it is read anyway.
    polling: use watchdog's polling observer (network shares, no inotify).
    poll_interval: seconds between polls of the polling observer.
    heartbeat: seconds between heartbeat writes (``status`` calls a daemon alive while its
        heartbeat is younger than 3 of these).
    grace: on SIGINT/SIGTERM, how long in-flight files may still finish (then abandoned).
    max_pending: distinct paths waiting before the daemon stops tracking events one by
        one and rescans its folders instead (bounded memory under event floods).
    rescan: seconds between catch-up scans while running (0: never). Events can be lost
        without a word: Linux drops inotify events when its queue overflows and watchdog
        does not report that (watchdog issue 654), a network share may not report
        changes made by other machines; a periodic scan picks up whatever they missed.
    force: start even when another daemon with a live heartbeat watches an overlapping
        folder of the same database (both would decode every new file).
    """

    workers: int | None = None
    settle: float = 2.0
    debounce: float = 0.2
    open_factor: float = 3.0
    polling: bool = False
    poll_interval: float = 1.0
    heartbeat: float = 5.0
    grace: float = 2.0
    max_pending: int = 50_000
    rescan: float = 3600.0
    force: bool = False


class AlreadyWatched(WatchError):
    """Another live daemon watches an overlapping folder of the same database."""


class DatabaseUnusable(WatchError):
    """The database as a whole failed under the daemon (damaged, not a database, disk full,
    read-only): every later file would fail the same way, so the daemon stops."""


@dataclass
class WatchResult:
    counts: dict[str, int] = field(default_factory=dict)
    abandoned: int = 0
    seconds: float = 0.0
    stopping: float = 0.0  # from the stop request (or error) to the daemon's return


class Daemon:
    """One ``photoqa watch`` process: see the module docstring."""

    def __init__(self, session: Session, roots: list[Path], options: WatchOptions, *,
                 stages: list[Stage], log: LogLine, stop: threading.Event | None = None,
                 observer_factory: Callable = make_observer, sensor_data: SensorPlan | SensorData = SensorData.NONE):
        self.session, self.options, self.log = session, options, log
        self.roots = [str(scan.absolute(r)) for r in roots]  # links kept, as index stores paths
        self.stop = stop or threading.Event()
        self.stages, self.observer_factory, self.sensor_data = stages, observer_factory, sensor_data
        self.backlog: deque[tuple[str, int]] = deque()  # (path, mtime_ns) from the catch-up scan
        self.attempts: dict[str, int] = {}
        # the SQLite file's header, read every heartbeat through one descriptor, never by
        # opening and closing the file (that dropped SQLite's locks: see HeaderWatch)
        self.header: HeaderWatch | None = None

    def run(self) -> WatchResult:
        started = time.monotonic()
        handler = ChangeQueue(self.roots)
        observer, closes = start_observer(handler, self.roots, self.options, self.observer_factory)
        writer = None
        daemon_id = None
        unusable: str | None = None
        # a PostgreSQL restart: retry_locked waits for the server; the log says so both ways
        stop_listening = hb.on_reconnect(lambda event, detail: self.log(event, "database", detail))
        try:
            engine = self.session.engine
            if not self.options.force:
                self._refuse_if_watched(engine)
            daemon_id = hb.retry_locked(lambda: hb.register(
                engine, host=socket.gethostname(), pid=os.getpid(), roots=self.roots))
            self._retire_dead(engine)
            writer = Writer(self.session.store, self.session.settings.index,
                            workers=worker_count(self.options.workers or self.session.settings.index.workers),
                            stages=self.stages, log=self.log, stop=self.stop, sensor_data=self.sensor_data,
                            stacks=self._stacks())
            pending = Pending(settle=self.options.settle, debounce=self.options.debounce,
                              open_factor=self.options.open_factor, closes_reported=closes,
                              max_pending=self.options.max_pending)
            self._warn_watch_limit(closes)
            self.catch_up(writer)
            self.loop(handler, pending, writer, daemon_id, observer)
        except DatabaseUnusable as exc:
            unusable = str(exc)
            raise
        except Exception as exc:
            # damaged, overwritten, full or read-only: one line and a stop, not an error
            # line per file for ever after (the files stay unindexed: the next start catches up)
            unusable = fatal_message(exc, self._where())
            if unusable is None:
                raise
            raise DatabaseUnusable(f"{unusable}; watch stopped (files not indexed yet are picked up when "
                                   "it starts again on a repaired or restored database)") from exc
        finally:
            stopping = time.monotonic()
            observer.stop()
            observer.join(timeout=2.0)
            # an unusable database takes no more outcomes: the files in flight are abandoned
            abandoned = writer.close(0.0 if unusable else self.options.grace) if writer else 0
            if daemon_id is not None and unusable is None:
                last = writer.last_activity if writer else None
                hb.retry_locked(lambda: hb.stopped(self.session.engine, daemon_id, last_activity=last))
            stop_listening()
        return WatchResult(dict(writer.counts) if writer else {}, abandoned,
                           round(time.monotonic() - started, 3), round(time.monotonic() - stopping, 3))

    def _where(self) -> str:
        url = self.session.engine.url
        return f"the database {url.database}" if url.get_backend_name() == "sqlite" else "the database"

    def _refuse_if_watched(self, engine) -> None:
        """:class:`WatchError` when a live daemon (fresh heartbeat; on this host, its pid
        alive) already watches one of our folders, a folder inside one, or one around it."""
        from indexer.watch.status import is_running

        now = utcnow()
        mine = [Path(r) for r in self.roots]
        for row in hb.retry_locked(lambda: hb.active_daemons(engine)):
            if row.pid == os.getpid() or not is_running(row, now, interval=self.options.heartbeat):
                continue
            theirs = [Path(r) for r in row.roots]
            if any(a == b or a in b.parents or b in a.parents for a in mine for b in theirs):
                raise AlreadyWatched(f"another photoqa watch (host {row.host}, pid {row.pid}) already watches "
                                 f"{', '.join(row.roots)} for this database; stop it first, or pass --force "
                                 "to run both (each would decode every new file)")

    def _retire_dead(self, engine) -> None:
        from indexer.watch.status import pid_alive

        host = socket.gethostname()[:255]
        dead = [r.id for r in hb.retry_locked(lambda: hb.active_daemons(engine))
                if r.host == host and r.pid != os.getpid() and not pid_alive(r.pid)]
        hb.retry_locked(lambda: hb.retire(engine, dead))

    def _warn_watch_limit(self, closes: bool) -> None:
        limit = inotify_limit()
        if not closes or not limit:
            return
        dirs = count_dirs(self.roots, limit)
        if dirs >= 0.9 * limit:
            self.log("warning", ", ".join(self.roots), inotify_message(OSError(errno.ENOSPC, "limit"),
                                                                        self.roots))

    def _stacks(self):
        """The writer's handler of array stacks, with ``index``'s settings (flags, matching)."""
        from indexer.pipeline.stackrun import StackWatch  # NumPy-heavy: loaded when a daemon starts

        settings = self.session.settings
        match = settings.match.params(settings.verdict) if settings.match.enabled else None
        return StackWatch(self.session.store, thresholds=settings.flags, match=match,
                          match_min_side=settings.stacks.match_min_side)

    def catch_up(self, writer: Writer) -> None:
        """What changed while no daemon ran: the ``index`` rules (scan.walk + scan.plan);
        array stacks go to the backlog (the writer skips unchanged ones) and those gone
        have their frames marked missing."""
        store = self.session.store
        roots = [Path(r) for r in self.roots]
        found = scan.walk(roots, stacks=writer.stacks is not None)
        tasks = [t for t in found if not arrays.is_array_file(t.path)]
        stack_tasks = [t for t in found if arrays.is_array_file(t.path)]
        if writer.stacks is not None:
            for path in hb.retry_locked(lambda: writer.stacks.catch_up(stack_tasks, roots)):
                self.log("missing", path, "stack")
        todo = scan.plan(tasks, hb.retry_locked(store.known_files), hb.retry_locked(store.known_failures),
                         roots, FEATURES_VERSION)
        scan.drop(todo, hb.retry_locked(lambda: dbactions.placed(store.engine, [t.path for t in todo.todo])))
        if todo.gone:
            hb.retry_locked(lambda: store.mark_missing(list(todo.gone.values())))
            for path in todo.gone:
                self.log("missing", path, "")
        writer.refresh_moves()
        self.backlog.extend((task.path, task.mtime_ns) for task in [*todo.todo, *stack_tasks])
        stacks = f", {len(stack_tasks)} array stack(s) to check" if stack_tasks else ""
        self.log("catch-up", ", ".join(self.roots),
                 f"{len(todo.todo)} to index, {todo.unchanged + todo.failed_unchanged} unchanged, "
                 f"{len(todo.gone)} missing{stacks}")

    def loop(self, handler: ChangeQueue, pending: Pending, writer: Writer, daemon_id: int,
             observer) -> None:
        next_beat = 0.0
        next_scan = time.monotonic() + self.options.rescan
        while not self.stop.is_set():
            now = time.monotonic()
            for change in handler.drain():
                self.apply(change, pending, writer)
            if pending.overflowed:
                pending.clear()
                self.backlog.clear()
                self.log("rescan", ", ".join(self.roots), "too many events at once: scanning instead")
                self.catch_up(writer)
            elif self.options.rescan and now >= next_scan and not self.backlog:
                self.log("rescan", ", ".join(self.roots), f"periodic scan (every {self.options.rescan:g} s)")
                self.catch_up(writer)
                next_scan = now + self.options.rescan
            self.feed(pending, writer, now)
            if now >= next_beat:
                self._beat(daemon_id, pending, writer)
                writer.idle_stages()
                next_beat = now + self.options.heartbeat
                self._check_observer(observer)
            if writer.jobs:
                writer.collect(pending.next_wake(now))
            else:
                self.stop.wait(pending.next_wake(now))

    def feed(self, pending: Pending, writer: Writer, now: float) -> None:
        """Give free worker slots to complete files first, then to the catch-up backlog."""
        for entry in pending.ready(now, limit=writer.free_slots, busy=writer.busy):
            writer.safe_handle(entry.path, entry.moved_from)
        busy = writer.busy
        recent = time.time_ns() - int(self.options.open_factor * self.options.settle * 1e9)
        while self.backlog and writer.free_slots > 0 and not self.stop.is_set():
            path, mtime_ns = self.backlog.popleft()
            if path in pending.entries or path in busy:
                continue  # an event is tracking it: it waits to be complete
            if mtime_ns > recent:
                pending.created(path, now, bound=False)  # written moments ago: maybe still open
                continue
            writer.safe_handle(path)
        self._retry_errors(pending, writer, now)

    def _retry_errors(self, pending: Pending, writer: Writer, now: float) -> None:
        """Paths whose handling raised get ``MAX_ATTEMPTS`` tries in a row, a settle time
        apart. A path neither failing now, nor waiting, nor in a worker was handled
        since: its count goes (the daemon kept one for every path that ever raised once,
        and a later error counted on from it)."""
        failing = set(writer.errors)
        for path in writer.errors:
            tries = self.attempts[path] = self.attempts.get(path, 0) + 1
            if tries < MAX_ATTEMPTS:
                pending.touched(path, now + self.options.settle)
            else:
                del self.attempts[path]
                self.log("gave up", path, f"{MAX_ATTEMPTS} errors in a row; the next start retries it")
        writer.errors.clear()
        if self.attempts:
            working = writer.busy | {job.task.path for job in writer.crashed}
            for path in [p for p in self.attempts if p not in failing and p not in pending.entries
                         and p not in working]:
                del self.attempts[path]

    def apply(self, change: Change, pending: Pending, writer: Writer) -> None:
        at = change.at
        if change.kind == "created":
            pending.created(change.path, at)
        elif change.kind == "written":
            pending.written(change.path, at)
        elif change.kind == "touched":
            pending.touched(change.path, at)
        elif change.kind == "closed":
            pending.closed(change.path, at)
        elif change.kind == "deleted":
            pending.deleted(change.path, at)
        elif change.kind == "moved":
            pending.moved(change.path, change.dest, at)
        elif change.kind == "dir_created":
            for task in scan.walk([Path(change.path)], stacks=writer.stacks is not None):
                pending.touched(task.path, at)  # may still be written: settle rules apply
        elif change.kind == "dir_moved_in":
            for task in scan.walk([Path(change.path)], stacks=writer.stacks is not None):
                pending.moved(None, task.path, at)  # moved in whole: complete
        elif change.kind == "dir_deleted":
            for path in hb.retry_locked(lambda: hb.live_paths_under(self.session.engine, change.path)):
                pending.deleted(path, at)

    def _beat(self, daemon_id: int, pending: Pending, writer: Writer) -> None:
        url = self.session.engine.url
        if self.header is None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            self.header = HeaderWatch(Path(url.database))
        if self.header is not None:
            # A SQLite file overwritten whole under the daemon goes unnoticed by SQLite itself
            # in WAL mode (8 files "indexed" into the WAL of a file of random bytes, measured):
            # its first 16 bytes, read every heartbeat, tell.
            if (why := self.header.check()) is not None:
                raise DatabaseUnusable(f"{why}: it changed under watch; watch stopped (files not "
                                       "indexed yet are picked up when it starts again on a restored database)")
        waiting = len(pending) + len(writer.jobs) + len(self.backlog) + len(writer.crashed)
        try:
            hb.retry_locked(lambda: hb.beat(self.session.engine, daemon_id, pending=waiting,
                                            last_activity=writer.last_activity))
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not worth stopping for...
            if fatal_message(exc):
                raise  # ...an unusable database is
            self.log("warning", "heartbeat", f"{type(exc).__name__}: {str(exc)[:300]}")

    def _check_observer(self, observer) -> None:
        if not observer.is_alive() or any(not e.is_alive() for e in list(observer.emitters)):
            raise WatchError("the file-system observer stopped (a watched folder was removed or "
                             "became unreadable); restart `photoqa watch` once it is back, or use --polling")


def run_watch(session: Session, roots: list[Path], options: WatchOptions, *, stages: list[Stage],
              log: LogLine, stop: threading.Event | None = None,
              sensor_data: SensorPlan | SensorData = SensorData.NONE) -> WatchResult:
    """Watch ``roots`` until SIGINT/SIGTERM (or ``stop`` is set); see :class:`Daemon`.

    ``stages`` run after each stored image (the caller closes them); ``sensor_data`` is
    what workers keep for the sensor hook, as for ``index``. Raises :class:`WatchError`
    when watching cannot start (e.g. inotify limits).
    """
    for root in roots:
        if not Path(root).is_dir():
            raise WatchError(f"{root} is not a folder")
    daemon = Daemon(session, roots, options, stages=stages, log=log, stop=stop, sensor_data=sensor_data)
    with _signals_set(daemon.stop):
        return daemon.run()


class _signals_set:
    """SIGINT/SIGTERM set ``stop`` while the daemon runs (main thread only)."""

    def __init__(self, stop: threading.Event):
        self.stop, self.previous = stop, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def watch_command(session: Session, roots: list[Path], options: WatchOptions, log: LogLine) -> WatchResult:
    """``photoqa watch``: the same stages and worker data as ``index``, a start and a stop
    line, stages closed (flushed) at the end."""
    names = ", ".join(str(r) for r in roots)
    stages = build_stages(session)
    try:
        log("started", names, f"pid {os.getpid()}")
        result = run_watch(session, roots, options, stages=stages, log=log, sensor_data=stage_data(session))
    finally:
        flushing = time.monotonic()
        try:
            errors = close_stages(stages)
        except Exception as exc:  # noqa: BLE001 - the database is unusable: DatabaseUnusable says so
            if fatal_message(exc) is None:
                raise
            errors = [f"{type(exc).__name__}: {str(exc)[:300]}"]
        for error in errors:
            log("error", names, str(error))
        flushed = time.monotonic() - flushing
    summary = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "no files"
    log("stopped", names, f"{summary}; {result.abandoned} abandoned (picked up at next start); "
                          f"daemon stopped in {result.stopping:.1f} s, stages flushed in {flushed:.1f} s")
    return result
