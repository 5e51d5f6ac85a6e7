"""``photoqa watch`` and ``photoqa status``: the watched-folder daemon and its heartbeat."""
import importlib

__all__ = ["WatchError", "WatchOptions", "WatchResult", "run_watch"]


def __getattr__(name: str):
    # The daemon is loaded on first use (PEP 562): ``photoqa status`` reads the heartbeat
    # table through indexer.watch.status and must not import the pipeline (~0.8 s).
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.daemon"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
