"""The PostgreSQL server restarted under a running ``watch`` (issue 16): the daemon
reconnects and every file that arrived before, during and after the restart is indexed
exactly once. Needs the CI server's data folder and binaries ($PHOTOQA_TEST_PG_DATA,
$PHOTOQA_TEST_PG_BIN; .ci/run sets them) to restart it."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from test_watch_helpers import ThreadedDaemon, jpeg

URL, DATA, BIN = (os.environ.get(k) for k in ("PHOTOQA_TEST_PG_URL", "PHOTOQA_TEST_PG_DATA", "PHOTOQA_TEST_PG_BIN"))
pytestmark = pytest.mark.skipif(not (URL and DATA and BIN),
                                reason="set PHOTOQA_TEST_PG_URL, PHOTOQA_TEST_PG_DATA and PHOTOQA_TEST_PG_BIN")


def restart_server(done: list) -> None:
    """``pg_ctl restart`` (fast: open connections are cut); its output goes to the server's
    log, not to a pipe the new postmaster would keep open."""
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    log = str(Path(DATA).parent / "restart.log")
    result = subprocess.run([*as_pg, str(Path(BIN) / "pg_ctl"), "-D", DATA, "-l", log, "-m", "fast", "-w",
                             "restart"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=60)
    done.append(result.returncode)


def test_watch_survives_a_server_restart(tmp_path):
    from sqlalchemy import create_engine, text

    inbox = tmp_path / "in"
    inbox.mkdir()
    daemon = ThreadedDaemon(URL, [inbox])
    with daemon:
        for i in range(3):
            (inbox / f"before{i}.jpg").write_bytes(jpeg(300 + i))
        for i in range(3):
            daemon.wait_status(inbox / f"before{i}.jpg", "indexed")
        restarted: list[int] = []
        restarting = threading.Thread(target=restart_server, args=(restarted,))
        restarting.start()
        for i in range(5):  # while the server goes down and comes back
            (inbox / f"during{i}.jpg").write_bytes(jpeg(310 + i))
            time.sleep(0.2)
        restarting.join()
        assert restarted == [0], "pg_ctl restart failed"
        for i in range(3):
            (inbox / f"after{i}.jpg").write_bytes(jpeg(320 + i))
        names = [f"before{i}" for i in range(3)] + [f"during{i}" for i in range(5)] + [f"after{i}" for i in range(3)]
        for name in names:
            daemon.wait_status(inbox / f"{name}.jpg", "indexed", timeout=90)
        # reconnected inside the transaction's retry: no file went through the error path
        assert not [line for line in daemon.lines if line[0] in ("gave up", "error")], daemon.lines
    engine = create_engine(URL)
    with engine.connect() as conn:
        got = conn.execute(text("SELECT path FROM images WHERE path LIKE :p"), {"p": f"{inbox}/%"}).scalars().all()
    engine.dispose()
    assert sorted(got) == sorted(str(inbox / f"{n}.jpg") for n in names)  # each exactly once
