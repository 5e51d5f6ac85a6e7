"""Sensor health by default, dated defects, and the learning budget, through `photoqa index`.

A synthetic camera (112 x 160 Bayer sensor, 20 hot + 10 dead sites) writes 80 raw frames
as 16-bit grey PNGs with EXIF Make/Model and DateTimeOriginal one minute apart; from
frame 40 on one more site is hot. A plain `photoqa index` (no configuration at all) must
map the planted sites, date the late one from frame 40's capture time and export that
time in the `.badpixels` file; a camera on a tight budget (about half its frames learnt)
must still find the late defect.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from indexer.sensor import budget
from indexer.synthetic import camera as synthetic
from test_sensor_pipeline import defect_set, hotpixels_json, index, make_scenes, run, sha256

HEIGHT, WIDTH = 112, 160
FRAMES, ONSET = 80, 40
START = datetime(2026, 3, 1, 8, 0, 0)


def _when(i: int) -> datetime:
    return START + timedelta(minutes=i)


def _seconds(i: int) -> int:
    return calendar.timegm(_when(i).timetuple())


@pytest.fixture(scope="module")
def camera():
    return synthetic.make_camera(HEIGHT, WIDTH, hot=20, dead=10, stuck=0, seed=5)


def _late_site(camera) -> tuple[int, int]:
    """(y, x) of the site that turns hot at frame ONSET: the first one, in raster order
    from (20, 20), more than 6 px from every planted defect."""
    taken = [(int(y), int(x)) for k in ("hot", "dead") for y, x in getattr(camera, k)]
    for y in range(20, HEIGHT - 20):
        for x in range(20, WIDTH - 20):
            if all(max(abs(y - ty), abs(x - tx)) > 6 for ty, tx in taken):
                return y, x
    raise AssertionError("no free site")


@pytest.fixture(scope="module")
def late(camera) -> tuple[int, int]:
    return _late_site(camera)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, camera, late) -> Path:
    root = tmp_path_factory.mktemp("dated") / "frames"
    root.mkdir()
    rng = np.random.default_rng(11)
    scenes = make_scenes(seed=3)
    for i in range(FRAMES):
        raw = synthetic.render_cfa(camera, scenes[i % len(scenes)], rng).astype(np.int64)
        if i >= ONSET:
            raw[late] += 20000  # a dark-current hot pixel from that day on
        synthetic.write_frame(root / f"f{i:03d}.png", np.clip(raw, 0, 65535).astype(np.uint16),
                              make=camera.make, model=camera.model, captured=_when(i))
    return root


@pytest.fixture()
def plain_defaults(monkeypatch):
    monkeypatch.delenv("PHOTOQA_CONFIG", raising=False)


def two_runs(folder: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Folders of links to ``folder``'s frames: 0-29 (a first run), and the rest (a later one)."""
    first_run, later = tmp_path / "first", tmp_path / "later"
    first_run.mkdir()
    later.mkdir()
    for i in range(FRAMES):
        (first_run if i < 30 else later).joinpath(f"f{i:03d}.png").symlink_to(folder / f"f{i:03d}.png")
    return first_run, later


def test_plain_index_maps_and_dates_defects(plain_defaults, folder, camera, late, tmp_path):
    db = tmp_path / "p.db"
    index(db, folder, workers=2)
    (sensor,) = hotpixels_json(db)
    assert sensor["frames"] == FRAMES  # small frames are always learnt
    assert sensor["updated"] is not None
    found = defect_set(sensor)
    planted = camera.truth(("hot", "dead")) | {(late[1], late[0], "hot")}
    assert found == planted, sorted(found ^ planted)
    by_site = {(d["x"], d["y"]): d for d in sensor["defects"]}
    dated = by_site[(late[1], late[0])]
    assert dated["first_seen"] == _when(ONSET).isoformat()
    assert dated["last_seen"] == _when(FRAMES - 1).isoformat()
    assert (dated["first_seen_after"], dated["skipped_before"]) == (None, 0)  # every frame learnt: exact
    always = by_site[(int(camera.hot[0, 1]), int(camera.hot[0, 0]))]
    assert always["first_seen"] == _when(0).isoformat()
    export = tmp_path / "export"
    assert run(db, "hotpixels", "--export-badpixels", export).exit_code == 0
    (text,) = [p.read_text() for p in export.glob("*.badpixels")]
    assert f"{late[1]} {late[0]} {_seconds(ONSET)} " in text
    assert _when(ONSET).isoformat() in run(db, "hotpixels").stdout


