"""Exposure QA while indexing: flags stored per image, pair delta EV refined.

Planted: generated images with a known problem get exactly the expected flag rows; a
clean one gets none; an image at -1 EV of another gives an exposure_variant pair whose
stored delta EV is -1. Real: the frobisher bracket and the camera-HDR pairs.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from cli import main
from indexer.synthetic import scenes as synth
from indexer.exposure.flags import FLAGS_VERSION
from indexer.exposure.pairev import thumb_delta_ev
from indexer.pipeline.exposurestage import cfa_eligible, cfa_delta_ev
from indexer.match.engine import MatchRecord


def index(db: Path, *paths: Path, config: Path | None = None) -> None:
    args = ["--db", str(db)] + (["--config", str(config)] if config else [])
    result = CliRunner().invoke(main, args + ["index", "-j", "1", *map(str, paths)])
    assert result.exit_code == 0, result.output


def query(db: Path, sql: str, *params) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def flags_of(db: Path) -> dict[str, dict[str, tuple]]:
    rows = query(db, "SELECT i.path, f.name, f.value, f.threshold, f.flags_version "
                     "FROM image_flags f JOIN images i ON i.id = f.image_id")
    out: dict[str, dict[str, tuple]] = {}
    for path, name, value, threshold, version in rows:
        assert version == FLAGS_VERSION
        out.setdefault(Path(path).name, {})[name] = (value, threshold)
    return out


def save(folder: Path, name: str, rgb: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / name)
    return folder / name


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Generated images with known problems, indexed once through `photoqa index`."""
    root = tmp_path_factory.mktemp("flags")
    img = root / "img"
    base = synth.scene(3)
    save(img, "clean.png", base)
    save(img, "dark.png", synth.change_exposure(base, -4))
    save(img, "bright.png", synth.change_exposure(base, 4))
    save(img, "white.png", synth.change_exposure(base, 7))
    save(img, "blurred.png", np.asarray(Image.fromarray(base).filter(ImageFilter.GaussianBlur(6))))
    save(img, "flat.png", np.full((480, 640, 3), 128, np.uint8))
    other = synth.scene(11)
    save(img, "pair_a.png", other)
    save(img, "pair_b.png", synth.change_exposure(other, -1))
    db = root / "photoqa.db"
    index(db, img)
    return db


@pytest.mark.parametrize("name,expected", [
    ("dark.png", {"dark", "underexposed", "low_contrast"}),
    ("bright.png", {"clipped_highlights", "overexposed"}),
    ("white.png", {"light", "clipped_highlights", "overexposed", "low_contrast"}),
    ("blurred.png", {"blurry"}),
    ("flat.png", {"low_information", "grayscale", "low_contrast"}),
])
def test_planted_problems_get_their_flags(planted, name, expected):
    got = flags_of(planted).get(name, {})
    assert expected <= set(got), got
    for flag, (value, threshold) in got.items():
        below = flag in {"dark", "blurry", "low_information", "grayscale", "low_contrast", "underexposed"}
        assert (value < threshold) if below else (value > threshold), (flag, value, threshold)


def test_flat_image_is_not_called_blurry(planted):
    assert "blurry" not in flags_of(planted)["flat.png"]  # gated: it is low-contrast instead


def test_clean_image_gets_no_flags(planted):
    assert "clean.png" not in flags_of(planted)
    assert "pair_a.png" not in flags_of(planted)


def test_minus_one_ev_pair_is_stored_refined(planted):
    rows = query(planted, "SELECT a.path, b.path, p.verdict, p.delta_ev FROM pairs p "
                          "JOIN images a ON a.id = p.a_id JOIN images b ON b.id = p.b_id")
    pair = [r for r in rows if {Path(r[0]).name, Path(r[1]).name} == {"pair_a.png", "pair_b.png"}]
    assert len(pair) == 1, rows
    a, _, verdict, dev = pair[0]
    expected = -1.0 if Path(a).name == "pair_a.png" else 1.0
    print(f"\nplanted -1 EV pair: stored delta EV {dev:+.3f}")
    assert verdict == "exposure_variant"
    assert abs(dev - expected) < 0.1


def test_reindexing_replaces_flags(tmp_path):
    img = tmp_path / "img"
    path = save(img, "x.png", synth.change_exposure(synth.scene(5), -4))
    db = tmp_path / "photoqa.db"
    index(db, img)
    assert "dark" in flags_of(db)["x.png"]
    save(img, "x.png", synth.scene(5))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    index(db, img)
    assert "x.png" not in flags_of(db)


