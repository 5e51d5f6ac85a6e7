"""Alembic: one head, upgrade from empty, models equal the migrated schema."""
from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect, text

from db import migrate
from db.engine import open_engine
from db.models import Base


FRAME_COLUMNS = ("container", "array_key", "frame")  # added by 0009, after the revisions these tests start from


def fresh_engine(tmp_path, name="m.db"):
    return open_engine("sqlite:///" + str(tmp_path / name))


def test_single_head():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1
    assert migrate.head_revision() == heads[0]
    assert migrate.newest_revision() == heads[0]  # the fast at-head check reads file names


def test_opening_a_database_at_head_does_not_import_alembic(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "at_head.db"
    migrate.upgrade(open_engine(f"sqlite:///{db}"))
    code = ("import sys; from db.engine import open_engine; from db import migrate; "
            f"migrate.upgrade(open_engine('sqlite:///{db}')); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"


def test_revisions_form_one_chain():
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = list(script.walk_revisions())
    assert len([r for r in revisions if r.down_revision is None]) == 1  # one base
    for rev in revisions:
        assert rev.doc, f"revision {rev.revision} has no message"


def test_upgrade_from_empty_reaches_head(tmp_path):
    engine = fresh_engine(tmp_path)
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade(engine) == migrate.head_revision()
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"images", "cameras", "failures", "alembic_version"} <= tables
    assert migrate.upgrade(engine) == migrate.head_revision()  # a second call is a no-op
    engine.dispose()


def test_step_by_step_upgrade_and_downgrade_to_base(tmp_path):
    from alembic import command

    engine = fresh_engine(tmp_path)
    script = ScriptDirectory.from_config(migrate.alembic_config())
    for rev in reversed(list(script.walk_revisions())):  # base first
        assert migrate.upgrade(engine, rev.revision) == rev.revision
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(engine) == migrate.head_revision()
    engine.dispose()


def test_models_match_migrated_schema(tmp_path):
    engine = fresh_engine(tmp_path)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], diff


def test_sqlite_connection_pragmas(tmp_path):
    engine = fresh_engine(tmp_path)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar().lower() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        assert conn.execute(text("SELECT hamming(0, 7)")).scalar() == 3
    engine.dispose()


def test_foreign_key_enforced(tmp_path):
    import pytest
    from sqlalchemy.exc import IntegrityError

    engine = fresh_engine(tmp_path)
    migrate.upgrade(engine)
    cols = [c.name for c in Base.metadata.tables["images"].columns if c.name != "id"]
    values = {c: 0 for c in cols}
    values.update(path="x", sha256="0", format="X", decoder="d", indexed_at="2020-01-01 00:00:00",
                  missing_since=None, captured_at=None, camera_id=999)
    placeholders = ", ".join(f":{c}" for c in cols)
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO images ({', '.join(cols)}) VALUES ({placeholders})"), values)
    engine.dispose()


def test_photoqa_db_upgrade_command(tmp_path):
    from cli import main

    db = tmp_path / "cmd.db"
    old = open_engine("sqlite:///" + str(db))
    migrate.upgrade(old, "0001")  # an old database (a missing one is refused, not created)
    old.dispose()
    result = CliRunner().invoke(main, ["--db", str(db), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert migrate.head_revision() in result.output
    engine = open_engine("sqlite:///" + str(db))
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


# ---- PostgreSQL (when $PHOTOQA_TEST_PG_URL names a database we may write; .ci/run sets it) ----

import os  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

PG_URL = os.environ.get("PHOTOQA_TEST_PG_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)")


@pytest.fixture(scope="module")
def pg_url():
    """The test database with a fresh schema of our own first on the search path."""
    if not PG_URL:
        pytest.skip("set PHOTOQA_TEST_PG_URL")
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@needs_pg
def test_pg_upgrade_from_empty_and_models_match(pg_url):
    engine = open_engine(pg_url)
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade(engine) == migrate.head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], diff


INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)


@needs_pg
@settings(max_examples=40, deadline=None)
@given(INT64, INT64)
def test_pg_hamming_equals_python(pg_url, a, b):
    from indexer.measure import hashes

    engine = _pg_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT hamming(:a, :b)"), {"a": a, "b": b}).scalar() == hashes.hamming(a, b)


_ENGINES: dict = {}


def _pg_engine(url):
    if url not in _ENGINES:
        _ENGINES[url] = open_engine(url)
        migrate.upgrade(_ENGINES[url])
    return _ENGINES[url]


