"""One line per file: ``<UTC time> <status> <path> [(detail)]`` to stderr and ``--log-file``.

Statuses: indexed, updated, unchanged, moved, missing, failed (detail: kind and reason),
plus daemon lines (catch-up, rescan, warning, started, stopped). The log file is opened
in append mode and reopened when rotated away (logrotate), like ``WatchedFileHandler``.
"""
from __future__ import annotations

import os
import sys
import threading
from datetime import datetime, timezone
from typing import IO


class LineLog:
    """Callable ``(status, path, detail)`` writing one flushed line per call."""

    def __init__(self, stream: IO[str] | None = None, log_file: str | os.PathLike | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.path = os.fspath(log_file) if log_file else None
        self.file: IO[str] | None = None
        self._ino: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _file(self) -> IO[str] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
            ino = (st.st_dev, st.st_ino)
        except OSError:
            ino = None
        if self.file is None or ino != self._ino:
            if self.file is not None:
                self.file.close()
            self.file = open(self.path, "a", encoding="utf-8")
            st = os.fstat(self.file.fileno())
            self._ino = (st.st_dev, st.st_ino)
        return self.file

    def __call__(self, status: str, path: str, detail: str = "") -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = f"{stamp} {status:9} {path}{f' ({detail})' if detail else ''}\n"
        with self._lock:
            for out in (self.stream, self._file()):
                if out is not None:
                    out.write(line)
                    out.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
