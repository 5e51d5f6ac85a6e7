"""``photoqa watch`` and ``photoqa status``: the watched-folder daemon and its heartbeat."""
from indexer.watch.daemon import WatchError, WatchOptions, WatchResult, run_watch

__all__ = ["WatchError", "WatchOptions", "WatchResult", "run_watch"]