@needs_pg
def test_pg_index_then_sql_is_read_only(pg_url, tmp_path):
    import imagefiles as F
    from cli import main
    from indexer.pipeline.run import index_paths
    from indexer.session import open_session

    for i in range(3):
        F.write_jpeg(tmp_path / "p" / f"{i}.jpg", F.scene(i))
    F.write(tmp_path / "p" / "bad.jpg", b"")
    session = open_session(pg_url)
    summary = index_paths([tmp_path / "p"], session.store, session.settings.index, workers=1)
    assert (summary.indexed, summary.failed) == (3, 1)
    assert index_paths([tmp_path / "p"], session.store, session.settings.index, workers=1).unchanged == 4
    session.engine.dispose()
    runner = CliRunner()
    ok = runner.invoke(main, ["--db", pg_url, "sql", "SELECT count(*) AS n, min(hamming(phash, phash)) AS z "
                                                     "FROM images", "--format", "json"])
    assert ok.exit_code == 0, ok.output
    assert '"n": 3' in ok.output and '"z": 0' in ok.output
    refused = runner.invoke(main, ["--db", pg_url, "sql", "DELETE FROM images"])
    assert refused.exit_code == 4, refused.output
    again = runner.invoke(main, ["--db", pg_url, "sql", "SELECT count(*) FROM images", "--format", "csv"])
    assert again.output.splitlines()[-1] == "3"


def _open_at_once(path: str, barrier, results) -> None:
    from indexer.session import open_session

    barrier.wait()
    try:
        open_session(path).engine.dispose()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}"[:200])


def test_processes_opening_a_new_database_at_once(tmp_path):
    # a daemon and an `index` started together on a new database: all of them must open it
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    path = str(tmp_path / "fresh.db")
    procs = [ctx.Process(target=_open_at_once, args=(path, barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcomes == ["ok"] * 3
    engine = fresh_engine(tmp_path, "fresh.db")
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_upgrade_from_0002_marks_existing_images_matched(tmp_path):
    """Rows stored before 0003 were matched synchronously: they keep their pairs and are
    not matched again (matched_at = indexed_at); new rows start unmatched."""
    engine = fresh_engine(tmp_path)
    migrate.upgrade(engine, "0002")
    cols = [c.name for c in Base.metadata.tables["images"].columns if c.name not in ("id", "matched_at", "revision", *FRAME_COLUMNS)]
    values = {c: 0 for c in cols}
    values.update(path="old.jpg", sha256="0", format="JPEG", decoder="d", indexed_at="2026-11-30 10:00:00",
                  missing_since=None, captured_at=None, camera_id=None)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"),
                     values)
    assert migrate.upgrade(engine, "0005") == "0005"
    with engine.connect() as conn:
        matched, indexed = conn.execute(text("SELECT matched_at, indexed_at FROM images")).one()
    assert matched is not None and str(matched) == str(indexed)
    assert migrate.upgrade(engine) == migrate.head_revision()  # 0006: the new verdict rules match again
    with engine.connect() as conn:
        assert conn.execute(text("SELECT matched_at FROM images")).scalar() is None
        assert conn.execute(text("SELECT count(*) FROM pairs")).scalar() == 0
    engine.dispose()


def test_upgrade_from_0003_numbers_existing_rows_and_names_the_database(tmp_path):
    """0004: rows that exist get revision = id (the saved matching index's catch-up starts
    from them); every database gets its own random instance id."""
    ids = []
    for name in ("a.db", "b.db"):
        engine = fresh_engine(tmp_path, name)
        migrate.upgrade(engine, "0003")
        cols = [c.name for c in Base.metadata.tables["images"].columns if c.name not in ("id", "revision", *FRAME_COLUMNS)]
        values = {c: 0 for c in cols}
        values.update(sha256="0", format="JPEG", decoder="d", indexed_at="2026-11-30 10:00:00",
                      matched_at=None, missing_since=None, captured_at=None, camera_id=None)
        with engine.begin() as conn:
            for path in ("x.jpg", "y.jpg"):
                conn.execute(text(f"INSERT INTO images ({', '.join(cols)}) "
                                  f"VALUES ({', '.join(':' + c for c in cols)})"), {**values, "path": path})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, revision FROM images ORDER BY id")).all() == [(1, 1), (2, 2)]
            ids.append(conn.execute(text("SELECT value FROM photoqa_meta WHERE key = 'instance'")).scalar())
        engine.dispose()
    assert all(len(i) == 32 for i in ids) and ids[0] != ids[1]


@needs_pg
def test_pg_matching_starts_from_stored_rows(pg_url, tmp_path):
    """The matching stage's start-up query (driver cursor, %s parameters) on PostgreSQL:
    a copy indexed in a second run pairs with the image stored by the first."""
    import json

    from click.testing import CliRunner
    from PIL import Image

    from cli import main
    from indexer.synthetic import scenes as synth

    scene = Image.fromarray(synth.scene(31, 480, 360))
    (tmp_path / "p").mkdir()
    scene.save(tmp_path / "p" / "a.jpg", quality=92)
    Image.fromarray(synth.scene(32, 480, 360)).save(tmp_path / "p" / "b.jpg", quality=92)
    run = lambda: CliRunner().invoke(main, ["--db", pg_url, "index", str(tmp_path / "p"), "--workers", "1",
                                            "--format", "json"], catch_exceptions=False)
    assert json.loads(run().stdout)["indexed"] == 2
    scene.resize((240, 180)).save(tmp_path / "p" / "a_half.jpg", quality=85)
    first = run()
    assert json.loads(first.stdout)["indexed"] == 1 and "failed on" not in first.output
    engine = open_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT a.path, b.path, p.verdict FROM pairs p JOIN images a ON a.id = p.a_id "
                                 "JOIN images b ON b.id = p.b_id")).all()
        unmatched = conn.execute(text("SELECT count(*) FROM images WHERE matched_at IS NULL")).scalar()
    engine.dispose()
    assert [(a.rsplit("/", 1)[1], b.rsplit("/", 1)[1], v) for a, b, v in rows] == [("a.jpg", "a_half.jpg", "derived")]
    assert unmatched == 0


