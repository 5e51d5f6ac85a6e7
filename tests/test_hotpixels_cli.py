"""`photoqa hotpixels` after `photoqa index`: planted defects come back, exports and maps.

Synthetic cameras (see test_sensor_pipeline.py) write 30 frames as 16-bit grey PNGs (the
raw mosaic) or as developed JPEG q95; the RAW case uses the Canon PowerShot S40 frames of
the shared data. PNG and JPEG frames are "rgb" sensors: stuck sites are diagnosed on the
PNG frames (exact raw values), while in JPEGs a stuck site shows up as hot or dead, or not
at all, so recall is measured on the planted hot and dead sites, and a reported site
counts as right when any defect was planted there.
"""
from __future__ import annotations

import calendar
import csv
import re
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from indexer.synthetic import camera as synthetic
from indexer.sensor.export import MAP_COLOURS
from indexer.sensor.residual import rgb_residual
# camera, frames and the rendered-frames setting are module fixtures shared with the pipeline tests
from test_sensor_pipeline import (FRAMES, HEIGHT, WIDTH, _learn_from_rendered_frames,  # noqa: F401
                                  accumulator_path, camera, defect_set, frames, hotpixels_json, index,
                                  make_camera, make_scenes, raw_frames, run, write_jpeg_frames,
                                  write_png_frames)
from indexer.sensor.accumulator import SensorAccumulator


def _scores(found: set, camera) -> tuple[float, float]:
    planted_anywhere = {(x, y) for x, y, _ in camera.truth()}
    hot_dead = camera.truth(("hot", "dead"))
    precision = sum((x, y) in planted_anywhere for x, y, _ in found) / max(1, len(found))
    recall = len(found & hot_dead) / len(hot_dead)
    return precision, recall


@pytest.fixture(scope="module")
def png_db(tmp_path_factory, camera, frames):
    root = tmp_path_factory.mktemp("png")
    write_png_frames(root / "frames", camera, frames)
    db = root / "p.db"
    index(db, root / "frames")
    return db


@pytest.fixture(scope="module")
def jpeg_db(tmp_path_factory, camera, frames):
    root = tmp_path_factory.mktemp("jpeg")
    write_jpeg_frames(root / "frames", camera, frames)
    db = root / "p.db"
    index(db, root / "frames")
    return db


def test_png_frames_report_planted_defects(png_db, camera):
    (sensor,) = hotpixels_json(png_db)
    assert (sensor["make"], sensor["model"], sensor["serial"]) == (camera.make, camera.model, "")
    assert (sensor["width"], sensor["height"], sensor["frames"]) == (WIDTH, HEIGHT, FRAMES)
    found = defect_set(sensor)
    precision, recall = _scores(found, camera)
    assert precision >= 0.98 and recall >= 0.98, (precision, recall, sorted(found ^ camera.truth()))
    # stuck sites diagnosed on rendered frames too: a mosaiced PNG keeps the raw values
    stuck = {(x, y) for x, y, kind in found if kind == "stuck"}
    assert stuck == {(x, y) for x, y, _ in camera.truth(("stuck",))}
    assert all(d["rate"] >= 0.9 and d["frames"] == FRAMES for d in sensor["defects"])
    assert sensor["status"] == f"{len(found)} defects"


def test_jpeg_frames_report_planted_defects(jpeg_db, camera):
    (sensor,) = hotpixels_json(jpeg_db)
    assert (sensor["width"], sensor["height"], sensor["frames"]) == (WIDTH, HEIGHT, FRAMES)
    found = defect_set(sensor)
    precision, recall = _scores(found, camera)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, sorted(found ^ camera.truth()))


def test_table_and_csv(png_db, camera):
    table = run(png_db, "hotpixels")
    assert table.exit_code == 0
    assert re.search(rf"Photoqa Synthetic S1\s+{WIDTH}x{HEIGHT}\s+rgb\s+{FRAMES}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d"
                     rf"\s+every frame; stable since frame {FRAMES} \(\d{{4}}-\d\d-\d\d \d\d:\d\d\)"
                     rf"\s+\d+ defects", table.stdout), table.stdout
    rows = list(csv.DictReader(run(png_db, "hotpixels", "--format", "csv").stdout.splitlines()))
    hot_dead = camera.truth(("hot", "dead"))
    assert hot_dead <= {(int(r["x"]), int(r["y"]), r["kind"]) for r in rows}
    assert {r["sensor"] for r in rows} == {"1"}


