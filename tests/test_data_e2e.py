"""End to end on the real public images in ../shared/data (skipped when absent).

One index of exif-samples/, scenes/ and raw/ per module (workers=2); the tests query it.
Files are never modified: the move test copies a few into a temp folder first.
"""
from __future__ import annotations

import csv
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from indexer.measure import hashes
from indexer.pipeline.run import index_paths
from indexer.session import open_session

pytestmark = pytest.mark.data

FOLDERS = ("exif-samples", "scenes", "raw")
# Not photos: documentation, manifests and sidecars (THM previews, XMP, iOS AAE edits).
NOT_PHOTOS = {".md", ".rst", ".tsv", ".thm", ".xmp", ".aae"}


def is_documentation(path: Path) -> bool:
    return path.name.upper().startswith("README") or path.suffix.lower() in NOT_PHOTOS


@pytest.fixture(scope="module")
def indexed(shared_data, tmp_path_factory):
    db = tmp_path_factory.mktemp("e2e") / "photoqa.db"
    session = open_session(str(db))
    roots = [shared_data / f for f in FOLDERS]
    first = index_paths(roots, session.store, session.settings.index, workers=2)
    second = index_paths(roots, session.store, session.settings.index, workers=2)
    session.engine.dispose()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    yield con, first, second
    con.close()


def files(shared_data: Path) -> list[Path]:
    return sorted(Path(os.path.abspath(p)) for f in FOLDERS for p in (shared_data / f).rglob("*") if p.is_file())