@needs_pg
def test_pg_saved_matching_index_catches_up(pg_url, tmp_path, monkeypatch):
    """On PostgreSQL the saved index is found, loaded and brought up to date (the
    changed-rows statement: UNION ALL of rows and counters, %s parameters): a copy
    indexed in a later run pairs with an image the first run stored, a deleted file's
    row leaves the index."""
    import json

    from click.testing import CliRunner
    from PIL import Image

    from cli import main
    from indexer.pipeline import matchindex
    from indexer.synthetic import scenes as synth

    saved = tmp_path / "pg.match-index"
    (tmp_path / "photoqa.toml").write_text(f'[match]\nindex_file = "{saved}"\nindex_file_min = 0\n'
                                           "index_file_resave = 0\n")
    monkeypatch.setenv("PHOTOQA_CONFIG", str(tmp_path / "photoqa.toml"))
    hows = []
    real_open = matchindex.IndexKeeper.open
    monkeypatch.setattr(matchindex.IndexKeeper, "open", lambda self: hows.append(
        (started := real_open(self)).how) or started)
    photos = tmp_path / "p"
    photos.mkdir()
    scene = Image.fromarray(synth.scene(41, 480, 360))
    scene.save(photos / "a.jpg", quality=92)
    Image.fromarray(synth.scene(42, 480, 360)).save(photos / "b.jpg", quality=92)
    run = lambda: json.loads(CliRunner().invoke(main, ["--db", pg_url, "index", str(photos), "--workers", "1",
                                                       "--format", "json"], catch_exceptions=False).stdout)
    assert run()["indexed"] == 2 and saved.exists()
    scene.resize((240, 180)).save(photos / "a_half.jpg", quality=85)
    (photos / "b.jpg").unlink()
    assert run()["indexed"] == 1
    assert hows == ["built (no saved index)", "loaded"]
    engine = open_engine(pg_url)
    with engine.connect() as conn:
        mine = f"{photos}/%"  # the schema may hold other tests' rows
        rows = conn.execute(text("SELECT a.path, b.path, p.verdict FROM pairs p JOIN images a ON a.id = p.a_id "
                                 "JOIN images b ON b.id = p.b_id WHERE a.path LIKE :m"), {"m": mine}).all()
        present = conn.execute(text("SELECT id FROM images WHERE missing_since IS NULL")).scalars().all()
    engine.dispose()
    assert [(a.rsplit("/", 1)[1], b.rsplit("/", 1)[1], v) for a, b, v in rows] == [("a.jpg", "a_half.jpg", "derived")]
    from indexer.match import snapshot

    state, info = snapshot.read(saved)  # saved at the end of the second run: up to date
    assert sorted(state["held.ids"].tolist()) == sorted(present) and info["mark"]["present"] == len(present)
