"""Helpers shared by the ``test_watch*`` files (no tests here): tiny JPEGs, a daemon in a
thread, waiting, and the thread-leak fixture."""
from __future__ import annotations

import hashlib
import io
import sqlite3
import threading
import time
from functools import lru_cache
from pathlib import Path

import pytest
from PIL import Image

from indexer.synthetic import scenes as synth


@lru_cache(maxsize=None)
def jpeg(seed: int) -> bytes:
    """A distinct 160x120 JPEG (~5 KB) per seed."""
    buf = io.BytesIO()
    Image.fromarray(synth.scene(seed, 160, 120)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows(db: Path, sql: str, *args) -> list[tuple]:
    """Run a query on a read-only connection (the daemon keeps writing meanwhile)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll ``predicate`` every 50 ms; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class ThreadedDaemon:
    """``run_watch`` on a background thread with a log captured as tuples."""

    def __init__(self, db: Path, roots: list[Path], stages: list | None = None, **options):
        from indexer.session import open_session
        from indexer.watch import WatchOptions

        self.db, self.roots = db, roots
        self.session = open_session(str(db))
        defaults = dict(workers=1, settle=0.5, debounce=0.1, heartbeat=0.5, grace=2.0)
        defaults.update(options)
        self.options = WatchOptions(**defaults)
        self.lines: list[tuple[str, str, str]] = []
        self.stages = stages or []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.result = None
        self.thread = threading.Thread(target=self._run, name="test-watch-daemon")

    def _log(self, status: str, path: str, detail: str = "") -> None:
        self.lines.append((status, path, detail))

    def _run(self) -> None:
        from indexer.watch import run_watch

        try:
            self.result = run_watch(self.session, self.roots, self.options, stages=self.stages, log=self._log,
                                    stop=self.stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc

    def __enter__(self) -> ThreadedDaemon:
        self.thread.start()
        wait_for(lambda: self.error or any(s == "catch-up" for s, _, _ in self.lines), 30, "catch-up")
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)
        self.session.engine.dispose()
        assert not self.thread.is_alive(), "daemon thread did not stop"
        if self.error and not exc[0]:
            raise self.error

    def statuses(self, path: Path | str) -> list[str]:
        return [s for s, p, _ in list(self.lines) if p == str(path)]

    def wait_status(self, path: Path | str, status: str, timeout: float = 15.0) -> None:
        wait_for(lambda: self.error or status in self.statuses(path), timeout, f"{status} {path}")
        if self.error:
            raise self.error


def write_slowly(path: Path, data: bytes, seconds: float, chunks: int = 30) -> None:
    """Write ``data`` to ``path`` in ``chunks`` pieces spread over ``seconds``, one open file."""
    step = max(1, len(data) // chunks)
    with open(path, "wb") as fh:
        for start in range(0, len(data), step):
            fh.write(data[start:start + step])
            fh.flush()
            time.sleep(seconds / chunks)


@pytest.fixture
def no_thread_leak():
    """Fail the test if it leaves a thread running (observer, pool manager, daemon)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads leaked: {[t.name for t in extra]}"
