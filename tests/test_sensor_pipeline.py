"""Sensor statistics through the real `index` command: frame ledger, merges, crash safety.

A small synthetic camera (112 x 160 Bayer sensor, planted hot/dead/stuck sites) writes its
raw frames as 16-bit grey PNGs with EXIF Make/Model; `photoqa index` feeds them to the
sensor stage, which keeps `<db>.sensors/sensor-<id>.npz`. The helpers at the top are
shared with test_hotpixels_cli.py and test_repair_cli.py.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from indexer.synthetic import camera as synthetic
from indexer.sensor.accumulator import SensorAccumulator

@pytest.fixture(scope="module", autouse=True)
def _learn_from_rendered_frames(learn_from_rendered_frames):
    """Frames here are PNG/JPEG: learn sensor statistics from them (off by default)."""


HEIGHT, WIDTH = 112, 160
FRAMES = 30


# ---------------------------------------------------------------- shared helpers
def make_scenes(seed: int = 0, count: int = 8) -> list[np.ndarray]:
    """Generated textures (small: the sensor sees a 2x-magnified crop of them)."""
    rng = np.random.default_rng(seed)
    return [synthetic.generated_scene(rng, 160, 224) for _ in range(count)]


def make_camera(seed: int = 0, *, clean: bool = False, model: str = synthetic.MODEL):
    counts = dict(hot=0, dead=0, stuck=0) if clean else dict(hot=12, dead=8, stuck=5)
    cam = synthetic.make_camera(HEIGHT, WIDTH, seed=seed, **counts)
    return cam if model == synthetic.MODEL else _renamed(cam, model)


def _renamed(cam, model):
    from dataclasses import replace

    return replace(cam, model=model)


def raw_frames(camera, count: int = FRAMES, *, seed: int = 1, scenes=None) -> list[np.ndarray]:
    return list(synthetic.camera_frames(camera, scenes or make_scenes(), count, seed=seed))


def write_png_frames(folder: Path, camera, frames, *, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [synthetic.write_frame(folder / f"f{start + i:03d}.png", f, make=camera.make, model=camera.model)
            for i, f in enumerate(frames)]


def write_jpeg_frames(folder: Path, camera, frames, *, rotate_odd: bool = True) -> list[Path]:
    """JPEG q95 of the developed frames; odd frames carry EXIF Orientation 6 (shot in
    portrait: same stored pixels, so the same sensor and the same coordinates)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = camera.make, camera.model
        if rotate_odd and i % 2:
            exif[0x0112] = 6
        path = folder / f"f{i:03d}.jpg"
        Image.fromarray(synthetic.develop(f, camera)).save(path, quality=95, exif=exif)
        paths.append(path)
    return paths


def run(db: Path, *args: str, config: Path | None = None):
    """`photoqa --db DB ARGS...`; exceptions other than SystemExit propagate."""
    extra = ["--config", str(config)] if config else []
    return CliRunner().invoke(main, ["--db", str(db), *extra, *map(str, args)], catch_exceptions=False)


def index(db: Path, *paths, workers: int = 1):
    result = run(db, "index", *paths, "--workers", str(workers), "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def hotpixels_json(db: Path, *args, config: Path | None = None) -> list[dict]:
    result = run(db, "hotpixels", "--format", "json", *args, config=config)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["sensors"]


def defect_set(sensor: dict) -> set[tuple[int, int, str]]:
    return {(d["x"], d["y"], d["kind"]) for d in sensor["defects"]}


def accumulator_path(db: Path, sensor_id: int = 1) -> Path:
    """The sensor's statistics file: ``<db>.sensors/sensor-<id>-<random>.npz``."""
    (path,) = db.with_name(db.name + ".sensors").glob(f"sensor-{sensor_id}-*.npz")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def camera():
    return make_camera(seed=0)


@pytest.fixture(scope="module")
def frames(camera):
    return raw_frames(camera)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, camera, frames):
    """30 PNG frames indexed in one run: (db, folder, sensors JSON)."""
    root = tmp_path_factory.mktemp("one_run")
    write_png_frames(root / "frames", camera, frames)
    db = root / "p.db"
    summary = index(db, root / "frames")
    assert summary["indexed"] == FRAMES
    return db, root / "frames", hotpixels_json(db)


# ---------------------------------------------------------------- tests
def test_one_sensor_with_every_frame(indexed, camera):
    db, _, sensors = indexed
    assert len(sensors) == 1
    s = sensors[0]
    assert (s["make"], s["model"], s["width"], s["height"]) == (camera.make, camera.model, WIDTH, HEIGHT)
    assert s["frames"] == FRAMES and s["layout"] == "rgb"  # a PNG is stored pixels, not a RAW CFA
    acc = SensorAccumulator.load(accumulator_path(db))
    assert acc.frames == FRAMES and acc.shape == (HEIGHT, WIDTH)
    assert len(s["defects"]) >= len(camera.truth(("hot", "dead")))


