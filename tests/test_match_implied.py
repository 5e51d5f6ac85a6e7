"""Implied relations: a copy joining a group is not verified against the group's exposure
variants again (indexer.match.fanout.implied).

Planted answer: a picture, its exposure copy (+0.8 EV in linear light, no EXIF: a
related shot, ``exposure_variant``, in no group) and six copies (resized, mirrored,
rotated, recompressed) indexed one file at a time, every pixel verification counted.
Each copy's candidates are the group's members and the exposure copy; before, each copy
was verified against both (the exposure copy is a loose candidate of every later copy:
on bench/end_to_end.py's dense set 335 of 754 jobs). Now it joins the group through one
verification and its relation to the exposure copy is implied through the original:
five verifications fewer (the first copy finds no group yet), the same group, and the
exposure copy still related to it.
The run "before" is the same code with no verdict implying (``IMPLIED_VERDICTS = ()``).
"""
from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from cli import main
from indexer.match import fanout
from indexer.synthetic import scenes as synth
from test_match_fanout import index_one_by_one

_COPIES = {
    "c_half.jpg": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "d_mirror.jpg": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "e_rot90.png": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "f_q70.jpg": lambda im: im,
    "g_rot180.jpg": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "h_small.jpg": lambda im: im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS),
}


def _brighter(rgb: np.ndarray, ev: float) -> np.ndarray:
    """``rgb`` (uint8 sRGB) ``ev`` stops brighter in linear light."""
    v = rgb / 255.0
    lin = np.clip(np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4) * 2.0**ev, 0, 1)
    out = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def _library(src: Path) -> list[str]:
    src.mkdir(parents=True)
    rgb = synth.scene(321, 384, 288)
    original = Image.fromarray(rgb)
    original.save(src / "a_original.png")
    Image.fromarray(_brighter(rgb, 0.8)).save(src / "b_exposure.jpg", quality=92)
    for name, make in _COPIES.items():
        make(original).save(src / name, **({} if name.endswith(".png") else {"quality": 70 if "q70" in name else 90}))
    return ["a_original.png", "b_exposure.jpg", *_COPIES]


def _index_one_by_one(tmp: Path, src: Path, names: list[str], monkeypatch) -> tuple[dict, list, int]:
    """Index ``names`` one per run into a fresh database: (dupes JSON, stored pairs as
    (name, name, verdict), verifications)."""
    report, verified, db = index_one_by_one(tmp, names, src, monkeypatch)
    con = sqlite3.connect(db)
    path = {i: Path(p).name for i, p in con.execute("select id, path from images")}
    pairs = sorted((path[a], path[b], v) for a, b, v in con.execute("select a_id, b_id, verdict from pairs"))
    con.close()
    return report, pairs, verified


def test_copies_joining_a_group_are_not_verified_against_its_exposure_variant(tmp_path, monkeypatch):
    src = tmp_path / "src"
    names = _library(src)
    report, pairs, verified = _index_one_by_one(tmp_path / "now", src, names, monkeypatch)
    monkeypatch.setattr(fanout, "IMPLIED_VERDICTS", ())  # as before: every loose candidate verified
    report_before, pairs_before, verified_before = _index_one_by_one(tmp_path / "before", src, names, monkeypatch)

    groups = [sorted(Path(p).name for p in g["files"]) for g in report["groups"]]
    assert groups == [sorted(n for n in names if n != "b_exposure.jpg")], groups
    assert groups == [sorted(Path(p).name for p in g["files"]) for g in report_before["groups"]]
    related = [(a, b) for a, b, v in pairs if v == "exposure_variant"]
    related_before = [(a, b) for a, b, v in pairs_before if v == "exposure_variant"]
    # before: the exposure copy paired with the original and each of the six copies
    assert len(related_before) == 1 + len(_COPIES), pairs_before
    # now: with the original and the first copy (no group existed when it came: the
    # original was loose too); the five later copies joined the group, their relation to
    # the exposure copy implied through it
    assert related == [("a_original.png", "b_exposure.jpg"), ("b_exposure.jpg", "c_half.jpg")], pairs
    assert verified == verified_before - (len(_COPIES) - 1), (verified, verified_before)
    # the copy pairs that make the group are the same
    assert [p for p in pairs if p[2] != "exposure_variant"] == [p for p in pairs_before if p[2] != "exposure_variant"]


