"""A sensor accumulator in bands of rows (indexer.sensor.tiles): what PostgreSQL stores."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.sensor.accumulator import AccumulatorFileError, SensorAccumulator, field_names
from indexer.sensor import tiles
from indexer.synthetic import camera as synthetic

CAM = synthetic.make_camera(64, 96, hot=4, dead=2, stuck=2, seed=5)


def _acc(seed: int, count: int) -> SensorAccumulator:
    rng = np.random.default_rng(seed)
    scenes = [synthetic.generated_scene(rng, 80, 120) for _ in range(2)]
    acc = SensorAccumulator(CAM.height, CAM.width)
    for i, frame in enumerate(synthetic.camera_frames(CAM, scenes, count, seed=seed)):
        acc.update(frame, black_level=CAM.black, white_level=CAM.white, time=1_700_000_000 + 3600 * (seed * 100 + i))
    return acc


def _equal(a: SensorAccumulator, b: SensorAccumulator) -> None:
    assert (a.frames, a.pairs) == (b.frames, b.pairs)
    assert np.array_equal(a.times, b.times)
    for name in field_names():
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_bands_cover_the_sensor_within_the_byte_budget():
    ranges = tiles.bands(3000, 4000)
    assert ranges[0][0] == 0 and ranges[-1][1] == 3000
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert max(y1 - y0 for y0, y1 in ranges) * 4000 * tiles.SITE_BYTES <= tiles.TILE_BYTES
    assert len(ranges) == 75  # 40 rows of a 12 MP sensor per 4 MiB band
    assert tiles.bands(5, 10**7) == [(i, i + 1) for i in range(5)]  # at least a row


@pytest.mark.parametrize("rows", [7, 64, 1000])
def test_merge_in_place_band_by_band_equals_merge(rows):
    a, b = _acc(1, 5), _acc(2, 4)
    expected = a.merge(b)
    ranges = tiles.bands(a.height, a.width, tile_bytes=tiles.SITE_BYTES * a.width * rows)
    tiles.merge_in_place(a, b, ranges)
    _equal(a, expected)


def test_refused_merge_changes_nothing():
    a, before = _acc(1, 3), _acc(1, 3)
    other = SensorAccumulator(CAM.height, CAM.width, layout="rgb")
    other.frames = 1
    with pytest.raises(ValueError):
        tiles.merge_in_place(a, other)
    _equal(a, before)


def test_bands_through_bytes_assemble_back():
    acc = _acc(3, 6)
    ranges = tiles.bands(acc.height, acc.width, tile_bytes=tiles.SITE_BYTES * acc.width * 10)
    stored = [(y0, tiles.band(acc, y0, y1, with_times=y0 == 0).to_bytes()) for y0, y1 in ranges]
    back = tiles.assemble(((y0, SensorAccumulator.from_bytes(data)) for y0, data in stored), acc.height)
    _equal(back, acc)
    # a band from another state (two merges torn apart) or a missing band is refused
    older = _acc(3, 5)
    mixed = [(y0, SensorAccumulator.from_bytes(data)) for y0, data in stored]
    mixed[2] = (mixed[2][0], tiles.band(older, *ranges[2]))
    with pytest.raises(ValueError, match="another state"):
        tiles.assemble(mixed, acc.height)
    with pytest.raises(ValueError, match="uncovered"):
        tiles.assemble([mixed[0], mixed[3]], acc.height)
    with pytest.raises(AccumulatorFileError):
        SensorAccumulator.from_bytes(stored[0][1][:-40])
