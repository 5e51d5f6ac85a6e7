"""`photoqa leakage`: planted cross-split copies (an exact copy, a resize, a mirror) are
exactly what is reported, with exit 5; without them exit 0."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from imagefiles import scene


def run(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    train, test = root / "train", root / "test"
    train.mkdir()
    test.mkdir()
    for i in range(6):
        Image.fromarray(scene(100 + i, 320, 240)).save(train / f"t{i}.png")
    for i in range(4):
        Image.fromarray(scene(200 + i, 320, 240)).save(test / f"v{i}.png")
    return root


def plant(root: Path) -> set[tuple[str, str]]:
    test, train = root / "test", root / "train"
    shutil.copy(train / "t0.png", test / "copy.png")
    Image.open(train / "t1.png").resize((200, 150), Image.Resampling.LANCZOS).save(test / "resized.png")
    Image.open(train / "t2.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(test / "mirror.png")
    return {("copy.png", "t0.png"), ("resized.png", "t1.png"), ("mirror.png", "t2.png")}


def test_clean_splits_exit_zero(splits, tmp_path):
    result = run(tmp_path / "c.db", "leakage", splits / "train", splits / "test", "-j", "1")
    assert result.exit_code == 0, result.output
    assert "verdict: clean" in result.stdout


def test_planted_copies_are_exactly_the_leaks(splits, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(splits, root)
    planted = plant(root)
    result = run(tmp_path / "l.db", "leakage", root / "train", root / "test", "--format", "json", "-j", "1")
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "leakage" and report["splits"] == {"test": 7, "train": 6}
    (pair_key, leaks), = report["pairs"].items()
    assert pair_key == "test/train"
    assert {(Path(x["path_a"]).name, Path(x["path_b"]).name) for x in leaks} == planted
    assert all(x["verdict"] in ("same_file", "same_pixels", "derived") for x in leaks)
    # a manifest naming the same splits gives the same answer, without indexing again
    manifest = root / "splits.csv"
    rows = ["path,split"] + [f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.glob("*/*.png"))]
    manifest.write_text("\n".join(rows) + "\n")
    again = run(tmp_path / "l.db", "leakage", "--manifest", manifest, "--no-index", "--format", "json")
    assert again.exit_code == 5 and json.loads(again.stdout)["leaks"] == 3


def test_bad_usage_is_one_line(tmp_path, splits):
    assert run(tmp_path / "u.db", "leakage").exit_code == 2
    assert run(tmp_path / "u.db", "leakage", splits / "train", "--verdicts", "nope").exit_code == 2
    bad = tmp_path / "m.json"
    bad.write_text("[1, 2]")
    assert run(tmp_path / "u.db", "leakage", "--manifest", bad).exit_code == 2


def test_frames_across_splits_leak_too(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (5, 16, 16), dtype=np.uint8)
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    np.save(tmp_path / "train" / "x.npy", a)
    np.save(tmp_path / "test" / "x.npy", a[2:3])
    result = run(tmp_path / "f.db", "leakage", tmp_path / "train", tmp_path / "test", "--format", "json", "-j", "1")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["leaks"] == 1
