"""Near-duplicates among array frames (issue 18): a mirrored, a resized and a shifted copy
of a train frame planted in a (N, 1, 96, 96) test stack are the leaks `photoqa leakage`
reports, with the photos' verdicts; different frames give nothing; 7x7 frames are never
near-duplicate matched ([stacks] match_min_side)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from indexer.stacks import screen
from indexer.stacks.resample import resize


def run(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


def smooth_frames(n: int, seed: int, size: int = 96) -> np.ndarray:
    """float32 (n, 1, size, size) on 0..1: random 6x6 fields resized up, with grain."""
    rng = np.random.default_rng(seed)
    fine = resize(rng.random((n, 6, 6)), size, size) + 0.03 * rng.standard_normal((n, size, size))
    return np.clip(fine, 0, 1).astype(np.float32)[:, None]


def plant(train: np.ndarray, test: np.ndarray) -> dict[int, int]:
    """test frame -> the train frame it copies: mirrored, resized (to 64 px and back), shifted 3 px."""
    test[40, 0] = train[5, 0, :, ::-1]
    test[80, 0] = np.clip(resize(resize(train[6:7, 0].astype(np.float64), 64, 64), 96, 96), 0, 1)[0]
    test[120, 0, :, 3:] = train[7, 0, :, :-3]
    test[120, 0, :, :3] = train[7, 0, :, :1]
    return {40: 5, 80: 6, 120: 7}


def split_stacks(root: Path, n: int, planted: bool) -> dict[int, int]:
    train, test = smooth_frames(n, 1), smooth_frames(n, 2)
    copies = plant(train, test) if planted else {}
    for name, data in (("train", train), ("test", test)):
        (root / name).mkdir(parents=True)
        np.save(root / name / f"{name}.npy", data)
    return copies


def leaks(root: Path, db: Path) -> tuple[int, list[dict]]:
    result = run(db, "leakage", root / "train", root / "test", "--format", "json", "-j", "1")
    report = json.loads(result.stdout)
    return result.exit_code, [x for pairs in report["pairs"].values() for x in pairs]


def frame_of(path: str) -> int:
    return int(path.rpartition("#")[2])


def check_planted(tmp_path: Path, n: int) -> None:
    copies = split_stacks(tmp_path / "p", n, planted=True)
    code, found = leaks(tmp_path / "p", tmp_path / "p.db")
    assert code == 5
    got = {frame_of(x["path_a"]): (frame_of(x["path_b"]), x["verdict"]) for x in found}
    assert got == {t: (s, "derived") for t, s in copies.items()}  # path_a: test (sorted split names)
    words = {frame_of(x["path_a"]): x["description"] for x in found}
    assert "mirrored" in words[40] and "shifted" in words[120]
    assert next(x for x in found if frame_of(x["path_a"]) == 40)["transform"] == "flip_h"


def test_planted_frame_copies_leak_and_nothing_else(tmp_path):
    check_planted(tmp_path, 300)
    split_stacks(tmp_path / "c", 300, planted=False)
    code, found = leaks(tmp_path / "c", tmp_path / "c.db")
    assert (code, found) == (0, [])


@pytest.mark.slow
def test_planted_frame_copies_in_1800_frame_splits(tmp_path):
    check_planted(tmp_path, 1800)


def test_screen_scores_copies_high_and_other_frames_low():
    f = (smooth_frames(40, 3)[:, 0] * 255).astype(np.uint8)
    copies = [(f[0], f[0][:, ::-1], "flip_h"), (f[1], np.roll(f[1], 3, axis=1), "identity")]
    others = [(f[i], f[i + 1], "identity") for i in range(2, 38)]
    scores = screen.screen(copies + others)
    assert (scores[:2] >= 0.9).all()
    assert (scores[2:] < screen.MIN_CORRELATION).all()


def test_frames_below_match_min_side_get_exact_pairs_only(tmp_path):
    """40x40 frames: a mirrored frame pairs as derived with the default match_min_side
    (32); with match_min_side = 64 (photoqa.toml) only the equal frames pair."""
    s = smooth_frames(60, 4, size=40)
    s[20] = s[10]
    s[30, 0] = s[11, 0, :, ::-1]
    verdicts = {}
    for name, setting in (("default", ""), ("high", "[stacks]\nmatch_min_side = 64\n")):
        folder = tmp_path / name
        (folder / "in").mkdir(parents=True)
        np.save(folder / "in" / "det.npy", s)
        (folder / "photoqa.toml").write_text(setting)
        db = folder / "t.db"
        assert run(db, "index", folder / "in", "-j", "1").exit_code == 0
        rows = sqlite3.connect(db).execute("SELECT a.frame, b.frame, p.verdict FROM pairs p JOIN images a "
                                           "ON a.id = p.a_id JOIN images b ON b.id = p.b_id").fetchall()
        verdicts[name] = sorted(rows)
    assert verdicts["default"] == [(10, 20, "same_pixels"), (11, 30, "derived")]
    assert verdicts["high"] == [(10, 20, "same_pixels")]


def test_manifest_names_stack_files_and_their_frames_take_the_split(tmp_path):
    """train.npy and test.npy side by side, split by a manifest of the two files."""
    train, test = smooth_frames(60, 1), smooth_frames(60, 2)
    test[40, 0] = train[5, 0, :, ::-1]
    for name, data in (("train", train), ("test", test)):
        np.save(tmp_path / f"{name}.npy", data)
    manifest = tmp_path / "splits.csv"
    manifest.write_text("path,split\ntrain.npy,train\ntest.npy,test\n")
    result = run(tmp_path / "m.db", "leakage", "--manifest", manifest, "--format", "json", "-j", "1")
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    assert report["splits"] == {"test": 60, "train": 60}
    [leak] = report["pairs"]["test/train"]
    assert (frame_of(leak["path_a"]), frame_of(leak["path_b"]), leak["verdict"]) == (40, 5, "derived")