def test_unknown_camera_id_is_an_error(png_db):
    result = run(png_db, "hotpixels", "--camera", "99")
    assert result.exit_code == 1 and "no sensor with id 99" in result.stderr


def test_clean_camera_yields_no_defects(tmp_path):
    clean = make_camera(seed=2, clean=True)
    write_png_frames(tmp_path / "frames", clean, raw_frames(clean, seed=3, scenes=make_scenes(seed=5)))
    db = tmp_path / "p.db"
    index(db, tmp_path / "frames")
    (sensor,) = hotpixels_json(db)
    assert sensor["frames"] == FRAMES
    assert sensor["defects"] == [] and sensor["status"] == "no defects"


def test_single_bright_star_is_not_reported(tmp_path):
    clean = make_camera(seed=4, clean=True)
    scenes, rng = make_scenes(seed=6), np.random.default_rng(5)
    star = (51, 83)  # (y, x)
    frames = [synthetic.render_cfa(clean, scenes[i % len(scenes)], rng,
                                   stars=((*star, 40000.0),) if i == 7 else ())
              for i in range(FRAMES)]
    assert rgb_residual(frames[7]).bright[star]  # the star stands out in its frame
    write_png_frames(tmp_path / "frames", clean, frames)
    db = tmp_path / "p.db"
    index(db, tmp_path / "frames")
    (sensor,) = hotpixels_json(db)
    assert sensor["frames"] == FRAMES and sensor["defects"] == []
    # the frame did reach the statistics: the star's site stood out, once
    assert SensorAccumulator.load(accumulator_path(db)).bright[star] >= 1


def test_too_few_frames_says_not_enough(camera, frames, tmp_path):
    write_png_frames(tmp_path / "frames", camera, frames[:3])
    db = tmp_path / "p.db"
    index(db, tmp_path / "frames")
    (sensor,) = hotpixels_json(db)
    assert (sensor["frames"], sensor["waiting"]) == (0, 3)  # a young body's frames wait in the spool
    status = "not enough frames (0 of 5; 3 more waiting, counted once the body has 5)"
    assert sensor["status"] == status and sensor["defects"] == []
    assert status in run(db, "hotpixels").stdout


def test_min_frames_from_config_applies_to_reports(png_db, tmp_path):
    config = tmp_path / "strict.toml"
    config.write_text("[sensor]\nmin_frames = 40\n")
    (sensor,) = hotpixels_json(png_db, config=config)
    assert sensor["status"] == "not enough frames (30 of 40)"
    assert sensor["defects"] == []  # classified earlier under min_frames 5: not shown now
    assert "not enough frames (30 of 40)" in run(png_db, "hotpixels", config=config).stdout


def test_export_badpixels_for_a_rendered_sensor(png_db, camera, tmp_path):
    out = tmp_path / "bp"
    result = run(png_db, "hotpixels", "--export-badpixels", out)
    assert result.exit_code == 0
    # rendered-image coordinates are no raw coordinates: a dcraw-form list for reference,
    # and deliberately no RawTherapee `<make> <model>.badpixels` that RawTherapee would
    # apply to this camera's RAW files
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"Photoqa Synthetic S1 {WIDTH}x{HEIGHT}.rgb.badpixels"]
    text = (out / files[0]).read_text()
    lines = [line.split("#")[0].split() for line in text.splitlines() if not line.startswith("#")]
    positions = {(int(c), int(r)) for c, r, t in lines if t == "0"}
    assert len(positions) == len(lines)
    assert {(x, y) for x, y, _ in camera.truth(("hot", "dead"))} <= positions
    assert f"wrote {out / files[0]}" in result.stderr


