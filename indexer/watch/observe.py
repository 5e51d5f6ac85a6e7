"""The file-system observer: inotify (with close-after-write) on Linux, polling on request,
and the user-facing message when Linux runs out of inotify watches."""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from indexer.watch.events import WANTED, ChangeQueue


class WatchError(RuntimeError):
    """The daemon cannot start or keep watching (message is meant for the user)."""


def inotify_limit() -> int | None:
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def inotify_message(exc: OSError, roots: list[str]) -> str:
    """The user-facing explanation of inotify running out of watches or instances."""
    limit = inotify_limit()
    what = ("watches" if exc.errno == errno.ENOSPC else "instances")
    setting = "max_user_watches" if exc.errno == errno.ENOSPC else "max_user_instances"
    return (f"Linux ran out of inotify {what} while watching {', '.join(roots)}"
            f"{f' (fs.inotify.max_user_watches = {limit})' if limit else ''}. Either raise the "
            f"limit: `sudo sysctl fs.inotify.{setting}=524288` (persist it in "
            f"/etc/sysctl.d/90-photoqa.conf), or watch by polling: `photoqa watch --polling ...`.")


def make_observer(options):
    """Inotify on Linux (reports close-after-write), the platform default elsewhere,
    or the polling observer; returns ``(observer, closes_reported)``."""
    if options.polling:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=options.poll_interval), False
    try:
        from watchdog.observers.inotify import InotifyObserver
    except (ImportError, OSError):  # not Linux
        from watchdog.observers import Observer

        return Observer(), False
    # full events: a move from an unwatched folder arrives as a move (complete file), not
    # as a creation, and a move out as a move, not a deletion
    return InotifyObserver(generate_full_events=True), True


def start_observer(handler: ChangeQueue, roots: list[str], options,
                   factory: Callable = make_observer):
    observer, closes = factory(options)
    try:
        for root in roots:
            observer.schedule(handler, root, recursive=True, event_filter=WANTED)
        observer.start()
    except OSError as exc:
        observer.stop()  # joins the threads already started (inotify reader, emitters)
        if exc.errno in (errno.ENOSPC, errno.EMFILE):
            raise WatchError(inotify_message(exc, roots)) from exc
        raise WatchError(f"cannot watch {', '.join(roots)}: {exc}") from exc
    return observer, closes


def count_dirs(roots: list[str], stop_at: int) -> int:
    """Folders under ``roots`` (each needs one inotify watch), counting up to ``stop_at``."""
    total = 0
    for root in roots:
        for _folder, dirs, _files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            total += 1
            if total >= stop_at:
                return total
    return total
