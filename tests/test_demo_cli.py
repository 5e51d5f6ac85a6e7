"""`photoqa demo` with a hostile photoqa.toml in its folder, and the docs/SCHEMA.md
example queries checked on databases with known answers."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import ExifTags, Image

from cli import main
from indexer.synthetic import scenes as synth

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "SCHEMA.md"


def schema_query(title: str) -> str:
    """The example query under ``-- title`` in docs/SCHEMA.md."""
    text = SCHEMA.read_text(encoding="utf-8")
    match = re.search(r"^-- " + re.escape(title) + r".*?\n(.*?;)", text, re.M | re.S)
    assert match, title
    return match.group(1)


def sql(db: Path, statement: str) -> list[list[str]]:
    result = CliRunner().invoke(main, ["--db", str(db), "sql", statement, "--format", "csv"])
    assert result.exit_code == 0, result.output
    return [line.split(",") for line in result.stdout.strip().splitlines()[1:]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    (folder / "photoqa.toml").write_text("[sensor]\nenabled = false\n[match]\nenabled = false\n")
    result = CliRunner().invoke(main, ["demo", str(folder), "-j", "1"])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_demo_ignores_the_folders_settings(demo):
    folder, output = demo
    sensors = output.split("\nsensors\n", 1)[1]
    assert "Photoqa Demo Cam" in sensors.splitlines()[1]
    assert "duplicate group" in output
    assert (folder / "photoqa.toml").read_text().startswith("[sensor]\nenabled = false")


def test_byte_identical_copies_query_skips_missing_files(demo, tmp_path):
    folder, _ = demo
    work = tmp_path / "demo"
    shutil.copytree(folder, work, ignore=shutil.ignore_patterns("photoqa.db*"))
    db = work / "photoqa.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(work), "-j", "1"]).exit_code == 0
    query = schema_query("byte-identical copies")
    (row,) = sql(db, query)
    assert row[1] == "2" and row[2].endswith("scene0.jpg") and row[3].endswith("scene0_copy.jpg")
    (work / "scene0_copy.jpg").unlink()
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(work), "-j", "1"]).exit_code == 0
    assert sql(db, query) == []


def _shot(path: Path, seed: int, when: str) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Photoqa", "Burst Cam"
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = when
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synth.scene(seed, 160, 120)).save(path, quality=90, exif=exif.tobytes())


def test_bursts_query_counts_backups_once(tmp_path):
    photos = tmp_path / "p"
    _shot(photos / "a.jpg", 1, "2024:05:01 10:00:00")
    (photos / "backup").mkdir()
    shutil.copy(photos / "a.jpg", photos / "backup" / "a.jpg")
    _shot(photos / "lone.jpg", 2, "2024:05:01 11:00:00")
    shutil.copy(photos / "lone.jpg", photos / "backup" / "lone.jpg")
    _shot(photos / "b.jpg", 3, "2024:05:01 10:00:00")
    db = tmp_path / "b.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(photos), "-j", "1"]).exit_code == 0
    rows = sql(db, schema_query("shots taken within the same second"))
    assert [(r[1], r[2]) for r in rows] == [("2024-05-01 10:00:00", "2")]