def test_map_has_the_sensor_aspect_and_marks_defects(png_db, camera, tmp_path):
    target = tmp_path / "maps" / "synthetic.png"
    assert run(png_db, "hotpixels", "--map", target).exit_code == 0
    with Image.open(target) as im:
        assert im.format == "PNG"
        picture = np.asarray(im.convert("RGB"))
    h, w = picture.shape[:2]
    assert abs(w / h - WIDTH / HEIGHT) < 0.02
    scale = w / WIDTH
    for x, y, kind in camera.truth(("hot", "dead")):
        assert tuple(picture[int(y * scale), int(x * scale)]) == MAP_COLOURS[kind]
    near = np.zeros((h, w), bool)  # within the drawn squares of a reported defect
    for d in hotpixels_json(png_db)[0]["defects"]:
        cy, cx = int(d["y"] * scale), int(d["x"] * scale)
        near[max(0, cy - 4) : cy + 5, max(0, cx - 4) : cx + 5] = True
    coloured = np.zeros((h, w), bool)
    for colour in MAP_COLOURS.values():
        coloured |= (picture == colour).all(axis=2)
    assert coloured.any() and not (coloured & ~near).any()


# ---------------------------------------------------------------- RAW (shared data)
S40 = "raw/digicam_corpus/Canon/PowerShot_S40"
S40_CANDIDATES = "sensor/derived/hotpixel_candidates_canon_s40.csv"


@pytest.fixture(scope="module")
def s40_db(shared_data, tmp_path_factory):
    crws = sorted((shared_data / S40).glob("*.CRW"))
    assert len(crws) == 5
    db = tmp_path_factory.mktemp("s40") / "p.db"
    assert index(db, *crws)["indexed"] == 5
    return db


def _all_five(shared_data) -> set[tuple[int, int]]:
    with (shared_data / S40_CANDIDATES).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {(int(r["col_visible"]), int(r["row_visible"])) for r in rows
            if int(r["frames_flagged"]) == int(r["frames_total"]) == 5}


@pytest.mark.data
def test_s40_raw_frames_report_sites_flagged_in_all_five(s40_db, shared_data):
    (sensor,) = hotpixels_json(s40_db)
    assert sensor["make"] == "Canon" and "PowerShot S40" in sensor["model"]
    assert sensor["layout"] == "cfa" and sensor["frames"] == 5
    all_five = _all_five(shared_data)
    found = {(d["x"], d["y"]) for d in sensor["defects"]}
    assert all_five and all_five <= found, sorted(all_five - found)
    assert len(found) < 100  # weak hot pixels, not scene texture


@pytest.mark.data
def test_s40_export_for_dcraw_and_rawtherapee(s40_db, shared_data, tmp_path):
    out = tmp_path / "bp"
    assert run(s40_db, "hotpixels", "--export-badpixels", out).exit_code == 0
    rawtherapee = out / "Canon PowerShot S40.badpixels"  # make + model without the repeated make
    dcraw = out / "Canon PowerShot S40.dcraw.badpixels"
    assert sorted(out.iterdir()) == sorted([rawtherapee, dcraw])
    rt_lines = rawtherapee.read_text().splitlines()
    assert all(re.fullmatch(r"\d+ \d+", line) for line in rt_lines)  # no comment, no offset line
    rt = {tuple(map(int, line.split())) for line in rt_lines}
    lines = [line.split("#")[0].split() for line in dcraw.read_text().splitlines() if not line.startswith("#")]
    dc = {(int(c), int(r)): int(t) for c, r, t in lines}
    all_five = _all_five(shared_data)
    assert all_five <= rt and rt == set(dc)
    # the third column is when the defect was first seen (capture time), 0 when unknown
    (sensor,) = hotpixels_json(s40_db)
    first = {(d["x"], d["y"]): d["first_seen"] for d in sensor["defects"]}
    for site, t in dc.items():
        expected = first[site]
        assert t == (calendar.timegm(datetime.fromisoformat(expected).timetuple()) if expected else 0)


@pytest.mark.data
def test_s40_map(s40_db, tmp_path):
    target = tmp_path / "s40.png"
    assert run(s40_db, "hotpixels", "--map", target).exit_code == 0
    (sensor,) = hotpixels_json(s40_db)
    with Image.open(target) as im:
        w, h = im.size
    assert max(w, h) <= 1024 and abs(w / h - sensor["width"] / sensor["height"]) < 0.01
