"""``photoqa dupes`` end to end: planted copies indexed, grouped, reported with evidence."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import text

import imagefiles as F
from cli import EXIT_USAGE, main
from indexer.synthetic import scenes as synth
from indexer.session import open_session


def run(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path]:
    """Two scenes with planted copies, one unrelated scene; indexed once."""
    root = tmp_path_factory.mktemp("photos")
    a = Image.fromarray(synth.scene(11, 480, 360))
    b = Image.fromarray(synth.scene(12, 480, 360))
    F.save(root / "a.jpg", a, "JPEG", quality=92)
    shutil.copy(root / "a.jpg", root / "a_copy.jpg")
    shutil.copy(root / "a.jpg", root / "a_copy2.jpg")
    F.save(root / "a_half.jpg", a.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=85)
    F.save(root / "a_rot.png", a.rotate(90, expand=True), "PNG")
    F.save(root / "b.jpg", b, "JPEG", quality=92)
    F.save(root / "b_dark.jpg", Image.fromarray(synth.change_exposure(synth.scene(12, 480, 360), -1.0)),
           "JPEG", quality=92)
    F.save(root / "c.jpg", Image.fromarray(synth.scene(13, 480, 360)), "JPEG", quality=92)
    db = tmp_path_factory.mktemp("db") / "photoqa.db"
    result = run(db, "index", root, "--workers", "1")
    assert result.exit_code == 0, result.output
    return root, db


def report(db: Path, *args: str) -> dict:
    result = run(db, "dupes", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def names(paths) -> set[str]:
    return {Path(p).name for p in paths}


def test_groups_hold_the_planted_copies_and_nothing_else(library):
    root, db = library
    groups = report(db)["groups"]
    found = sorted(sorted(names(g["files"])) for g in groups)
    # b_dark is b at -1 EV with no EXIF: another exposure or an edit, unknown; a related
    # shot, not a default duplicate
    assert found == [["a.jpg", "a_copy.jpg", "a_copy2.jpg", "a_half.jpg", "a_rot.png"]]
    a_group = next(g for g in groups if "a.jpg" in names(g["files"]))
    assert Path(a_group["keeper"]).name in ("a.jpg", "a_copy.jpg", "a_copy2.jpg", "a_rot.png")


def test_every_pair_carries_its_evidence(library):
    _, db = library
    everything = "same_file,same_pixels,derived,raw_jpeg,exposure_variant,similar"
    pairs = {frozenset((Path(p["a"]).name, Path(p["b"]).name)): p
             for g in report(db, "--verdicts", everything)["groups"] for p in g["pairs"]}
    half = next(p for k, p in pairs.items() if "a_half.jpg" in k)
    assert half["verdict"] == "derived"
    assert half["scale"] == pytest.approx(0.5, abs=0.02) or half["scale"] == pytest.approx(2.0, abs=0.08)
    rot = next(p for k, p in pairs.items() if "a_rot.png" in k)
    assert rot["verdict"] == "derived" and rot["transform"] in ("rot90", "rot270")
    assert "rotated" in rot["evidence"]
    dark = pairs[frozenset(("b.jpg", "b_dark.jpg"))]
    assert dark["verdict"] == "exposure_variant"
    sign = 1 if Path(dark["a"]).name == "b.jpg" else -1  # delta_ev is log2(B over A)
    assert dark["delta_ev"] == pytest.approx(sign * -1.0, abs=0.1)
    for p in pairs.values():
        assert set(p) >= {"a", "b", "verdict", "hamming", "transform", "shift", "scale", "correlation", "delta_ev"}
        assert len(p["shift"]) == 2


def test_the_measures_behind_each_verdict_are_in_sql(library):
    """Every measured pair keeps the pixel measures its verdict read; equal files none."""
    _, db = library
    session = open_session(str(db))
    with session.engine.connect() as conn:
        rows = conn.execute(text("SELECT p.verdict, p.peak, p.overlap_a, p.overlap_b, p.corr_grey, p.corr_tile, "
                                 "p.corr_smooth, p.tile_smooth, p.changed, p.edit_area, p.edit_sign, "
                                 "p.outside_corr, b.path FROM pairs p JOIN images b ON b.id = p.b_id")).all()
    session.engine.dispose()
    measured = [r for r in rows if r[0] != "same_file"]
    assert measured and all(r[0] == "same_file" for r in rows if r[1] is None)
    for verdict, peak, ov_a, ov_b, grey, tile, smooth, tile_smooth, changed, area, sign, outside, path in measured:
        assert 0 < peak <= 1 and 0.9 <= ov_a <= 1 and 0.9 <= ov_b <= 1, path  # whole-picture copies
        assert all(-1 <= v <= 1 for v in (grey, tile, smooth, tile_smooth, outside))
        assert 0 <= changed <= 1 and 0 <= area <= 1 and 0 <= sign <= 1
        if verdict == "derived":
            assert smooth > 0.9 and changed < 0.2, path


def test_identical_copies_are_linked_by_a_tree_not_all_pairs(library):
    _, db = library
    session = open_session(str(db))
    with session.engine.connect() as conn:
        same = conn.execute(text("SELECT count(*) FROM pairs WHERE verdict = 'same_file'")).scalar()
    session.engine.dispose()
    assert same == 2  # three identical files: two edges keep them in one group


def test_rematch_finds_the_same_groups(library):
    _, db = library
    before = sorted(sorted(names(g["files"])) for g in report(db)["groups"])
    after = sorted(sorted(names(g["files"])) for g in report(db, "--rematch")["groups"])
    assert before == after


def test_verdict_choice_and_min_size(library):
    _, db = library
    only_equal = report(db, "--verdicts", "same_file,same_pixels")["groups"]
    assert [sorted(names(g["files"])) for g in only_equal] == [["a.jpg", "a_copy.jpg", "a_copy2.jpg"]]
    big = report(db, "--min-size", "3")["groups"]
    assert all(len(g["files"]) >= 3 for g in big) and len(big) == 1


def test_unknown_verdict_is_a_usage_error(library):
    _, db = library
    result = run(db, "dupes", "--verdicts", "derived,twins")
    assert result.exit_code == EXIT_USAGE
    assert "twins" in result.output


def test_table_and_csv_list_each_file_once(library):
    root, db = library
    table = run(db, "dupes").stdout.splitlines()
    members = [ln for ln in table if ln.startswith(("  keep ", "  copy "))]
    assert len(members) == 5 and sum(ln.startswith("  keep ") for ln in members) == 1
    assert table[0] == table[-1] and table[0].startswith("1 group · 4 files could be removed")
    assert table[1] == f"paths under {root}"
    assert any("rotated" in ln for ln in members) and not any(str(root) in ln for ln in members)
    rot = next(ln for ln in members if "a_rot.png" in ln)
    assert rot.split()[-1] == "PNG" and "rotated" in rot  # another format than the keeper's is said
    assert all(str(root) in ln for ln in run(db, "dupes", "--absolute").stdout.splitlines()
               if ln.startswith(("  keep ", "  copy ")))
    rows = list(csv.DictReader(io.StringIO(run(db, "dupes", "--format", "csv").stdout)))
    assert [r["role"] for r in rows].count("keeper") == 1 and len(rows) == 5
    assert set(rows[0]) == {"group", "role", "path", "relation", "bytes", "verdict"}
    for r in rows:  # bytes are the files' sizes on disk, paths absolute
        assert int(r["bytes"]) == Path(r["path"]).stat().st_size
    half = next(r for r in rows if r["path"].endswith("a_half.jpg"))
    keeper = next(r for r in rows if r["role"] == "keeper")
    assert keeper["path"].endswith((".jpg", ".png")) and "a_half" not in keeper["path"]
    assert half["verdict"] == "derived" and "resized 50%" in half["relation"]  # against the keeper


def test_json_is_a_superset_of_the_old_shape_with_members_and_summary(library):
    _, db = library
    rep = report(db)
    (g,) = rep["groups"]
    assert {"id", "keeper", "files", "pairs", "members", "bytes_reclaimable", "keeper_reason"} <= set(g)
    assert [m["path"] for m in g["members"] if m["role"] == "keeper"] == [g["keeper"]]
    assert sorted(m["path"] for m in g["members"]) == g["files"]
    freed = sum(Path(m["path"]).stat().st_size for m in g["members"] if m["role"] != "keeper")
    assert g["bytes_reclaimable"] == freed == rep["summary"]["bytes_reclaimable"]
    assert rep["summary"]["removable_files"] == 4 and g["keeper_reason"]


def test_under_sort_and_bad_folder(library, tmp_path):
    root, db = library
    assert report(db, "--under", str(root))["summary"]["groups"] == 1
    assert report(db, "--under", str(tmp_path))["groups"] == []
    for key in ("bytes", "size", "count", "path"):
        assert len(report(db, "--sort", key)["groups"]) == 1
    result = run(db, "dupes", "--under", str(tmp_path / "nowhere"))
    assert result.exit_code == EXIT_USAGE and "no such folder" in result.output


def test_related_shots_are_listed_without_a_keeper(tmp_path):
    """A planted bracket (three exposures 1 s apart, one body) is not a duplicate group but
    a set of related shots with its +1 EV steps; its frames have no keeper."""
    base = synth.scene(31, 320, 240)
    folder = tmp_path / "bracket"
    for i, ev in enumerate((-1.0, 0.0, 1.0)):
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D Mark II"
        exif.get_ifd(0x8769)[0x9003] = f"2015:09:19 03:39:2{i}"
        F.save(folder / f"IMG_{i}.jpg", Image.fromarray(synth.change_exposure(base, ev)), "JPEG", quality=92,
               exif=exif)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    assert report(db)["groups"] == []
    rel = json.loads(run(db, "dupes", "--related", "--format", "json").stdout)
    (shots,) = rel["related"]
    assert [Path(m["path"]).name for m in shots["members"]] == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    assert [m["seconds_from_first"] for m in shots["members"]] == [0.0, 1.0, 2.0]
    assert [m["delta_ev"] for m in shots["members"]] == pytest.approx([0.0, 1.0, 2.0], abs=0.2)
    assert shots["verdicts"] == ["exposure_variant"] and "keeper" not in json.dumps(shots)
    table = run(db, "dupes", "--related").stdout
    assert "bracket" in table and "nothing to remove" in table
    (second,) = [ln for ln in table.splitlines() if "IMG_1.jpg" in ln]
    # the time and EV columns count from the first frame; the words say the step, not the kind again
    assert second.split()[1:4] == ["+1", "s", "+1.0"] and second.endswith("brighter by 1.0 EV")
    assert "another exposure" not in table and "keep" not in table
    rows = list(csv.DictReader(io.StringIO(run(db, "dupes", "--related", "--format", "csv").stdout)))
    assert [Path(r["path"]).name for r in rows] == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    assert {r["set"] for r in rows} == {"1"} and [float(r["delta_ev"]) for r in rows] == pytest.approx([0, 1, 2], abs=0.2)


def test_rewritten_metadata_is_same_pixels_without_a_full_decode(tmp_path, monkeypatch):
    from indexer import decode

    img = Image.fromarray(synth.scene(21, 320, 240))
    F.save(tmp_path / "p" / "orig.jpg", img, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x010F] = "Rewritten"
    F.save(tmp_path / "p" / "retagged.jpg", img, "JPEG", quality=90, exif=exif, comment=b"edited")

    def no_full_decode(*a, **k):
        raise AssertionError("a full decode was not needed")

    monkeypatch.setattr(decode, "pixel_digest", no_full_decode)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", tmp_path / "p", "--workers", "1").exit_code == 0
    (group,) = report(db)["groups"]
    assert [p["verdict"] for p in group["pairs"]] == ["same_pixels"]


def _pair_rows(db: Path) -> list[tuple]:
    session = open_session(str(db))
    with session.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT a.path, b.path, p.verdict, p.transform, p.scale, p.correlation, p.delta_ev "
            "FROM pairs p JOIN images a ON a.id = p.a_id JOIN images b ON b.id = p.b_id")).all()
        groups = conn.execute(text("SELECT count(DISTINCT group_id) FROM image_groups")).scalar()
    session.engine.dispose()
    return sorted((Path(a).name, Path(b).name, *rest) for a, b, *rest in rows), groups


def test_verification_in_worker_processes_stores_what_inline_verification_stores(library, tmp_path):
    """``pool_after = 0``: every candidate is verified in the pool; same pairs, same groups."""
    root, _ = library
    dbs = {}
    for name, pool_after in (("inline", "1e9"), ("pooled", "0")):
        dbs[name] = tmp_path / name / "photoqa.db"
        dbs[name].parent.mkdir()
        (dbs[name].parent / "photoqa.toml").write_text(f"[match]\npool_after = {pool_after}\nverify_workers = 2\n")
        assert run(dbs[name], "index", root, "--workers", "1").exit_code == 0
    inline, groups = _pair_rows(dbs["inline"])
    pooled, pooled_groups = _pair_rows(dbs["pooled"])
    # a pooled run may verify an image against several members of a group still being
    # verified (its group is not stored yet), so it may store more pairs; those both
    # verified are equal, and so are the groups
    assert pooled_groups == groups == 1 and len(inline) >= 5
    common = {row[:2] for row in inline} & {row[:2] for row in pooled}
    assert [r for r in inline if r[:2] in common] == [r for r in pooled if r[:2] in common]
    assert [sorted(g["files"]) for g in report(dbs["inline"])["groups"]] == \
        [sorted(g["files"]) for g in report(dbs["pooled"])["groups"]]


def test_images_left_unmatched_by_a_stopped_run_are_matched_by_the_next(library, tmp_path):
    """A run that stopped after storing an image but before storing its pairs (kill -9
    while its candidates were in worker processes) leaves ``matched_at`` NULL; the next
    run, with no new file to index, finds those pairs."""
    root, _ = library
    db = tmp_path / "photoqa.db"
    assert run(db, "index", root, "--workers", "1").exit_code == 0
    before, _ = _pair_rows(db)
    session = open_session(str(db))
    with session.engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM images WHERE matched_at IS NULL")).scalar() == 0
        ids = conn.execute(text("SELECT id FROM images WHERE path LIKE '%a_half.jpg' "
                                "OR path LIKE '%b_dark.jpg'")).scalars().all()
        for image_id in ids:
            conn.execute(text("DELETE FROM pairs WHERE a_id = :i OR b_id = :i"), {"i": image_id})
            conn.execute(text("UPDATE images SET matched_at = NULL WHERE id = :i"), {"i": image_id})
    session.engine.dispose()
    assert len(_pair_rows(db)[0]) < len(before)
    result = run(db, "index", root, "--workers", "1", "--format", "json")
    assert json.loads(result.stdout)["indexed"] == 0
    assert _pair_rows(db)[0] == before
    session = open_session(str(db))
    with session.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM images WHERE matched_at IS NULL")).scalar() == 0
    session.engine.dispose()


def test_a_300_file_folder_reads_one_line_per_file(tmp_path):
    """60 pictures, each with a byte copy, a 75% JPEG, a rotated PNG and a greyscale
    PNG: 300 files, 60 groups of 5 in three folders, plus one more byte copy of p00 in
    another folder; the table has one line per file, a header per group and the summary
    twice, the folder paths are shown under once, no other line wider than 120 characters; the summary's bytes are the non-keepers'
    sizes on disk; --sort orders, --under keeps whole groups and marks those partly
    outside the folder."""
    folder = tmp_path / "p"
    for i in range(60):
        img = Image.fromarray(synth.scene(1000 + i, 128, 96))
        sub = folder / f"roll{i // 20}"
        F.save(sub / f"p{i:02d}.jpg", img, "JPEG", quality=90)
        shutil.copy(sub / f"p{i:02d}.jpg", sub / f"p{i:02d} (1).jpg")
        F.save(sub / f"p{i:02d}_small.jpg", img.resize((96, 72), Image.Resampling.LANCZOS), "JPEG", quality=90)
        F.save(sub / f"p{i:02d}_rot.png", img.rotate(90, expand=True), "PNG")
        F.save(sub / f"p{i:02d}_grey.png", img.convert("L"), "PNG")
    shutil.copy(folder / "roll0" / "p00.jpg", folder / "roll2" / "from_roll0.jpg")
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "2").exit_code == 0
    lines = run(db, "dupes").stdout.splitlines()
    files = [ln for ln in lines if ln.startswith(("  keep ", "  copy "))]
    headers = [ln for ln in lines if ln.startswith("group ")]
    rep = report(db)
    listed = [m for g in rep["groups"] for m in g["members"]]
    assert len(listed) == len(files) == len({m["path"] for m in listed})
    assert len(lines) == len(files) + len(headers) + len(rep["groups"]) + 4  # blank line per group, summaries, root
    assert len(files) >= 290 and len(headers) == len(rep["groups"]) >= 58  # a tiny picture may stay apart
    assert lines[0] == lines[-1] and lines[0].startswith(f"{len(headers)} groups · {len(files) - len(headers)} files")
    assert lines[1] == f"paths under {folder}"
    assert max(map(len, lines[2:])) <= 120, max(lines[2:], key=len)
    freed = sum(Path(m["path"]).stat().st_size for m in listed if m["role"] == "copy")
    assert rep["summary"]["bytes_reclaimable"] == freed
    assert rep["summary"]["removable_files"] == len(files) - len(headers)
    for m in listed:  # every copy said against its keeper, chained copies included
        assert m["role"] == "keeper" or (m["relation"] and "; then" not in m["relation"]), m
    keys = {"bytes": lambda g: -g["bytes_reclaimable"], "size": lambda g: -g["members"][0]["bytes"],
            "count": lambda g: -len(g["members"]), "path": lambda g: g["keeper"]}
    for key, of in keys.items():
        shown = [of(g) for g in report(db, "--sort", key)["groups"]]
        assert shown == sorted(shown) and len(shown) == len(headers), key
    (biggest,) = [g for g in rep["groups"] if len(g["members"]) == 6]  # default sort: most bytes first
    assert rep["groups"][0] is not biggest or biggest["bytes_reclaimable"] >= rep["groups"][1]["bytes_reclaimable"]
    roll2 = report(db, "--under", str(folder / "roll2"))
    assert len(roll2["groups"]) == 21 and roll2["summary"]["files"] == sum(len(g["members"]) for g in roll2["groups"])
    partial = [g for g in roll2["groups"] if g["outside_under"]]
    assert [(len(g["members"]), g["outside_under"]) for g in partial] == [(6, 5)]  # shown whole, marked
    table = run(db, "dupes", "--under", str(folder / "roll2")).stdout.splitlines()
    assert sum("5 outside --under" in ln for ln in table) == 1
    assert sum(ln.startswith(("  keep ", "  copy ")) for ln in table) == roll2["summary"]["files"]


def test_prefer_in_picks_the_keeper_in_that_folder(tmp_path):
    folder = tmp_path / "p"
    img = Image.fromarray(synth.scene(41, 320, 240))
    F.save(folder / "work" / "a.jpg", img, "JPEG", quality=90)
    F.save(folder / "masters" / "a_small.jpg", img.resize((160, 120), Image.Resampling.LANCZOS), "JPEG", quality=90)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    assert Path(report(db)["groups"][0]["keeper"]).parent.name == "work"  # most pixels
    (g,) = report(db, "--prefer-in", str(folder / "masters"))["groups"]
    assert Path(g["keeper"]).parent.name == "masters" and g["keeper_reason"] == "in a preferred folder"
    (tmp_path / "photoqa.toml").write_text(f'[dupes]\nprefer_in = ["{folder / "masters"}"]\n')
    assert run(db, "index", folder, "--workers", "1").exit_code == 0  # the writer rebuilds for the new rule
    session = open_session(str(db))
    with session.engine.connect() as conn:
        keeper = conn.execute(text("SELECT i.path FROM image_groups g JOIN images i ON i.id = g.image_id "
                                   "WHERE g.is_keeper")).scalar()
    session.engine.dispose()
    assert Path(keeper).parent.name == "masters"


def test_decisions_last_across_rematch_and_reindex(tmp_path):
    """--not-duplicates keeps two files apart and --keep names the keeper; both survive
    --rematch and a re-index of a changed file, in the report and in image_groups."""
    folder = tmp_path / "p"
    img = Image.fromarray(synth.scene(61, 320, 240))
    F.save(folder / "a.jpg", img, "JPEG", quality=90)
    shutil.copy(folder / "a.jpg", folder / "a_copy.jpg")
    F.save(folder / "a_small.jpg", img.resize((160, 120), Image.Resampling.LANCZOS), "JPEG", quality=90)
    db = tmp_path / "photoqa.db"
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    (g,) = report(db)["groups"]
    assert len(g["files"]) == 3 and Path(g["keeper"]).name == "a.jpg"
    assert run(db, "dupes", "--not-duplicates", folder / "a.jpg", folder / "a_small.jpg").exit_code == 0
    assert run(db, "dupes", "--keep", folder / "a_copy.jpg").exit_code == 0

    def check():
        groups = report(db)["groups"]
        assert [sorted(names(g["files"])) for g in groups] == [["a.jpg", "a_copy.jpg"]]
        assert Path(groups[0]["keeper"]).name == "a_copy.jpg" and groups[0]["keeper_reason"] == "chosen by you"
        session = open_session(str(db))
        with session.engine.connect() as conn:
            stored = conn.execute(text("SELECT i.path, g.is_keeper FROM image_groups g "
                                       "JOIN images i ON i.id = g.image_id ORDER BY i.path")).all()
        session.engine.dispose()
        assert [(Path(p).name, bool(k)) for p, k in stored] == [("a.jpg", False), ("a_copy.jpg", True)]

    check()
    report(db, "--rematch")
    check()
    F.save(folder / "a_small.jpg", img.resize((200, 150), Image.Resampling.LANCZOS), "JPEG", quality=90)
    assert run(db, "index", folder, "--workers", "1").exit_code == 0
    check()
    result = run(db, "dupes", "--keep", tmp_path / "nowhere.jpg")
    assert result.exit_code == EXIT_USAGE and "not an indexed image" in result.output