def test_budgeted_camera_finds_a_late_defect(plain_defaults, folder, late, tmp_path):
    """About half the frames learnt (sample_megapixels half a frame): the late site is
    still found, first seen at the first learnt frame from its onset on, its onset
    bracketed by the last learnt frame before it and exported from the frame after that."""
    frame_mp = HEIGHT * WIDTH / 1e6
    config = tmp_path / "budget.toml"
    # sampled from the first frame; raw grey frames read dark, so no dark-frame reveal here
    config.write_text(f"[sensor]\nsample_megapixels = {frame_mp / 2}\nlearn_first = 0\nstable_frames = 0\n"
                      "dark_luminance = 0\n")
    db = tmp_path / "b.db"
    assert run(db, "index", folder, "--workers", "1", config=config).exit_code == 0
    (sensor,) = hotpixels_json(db, config=config)
    drawn = [i for i in range(FRAMES)
             if budget.drawn(sha256(folder / f"f{i:03d}.png"), 0.5)]
    assert sensor["frames"] == len(drawn) and FRAMES // 4 < len(drawn) < FRAMES * 3 // 4
    dated = {(d["x"], d["y"]): d for d in sensor["defects"]}[(late[1], late[0])]
    first_learnt = min(i for i in drawn if i >= ONSET)
    assert dated["kind"] == "hot" and dated["first_seen"] == _when(first_learnt).isoformat()
    # the onset is bracketed, honestly: after the last learnt frame before it (clean), by
    # the first learnt one after; the .badpixels date is the first frame after the clean one
    last_clean = max(i for i in drawn if i < ONSET)
    assert last_clean < ONSET <= first_learnt
    assert first_learnt - last_clean > 1  # this seeded folder: 36 .. 43, 6 frames skipped
    assert dated["first_seen_after"] == _when(last_clean).isoformat()
    assert dated["skipped_before"] == first_learnt - last_clean - 1
    assert f"after {_when(last_clean).isoformat()}, by {_when(first_learnt).isoformat()}" in \
        run(db, "hotpixels", config=config).stdout
    assert dated["onset_from"] == _when(last_clean + 1).isoformat()
    export = tmp_path / "export"
    assert run(db, "hotpixels", "--export-badpixels", export, config=config).exit_code == 0
    (text,) = [p.read_text() for p in export.glob("*.badpixels")]
    assert f"{late[1]} {late[0]} {_seconds(last_clean + 1)} " in text
    # a defect present from the first frame stays dated at the first learnt frame's time
    always = [d for d in sensor["defects"] if d["first_seen"] == _when(drawn[0]).isoformat()]
    assert always and all(d["first_seen_after"] is None for d in always)


def test_learn_first_maps_a_new_body_in_full_then_samples(plain_defaults, folder, tmp_path):
    """learn_first = 25 with a sample of ~1 frame in 180: a new body's first run learns
    every frame; once it rests on 25 frames, later runs learn only the drawn ones."""
    share = 1e-4 / (HEIGHT * WIDTH / 1e6)
    config = tmp_path / "first.toml"
    config.write_text("[sensor]\nsample_megapixels = 0.0001\nlearn_first = 25\nstable_frames = 0\ndark_luminance = 0\n")
    first_run, later = two_runs(folder, tmp_path)
    db = tmp_path / "f.db"
    assert run(db, "index", first_run, "--workers", "1", config=config).exit_code == 0
    assert hotpixels_json(db, config=config)[0]["frames"] == 30
    assert run(db, "index", later, "--workers", "1", config=config).exit_code == 0
    drawn = sum(budget.drawn(sha256(folder / f"f{i:03d}.png"), share) for i in range(30, FRAMES))
    assert hotpixels_json(db, config=config)[0]["frames"] == 30 + drawn