def test_reindexing_the_same_folder_counts_nothing_again(indexed):
    db, folder, before = indexed
    file_before = sha256(accumulator_path(db))
    summary = index(db, folder)
    assert summary["indexed"] == 0 and summary["unchanged"] == FRAMES
    after = hotpixels_json(db)
    assert after[0]["frames"] == FRAMES
    assert defect_set(after[0]) == defect_set(before[0])
    assert sha256(accumulator_path(db)) == file_before  # not even rewritten


def test_byte_identical_copy_elsewhere_is_not_counted_twice(indexed, tmp_path):
    db, folder, _ = indexed
    other = tmp_path / "copies"
    other.mkdir()
    shutil.copy2(folder / "f007.png", other / "same_frame.png")
    summary = index(db, other)
    assert summary["indexed"] == 1  # the copy is a file of its own in the index...
    assert hotpixels_json(db)[0]["frames"] == FRAMES  # ...but not a new frame of the sensor
    assert SensorAccumulator.load(accumulator_path(db)).frames == FRAMES


@pytest.mark.parametrize("flush_frames", [32, 1])
def test_identical_frames_in_one_run_count_once(indexed, tmp_path, flush_frames):
    # flush_frames = 1: the first copy is already in the SQL ledger when the second comes
    _, folder, _ = indexed
    (tmp_path / "photoqa.toml").write_text(f"[sensor]\nflush_frames = {flush_frames}\n")
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy2(folder / "f003.png", tmp_path / name)
    shutil.copy2(folder / "f004.png", tmp_path / "d.png")
    db = tmp_path / "p.db"
    assert index(db, *(tmp_path / n for n in ("a.png", "b.png", "c.png", "d.png")))["indexed"] == 4
    (sensor,) = hotpixels_json(db)
    # a young body (2 of min_frames 5): its frames wait in the spool, unless flushed at once
    assert (sensor["frames"], sensor["waiting"]) == ((2, 0) if flush_frames == 1 else (0, 2))


def test_two_runs_of_15_equal_one_run_of_30(indexed, camera, frames, tmp_path):
    _, _, one_run = indexed
    db = tmp_path / "p.db"
    write_png_frames(tmp_path / "a", camera, frames[:15])
    write_png_frames(tmp_path / "b", camera, frames[15:], start=15)
    index(db, tmp_path / "a")
    assert hotpixels_json(db)[0]["frames"] == 15
    index(db, tmp_path / "b")
    two_runs = hotpixels_json(db)[0]
    assert two_runs["frames"] == FRAMES
    assert defect_set(two_runs) == defect_set(one_run[0])
    assert {(d["x"], d["y"], d["rate"]) for d in two_runs["defects"]} == \
        {(d["x"], d["y"], d["rate"]) for d in one_run[0]["defects"]}


def test_many_flushes_in_one_run_equal_one_flush(indexed, camera, frames, tmp_path):
    # flush_frames = 7: the 30 frames are merged into the file in 5 steps
    _, folder, one_run = indexed
    (tmp_path / "photoqa.toml").write_text("[sensor]\nflush_frames = 7\n")
    db = tmp_path / "p.db"
    index(db, folder)
    sensor = hotpixels_json(db)[0]
    assert sensor["frames"] == FRAMES
    assert defect_set(sensor) == defect_set(one_run[0])


def test_worker_processes_feed_the_same_statistics(indexed, tmp_path):
    _, folder, one_run = indexed
    db = tmp_path / "p.db"
    index(db, folder, workers=2)
    sensor = hotpixels_json(db)[0]
    assert sensor["frames"] == FRAMES
    assert defect_set(sensor) == defect_set(one_run[0])


def test_rebuilt_database_does_not_merge_into_old_files(indexed, tmp_path):
    # deleting the database (not its .sensors folder) and indexing again must not add the
    # same frames to the old statistics file of the sensor with the reused id
    _, folder, _ = indexed
    db = tmp_path / "p.db"
    index(db, folder)
    old_file = accumulator_path(db)
    db.unlink()
    index(db, folder)
    sensor = hotpixels_json(db)[0]
    assert sensor["frames"] == FRAMES and sensor["error"] is None
    (new_file,) = set(old_file.parent.glob("sensor-1-*.npz")) - {old_file}
    assert SensorAccumulator.load(new_file).frames == FRAMES
    assert SensorAccumulator.load(old_file).frames == FRAMES  # left alone


