"""`photoqa sql` on SQLite through the standard library (db.sqlite_ro) answers exactly as
db.queries.run_sql through SQLAlchemy: same columns and rows, same refusals and errors,
and the file is never changed."""
from __future__ import annotations

import hashlib

import pytest

from db import sqlite_ro
from db.queries import QueryError, ReadOnlyViolation, run_sql
from indexer.session import open_session

STATEMENTS = [
    "SELECT hamming(5, 3) AS h, hamming(-1, 0) AS all64, hamming(NULL, 1) AS n",
    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    "SELECT count(*) AS n, max(id) FROM images",
    "SELECT path, kind FROM failures ORDER BY path",
    "PRAGMA foreign_keys",
    "PRAGMA query_only",
    "INSERT INTO failures (path, kind, message, failed_at) VALUES ('x', 'k', 'm', '2026-01-01')",
    "DELETE FROM images",
    "CREATE TABLE t (x)",
    "DROP TABLE images",
    "PRAGMA user_version = 7",
    "BEGIN",
    "ATTACH DATABASE '{tmp}/other.db' AS other",
    "VACUUM INTO '{tmp}/copy.db'",
    "SELEC 1",
    "SELECT * FROM no_such_table",
    "SELECT 1; SELECT 2",
]


def outcome(run, statement):
    try:
        return "rows", run(statement)
    except (ReadOnlyViolation, QueryError) as exc:
        return type(exc).__name__, str(exc)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "photoqa.db"
    session = open_session(str(path))  # created at head, WAL
    with session.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO failures (path, kind, message, failed_at, attempts) "
                             "VALUES ('/p/bad.jpg', 'truncated', 'cut short', '2026-12-07 10:00:00', 1)")
    session.engine.dispose()
    return path


@pytest.mark.parametrize("statement", STATEMENTS)
def test_stdlib_road_answers_as_sqlalchemy(db, tmp_path, statement):
    statement = statement.format(tmp=tmp_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    engine = open_session(str(db), readonly=True).engine
    theirs = outcome(lambda s: run_sql(engine, s), statement)
    engine.dispose()
    ours = outcome(lambda s: sqlite_ro.run_sql(db, s, busy_timeout_ms=1000), statement)
    assert ours == theirs
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "copy.db").exists()


def test_planted_rows_come_back(db):
    assert sqlite_ro.run_sql(db, "SELECT path, kind FROM failures", busy_timeout_ms=1000) == \
        (["path", "kind"], [("/p/bad.jpg", "truncated")])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no database at"):
        sqlite_ro.run_sql(tmp_path / "none.db", "SELECT 1", busy_timeout_ms=1000)
    assert not (tmp_path / "none.db").exists()


def test_urls_go_to_sqlalchemy(tmp_path, monkeypatch):
    monkeypatch.delenv("PHOTOQA_DB", raising=False)
    assert sqlite_ro.plain_path("postgresql+psycopg://me@localhost/photoqa") is None
    assert sqlite_ro.plain_path(str(tmp_path / "a#b?.db")) == tmp_path / "a#b?.db"
    monkeypatch.setenv("PHOTOQA_DB", str(tmp_path / "env.db"))
    assert sqlite_ro.plain_path(None) == tmp_path / "env.db"