def test_only_clear_exposure_pairs_imply_and_only_for_groups_being_verified():
    th = {"exposure_ev": 0.2, "exposure_corr_rank": 0.93}
    assert fanout.implies(0.8, 0.99, **th) and fanout.implies(-0.35, 0.96, **th)
    assert not fanout.implies(0.25, 0.99, **th)  # within 0.1 EV of the threshold: may measure derived
    assert not fanout.implies(0.8, 0.94, **th)  # rank correlation near 0.93: may be rejected or similar
    assert not fanout.implies(None, 0.99, **th)
    new = 10
    keys = [(3, 10), (4, 10), (5, 10)]
    links = {3: {1}, 4: {2}, 7: {1}}  # loose 3 related to group 1, loose 4 to group 2
    assert fanout.implied(new, keys, links, {1}) == {(3, 10): {1}}
    assert fanout.implied(new, keys, links, {1, 2}) == {(3, 10): {1}, (4, 10): {2}}
    assert fanout.implied(new, keys, links, set()) == {}


def test_a_related_verdict_ends_the_groups_tries():
    plan = fanout.plan(9, {(1, 9): 2, (2, 9): 3, (5, 9): 4}, {1: 1, 2: 1, 5: 5}, tries=2)
    assert plan.concluded((1, 9), False, related=True) is None  # another exposure of the group
    assert 1 not in plan.reserve and 1 not in plan.settled
    assert plan.concluded((5, 9), False) is None  # a group of one candidate: nothing in reserve


def test_a_bracket_frames_copies_are_shown_through_its_duplicate_group(tmp_path):
    """A bracket (three exposures 1 s apart, one body) and three copies of its middle
    frame (same EXIF) added one by one: the later copies are not paired with the other
    frames, and ``dupes --related`` names every copy through the middle frame's group."""
    base = synth.scene(31, 320, 240)
    folder, db = tmp_path / "in", tmp_path / "photoqa.db"
    folder.mkdir()
    runner = CliRunner()

    def exif(i: int) -> bytes:
        e = Image.Exif()
        e[0x010F], e[0x0110] = "Canon", "Canon EOS 5D Mark II"
        e.get_ifd(0x8769)[0x9003] = f"2015:09:19 03:39:2{i}"
        return e.tobytes()

    frames = [Image.fromarray(synth.change_exposure(base, ev)) for ev in (-1.0, 0.0, 1.0)]
    files = [(f"IMG_{i}.jpg", im, exif(i)) for i, im in enumerate(frames)]
    middle = frames[1]
    files += [("IMG_1_half.jpg", middle.resize((160, 120), Image.Resampling.LANCZOS), exif(1)),
              ("IMG_1_mirror.jpg", middle.transpose(Image.Transpose.FLIP_LEFT_RIGHT), exif(1)),
              ("IMG_1_small.jpg", middle.resize((240, 180), Image.Resampling.LANCZOS), exif(1))]
    for name, im, data in files:
        im.save(folder / name, "JPEG", quality=92, exif=data)
        assert runner.invoke(main, ["--db", str(db), "index", str(folder), "--workers", "1"]).exit_code == 0
    rel = json.loads(runner.invoke(main, ["--db", str(db), "dupes", "--related", "--format", "json"]).stdout)
    (shots,) = rel["related"]
    names = [Path(m["path"]).name for m in shots["members"]]
    copies = [Path(p).name for m in shots["members"] for p in m["copies"]]
    assert {"IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"} <= set(names)
    assert sorted(names + copies) == sorted(name for name, _, _ in files), (names, copies)
    assert copies, "the later copies were paired with the other frames: nothing implied"
    table = runner.invoke(main, ["--db", str(db), "dupes", "--related"]).stdout
    assert "of it in its duplicate group" in table
    csv_out = runner.invoke(main, ["--db", str(db), "dupes", "--related", "--format", "csv"]).stdout
    rows = list(csv.DictReader(io.StringIO(csv_out)))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(name for name, _, _ in files)  # every file, once
    assert sum("(duplicate group)" in r["relation"] for r in rows) == len(copies)
    (group,) = json.loads(runner.invoke(main, ["--db", str(db), "dupes", "--format", "json"]).stdout)["groups"]
    assert sorted(Path(p).name for p in group["files"]) == ["IMG_1.jpg", "IMG_1_half.jpg", "IMG_1_mirror.jpg",
                                                           "IMG_1_small.jpg"]
