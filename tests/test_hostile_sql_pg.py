"""``photoqa sql`` on PostgreSQL has no side effect on the server (issue 16): COPY TO/FROM,
server-side file functions and a second statement after ';' are refused, even on a
superuser role (the CI server's) that could do all of them."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import EXIT_REFUSED, main
from db.engine import open_engine
from indexer.session import open_session

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)")


@pytest.fixture(scope="module")
def pg_url():
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    session = open_session(url)  # creates the tables
    with session.engine.begin() as conn:
        conn.execute(text("INSERT INTO failures (path, kind, message, failed_at, attempts) "
                          "VALUES ('/a.jpg', 'decode', 'm', now(), 1), ('/b.jpg', 'decode', 'm', now(), 1)"))
    session.engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def server_writable() -> Path:
    """A folder the server's own user may write into (pytest's tmp_path is private to us)."""
    folder = Path(tempfile.mkdtemp(prefix="photoqa-pg-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def sql(url: str, statement: str):
    return CliRunner().invoke(main, ["--db", url, "sql", statement])


def test_copy_to_would_write_and_photoqa_refuses_it(pg_url, server_writable):
    target = server_writable / "leak.txt"
    copy = f"COPY (SELECT path FROM failures LIMIT 2) TO '{target}'"
    result = sql(pg_url, copy)
    assert result.exit_code == EXIT_REFUSED, result.output
    assert "COPY" in result.output and "Traceback" not in result.output
    assert not target.exists()
    # the same statement on an ordinary connection does write: the refusal above is photoqa's
    engine = open_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(copy))
    engine.dispose()
    assert target.read_text().splitlines() == ["/a.jpg", "/b.jpg"]


@pytest.mark.parametrize("statement", [
    "COPY failures FROM '/etc/hostname'",
    "  /* lead */ -- comment\n copy failures to stdout",
    "SELECT 1; COPY (SELECT 1) TO '{dir}/two.txt'",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '{dir}/lo.txt')",
    'SELECT pg_catalog."lo_export"(1, \'{dir}/lo2.txt\')',
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT count(*) FROM failures WHERE length(pg_read_file('/etc/hostname')) > 0",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "DO $$ BEGIN PERFORM 1; END $$",
    "SET default_transaction_read_only = off",
])
def test_server_side_effects_are_refused(pg_url, server_writable, statement):
    result = sql(pg_url, statement.format(dir=server_writable))
    assert result.exit_code == EXIT_REFUSED, result.output
    assert result.output.startswith("photoqa: ") and len(result.output.strip().splitlines()) == 1
    assert list(server_writable.iterdir()) == []


def test_writes_in_a_query_are_refused_and_reads_work(pg_url):
    result = sql(pg_url, "WITH gone AS (DELETE FROM failures RETURNING path) SELECT * FROM gone")
    assert result.exit_code == EXIT_REFUSED, result.output
    result = sql(pg_url, "SELECT path FROM failures ORDER BY path")
    assert result.exit_code == 0, result.output
    assert "/a.jpg" in result.output and "/b.jpg" in result.output
    # a '%' and a comment are not mistaken for anything
    result = sql(pg_url, "/* two */ SELECT '100%' AS pct, (SELECT count(*) FROM failures) AS n")
    assert result.exit_code == 0 and "100%" in result.output and "2" in result.output, result.output
