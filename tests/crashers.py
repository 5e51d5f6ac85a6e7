"""Worker functions that crash the process on planted files (imported by the workers)."""
from __future__ import annotations

import ctypes
import os

from indexer.outcomes import Moved
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


def crash_on_full_decode(task, *args):
    """:func:`analyse`, except that a file named ``segv*`` segfaults the worker when it is
    decoded in full; hashed as a move (a :class:`Moved` outcome) it does not."""
    outcome = analyse(task, *args)
    if os.path.basename(task.path).startswith("segv") and not isinstance(outcome, Moved):
        ctypes.string_at(0)
    return outcome
