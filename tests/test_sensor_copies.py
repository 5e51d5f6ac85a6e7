"""A copy of a shot is not a new exposure of the sensor: it is not learnt.

A synthetic camera (112 x 160 Bayer sensor, 20 hot + 10 dead sites) writes 12 raw
frames as 16-bit grey PNGs with EXIF Make/Model and DateTimeOriginal one minute apart.
A later run finds 4 mirrored copies of them (same EXIF: what an editor writes) and 2
byte-different but pixel-identical re-saves. Counted, the copies would make 18 frames in
which each planted site stands out in 12 plus the re-saves' (a mirrored frame shows
it at x -> W - 1 - x), 14/18 = 0.78 below the 0.9 rate: every planted defect lost.
Not counted: 12 frames, exactly the planted sites.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from indexer.synthetic import camera as synthetic
from test_sensor_pipeline import defect_set, hotpixels_json, index, make_scenes, sha256

HEIGHT, WIDTH = 112, 160
SHOTS = 12
MIRRORED, RESAVED = (1, 4, 7, 10), (2, 5)
START = datetime(2026, 3, 1, 8, 0, 0)


@pytest.fixture(scope="module")
def camera():
    return synthetic.make_camera(HEIGHT, WIDTH, hot=20, dead=10, stuck=0, seed=5)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, camera) -> tuple[Path, Path]:
    """(shots, copies): the camera's frames, and copies of some of them made later."""
    root = tmp_path_factory.mktemp("copies")
    shots, copies = root / "shots", root / "copies"
    shots.mkdir()
    copies.mkdir()
    rng = np.random.default_rng(11)
    scenes = make_scenes(seed=3)
    for i in range(SHOTS):
        raw = synthetic.render_cfa(camera, scenes[i % len(scenes)], rng)
        when = START + timedelta(minutes=i)
        synthetic.write_frame(shots / f"f{i:03d}.png", raw, make=camera.make, model=camera.model, captured=when)
        if i in MIRRORED:
            synthetic.write_frame(copies / f"f{i:03d}_mirror.png", np.ascontiguousarray(raw[:, ::-1]),
                                  make=camera.make, model=camera.model, captured=when)
        if i in RESAVED:  # the same pixels, other bytes (a text chunk added by a photo manager)
            with Image.open(shots / f"f{i:03d}.png") as img:
                info = PngImagePlugin.PngInfo()
                info.add_text("Software", "a photo manager")
                img.save(copies / f"f{i:03d}_resaved.png", exif=img.getexif(), pnginfo=info)
    return shots, copies


@pytest.fixture()
def plain_defaults(monkeypatch):
    monkeypatch.delenv("PHOTOQA_CONFIG", raising=False)


def test_copies_of_shots_are_not_learnt(plain_defaults, folders, camera, tmp_path):
    shots, copies = folders
    db = tmp_path / "p.db"
    index(db, shots)
    summary = index(db, shots.parent)  # the copies arrive in a later run
    assert summary["indexed"] == len(MIRRORED) + len(RESAVED)
    (sensor,) = hotpixels_json(db)
    assert sensor["frames"] == SHOTS  # small frames are always learnt: the shots, no copy
    found = defect_set(sensor)
    planted = camera.truth(("hot", "dead"))
    assert found == planted, sorted(found ^ planted)
    import sqlite3

    with sqlite3.connect(db) as conn:
        learnt = {row[0] for row in conn.execute("select sha256 from sensor_frames")}
    assert learnt == {sha256(p) for p in shots.iterdir()}
    assert not learnt & {sha256(p) for p in copies.iterdir()}


def test_a_copy_that_comes_first_is_learnt_and_its_shot_is_not(plain_defaults, folders, tmp_path):
    """The exposure is counted once, by its first image stored: a copy indexed before its
    shot stands for it (no way to tell which of two images of one exposure is the camera's)."""
    shots, copies = folders
    db = tmp_path / "p.db"
    index(db, copies)
    index(db, shots.parent)
    (sensor,) = hotpixels_json(db)
    assert sensor["frames"] == SHOTS
    import sqlite3

    with sqlite3.connect(db) as conn:
        learnt = {row[0] for row in conn.execute("select sha256 from sensor_frames")}
    kept = {sha256(p) for p in copies.iterdir()} | {
        sha256(shots / f"f{i:03d}.png") for i in range(SHOTS) if i not in MIRRORED + RESAVED}
    assert learnt == kept


def test_copies_in_the_same_run_count_one_frame_an_exposure(plain_defaults, folders, tmp_path):
    """Shots and copies in one run, two workers racing: one frame per exposure."""
    shots, _ = folders
    db = tmp_path / "p.db"
    summary = index(db, shots.parent, workers=2)
    assert summary["indexed"] == SHOTS + len(MIRRORED) + len(RESAVED)
    (sensor,) = hotpixels_json(db)
    assert sensor["frames"] == SHOTS


def test_a_worker_skips_the_full_decode_of_a_later_copy(tmp_path):
    """The exposure marks: the first file of a camera and capture time is drawn, a later
    one (another worker's) is not; another second, or sub-second, or body is another
    exposure; without a capture time there is nothing to tell copies by."""
    from indexer.config import SensorSettings
    from indexer.decode import SensorData
    from indexer.decode.exif import Camera, Capture, Metadata
    from indexer.pipeline.sensorplan import SensorPlan, exposure_marks

    every = SensorSettings(learn_megapixels=100.0)  # every frame drawn while mapping
    body, other = Camera("PlantCam", "P1"), Camera("PlantCam", "P1", "0042")
    at = datetime(2026, 3, 1, 8, 0, 0)

    def meta(when, camera=body):
        return Metadata(Capture(captured_at=when), camera)

    with exposure_marks(SensorPlan(SensorData.ALL, every)) as plan:
        assert plan.marks and Path(plan.marks).is_dir()
        same_time_elsewhere = SensorPlan(SensorData.ALL, every, marks=plan.marks)  # another worker
        assert plan.learns(meta(at), 4000, 3000, "a" * 64)
        assert not same_time_elsewhere.learns(meta(at), 4000, 3000, "b" * 64)  # a copy of that shot
        assert plan.learns(meta(at + timedelta(seconds=1)), 4000, 3000, "c" * 64)
        assert plan.learns(meta(at + timedelta(microseconds=250_000)), 4000, 3000, "d" * 64)
        assert plan.learns(meta(at, other), 4000, 3000, "e" * 64)
        assert plan.learns(meta(at), 4000, 3000, "1" * 64, raw=True)  # the RAW of a RAW+JPEG pair: its own sensor
        assert plan.learns(meta(at), 2000, 1500, "2" * 64)  # another size: another sensor
        assert not plan.learns(meta(at), 2000, 1500, "3" * 64)
        assert plan.learns(meta(None), 4000, 3000, "f" * 64) and plan.learns(meta(None), 4000, 3000, "0" * 64)
        folder = Path(plan.marks)
    assert not folder.exists()  # removed with the run
    unmarked = SensorPlan(SensorData.ALL, every)  # no marks (a plan built by hand): the writer decides
    assert unmarked.learns(meta(at), 4000, 3000, "a" * 64) and unmarked.learns(meta(at), 4000, 3000, "b" * 64)
