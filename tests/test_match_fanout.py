"""Verification linear in images: one member per existing group (indexer.match.fanout).

Planted answers: the plan's choices on hand-made candidate sets; then a picture and
nine transformed copies indexed one file at a time, with every pixel verification
counted: one group, at most 2 x 9 verifications, each member's transform against the
keeper equal to the one planted (composed along the stored pairs where no direct pair
was verified), and the same groups whatever the order the files arrive in.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from indexer.match import fanout
from indexer.match.relation import composed_geometry
from indexer.measure import orient
from indexer.pipeline import verifypool
from indexer.synthetic import scenes as synth


def test_one_member_per_group_keeper_or_best_hamming_first_and_the_rest_in_reserve():
    new = 50
    best = {(2, new): 3, (3, new): 3, (4, new): 9, (new, 60): 12, (new, 70): 4}
    group_of = {1: 1, 2: 1, 3: 1, 4: 4, 70: 4}  # group 1: {1, 2, 3}; group 4: {4, 70}; 60 in none
    p = fanout.plan(new, best, group_of, tries=2)
    # ungrouped 60 always; group 1's keeper is no candidate: 2 and 3 tie at 3 bits, lowest
    # id first; group 4: its keeper 4 first, though 70 hashes closer
    assert sorted(p.now) == [(2, new), (4, new), (new, 60)]
    assert p.reserve == {1: [(3, new)], 4: [(new, 70)]}
    # a member that gave a group verdict settles its group: its reserve is dropped
    assert p.concluded((4, new), joined=True) is None and 4 not in p.reserve
    # one that did not: the next member of its group, then no more (tries = 2)
    assert p.concluded((2, new), joined=False) == (3, new)
    assert p.concluded((3, new), joined=False) is None
    assert p.concluded((new, 60), joined=False) is None  # no group: nothing follows


def test_the_keeper_goes_first_and_one_try_has_no_reserve():
    p = fanout.plan(9, {(5, 9): 2, (7, 9): 4}, {5: 7, 7: 7}, tries=1)
    assert p.now == [(7, 9)] and p.reserve == {}
    # the keeper 7 is a twin indexed through 6: 6 stands for it
    p = fanout.plan(9, {(5, 9): 2, (6, 9): 4}, {5: 7, 6: 7}, tries=1, stands_for={7: 6})
    assert p.now == [(6, 9)]
    with pytest.raises(ValueError):
        fanout.plan(9, {}, {}, tries=0)


def _pair(a, b, transform, scale=1.0):
    return SimpleNamespace(a=a, b=b, transform=transform, scale=scale, verdict="derived")


def test_transforms_and_scales_compose_along_the_path():
    """keeper 1 -> 2 rotated 90°, 2 -> 3 mirrored and halved: 3 is the keeper turned by
    the single D4 element equal to rotation then mirror, at half size; read from either
    side of each stored pair."""
    pairs = [_pair(1, 2, "rot90"), _pair(2, 3, "flip_h", 0.5)]
    turn, scale = composed_geometry(1, 3, pairs)
    probe = np.arange(12).reshape(3, 4)
    assert np.array_equal(orient.apply(probe, turn), orient.apply(orient.apply(probe, "rot90"), "flip_h"))
    assert scale == pytest.approx(0.5)
    back, back_scale = composed_geometry(3, 1, pairs)  # the way back: the inverse, double size
    assert np.array_equal(orient.apply(orient.apply(probe, turn), back), probe) and back_scale == pytest.approx(2)
    assert composed_geometry(1, 1, pairs) == ("identity", 1.0)
    assert composed_geometry(1, 99, pairs) is None


# name -> (how the copy is made from the original, the D4 transform it shows, scale)
_COPIES = {
    "rot90.png": (lambda im: im.transpose(Image.Transpose.ROTATE_90), "rot90", 1.0),
    "mirror.jpg": (lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "flip_h", 1.0),
    "rot180.jpg": (lambda im: im.transpose(Image.Transpose.ROTATE_180), "rot180", 1.0),
    "half.jpg": (lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), "identity", 0.5),
    "rot90_mirror.jpg": (lambda im: im.transpose(Image.Transpose.ROTATE_90).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                         "rot90+flip_h", 1.0),
    "q60.jpg": (lambda im: im, "identity", 1.0),
    "copy.png": (lambda im: im, "identity", 1.0),
    "transpose.jpg": (lambda im: im.transpose(Image.Transpose.TRANSPOSE), "transpose", 1.0),
    "flipv_small.jpg": (lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM).resize(
        (im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS), "flip_v", 0.75),
}


def _expected_turn(name: str) -> str:
    spec = _COPIES[name][1]
    if "+" in spec:
        first, then = spec.split("+")
        return orient.compose(first, then)
    return spec


def _make_library(folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    original = Image.fromarray(synth.scene(321, 384, 288))
    original.save(folder / "original.jpg", quality=95)
    for name, (make, _, _) in _COPIES.items():
        img = make(original)
        if name.endswith(".png"):
            img.save(folder / name)
        else:
            img.save(folder / name, quality=60 if name == "q60.jpg" else 90)
    return ["original.jpg", *_COPIES]


def index_one_by_one(tmp_path: Path, order: list[str], src: Path, monkeypatch) -> tuple[dict, int, Path]:
    """Index ``order``'s files one per run into a fresh database; (dupes JSON, pixel
    verifications counted, the database)."""
    calls = []
    real = verifypool.run_job

    def counted(job, th, max_transforms):
        calls.append((job.a.id, job.b.id))
        return real(job, th, max_transforms)

    monkeypatch.setattr(verifypool, "run_job", counted)
    folder, db = tmp_path / "in", tmp_path / "db" / "photoqa.db"
    folder.mkdir(parents=True)
    db.parent.mkdir(parents=True)
    (db.parent / "photoqa.toml").write_text("[match]\npool_after = 1e9\n")  # inline: every call counted here
    runner = CliRunner()
    for name in order:
        shutil.copy(src / name, folder / name)
        result = runner.invoke(main, ["--db", str(db), "index", str(folder), "--workers", "1"],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
    out = runner.invoke(main, ["--db", str(db), "dupes", "--format", "json"], catch_exceptions=False)
    return json.loads(out.stdout), len(calls), db


def test_ten_copies_added_one_by_one_cost_at_most_two_verifications_each(tmp_path, monkeypatch):
    src = tmp_path / "src"
    names = _make_library(src)
    report, verifications, _ = index_one_by_one(tmp_path / "run", names, src, monkeypatch)
    (group,) = report["groups"]
    assert sorted(Path(p).name for p in group["files"]) == sorted(names)
    assert verifications <= 2 * (len(names) - 1), verifications
    keeper = Path(group["keeper"]).name
    assert keeper == "original.jpg", group["keeper_reason"]
    for m in group["members"][1:]:
        name = Path(m["path"]).name
        assert m["relation"] and m["verdict"] in ("same_pixels", "derived"), m
        assert m["transform"] == _expected_turn(name), (name, m)
        assert m["scale"] == pytest.approx(_COPIES[name][2], rel=0.03), (name, m)


def test_groups_do_not_depend_on_the_order_files_arrive_in(tmp_path, monkeypatch):
    src = tmp_path / "src"
    names = _make_library(src)
    extra = Image.fromarray(synth.scene(999, 384, 288))  # a second picture and its copy: two groups
    extra.save(src / "other.jpg", quality=90)
    extra.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(src / "other_mirror.png")
    names += ["other.jpg", "other_mirror.png"]
    groupings = []
    for seed in (1, 2):
        order = names[:]
        random.Random(seed).shuffle(order)
        report, _, _ = index_one_by_one(tmp_path / f"run{seed}", order, src, monkeypatch)
        groupings.append(sorted(sorted(Path(p).name for p in g["files"]) for g in report["groups"]))
    assert groupings[0] == groupings[1]
    assert len(groupings[0]) == 2 and sorted(map(len, groupings[0])) == [2, 10]


def test_candidates_in_no_group_capped_closest_first_then_most_hits():
    new = 50
    best = {(1, new): 12, (2, new): 12, (3, new): 8, (new, 60): 14, (new, 70): 12, (4, new): 5}
    hits = {(1, new): 1, (2, new): 3, (new, 70): 2}
    p = fanout.plan(new, best, {4: 4, 5: 4}, tries=2, loose=3, hits=hits)
    # group 4's member always goes; of the five in no group: 8 bits, then 12 bits with
    # 3 hits, then 12 bits with 2; the 1-hit one at 12 and the 14-bit one are left out
    assert sorted(p.now) == sorted([(4, new), (3, new), (2, new), (new, 70)]) and p.dropped == 2
    # loose = 0 keeps every candidate, as before the cap
    assert len(fanout.plan(new, best, {4: 4, 5: 4}, loose=0).now) == 6