def test_thresholds_come_from_config_and_refresh(tmp_path):
    img = tmp_path / "img"
    for i in range(24):
        save(img, f"s{i:02d}.png", synth.scene(i, 160, 120))
    save(img, "big.png", synth.scene(99, 1280, 960))
    db = tmp_path / "photoqa.db"
    strict = tmp_path / "strict.toml"
    strict.write_text("[flags]\ndark = 0.99\n")
    index(db, img, config=strict)
    flags = flags_of(db)
    assert all("dark" in flags.get(f"s{i:02d}.png", {}) for i in range(24))  # p99 < 0.99 everywhere
    assert flags["s00.png"]["dark"][1] == pytest.approx(0.99)
    assert "odd_size" not in flags.get("big.png", {})  # no quartiles when the run started
    result = CliRunner().invoke(main, ["--db", str(db), "exposure", "--refresh", "--format", "json"])
    assert result.exit_code == 0, result.output
    flags = flags_of(db)
    assert not any("dark" in f for f in flags.values())  # default thresholds again
    assert set(flags["big.png"]) >= {"odd_size"}
    # quartiles of sqrt(w*h) are both 138.6 (24 of 25 images): the upper fence is there
    assert flags["big.png"]["odd_size"] == (pytest.approx(math.sqrt(1280 * 960)),
                                            pytest.approx(math.sqrt(160 * 120)))
    assert all("odd_size" not in flags.get(f"s{i:02d}.png", {}) for i in range(24))


def _record(i: int, thumb: np.ndarray, width: int, height: int) -> MatchRecord:
    return MatchRecord(id=i, sha256=str(i), phash=0, phash_d4=np.zeros(8, np.int64),
                       phash_crops=np.zeros(2, np.int64), thumb=thumb, hist=np.zeros((4, 256)),
                       width=width, height=height, entropy=7.0, luma_std=0.2)


def test_thumb_delta_ev_uses_the_pair_shift_and_transform():
    grey = synth.scene(4, 160, 120)[..., 1]
    a = grey[10:106, 10:138]  # 128 x 96 thumbnail of a 1280 x 960 image
    moved = synth.change_exposure(np.stack([grey] * 3, -1), 1.0)[..., 0]
    b = moved[4:100, 16:144]  # b's corner sits at x +6, y -6 thumbnail px in a (60 full px)
    ra, rb = _record(1, a, 1280, 960), _record(2, np.rot90(b).copy(), 960, 1280)
    # b ~ apply(a, transform): b is a rotated 90 degrees counter-clockwise
    from indexer.measure import orient
    t = next(t for t in orient.D4 if np.array_equal(orient.apply(b, t), rb.thumb))
    value = thumb_delta_ev(ra, rb, transform=t, shift=(60.0, -60.0), scale=1.0)
    assert value == pytest.approx(1.0, abs=0.05)
    assert thumb_delta_ev(ra, rb, transform=t, shift=(60.0, -60.0), scale=0.8) is None
    assert thumb_delta_ev(ra, rb, transform=t, shift=(None, None), scale=1.0) is None


def test_cfa_delta_ev_planted(monkeypatch):
    """Two synthetic CFA planes, B = 2x A shifted by (2, 4) sites: +1 EV."""
    from indexer.pipeline import exposurestage

    rng = np.random.default_rng(1)
    ramp = 30 * 2 ** (np.arange(200)[:, None] / 40.0)  # +0.1 EV per 4 rows: misalignment shows
    a = (ramp * rng.uniform(0.9, 1.1, size=(200, 300))).astype(np.float32)
    b = np.zeros_like(a)
    b[:-4, 2:] = 2 * a[4:, :-2]  # B[y, x] = 2 A[y + 4, x - 2]: A[y, x] meets B[y - 4, x + 2]
    planes = {"a": (a, 4000.0), "b": (b, 4000.0)}
    monkeypatch.setattr(exposurestage, "_cfa_signal", planes.get)
    assert cfa_delta_ev("a", "b", shift=(-2.2, 3.9)) == pytest.approx(1.0, abs=1e-6)
    assert abs(cfa_delta_ev("a", "b", shift=(0.0, 0.0)) - 1.0) > 0.05  # misaligned: wrong
    src = ("x.CRW", "RAW-CRW", 2312, 1720, 1)
    assert cfa_eligible(src, src, "exposure_variant", "identity")
    assert not cfa_eligible(src, src, "derived", "identity")
    assert not cfa_eligible(src, ("y.jpg", "JPEG", 2312, 1720, 1), "exposure_variant", "identity")


