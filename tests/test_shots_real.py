"""Duplicate groups a photographer can trust, on real files (issue 12's planted answers).

The sets: ``raw/digicam_corpus`` and ``scenes/digicam_corpus`` (most frames show the same
X-Rite colour chart, taken by a dozen cameras over 28 years: hard negatives),
``scenes/brackets`` (a 3-frame bracket, 1/8 s to 8 s, 1 s apart) and
``exif-samples/jpg/hdr`` (HDR off/on pairs). Indexed as they are, and again with every
file's metadata stripped (tests/stripexif.py): ground truth (camera body, capture time)
always comes from the originals.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import stripexif
from cli import main
from indexer import decode
from indexer.decode import sniff
from indexer.match.shots import body_key

pytestmark = pytest.mark.data
SETS = ("raw/digicam_corpus", "scenes/digicam_corpus", "scenes/brackets", "exif-samples/jpg/hdr")


def run(db: Path, *args) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def images_of(shared: Path) -> list[Path]:
    exts = sniff.IMAGE_EXTENSIONS | sniff.RAW_EXTENSIONS
    return sorted(p for s in SETS for p in (shared / s).rglob("*") if p.is_file() and p.suffix.lower() in exts)


def truth_of(path: Path) -> tuple:
    """(camera body, capture time) of an original file, None where unknown or undecodable."""
    try:
        meta = decode.decode_file(path).meta
    except decode.DecodeError:
        return None, None
    cam = meta.camera
    return (None if cam is None else body_key(cam.make, cam.model, cam.serial)), meta.capture.captured_at


@pytest.fixture(scope="module")
def originals(shared_data, tmp_path_factory):
    """The four sets indexed where they are; ground truth per path."""
    db = tmp_path_factory.mktemp("with_exif") / "photoqa.db"
    run(db, "index", *(shared_data / s for s in SETS), "--workers", "2")
    truth = {str(p): truth_of(p) for p in images_of(shared_data)}
    return db, truth


@pytest.fixture(scope="module")
def stripped(shared_data, originals, tmp_path_factory):
    """The same files without metadata (JPEG byte-stripped, others as decoded PNG)."""
    _, truth = originals
    root = tmp_path_factory.mktemp("stripped")
    back = {}
    for i, src in enumerate(images_of(shared_data)):
        if truth[str(src)] == (None, None) and src.suffix.lower() not in (".jpg", ".jpeg"):
            continue  # undecodable (the GoPro GPR): nothing to strip
        dest = stripexif.strip_file(src, root / f"{i:03d}")
        back[str(dest)] = truth[str(src)]
    db = root / "photoqa.db"
    run(db, "index", root, "--workers", "2")
    return db, back


def groups_of(db: Path) -> list[list[str]]:
    return [g["files"] for g in json.loads(run(db, "dupes", "--format", "json"))["groups"]]


def spans(files: list[str], truth: dict) -> tuple[set, float]:
    """(distinct known bodies, seconds between the earliest and latest known capture)."""
    bodies = {truth[f][0] for f in files if truth[f][0] is not None}
    times = [truth[f][1] for f in files if truth[f][1] is not None]
    return bodies, (max(times) - min(times)).total_seconds() if times else 0.0


def test_stripping_keeps_jpeg_pixels_and_drops_metadata(tmp_path):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D Mark II"
    src = tmp_path / "a.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
        src, "JPEG", exif=exif, quality=90)
    dest = stripexif.strip_file(src, tmp_path / "out")
    assert "exif" not in Image.open(dest).info and b"Canon" not in dest.read_bytes()
    assert np.array_equal(np.asarray(Image.open(src)), np.asarray(Image.open(dest)))


def test_no_group_spans_two_cameras_or_two_capture_times(originals):
    db, truth = originals
    for files in groups_of(db):
        bodies, seconds = spans(files, truth)
        assert len(bodies) <= 1 and seconds < 1.0, files


def test_no_group_spans_two_cameras_with_metadata_stripped(stripped):
    db, truth = stripped
    groups = groups_of(db)
    for files in groups:
        bodies, _ = spans(files, truth)
        assert len(bodies) <= 1, [(Path(f).name, truth[f]) for f in files]


def test_with_metadata_stripped_capture_times_measured(stripped):
    """Without any metadata, two tripod frames of a still chart seconds apart look like a
    recompressed copy on 128-px thumbnails: pixels cannot keep them apart."""
    db, truth = stripped
    mixed = [files for files in groups_of(db) if spans(files, truth)[1] >= 1.0]
    if mixed:
        pytest.xfail(f"{len(mixed)} groups join shots taken seconds apart once all metadata is gone: "
                     + "; ".join(str(spans(f, truth)[1]) + " s" for f in mixed))


def test_the_sony_email_copy_joins_its_own_frame(originals, shared_data):
    db, _ = originals
    sony = shared_data / "scenes/digicam_corpus/Sony/FD92/MY_PHOTO"
    group = next(files for files in groups_of(db) if str(sony / "E-MAIL/MVC-177E.JPG") in files)
    assert sorted(group) == sorted([str(sony / "E-MAIL/MVC-177E.JPG"), str(sony / "MVC-177F.JPG")])


def test_the_bracket_is_related_shots_with_two_three_ev_steps(originals, shared_data):
    db, _ = originals
    related = json.loads(run(db, "dupes", "--related", "--format", "json"))["related"]
    folder = str(shared_data / "scenes/brackets/frobisher_001")
    (bracket,) = [r for r in related if r["members"][0]["path"].startswith(folder)]
    assert [Path(m["path"]).name for m in bracket["members"]] == ["IMG_2600.jpg", "IMG_2601.jpg", "IMG_2602.jpg"]
    assert [m["delta_ev"] for m in bracket["members"]] == pytest.approx([0.0, 3.06, 6.12], abs=0.25)
    assert bracket["verdicts"] == ["exposure_variant"]
    for p in bracket["pairs"]:
        assert abs(p["delta_ev"]) == pytest.approx(3.0, abs=0.2) and p["time_gap_s"] >= 1


def test_raw_and_the_cameras_jpeg_of_it_are_one_shot(shared_data, tmp_path):
    s40 = shared_data / "raw/digicam_corpus/Canon/PowerShot_S40"
    folder = tmp_path / "card"
    folder.mkdir()
    shutil.copy(s40 / "CRW_0101.CRW", folder)
    shutil.copy(s40 / "CRW_0101.THM", folder / "CRW_0101.JPG")  # the camera's JPEG, stamped 1 s later
    db = tmp_path / "photoqa.db"
    run(db, "index", folder, "--workers", "1")
    assert json.loads(run(db, "dupes", "--format", "json"))["groups"] == []
    (pair,) = json.loads(run(db, "dupes", "--format", "json", "--verdicts", "raw_jpeg"))["groups"][0]["pairs"]
    assert pair["verdict"] == "raw_jpeg" and pair["evidence"].startswith("RAW+JPEG pair")
    (shots,) = json.loads(run(db, "dupes", "--related", "--format", "json"))["related"]
    assert shots["kind"] == "RAW+JPEG pair"


def test_an_exposure_edit_of_one_capture_is_a_copy(shared_data, tmp_path):
    src = shared_data / "scenes/brackets/frobisher_001/IMG_2601.jpg"
    folder = tmp_path / "edit"
    folder.mkdir()
    shutil.copy(src, folder)
    img = Image.open(src)
    linear = (np.asarray(img, dtype=np.float64) / 255) ** 2.2 * 2.0  # +1 EV in (approximately) linear light
    brighter = np.clip(np.rint(np.clip(linear, 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(folder / "IMG_2601_bright.jpg", "JPEG", quality=92, exif=img.info["exif"])
    db = tmp_path / "photoqa.db"
    run(db, "index", folder, "--workers", "1")
    (group,) = json.loads(run(db, "dupes", "--format", "json"))["groups"]
    (pair,) = group["pairs"]
    assert pair["verdict"] == "derived"
    sign = "brighter" if Path(pair["b"]).name == "IMG_2601_bright.jpg" else "darker"
    words = re.search(rf"{sign} by ([0-9.]+) EV", pair["evidence"])
    # the frame clips 12% of its highlights, which a +1 EV push cannot brighten: 0.8 measured
    assert words and 0.7 <= float(words.group(1)) <= 1.2, pair["evidence"]
