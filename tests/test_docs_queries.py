"""Every SQL query the docs show runs through `photoqa sql` on SQLite and on PostgreSQL.

The queries are read from the docs themselves, so a query added, changed or broken there is
tested as it is written:
- docs/SCHEMA.md: every fenced block opened by a line ```` ```sql ````, split into statements at
  a ``;`` that ends a line (the ``--`` comment lines above a statement are its title);
- README.md: every ``$ photoqa sql "..."`` line of a shell example.

They run on the database of ``photoqa demo`` (copies, rotated/cropped/darkened variants, a
broken file, planted hot and dead pixels: every table the examples read has rows), and, when
$PHOTOQA_TEST_PG_URL names a PostgreSQL database we may write (.ci/run starts one), on the same
folder indexed into a fresh schema there; both backends must return the same number of rows.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import main

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "docs" / "SCHEMA.md"
README = REPO / "README.md"
PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")


def schema_statements(markdown: str) -> list[str]:
    """Statements (with their ``--`` title lines) of the ```sql blocks of a Markdown text."""
    statements = []
    for block in re.findall(r"^```sql\n(.*?)^```", markdown, re.M | re.S):
        for part in re.split(r";[ \t]*$", block, flags=re.M):
            if part.strip():
                statements.append(part.strip() + ";")
    return statements


def readme_statements(markdown: str) -> list[str]:
    """The statements of the ``$ photoqa sql "..."`` lines of a Markdown text."""
    return re.findall(r'^\$ photoqa sql "([^"]+)"', markdown, re.M)


def documented_queries() -> list[tuple[str, str]]:
    """(where, statement) of every documented query."""
    schema = schema_statements(SCHEMA.read_text(encoding="utf-8"))
    readme = readme_statements(README.read_text(encoding="utf-8"))
    return [(f"SCHEMA.md #{i}", s) for i, s in enumerate(schema)] + \
           [(f"README.md #{i}", s) for i, s in enumerate(readme)]


QUERIES = documented_queries()


def test_the_extraction_finds_every_documented_query():
    """The parser cannot silently find nothing: the known queries are among those found."""
    schema = SCHEMA.read_text(encoding="utf-8")
    assert schema.count("```sql") == 4
    # one statement per `;` that ends a line inside the blocks, none lost or merged
    assert len([w for w, _ in QUERIES if w.startswith("SCHEMA")]) == 15
    assert len([w for w, _ in QUERIES if w.startswith("README")]) == 1
    titles = {line for _, s in QUERIES for line in s.splitlines() if line.startswith("-- ")}
    assert "-- the darkest ten photos that still exist" in titles
    assert all(s.rstrip().endswith(";") or w.startswith("README") for w, s in QUERIES)


def run_sql(db: str, statement: str):
    return CliRunner().invoke(main, ["--db", db, "sql", "--format", "csv", "--", statement])


def row_count(result) -> int:
    return len(result.stdout.strip().splitlines()) - 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", str(folder), "-j", "1"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def sqlite_counts(demo) -> dict[str, int]:
    counts = {}
    for where, statement in QUERIES:
        result = run_sql(str(demo / "photoqa.db"), statement)
        assert result.exit_code == 0, f"{where} fails on SQLite:\n{statement}\n{result.output}"
        counts[where] = row_count(result)
    return counts


def test_every_documented_query_runs_on_sqlite(sqlite_counts):
    # the demo has copies, pairs, groups, flags, a failure and hot pixels: 9 of the 16 answer
    # with rows (no stacks, actions, bursts or 20-frame sensors there)
    assert sum(1 for n in sqlite_counts.values() if n > 0) >= 8, sorted(sqlite_counts.items())


@pytest.fixture(scope="module")
def pg_demo(demo, tmp_path_factory):
    if not PG_URL:
        pytest.skip("set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)")
    from db.engine import open_engine

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    # the same files without the SQLite database and its sensor folder (its .npy would index)
    folder = tmp_path_factory.mktemp("pg") / "demo"
    shutil.copytree(demo, folder, ignore=shutil.ignore_patterns("photoqa.db*"))
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    result = CliRunner().invoke(main, ["--db", url, "--config", str(folder / "photoqa-demo.toml"),
                                       "index", str(folder), "-j", "1"])
    assert result.exit_code == 0, result.output
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.mark.parametrize("where,statement", QUERIES, ids=[w for w, _ in QUERIES])
def test_documented_query_runs_on_postgresql_as_on_sqlite(pg_demo, sqlite_counts, where, statement):
    result = run_sql(pg_demo, statement)
    assert result.exit_code == 0, f"{where} fails on PostgreSQL:\n{statement}\n{result.output}"
    assert row_count(result) == sqlite_counts[where], (where, result.stdout)


def test_the_documented_create_function_gives_photoqas_hamming(demo, monkeypatch):
    """The two lines docs/SCHEMA.md gives Python's sqlite3 users answer as `photoqa sql` does."""
    import sqlite3

    (snippet,) = re.findall(r"^```python\n(.*?)^```", SCHEMA.read_text(encoding="utf-8"), re.M | re.S)
    monkeypatch.chdir(demo)
    scope = {"sqlite3": sqlite3}
    exec(snippet, scope)  # noqa: S102 - our own documentation, run as a reader would
    query = "SELECT a.id, b.id, hamming(a.phash, b.phash) FROM images a JOIN images b ON a.id < b.id ORDER BY 1, 2"
    ours = [tuple(int(v) for v in line.split(",")) for line in
            run_sql(str(demo / "photoqa.db"), query).stdout.strip().splitlines()[1:]]
    assert len(ours) > 200 and ours == scope["con"].execute(query).fetchall()
    scope["con"].close()
