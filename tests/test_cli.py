"""The command line: read-only sql, output formats, help text, README coverage, demo."""
from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cli
import imagefiles as F
from cli import main
from indexer.pipeline.run import index_paths
from indexer.session import open_session

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def indexed_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    photos = root / "photos"
    for i in range(3):
        F.write_jpeg(photos / f"p{i}.jpg", F.scene(i))
    F.write(photos / "bad.jpg", b"\xff\xd8\xff")
    db = root / "photoqa.db"
    session = open_session(str(db))
    index_paths([photos], session.store, session.settings.index, workers=1)
    session.engine.dispose()
    return db


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def snapshot(db: Path) -> list:
    """Every row of every table, plus the schema: what 'unchanged' means."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        out = [tuple(r) for r in con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")]
        for t in tables:
            out.append((t, sorted(map(repr, con.execute(f'SELECT * FROM "{t}"')))))
        return out
    finally:
        con.close()


WRITES = [
    "INSERT INTO failures (path, kind, message, failed_at, attempts) VALUES ('x', 'k', 'm', '2020-01-01', 1)",
    "UPDATE images SET path = 'elsewhere'",
    "DELETE FROM images",
    "DROP TABLE images",
    "CREATE TABLE evil (a INTEGER)",
    "CREATE INDEX ix_evil ON images (ev)",
    "DELETE FROM cameras RETURNING id",
    "WITH doomed AS (SELECT id FROM images) DELETE FROM images WHERE id IN (SELECT id FROM doomed)",
    "PRAGMA user_version = 7",
    "ALTER TABLE images ADD COLUMN evil INTEGER",
]


@pytest.mark.parametrize("statement", WRITES)
def test_sql_refuses_writes(indexed_db, statement):
    before = snapshot(indexed_db)
    result = invoke("--db", str(indexed_db), "sql", statement)
    assert result.exit_code == cli.EXIT_REFUSED == 4, result.output
    assert "read-only" in result.output or "only reads" in result.output
    assert snapshot(indexed_db) == before


@pytest.mark.parametrize("statement", ["ATTACH DATABASE '{dir}/side.db' AS side", "VACUUM INTO '{dir}/copy.db'"])
def test_sql_creates_no_files(indexed_db, statement):
    folder = indexed_db.parent
    before = sorted(p.name for p in folder.iterdir())
    result = invoke("--db", str(indexed_db), "sql", statement.format(dir=folder))
    assert result.exit_code == cli.EXIT_REFUSED, result.output
    assert sorted(p.name for p in folder.iterdir()) == before


def test_sql_error_is_exit_1(indexed_db):
    result = invoke("--db", str(indexed_db), "sql", "SELECT nope FROM nowhere")
    assert result.exit_code == cli.EXIT_ERROR
    assert "no such" in result.output


def test_sql_on_missing_database(tmp_path):
    result = invoke("--db", str(tmp_path / "absent.db"), "sql", "SELECT 1")
    assert result.exit_code == cli.EXIT_ERROR
    assert not (tmp_path / "absent.db").exists()


QUERY = "SELECT substr(path, -6) AS file, width, hamming(phash, phash) AS zero FROM images ORDER BY path"


def test_sql_table(indexed_db):
    result = invoke("--db", str(indexed_db), "sql", QUERY)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.split(r"\s+", lines[0].strip()) == ["file", "width", "zero"]
    assert [re.split(r"\s+", line.strip()) for line in lines[1:]] == \
        [["p0.jpg", "160", "0"], ["p1.jpg", "160", "0"], ["p2.jpg", "160", "0"]]


def test_sql_json(indexed_db):
    result = invoke("--db", str(indexed_db), "sql", QUERY, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"file": f"p{i}.jpg", "width": 160, "zero": 0} for i in range(3)]


def test_sql_csv(indexed_db):
    result = invoke("--db", str(indexed_db), "sql", QUERY, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.output))) == \
        [["file", "width", "zero"]] + [[f"p{i}.jpg", "160", "0"] for i in range(3)]


def test_sql_blobs_and_failures(indexed_db):
    result = invoke("--db", str(indexed_db), "sql", "SELECT kind, length(message) > 0 AS has_message, "
                    "phash_d4 FROM failures LEFT JOIN images USING (path)", "--format", "json")
    assert json.loads(result.output) == [{"kind": "corrupt", "has_message": 1, "phash_d4": None}]
    result = invoke("--db", str(indexed_db), "sql", "SELECT phash_d4 FROM images LIMIT 1", "--format", "json")
    assert json.loads(result.stdout) == [{"phash_d4": "<64 bytes>"}]


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


ALL_COMMANDS = [()] + [path for path, _ in _commands(main)]


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "photoqa")
def test_every_command_has_help_with_an_example(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output, f"`photoqa {' '.join(path)} --help` shows no example"


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "photoqa")
def test_every_option_is_explained(path):
    command = main
    for name in path:
        command = command.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert param.help, f"photoqa {' '.join(path)} {param.opts[0]} has no help"


def test_every_top_level_command_is_in_the_readme():
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    text = readme.read_text(encoding="utf-8")
    missing = [name for name in main.commands if f"photoqa {name}" not in text]
    assert not missing, f"README.md does not mention: {missing}"
    for path, _ in _commands(main):
        if len(path) > 1:
            assert "photoqa " + " ".join(path) in text, path


def test_exit_codes_are_distinct_named_constants():
    codes = {name: getattr(cli, name) for name in dir(cli) if name.startswith("EXIT_")}
    assert codes["EXIT_OK"] == 0 and codes["EXIT_REFUSED"] == 4
    # issue 18 fixes `leakage`'s code at 5 (CI gates expect it); only `watch` uses EXIT_BUSY
    assert codes.pop("EXIT_LEAKAGE") == 5 == codes["EXIT_BUSY"]
    assert len(set(codes.values())) == len(codes)


def test_demo_runs_and_reports_the_broken_file(tmp_path):
    folder = tmp_path / "demo"
    result = invoke("demo", str(folder), "--workers", "1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "failures" in out
    failure_lines = [line for line in out[out.index("failures"):].splitlines() if "broken.jpg" in line]
    assert failure_lines and re.search(r"truncated|corrupt", failure_lines[0])
    assert (folder / "photoqa.db").exists()
    con = sqlite3.connect(folder / "photoqa.db")
    try:
        indexed = {p for (p,) in con.execute("SELECT path FROM images")}
        failed = {p for (p,) in con.execute("SELECT path FROM failures")}
    finally:
        con.close()
    assert failed == {str((folder / "broken.jpg").resolve())}
    # every picture the demo wrote (later capabilities add their own) was indexed
    pictures = {str(p.resolve()) for p in folder.rglob("*")
                if p.suffix.lower() in (".jpg", ".png", ".tif", ".tiff") and p.name != "broken.jpg"
                and not p.parent.name.endswith(".sensors")}
    assert len(pictures) >= 13 and pictures <= indexed


def test_config_command_and_bad_config(tmp_path):
    good = F.write(tmp_path / "good.toml", b"[index]\nwork_size = 300\n")
    result = invoke("--db", str(tmp_path / "x.db"), "--config", str(good), "config", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["index"]["work_size"] == 300
    bad = F.write(tmp_path / "bad.toml", b"[index]\nwork_sise = 300\n")
    result = invoke("--db", str(tmp_path / "x.db"), "--config", str(bad), "config")
    assert result.exit_code == cli.EXIT_ERROR
    assert "work_sise" in result.output


def test_index_strict_exit_code(tmp_path):
    F.write(tmp_path / "p" / "bad.jpg", b"")
    F.write_jpeg(tmp_path / "p" / "ok.jpg")
    result = invoke("--db", str(tmp_path / "s.db"), "index", str(tmp_path / "p"), "-j", "1", "--strict")
    assert result.exit_code == cli.EXIT_FILES_FAILED, result.output


def test_output_keeps_tiny_values():
    from indexer.commands.output import plain

    assert plain(1 / 16000) == 6.25e-05  # a fast shutter must not print as 6.2e-05 or 0.0
    assert plain(0.6161671234) == 0.616167 and plain(0.0) == 0.0
    assert plain(b"\x00" * 64) == "<64 bytes>"


@pytest.mark.parametrize("folder", ["sp ace", "ha#sh", "pct%41", "q?m"])
def test_database_paths_with_url_characters(tmp_path, folder):
    # '#', '?' and '%' once moved the database elsewhere, and a read-only URI cut at '#'
    # lost mode=ro
    where = tmp_path / folder
    F.write_jpeg(where / "p" / "a.jpg")
    db = where / "x.db"
    assert invoke("--db", str(db), "index", str(where / "p"), "-j", "1").exit_code == 0
    assert db.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    result = invoke("--db", str(db), "sql", "SELECT count(*) AS n FROM images", "--format", "json")
    assert json.loads(result.output) == [{"n": 1}]
    assert invoke("--db", str(db), "sql", "DELETE FROM images").exit_code == cli.EXIT_REFUSED
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]


def test_sql_blobs_hint_and_content(tmp_path):
    import base64

    F.write_jpeg(tmp_path / "p" / "ok.jpg")
    db = str(tmp_path / "b.db")
    assert invoke("--db", db, "index", str(tmp_path / "p"), "-j", "1").exit_code == 0
    query = "SELECT thumb, hex(thumb) AS h FROM images"
    result = CliRunner().invoke(cli.main, ["--db", db, "sql", query, "--format", "csv"])
    assert result.exit_code == 0
    row = list(csv.reader(io.StringIO(result.stdout)))[1]
    assert re.fullmatch(r"<\d+ bytes>", row[0]) and "--blobs hex" in result.stderr
    for how, decode in (("hex", bytes.fromhex), ("base64", base64.b64decode)):
        result = CliRunner().invoke(cli.main, ["--db", db, "sql", query, "--format", "json",
                                                                "--blobs", how])
        (obj,) = json.loads(result.stdout)
        assert decode(obj["thumb"]) == bytes.fromhex(obj["h"]) and result.stderr == ""


def test_index_names_failed_files(tmp_path):
    for i in range(7):
        F.write(tmp_path / "p" / f"bad{i}.jpg", b"")
    F.write_jpeg(tmp_path / "p" / "ok.jpg")
    result = CliRunner().invoke(cli.main, ["--db", str(tmp_path / "f.db"), "index", str(tmp_path / "p"), "-j", "1"])
    assert result.exit_code == 0
    named = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(named) == 5 and all(".jpg (empty: zero-byte file)" in line for line in named)
    assert result.stderr.splitlines()[-1] == '2 more: photoqa sql "SELECT path, kind, message FROM failures"'
    assert "failed: 7" in result.stdout


# Modules the read commands must not import, with their start-up cost measured on the
# development machine (python -X importtime, CPU): scipy ~0.6 s, numba ~0.7 s, rawpy,
# dask and the web stack of `serve`; alembic (only a migration needs it); NumPy ~0.12 s
# and Pillow ~0.04 s (reading settings, heartbeats, pairs and groups needs neither).
HEAVY_FOR_READS = ("scipy", "numba", "rawpy", "dask", "distributed", "alembic", "starlette", "uvicorn", "jinja2", "numpy",
                   "PIL")


@pytest.fixture(scope="module")
def grouped_db(tmp_path_factory) -> Path:
    """A database indexed by `photoqa index` (every stage): a photo, its byte copy (one
    group) and another photo."""
    root = tmp_path_factory.mktemp("grouped")
    photos = root / "photos"
    F.write_jpeg(photos / "p0.jpg", F.scene(0))
    F.write(photos / "p0_copy.jpg", (photos / "p0.jpg").read_bytes())
    F.write_jpeg(photos / "p1.jpg", F.scene(1))
    db = root / "photoqa.db"
    result = CliRunner().invoke(main, ["--db", str(db), "index", str(photos), "-j", "1"])
    assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize("command, shows", [
    (["sql", "select path from images order by path"], "p1.jpg"), (["status"], "indexed"),
    (["dupes"], "p0_copy.jpg"), (["dupes", "--format", "json"], "p0_copy.jpg"),
    (["dupes", "--format", "csv"], "p0_copy.jpg"), (["dupes", "--related"], "")])
def test_read_commands_start_without_heavy_modules(grouped_db, command, shows):
    """``sql``, ``status`` and ``dupes`` on an indexed database (with a group to list)
    import none of :data:`HEAVY_FOR_READS`: those cost seconds at start-up and these
    commands need none of them (issue 13 item 4: they answer in <= 0.5 s)."""
    import subprocess
    import sys

    db = grouped_db
    # on a SQLite file sql runs through the stdlib sqlite3 (db.sqlite_ro), status and dupes
    # through db.sqlite_reads: not even SQLAlchemy
    heavy = HEAVY_FOR_READS + ("sqlalchemy",)
    code = ("import sys\nfrom cli import main\n"
            f"try:\n    main({['--db', str(db), *command]!r})\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert shows in out.stdout, out.stdout + out.stderr  # the command did its work
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
