"""Frame deltas computed in a worker and added in the writer equal the one-pass accumulator."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from indexer.sensor.accumulator import SensorAccumulator
from indexer.sensor.delta import cfa_delta, rgb_delta
from indexer.sensor.residual import ResidualParams
from indexer.synthetic import camera as synthetic

FIELDS = ("mean", "m2", "bright", "dark", "prev", "unchanged")


@pytest.fixture(scope="module")
def cam_frames():
    cam = synthetic.make_camera(72, 100, hot=5, dead=3, stuck=3, seed=7)
    rng = np.random.default_rng(8)
    scenes = [synthetic.generated_scene(rng, 90, 130) for _ in range(3)]
    return cam, list(synthetic.camera_frames(cam, scenes, 8, seed=9))


def _same(a: SensorAccumulator, b: SensorAccumulator) -> None:
    assert (a.frames, a.pairs) == (b.frames, b.pairs)
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_rgb_deltas_equal_one_pass(cam_frames):
    cam, frames = cam_frames
    developed = [synthetic.develop(f, cam) for f in frames]
    one = SensorAccumulator(cam.height, cam.width, layout="rgb")
    merged = SensorAccumulator(cam.height, cam.width, layout="rgb")
    for image in developed:
        one.update(image)
        delta = pickle.loads(pickle.dumps(rgb_delta(image)))  # as it crosses the process boundary
        assert delta.residual.dtype == np.int8 and delta.value.dtype == np.uint8
        merged.add(delta)
    _same(one, merged)
    assert one.bright.max() == len(frames)  # the planted hot sites stood out every time


def test_cfa_and_grey_deltas_equal_one_pass(cam_frames):
    cam, frames = cam_frames
    one = SensorAccumulator(cam.height, cam.width, pattern=cam.pattern)
    merged = SensorAccumulator(cam.height, cam.width, pattern=cam.pattern)
    grey_one = SensorAccumulator(cam.height, cam.width, layout="rgb")
    grey_merged = SensorAccumulator(cam.height, cam.width, layout="rgb")
    for frame in frames:
        one.update(frame, black_level=cam.black, white_level=cam.white)
        merged.add(cfa_delta(frame, cam.pattern, black_level=cam.black, white_level=cam.white))
        grey_one.update(frame)
        grey_merged.add(rgb_delta(frame))
    _same(one, merged)
    _same(grey_one, grey_merged)
    assert merged.unchanged.max() >= len(frames) - 2  # the stuck sites were tracked


def test_deltas_split_across_accumulators_merge_like_one_pass(cam_frames):
    """Workers' deltas added into two partial accumulators, merged (Chan): one pass."""
    cam, frames = cam_frames
    deltas = [rgb_delta(synthetic.develop(f, cam)) for f in frames]
    one = SensorAccumulator(cam.height, cam.width, layout="rgb")
    a = SensorAccumulator(cam.height, cam.width, layout="rgb")
    b = SensorAccumulator(cam.height, cam.width, layout="rgb")
    for i, d in enumerate(deltas):
        one.add(d)
        (a if i < 3 else b).add(d)
    merged = a.merge(b)
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(merged.m2, one.m2, rtol=1e-4, atol=1e-2)
    assert np.array_equal(merged.bright, one.bright) and np.array_equal(merged.dark, one.dark)


def test_mismatched_delta_is_refused_and_leaves_the_accumulator(cam_frames):
    cam, frames = cam_frames
    acc = SensorAccumulator(cam.height, cam.width, layout="rgb")
    acc.add(rgb_delta(frames[0]))
    before = acc.copy()
    with pytest.raises(ValueError):
        acc.add(rgb_delta(frames[1][:, :-2]))
    with pytest.raises(ValueError):
        acc.add(rgb_delta(frames[1], params=ResidualParams(rgb_margin=5.0)))
    _same(acc, before)


def test_delta_is_compact(cam_frames):
    cam, frames = cam_frames
    image = synthetic.develop(frames[0], cam)
    delta = rgb_delta(image)
    assert delta.nbytes < image.nbytes  # less than the decoded frame itself
    assert len(delta.stood_out()) == int((delta.mask("bright") | delta.mask("dark")).sum()) > 0


def test_features_do_not_depend_on_whether_the_frame_is_learnt(cam_frames, tmp_path):
    """A camera JPEG's working image (hence its hashes) is the same draft decode whether
    the budget drew its frame or not; only the drawn one carries the full-size frame."""
    from indexer.decode import SensorData, decode_bytes

    cam, frames = cam_frames
    big = np.kron(synthetic.develop(frames[0], cam), np.ones((8, 8, 1), np.uint8))  # 576 x 800
    path = synthetic.write_frame(tmp_path / "f.jpg", big, make=cam.make, model=cam.model)
    data = path.read_bytes()
    kept = decode_bytes(data, path, sensor_data=SensorData.ALL, frame_wanted=lambda *a: True)
    skipped = decode_bytes(data, path, sensor_data=SensorData.ALL, frame_wanted=lambda *a: False)
    assert kept.frame is not None and kept.frame.shape == big.shape and skipped.frame is None
    assert np.array_equal(kept.rgb, skipped.rgb) and kept.decoder == skipped.decoder
