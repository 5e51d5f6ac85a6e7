"""Worker functions that crash the process on planted files (imported by the workers)."""
from __future__ import annotations

import ctypes
import os

from indexer.pipeline.analyse import analyse


def crash_on_planted(task, *args):
    """:func:`analyse`, except that a file named ``abort*`` aborts and ``segv*`` segfaults
    the worker process, as a native decoder would."""
    name = os.path.basename(task.path)
    if name.startswith("abort"):
        os.abort()
    if name.startswith("segv"):
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return analyse(task, *args)
