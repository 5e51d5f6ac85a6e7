"""The PostgreSQL server stopped and started again under a running ``watch`` (issue 16): the
daemon logs the lost connection and the reconnect, and every file that arrived before,
while the server was down and after is indexed exactly once. Needs the CI server's data folder and binaries ($PHOTOQA_TEST_PG_DATA,
$PHOTOQA_TEST_PG_BIN; .ci/run sets them) to restart it."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from test_watch_helpers import ThreadedDaemon, jpeg, wait_for

URL, DATA, BIN = (os.environ.get(k) for k in ("PHOTOQA_TEST_PG_URL", "PHOTOQA_TEST_PG_DATA", "PHOTOQA_TEST_PG_BIN"))
pytestmark = pytest.mark.skipif(not (URL and DATA and BIN),
                                reason="set PHOTOQA_TEST_PG_URL, PHOTOQA_TEST_PG_DATA and PHOTOQA_TEST_PG_BIN")


def pg_ctl(action: str, *extra: str) -> int:
    """``pg_ctl ACTION`` on the CI server as its owner; output to the server's log, not to
    a pipe the new postmaster would keep open."""
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    log = str(Path(DATA).parent / "restart.log")
    return subprocess.run([*as_pg, str(Path(BIN) / "pg_ctl"), "-D", DATA, "-l", log, "-w", *extra, action],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=60).returncode


def test_watch_reconnects_and_catches_up_after_a_server_restart(tmp_path):
    """The server stopped for 8 s, files landing meanwhile, then started again: the daemon
    logs the lost connection and the reconnect, and indexes the files that landed while
    the server was down after it is back, each once, through its transaction retry (no
    ``error`` line: the per-file retry path, which would also catch up, is not used)."""
    from sqlalchemy import create_engine, text

    inbox = tmp_path / "in"
    inbox.mkdir()
    daemon = ThreadedDaemon(URL, [inbox])
    names = [f"before{i}" for i in range(3)] + [f"during{i}" for i in range(5)] + [f"after{i}" for i in range(3)]
    try:
        with daemon:
            for i in range(3):
                (inbox / f"before{i}.jpg").write_bytes(jpeg(300 + i))
            for i in range(3):
                daemon.wait_status(inbox / f"before{i}.jpg", "indexed", timeout=60)
            assert pg_ctl("stop", "-m", "fast") == 0, "pg_ctl stop failed"
            down = time.monotonic()
            for i in range(5):  # land (and settle) while the server is down
                (inbox / f"during{i}.jpg").write_bytes(jpeg(310 + i))
                time.sleep(0.2)
            wait_for(lambda: any(s == "disconnected" for s, _, _ in daemon.lines), 30, "a 'disconnected' line")
            time.sleep(max(0.0, 8.0 - (time.monotonic() - down)))
            assert not [n for n in names if "indexed" in daemon.statuses(inbox / f"{n}.jpg")
                        and n.startswith("during")], "indexed while the server was down?"
            back_at = len(daemon.lines)  # lines after this one came after the server was back
            assert pg_ctl("start", "-o", _options()) == 0, "pg_ctl start failed"
            for i in range(3):
                (inbox / f"after{i}.jpg").write_bytes(jpeg(320 + i))
            for name in names:
                daemon.wait_status(inbox / f"{name}.jpg", "indexed", timeout=90)
            later = daemon.lines[back_at:]
            assert [s for s, _, _ in later].count("reconnected") >= 1, daemon.lines
            for i in range(5):  # caught up after the server came back
                assert ("indexed", str(inbox / f"during{i}.jpg")) in [(s, p) for s, p, _ in later]
            assert not [line for line in daemon.lines if line[0] in ("gave up", "error")], daemon.lines
    finally:
        if pg_ctl("status") != 0:  # leave the server running for the other tests
            pg_ctl("start", "-o", _options())
    engine = create_engine(URL)
    with engine.connect() as conn:
        got = conn.execute(text("SELECT path FROM images WHERE path LIKE :p"), {"p": f"{inbox}/%"}).scalars().all()
    engine.dispose()
    assert sorted(got) == sorted(str(inbox / f"{n}.jpg") for n in names)  # each exactly once


def _options() -> str:
    """The server's own start options (port, socket folder...), as ``pg_ctl restart`` reuses
    them: the ``postmaster.opts`` file of the data folder holds the last command line."""
    line = (Path(DATA) / "postmaster.opts").read_text().strip()
    parts = shlex.split(line)[1:]  # without the postgres binary
    out = []
    for part in parts:
        if out and out[-1] == "-D":
            out.pop()  # pg_ctl passes its own -D
            continue
        out.append(part)
    return shlex.join(out)