def manifest(shared_data: Path, folder: str) -> list[dict]:
    with open(shared_data / folder / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_every_file_indexed_or_failed_with_a_reason(indexed, shared_data):
    con, first, _ = indexed
    images = {p for (p,) in con.execute("SELECT path FROM images")}
    failures = {p: (k, m) for p, k, m in con.execute("SELECT path, kind, message FROM failures")}
    photos = [p for p in files(shared_data) if not is_documentation(p)]
    unaccounted = [str(p) for p in photos if str(p) not in images and str(p) not in failures]
    assert not unaccounted
    assert not images & set(failures), "a path is both indexed and failed"
    for path, (kind, message) in failures.items():
        assert kind and message.strip(), path
    others = [str(p) for p in files(shared_data) if is_documentation(p)]
    assert not images.intersection(others), "a README or sidecar was indexed as a photo"
    assert first.indexed == len(images) and first.failed == len(failures)
    assert len(images) > 200


def test_known_failures(indexed):
    con = indexed[0]
    kinds = dict(con.execute("SELECT path, kind FROM failures"))
    corrupt = [k for p, k in kinds.items() if p.endswith("ukbench09268_corrupt.jpg")]
    assert corrupt == ["corrupt", "corrupt"]  # mixed_images/ and mixed_nested_images/
    gopro = [(k, p) for p, k in kinds.items() if p.endswith("GOPR8508.GPR")]
    assert [k for k, _ in gopro] == ["unsupported"]  # LibRaw cannot decode GoPro's VC-5
    assert all("/raw/stubs/" in p or p.endswith(("_corrupt.jpg", ".GPR")) for p in kinds), kinds


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_orientation_variants_hash_alike(indexed, kind):
    con = indexed[0]
    found = con.execute(
        "SELECT orientation, phash, width, height, display_width, display_height FROM images "
        "WHERE path LIKE ? ORDER BY path", (f"%/jpg/orientation/{kind}_%",)).fetchall()
    assert [r[0] for r in found] == list(range(1, 9))
    upright = (600, 450) if kind == "landscape" else (450, 600)
    assert {(r[4], r[5]) for r in found} == {upright}
    for orientation, _, w, h, _, _ in found:
        assert (w, h) == (upright if orientation <= 4 else upright[::-1])
    # Each variant is the same photo with its own big digit (1..8) drawn on it, so up to
    # 2 bits differ (measured: landscape 7 of 8 identical, portrait 5 of 8).
    distances = [hashes.hamming(found[0][1], r[1]) for r in found]
    assert max(distances) <= 2, distances
    assert distances.count(0) >= 5, distances


def test_orientation_matters(indexed):
    # without orientation applied, a 90° variant would be far from the upright one
    con = indexed[0]
    (d4_blob,), = con.execute("SELECT phash_d4 FROM images WHERE path LIKE '%/orientation/landscape_1.jpg'")
    d4 = hashes.unpack(d4_blob)
    assert min(hashes.hamming(d4[0], d4[i]) for i in (1, 3)) > 10


def test_raw_frames_carry_make_and_model(indexed, shared_data):
    con = indexed[0]
    cameras = {p: (make, model, serial) for p, make, model, serial in con.execute(
        "SELECT i.path, c.make, c.model, c.serial FROM images i LEFT JOIN cameras c ON c.id = i.camera_id")}
    checked = 0
    for row in manifest(shared_data, "raw"):
        path = os.path.abspath(shared_data / "raw" / row["file"])
        if row["rawpy_status"] != "ok" or Path(path).suffix.upper() in (".THM", ".JPG", ".XMP"):
            continue
        assert path in cameras, row["file"]
        make, model, serial = cameras[path]
        assert (make, model) == (row["make"], row["model"]), row["file"]
        if row["serial_number"]:
            assert serial == row["serial_number"], row["file"]
        checked += 1
    assert checked >= 55
    corpus = [p for p in cameras if "/raw/digicam_corpus/" in p and not p.endswith(".JPG")]
    assert len(corpus) == 25 and all(cameras[p][1] for p in corpus)


def test_canon_d30_bodies_told_apart(indexed):
    con = indexed[0]
    serials = {s for (s,) in con.execute("SELECT serial FROM cameras WHERE model = 'Canon EOS D30'")}
    assert serials == {"a32-00001", "1235-02474"}


def test_crw_capture_time_and_sidecar_exposure(indexed):
    con = indexed[0]
    (captured, exposure), = con.execute(
        "SELECT captured_at, exposure_time FROM images WHERE path LIKE '%PowerShot_S40/CRW_0101.CRW'")
    assert captured.startswith("2021-04-08 14:51:1")  # 12 in the CRW, 13 in its THM
    assert exposure == pytest.approx(0.01)  # from the THM sidecar


def test_wrong_extensions_detected_by_content(indexed):
    con = indexed[0]
    found = {Path(p).name: f for p, f in con.execute(
        "SELECT path, format FROM images WHERE path LIKE '%formats_images/ukbench09380.%'")}
    assert found == {"ukbench09380.svg": "JPEG", "ukbench09380.png": "JPEG", "ukbench09380.bmp": "JPEG",
                     "ukbench09380.jpeg": "JPEG", "ukbench09380.webp": "WEBP"}
    (fmt,), = con.execute("SELECT format FROM images WHERE path LIKE '%photoprism/this-is-a-jpeg.png'")
    assert fmt == "JPEG"
    shas = {s for (s,) in con.execute("SELECT sha256 FROM images WHERE path LIKE "
                                      "'%formats_images/ukbench09380.%' AND format = 'JPEG'")}
    assert len(shas) == 1


def test_heic_and_tiff_samples(indexed):
    con = indexed[0]
    formats = dict(con.execute("SELECT format, count(*) FROM images GROUP BY format"))
    assert formats.get("TIFF", 0) >= 8
    assert formats.get("HEIF", 0) == 5


def test_many_cameras_grouped(indexed):
    con = indexed[0]
    (pairs,), = con.execute("SELECT count(DISTINCT make || '/' || model) FROM cameras")
    assert pairs >= 45


def test_rerun_indexes_nothing_new(indexed):
    _, first, second = indexed
    assert (second.indexed, second.updated, second.moved, second.missing, second.failed) == (0, 0, 0, 0, 0)
    assert second.unchanged == first.indexed + first.failed


def test_move_is_recognised(shared_data, tmp_path):
    src = tmp_path / "card"
    corpus = shared_data / "raw" / "digicam_corpus" / "Canon" / "PowerShot_S40"
    for name in ("CRW_0101.CRW", "CRW_0101.THM", "IMG_0108.JPG"):
        (src / "dcim").mkdir(parents=True, exist_ok=True)
        shutil.copy2(corpus / name, src / "dcim" / name)
    shutil.copy2(shared_data / "scenes" / "ukbench" / "ukbench00000.jpg", src / "a.jpg")
    session = open_session(str(tmp_path / "m.db"))
    settings = session.settings.index
    assert index_paths([src], session.store, settings, workers=1).indexed == 3
    before = _ids_by_name(session)
    (src / "2021").mkdir()
    shutil.move(src / "dcim" / "CRW_0101.CRW", src / "2021" / "CRW_0101.CRW")
    shutil.move(src / "a.jpg", src / "2021" / "renamed.jpg")
    summary = index_paths([src], session.store, settings, workers=1)
    assert (summary.moved, summary.indexed, summary.missing, summary.unchanged) == (2, 0, 0, 1)
    after = _ids_by_name(session)
    session.engine.dispose()
    assert after == {"CRW_0101.CRW": before["CRW_0101.CRW"], "IMG_0108.JPG": before["IMG_0108.JPG"],
                     "renamed.jpg": before["a.jpg"]}


def _ids_by_name(session) -> dict[str, int]:
    with session.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT path, id FROM images WHERE missing_since IS NULL").all()
    return {Path(p).name: i for p, i in rows}