def test_a_body_learns_every_frame_until_its_map_stands_still(plain_defaults, folder, camera, tmp_path):
    """flush_frames = 10, stable_frames = 20, learn_first = 0, a sample of ~1 in 180: the
    first run (frames 0-29, a new body) learns every frame; its 30 planted defects are
    all listed from the first flush (10 frames) on, so the map is stable since frame 10
    and, 20 frames later, sampled: the second run learns only the drawn frames."""
    share = 1e-4 / (HEIGHT * WIDTH / 1e6)
    config = tmp_path / "stable.toml"
    config.write_text("[sensor]\nsample_megapixels = 0.0001\nlearn_first = 0\nstable_frames = 20\n"
                      "flush_frames = 10\ndark_luminance = 0\n")
    first_run, later = two_runs(folder, tmp_path)
    db = tmp_path / "s.db"
    assert run(db, "index", first_run, "--workers", "1", config=config).exit_code == 0
    (sensor,) = hotpixels_json(db, config=config)
    assert defect_set(sensor) == camera.truth(("hot", "dead"))
    assert (sensor["frames"], sensor["stable_since_frame"], sensor["learning"]) == (30, 10, "sample")
    assert "sample; stable since frame 10" in run(db, "hotpixels", config=config).stdout
    assert run(db, "index", later, "--workers", "1", config=config).exit_code == 0
    drawn = sum(budget.drawn(sha256(folder / f"f{i:03d}.png"), share) for i in range(30, FRAMES))
    assert hotpixels_json(db, config=config)[0]["frames"] == 30 + drawn


def test_onset_bracket_counts_only_the_skipped_frames_after_the_last_clean_one():
    from indexer.sensor.dating import Onset, onset

    learnt, skipped = [10, 20, 50, 60], [5, 25, 30, 40, 55, 70]
    assert onset(50, learnt, skipped) == Onset(20, 25, 3)  # clean at 20; 25, 30, 40 may carry it
    assert onset(60, learnt, skipped) == Onset(50, 55, 1)
    assert onset(20, learnt, skipped) == Onset(None, 20, 0)  # nothing skipped since 10: exact
    assert onset(10, learnt, skipped) == Onset(None, 5, 1)  # no learnt frame before: from the first
    assert onset(10, learnt, []).exact and not onset(50, learnt, skipped).exact


def test_the_stability_clock_is_exact_at_flush_granularity(plain_defaults, folder, tmp_path):
    """flush_frames = 10 (no time-based flush), every frame learnt in order: the writer's
    ``stable_since`` is the last flush boundary at which the defect list differed from the
    previous flush's, i.e. the per-frame change (a one-pass accumulator classified after
    every frame) rounded up to the next multiple of 10: never before it, at most 9 later.
    Here the last change is the late site entering the list (dated: 20 frames after 40)."""
    from indexer.config import SensorSettings
    from indexer.decode import SensorData
    from indexer.decode.image import decode_bytes
    from indexer.pipeline.sensorplan import take_delta
    from indexer.sensor import NotEnoughFrames, SensorAccumulator, classify_defects

    flush = 10
    config = tmp_path / "flush.toml"
    config.write_text(f"[sensor]\nflush_frames = {flush}\nflush_seconds = 1000000.0\n")
    db = tmp_path / "c.db"
    assert run(db, "index", folder, "--workers", "1", config=config).exit_code == 0
    (sensor,) = hotpixels_json(db, config=config)
    settings = SensorSettings()
    acc, lists = None, [frozenset()]
    for i in range(FRAMES):
        path = folder / f"f{i:03d}.png"
        delta = take_delta(decode_bytes(path.read_bytes(), path, sensor_data=SensorData.ALL))
        acc = acc or SensorAccumulator(delta.height, delta.width, layout=delta.layout, params=delta.params)
        acc.add(delta)
        try:
            found = classify_defects(acc, rate=settings.rate, min_frames=settings.min_frames,
                                     stuck_tests=settings.stuck_tests())
        except NotEnoughFrames:
            found = []
        lists.append(frozenset((d.x, d.y, d.kind) for d in found))
    exact = max(n for n in range(1, FRAMES + 1) if lists[n] != lists[n - 1])  # last per-frame change
    at_flushes = max(b for b in range(flush, FRAMES + 1, flush) if lists[b] != lists[b - flush])
    assert at_flushes == -(-exact // flush) * flush  # no change came and went within a flush here
    assert sensor["stable_since_frame"] == at_flushes
    assert 0 <= sensor["stable_since_frame"] - exact < flush
    assert exact > ONSET  # the late defect's entry was the last change
