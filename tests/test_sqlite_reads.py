"""`status` and `dupes` read a SQLite file by the stdlib sqlite3 (db.sqlite_reads): the
same answers as the SQLAlchemy queries on a planted database, and the CLI falls back to
SQLAlchemy where a writer must open the file first."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import imagefiles as F
from cli import main
from db import heartbeat as hb
from db.migrate import newest_revision
from db.sqlite_reads import SqliteReads, open_reader
from indexer.commands import dupes as report_of
from indexer.session import open_session
from indexer.watch.status import status, status_of


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Three scenes; scene 0 with a byte copy, a half-size copy and a mirrored copy, scene 1
    with a half-size copy whose partner is then deleted (a missing image), a 'keep'
    decision, a failure (a broken file) and a daemon heartbeat."""
    root = tmp_path_factory.mktemp("reads")
    photos = root / "photos"
    for i in range(3):
        F.write_jpeg(photos / f"p{i}.jpg", F.scene(i, 320, 240))
    F.write(photos / "p0_copy.jpg", (photos / "p0.jpg").read_bytes())
    img = Image.open(photos / "p0.jpg")
    img.resize((160, 120), Image.LANCZOS).save(photos / "p0_half.jpg", quality=90)
    img.transpose(Image.FLIP_LEFT_RIGHT).save(photos / "p0_mirror.jpg", quality=90)
    Image.open(photos / "p1.jpg").resize((160, 120), Image.LANCZOS).save(photos / "p1_half.jpg", quality=90)
    F.write(photos / "broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg")
    db = root / "photoqa.db"
    runner = CliRunner()
    assert runner.invoke(main, ["--db", str(db), "index", str(photos), "-j", "1"]).exit_code in (0, 1)
    assert runner.invoke(main, ["--db", str(db), "dupes", "--keep", str(photos / "p0_half.jpg")]).exit_code == 0
    (photos / "p1.jpg").unlink()
    assert runner.invoke(main, ["--db", str(db), "index", str(photos), "-j", "1"]).exit_code in (0, 1)
    session = open_session(str(db))
    hb.register(session.engine, host="elsewhere", pid=4242, roots=[str(photos), "/srv/x"])
    return db


def test_reads_equal_sqlalchemy_queries(planted):
    from db import pairs as dbpairs
    from db.queries import pair_overlaps

    session = open_session(str(planted), readonly=True, upgrade=False)
    with SqliteReads(planted, busy_timeout_ms=1000) as reads:
        pairs = reads.all_pairs()
        assert pairs and [tuple(p) for p in pairs] == [tuple(p) for p in dbpairs.all_pairs(session.engine)]
        ids = {p.a for p in pairs} | {p.b for p in pairs}
        some = sorted(ids)[:2]
        assert [tuple(p) for p in reads.all_pairs(among=some)] == \
               [tuple(p) for p in dbpairs.all_pairs(session.engine, among=some)]
        infos = reads.keeper_infos(ids)
        assert any(i.keep for i in infos.values())  # the planted decision is read
        assert infos == dbpairs.keeper_infos(session.engine, ids)
        assert reads.paths(ids) == dbpairs.paths(session.engine, ids)
        assert reads.pair_overlaps() == pair_overlaps(session.engine)
        assert reads.pair_overlaps(among=some) == pair_overlaps(session.engine, among=some)
        counts = reads.counts()
        assert counts.missing == 1 and counts.failed == 1  # the planted deletion and broken file
        assert counts == hb.counts(session.engine)
        assert reads.active_daemons() == hb.active_daemons(session.engine)
        assert status_of(counts, reads.active_daemons()).as_dict() == status(session.engine).as_dict()


@pytest.mark.parametrize("kind", ["groups", "related"])
def test_reports_equal_on_both_roads(planted, kind):
    session = open_session(str(planted), readonly=True, upgrade=False)
    with SqliteReads(planted, busy_timeout_ms=1000) as reads:
        lite = report_of.SqliteSession(session.settings, reads)
        if kind == "groups":
            fast = report_of.dupes_report(lite, sort="count")
            slow = report_of.dupes_report(session, sort="count")
            assert fast["groups"] and fast["groups"][0]["keeper"].endswith("p0_half.jpg")  # the decision
        else:
            fast, slow = report_of.related_report(lite), report_of.related_report(session)
    assert fast == slow


@pytest.mark.parametrize("args", [["status"], ["status", "--format", "json"], ["dupes"], ["dupes", "--format", "json"],
                                  ["dupes", "--format", "csv"], ["dupes", "--related"],
                                  ["dupes", "--sort", "path", "--absolute", "--min-size", "3"]])
def test_cli_output_is_the_sqlalchemy_output(planted, args, monkeypatch):
    """The command's output with the stdlib road and with it turned off (SQLAlchemy)."""
    import cli

    runner = CliRunner()
    fast = runner.invoke(main, ["--db", str(planted), *args])
    monkeypatch.setattr(cli, "_read_sqlite", lambda *a, **k: None)
    slow = runner.invoke(main, ["--db", str(planted), *args])
    assert fast.exit_code == slow.exit_code == 0
    assert fast.output == slow.output and fast.output.strip()


def test_writer_first_when_not_at_head_or_regroup_due(planted, tmp_path):
    """A database behind the newest schema, or whose groups another rule computed, is
    not read here: the command opens its SQLAlchemy session (which migrates/rebuilds)."""
    copy = tmp_path / "copy.db"
    with sqlite3.connect(planted) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the file alone would miss what is still in its WAL
    head = newest_revision()
    session = open_session(str(copy), readonly=True, upgrade=False)
    key = session.settings.group_rule().key()
    reader = open_reader(copy, busy_timeout_ms=1000, newest_revision=head, group_key=key)
    assert reader is not None
    reader.close()
    assert open_reader(copy, busy_timeout_ms=1000, newest_revision=head, group_key=key + "x") is None
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert open_reader(copy, busy_timeout_ms=1000, newest_revision=head) is None
    assert head != "0001"  # the planted revision is an older one
    assert open_reader(tmp_path / "absent.db", busy_timeout_ms=1000, newest_revision=head) is None
