"""Near-duplicates among array frames (issue 18): a mirrored, a resized and a shifted copy
of a train frame planted in a (N, 1, 96, 96) test stack are the leaks `photoqa leakage`
reports, with the photos' verdicts; different frames give nothing; 7x7 frames are never
near-duplicate matched ([stacks] match_min_side); frames of a dataset that copy photos of
a folder are leaks whichever was indexed first."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from PIL import Image

from cli import main
from imagefiles import scene
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


def photos_and_dataset(root: Path, planted: bool) -> dict[int, str]:
    """12 PNG photos 128x96 in root/photos and a (30, 3, 96, 128) uint8 stack in
    root/data; planted: frame 5 holds photo 3's pixels, frame 9 photo 7 mirrored, frame
    20 photo 10 halved and enlarged again. Returns frame -> photo name."""
    (root / "photos").mkdir(parents=True)
    (root / "data").mkdir()
    photos = [scene(500 + i, 128, 96) for i in range(12)]
    for i, rgb in enumerate(photos):
        Image.fromarray(rgb).save(root / "photos" / f"p{i}.png")
    stack = np.stack([scene(700 + i, 128, 96) for i in range(30)]).transpose(0, 3, 1, 2).copy()
    copies = {}
    if planted:
        stack[5] = photos[3].transpose(2, 0, 1)
        stack[9] = photos[7][:, ::-1].transpose(2, 0, 1)
        halved = Image.fromarray(photos[10]).resize((64, 48), Image.Resampling.LANCZOS)
        stack[20] = np.asarray(halved.resize((128, 96), Image.Resampling.LANCZOS)).transpose(2, 0, 1)
        copies = {5: "p3.png", 9: "p7.png", 20: "p10.png"}
    np.save(root / "data" / "set.npy", stack)
    return copies


@pytest.mark.parametrize("first", ["photos", "data"])
def test_dataset_frames_that_copy_photos_are_leaks_whichever_came_first(tmp_path, first):
    """The frames are matched against the photos when the stack is indexed after them
    (stackrun.match_frames), the photos against the frames when they come after (the
    photos' matching): the 3 planted copies are the leaks, exit 5; the exact copy is
    ``same_pixels`` (the frame's pixel digest is the one the photo's pixels get), the
    mirrored and resized ones ``derived``."""
    copies = photos_and_dataset(tmp_path, planted=True)
    db = tmp_path / "l.db"
    for folder in (first, "photos" if first == "data" else "data"):
        assert run(db, "index", tmp_path / folder, "-j", "1").exit_code == 0
    result = run(db, "leakage", tmp_path / "photos", tmp_path / "data", "--format", "json", "-j", "1")
    assert result.exit_code == 5, result.output
    [(pair, found)] = json.loads(result.stdout)["pairs"].items()
    assert pair == "data/photos"
    got = {frame_of(x["path_a"]): (Path(x["path_b"]).name, x["verdict"]) for x in found}
    assert got == {f: (name, "same_pixels" if f == 5 else "derived") for f, name in copies.items()}
    assert "mirrored" in next(x for x in found if frame_of(x["path_a"]) == 9)["description"]


def test_dataset_and_photos_without_copies_do_not_leak(tmp_path):
    photos_and_dataset(tmp_path, planted=False)
    db = tmp_path / "l.db"
    assert run(db, "index", tmp_path / "photos", "-j", "1").exit_code == 0
    result = run(db, "leakage", tmp_path / "photos", tmp_path / "data", "--format", "json", "-j", "1")
    assert result.exit_code == 0, result.output
    assert [x for pairs in json.loads(result.stdout)["pairs"].values() for x in pairs] == []


def test_a_frame_has_the_pixel_digest_of_a_png_holding_its_pixels(tmp_path):
    """decode.array_pixel_digest of uint8 grey, (1, H, W), RGB (channels first) and uint16
    grey frames equals decode.pixel_digest of a PNG of those pixels; one value changed,
    or the RGB frame read as if interleaved, no longer does; float frames have none."""
    from indexer import decode

    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (24, 40), dtype=np.uint8)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    deep = rng.integers(0, 65536, (24, 40), dtype=np.uint16)
    for name, pixels, frame in (("g", grey, grey), ("g1", grey, grey[None]), ("rgb", rgb, rgb.transpose(2, 0, 1)),
                                ("deep", deep, deep)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        assert decode.array_pixel_digest(frame) == decode.pixel_digest(tmp_path / f"{name}.png"), name
        other = frame.copy()
        other.flat[7] ^= 1
        assert decode.array_pixel_digest(other) != decode.pixel_digest(tmp_path / f"{name}.png"), name
    interleaved_as_planes = np.ascontiguousarray(rgb).reshape(3, 24, 40)
    assert decode.array_pixel_digest(interleaved_as_planes) != decode.pixel_digest(tmp_path / "rgb.png")
    assert decode.array_pixel_digest(grey.astype(np.float32) / 255) is None
