"""The upscale detail measure of resized pairs runs in the verification pool, never in
the writer (issue 13: the writer does not decode; indexer.pipeline.detailstage)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from cli import main
from indexer import decode
from indexer.pipeline import detailstage
from indexer.synthetic import scenes as synth


def _index(db: Path, folder: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "--workers", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _measured(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT verdict, detail_gain, detail_above FROM pairs").fetchall()


def test_a_resized_pair_is_measured_by_a_worker_not_the_writer(tmp_path, monkeypatch):
    """An original and its 1.5x bicubic upscale: the writer's ``load_grey`` raises if
    called, yet the stored pair carries both measures (computed by a pool worker: a
    fresh interpreter the patch does not reach), and they equal the measure of the two
    files computed here afterwards."""
    def not_here(*a, **k):
        raise AssertionError("the writer decoded a file for the detail measure")

    folder, db = tmp_path / "p", tmp_path / "photoqa.db"
    folder.mkdir()
    img = Image.fromarray(synth.scene(17, 600, 400))
    img.save(folder / "a.png")
    img.resize((900, 600), Image.Resampling.BICUBIC).save(folder / "a_big.png")
    (tmp_path / "photoqa.toml").write_text("[match]\nverify_workers = 1\n")
    monkeypatch.setattr(decode, "load_grey", not_here)
    _index(db, folder)
    monkeypatch.undo()
    ((verdict, gain, above),) = _measured(db)
    assert verdict == "derived"
    assert gain is not None and above is not None
    with sqlite3.connect(db) as conn:
        ids = dict(conn.execute("SELECT path, id FROM images").fetchall())
    a, big = ids[str(folder / "a.png")], ids[str(folder / "a_big.png")]
    key = (min(a, big), max(a, big))
    here = detailstage.measure_detail([(key, str(folder / "a_big.png"), str(folder / "a.png"), 1.5)], 10**9)
    assert here[key] == (gain, above)
    report = json.loads(CliRunner().invoke(main, ["--db", str(db), "dupes", "--format", "json"]).stdout)
    (group,) = report["groups"]
    assert Path(group["keeper"]).name == "a.png"  # the upscale does not win on pixels


def test_a_worker_that_cannot_decode_leaves_the_pair_unmeasured_but_stored(tmp_path):
    """A side that cannot be decoded (here: its file is gone by the time the worker
    reads it) gives no measure; the pair is stored all the same."""
    folder = tmp_path / "p"
    folder.mkdir()
    img = Image.fromarray(synth.scene(5, 300, 200))
    img.save(folder / "a.png")
    assert detailstage.measure_detail([((1, 2), str(folder / "gone.png"), str(folder / "a.png"), 1.5)], 10**9) == {}
