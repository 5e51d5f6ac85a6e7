"""Planted defects come back: synthetic camera, 30 frames, lossless and JPEG q95."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import shared_data_dir
from indexer.config import SensorSettings
from indexer.synthetic import camera as synthetic
from indexer.sensor.accumulator import SensorAccumulator
from indexer.sensor.defects import NotEnoughFrames, classify_defects, defect_mask

FRAMES = 30


def _photos():
    root = shared_data_dir()
    return root / "photos" / "kodak" if root else None  # generated textures when absent


@pytest.fixture(scope="module")
def scenes():
    return synthetic.load_scenes(_photos())


@pytest.fixture(scope="module")
def camera():
    return synthetic.make_camera(seed=0)


@pytest.fixture(scope="module")
def frames(camera, scenes):
    return list(synthetic.camera_frames(camera, scenes, FRAMES, seed=1))


def _png16_round_trip(cfa: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(cfa).save(buf, "PNG")
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im).astype(np.uint16)


def _jpeg_round_trip(rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def _raw_accumulator(camera, frames) -> SensorAccumulator:
    acc = SensorAccumulator(camera.height, camera.width, pattern=camera.pattern)
    for frame in frames:
        acc.update(frame, black_level=camera.black, white_level=camera.white)
    return acc


def _scores(found: set, truth: set, relevant: set | None = None) -> tuple[float, float]:
    relevant = truth if relevant is None else relevant
    precision = len(found & truth) / max(1, len(found))
    recall = len(found & relevant) / len(relevant)
    return precision, recall


def test_lossless_frames_recall_and_precision(camera, frames):
    decoded = [_png16_round_trip(f) for f in frames]
    assert np.array_equal(decoded[0], frames[0])
    defects = classify_defects(_raw_accumulator(camera, decoded))
    found = {(d.x, d.y, d.kind) for d in defects}
    precision, recall = _scores(found, camera.truth())
    assert precision >= 0.98 and recall >= 0.98, (precision, recall, sorted(camera.truth() ^ found))
    assert all(d.frames == FRAMES and d.rate >= 0.9 for d in defects)
    hot = [d for d in defects if d.kind == "hot"]
    assert min(d.mean_residual for d in hot) > 1000  # planted offsets are >= 6,400 DN


def test_jpeg_q95_frames_recall_and_precision(camera, frames):
    acc = SensorAccumulator(camera.height, camera.width, layout="rgb")
    for frame in frames:
        acc.update(_jpeg_round_trip(synthetic.develop(frame, camera)))
    found = {(d.x, d.y) for d in classify_defects(acc, stuck_tests=SensorSettings().stuck_tests())}
    # stuck is a RAW-only diagnosis (a demosaiced pixel mixes its neighbours): recall is
    # measured on hot + dead; a stuck site that shows up as hot is still a true defect
    everything = {(x, y) for x, y, _ in camera.truth()}
    hot_dead = {(x, y) for x, y, _ in camera.truth(("hot", "dead"))}
    precision, recall = _scores(found, everything, hot_dead)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, sorted(hot_dead - found))


def test_clean_camera_yields_no_defects(scenes):
    clean = synthetic.make_camera(seed=2, hot=0, dead=0, stuck=0)
    frames = synthetic.camera_frames(clean, scenes, FRAMES, seed=3)
    assert classify_defects(_raw_accumulator(clean, frames)) == []


def test_single_bright_star_is_not_reported(scenes):
    clean = synthetic.make_camera(seed=4, hot=0, dead=0, stuck=0)
    star = (101, 203)
    accs = []
    for with_star in (False, True):
        rng = np.random.default_rng(5)
        acc = SensorAccumulator(clean.height, clean.width)
        for i in range(FRAMES):
            stars = ((*star, 40000.0),) if with_star and i == 7 else ()
            frame = synthetic.render_cfa(clean, scenes[i % len(scenes)], rng, stars=stars)
            acc.update(frame, black_level=clean.black, white_level=clean.white)
        accs.append(acc)
    assert accs[1].bright[star] == accs[0].bright[star] + 1  # the star stood out, once
    assert classify_defects(accs[1]) == []


def test_too_few_frames_reports_not_enough(camera, frames):
    acc = _raw_accumulator(camera, frames[:3])
    with pytest.raises(NotEnoughFrames, match=r"not enough frames \(3 of 5\)"):
        classify_defects(acc)
    with pytest.raises(ValueError):
        classify_defects(acc, min_frames=1)  # one frame never makes a defect


def test_two_frames_never_single_frame(camera, frames):
    acc = _raw_accumulator(camera, frames[:1])
    with pytest.raises(NotEnoughFrames, match=r"\(1 of 2\)"):
        classify_defects(acc, min_frames=2)


def test_stuck_needs_varying_neighbours(camera, frames):
    # the same frame again and again: every site is "unchanged", nothing is stuck
    acc = _raw_accumulator(camera, [frames[0]] * 8)
    assert not [d for d in classify_defects(acc) if d.kind == "stuck"]


def test_defect_mask(camera, frames):
    defects = classify_defects(_raw_accumulator(camera, frames))
    mask = defect_mask(defects, (camera.height, camera.width), kinds=("hot",))
    assert mask.sum() == sum(d.kind == "hot" for d in defects)
    assert all(mask[d.y, d.x] for d in defects if d.kind == "hot")