def test_sensor_settings_disabled_learns_nothing(indexed, tmp_path):
    _, folder, _ = indexed
    (tmp_path / "photoqa.toml").write_text("[sensor]\nenabled = false\n")
    db = tmp_path / "p.db"
    assert index(db, folder)["indexed"] == FRAMES
    assert hotpixels_json(db) == []
    assert not db.with_name(db.name + ".sensors").exists()


def test_corrupt_accumulator_is_reported_never_reset(camera, frames, tmp_path):
    """A truncated statistics file (disk error, a copy cut short) must not be silently
    replaced by this run's frames: the run indexes its files, reports the sensor error on
    stderr, leaves the file as it was, and `hotpixels` says the file is unusable."""
    db = tmp_path / "p.db"
    write_png_frames(tmp_path / "a", camera, frames[:10])
    write_png_frames(tmp_path / "b", camera, frames[10:20], start=10)
    index(db, tmp_path / "a")
    path = accumulator_path(db)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    truncated = path.read_bytes()

    result = run(db, "index", tmp_path / "b", "--workers", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["indexed"] == 10  # the files themselves are indexed
    assert "sensor 1: statistics not updated, 10 new frame(s) not counted" in result.stderr
    assert "not a readable sensor accumulator" in result.stderr
    assert path.read_bytes() == truncated  # not reset, not overwritten

    sensor = hotpixels_json(db)[0]
    assert sensor["frames"] == 10  # what the file held before it broke
    assert sensor["status"].startswith("statistics file unusable")
    assert "not a readable sensor accumulator" in sensor["error"]
    table = run(db, "hotpixels")
    assert "statistics file unusable" in table.stdout

    # moving the broken file away starts the sensor afresh with the next new frames
    path.rename(path.with_name("broken.npz.saved"))
    write_png_frames(tmp_path / "c", camera, frames[20:26], start=20)
    index(db, tmp_path / "c")
    sensor = hotpixels_json(db)[0]
    assert sensor["frames"] == 6 and sensor["error"] is None


def test_interrupted_save_keeps_the_previous_file(camera, frames, tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    write_png_frames(tmp_path / "a", camera, frames[:6])
    write_png_frames(tmp_path / "b", camera, frames[6:12], start=6)
    index(db, tmp_path / "a")
    path = accumulator_path(db)
    before = path.read_bytes()

    def half_written(handle, **arrays):
        handle.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of the save

    monkeypatch.setattr("indexer.sensor.accumulator.np.savez", half_written)
    result = run(db, "index", tmp_path / "b", "--workers", "1")
    monkeypatch.undo()
    assert result.exit_code == 130 and "interrupted" in result.output  # cli.EXIT_INTERRUPTED, one line
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert SensorAccumulator.load(path).frames == 6


def test_stage_skips_what_it_cannot_learn_from(indexed, tmp_path):
    """An X-Trans RAW (6x6 pattern) or a frame of an unexpected dtype must neither stop
    the run nor leave a sensor row or a half-counted frame behind."""
    from types import SimpleNamespace

    from indexer.pipeline.stages import build_stages, close_stages
    from indexer.pipeline.sensorstage import SensorStage
    from indexer.session import open_session

    _, folder, _ = indexed
    db = tmp_path / "p.db"
    index(db, folder / "f000.png")  # image 1, with a camera
    session = open_session(str(db))
    stages = build_stages(session)
    (stage,) = [s for s in stages if isinstance(s, SensorStage)]
    xtrans = SimpleNamespace(data=np.zeros((60, 60), np.uint16), pattern=np.zeros((6, 6), np.int8),
                             black=np.zeros(4), white=4095.0, colors="RGBG")
    stage(1, SimpleNamespace(decoded=SimpleNamespace(sha256="a" * 64, cfa=xtrans, frame=None, meta=None), sensor=None))
    odd = np.zeros((HEIGHT, WIDTH), np.float32)  # no decoder makes this; refused before counting
    stage(1, SimpleNamespace(decoded=SimpleNamespace(sha256="b" * 64, cfa=None, frame=odd, meta=None), sensor=None))
    assert close_stages(stages) == []
    (sensor,) = hotpixels_json(db)
    assert sensor["layout"] == "rgb" and (sensor["frames"], sensor["waiting"]) == (0, 1)  # f000's, young
    assert stage.errors == []


def test_missing_statistics_file_is_reported(indexed, tmp_path):
    _, folder, _ = indexed
    db = tmp_path / "p.db"
    index(db, *(folder / f"f00{i}.png" for i in range(5)))  # min_frames: a file written
    accumulator_path(db).unlink()
    (sensor,) = hotpixels_json(db)
    assert "is missing (5 frames recorded)" in sensor["error"]
    # without any sensor folder (a shared database indexed elsewhere) it is no error
    shutil.rmtree(db.with_name(db.name + ".sensors"))
    assert hotpixels_json(db)[0]["error"] is None