def test_cfa_delta_ev_of_a_real_raw_with_itself(shared_data):
    crw = str(shared_data / "raw/digicam_corpus/Canon/PowerShot_S40/CRW_0101.CRW")
    assert cfa_delta_ev(crw, crw) == pytest.approx(0.0, abs=1e-9)
    assert cfa_delta_ev(crw, str(shared_data / "scenes/brackets/frobisher_001/IMG_2600.jpg")) is None


def test_clean_kodak_photos_get_no_flags(shared_data, tmp_path):
    kodak = shared_data / "photos" / "kodak"
    img = tmp_path / "img"
    for name in ("kodim05.png", "kodim23.png"):
        save(img, name, np.asarray(Image.open(kodak / name).convert("RGB")))
    db = tmp_path / "photoqa.db"
    index(db, img)
    assert flags_of(db) == {}


def test_frobisher_bracket_pairs(shared_data, tmp_path):
    db = tmp_path / "photoqa.db"
    index(db, shared_data / "scenes" / "brackets" / "frobisher_001")
    rows = query(db, "SELECT a.path, b.path, p.verdict, p.delta_ev, p.delta_ev_exif, a.exposure_time, "
                     "b.exposure_time FROM pairs p JOIN images a ON a.id = p.a_id "
                     "JOIN images b ON b.id = p.b_id ORDER BY a.path, b.path")
    found = {(Path(a).name, Path(b).name): (v, dev, dexif, ta, tb) for a, b, v, dev, dexif, ta, tb in rows}
    for key, value in found.items():
        print(f"\n{key}: {value}")
    # a 6-stop step changes the pHash beyond the candidate radius: only the 3-stop steps pair
    assert {("IMG_2600.jpg", "IMG_2601.jpg"), ("IMG_2601.jpg", "IMG_2602.jpg")} <= set(found)
    for (a, b), (verdict, dev, dexif, ta, tb) in found.items():
        predicted = math.log2(tb / ta)
        assert verdict == "exposure_variant"
        assert dexif == pytest.approx(predicted)
        assert dexif in (pytest.approx(3.0), pytest.approx(6.0))
        assert dev > 0 and abs(dev - dexif) < 0.5  # longer exposure is brighter, by the right amount
    evs = [ev for _, ev in sorted(query(db, "SELECT path, ev FROM images"))]
    assert evs == sorted(evs)  # 1/8 s, 1 s, 8 s: per-image exposure estimates in order


def test_hdr_pairs_reported(shared_data, tmp_path):
    import json

    db = tmp_path / "photoqa.db"
    index(db, shared_data / "exif-samples" / "jpg" / "hdr")
    result = CliRunner().invoke(main, ["--db", str(db), "exposure", "--format", "json"])
    assert result.exit_code == 0, result.output
    pairs = {(Path(p["a"]).name, Path(p["b"]).name): p for p in json.loads(result.output)["pairs"]}
    print(f"\nhdr pairs: {pairs}")
    assert {("canon_hdr_NO.jpg", "canon_hdr_YES.jpg"), ("iphone_hdr_NO.jpg", "iphone_hdr_YES.jpg")} <= set(pairs)
    iphone = pairs[("iphone_hdr_NO.jpg", "iphone_hdr_YES.jpg")]
    assert iphone["delta_ev_exif"] == 0.0  # same settings: the HDR merge shows as measured - predicted
    assert abs(iphone["delta_ev"]) > 0.3


def test_report_judges_odd_size_when_read_and_flag_filters_pairs(tmp_path):
    """odd_size needs no --refresh (the run's own files count); 4 big originals among
    24 small copies are not odd; --flag limits the pairs too."""
    img = tmp_path / "img"
    for i in range(24):
        save(img, f"s{i:02d}.png", synth.scene(i, 160, 120))
    for i in range(4):
        save(img, f"big{i}.png", synth.scene(50 + i, 1280, 960))
    save(img, "tiny.png", synth.scene(98, 40, 30))
    save(img, "dark.png", synth.change_exposure(synth.scene(3, 160, 120), -1.0))
    db = tmp_path / "photoqa.db"
    index(db, img)
    result = CliRunner().invoke(main, ["--db", str(db), "exposure", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    odd = sorted(Path(im["path"]).name for im in report["images"]
                 if any(f["name"] == "odd_size" for f in im["flags"]))
    assert odd == ["tiny.png"]
    assert report["pairs"], "s03/dark is an exposure pair"
    result = CliRunner().invoke(main, ["--db", str(db), "exposure", "--flag", "odd_size", "--format", "json"])
    only = json.loads(result.output)
    assert [Path(im["path"]).name for im in only["images"]] == ["tiny.png"] and only["pairs"] == []
