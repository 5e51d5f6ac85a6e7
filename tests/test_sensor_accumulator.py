"""Sensor accumulator: exact merge (Chan et al.), Welford against float64, atomic files."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.sensor.accumulator import AccumulatorFileError, SensorAccumulator
from indexer.sensor.residual import ResidualParams, cfa_residual

WHITE = 4095


def _frames(seed: int, count: int, shape=(12, 18)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(100, 3000, shape)
    frames = []
    for _ in range(count):
        frame = base + rng.normal(0, rng.uniform(1, 200), shape)
        frame[rng.random(shape) < 0.05] = WHITE  # some clipped sites
        frames.append(np.clip(frame, 0, WHITE).astype(np.uint16))
    return frames


def _run(frames, **kw) -> SensorAccumulator:
    acc = SensorAccumulator(*frames[0].shape, **kw)
    for frame in frames:
        acc.update(frame, black_level=64, white_level=WHITE)
    return acc


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(0, 6), n_b=st.integers(0, 6))
def test_merge_equals_one_pass(seed, n_a, n_b):
    frames = _frames(seed, n_a + n_b)
    if not frames:
        return
    one = _run(frames)
    a = _run(frames[:n_a]) if n_a else SensorAccumulator(*frames[0].shape)
    b = _run(frames[n_a:]) if n_b else SensorAccumulator(*frames[0].shape)
    merged = a.merge(b)
    assert merged.frames == one.frames
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(merged.m2, one.m2, rtol=1e-3, atol=0.5)
    np.testing.assert_array_equal(merged.bright, one.bright)
    np.testing.assert_array_equal(merged.dark, one.dark)
    np.testing.assert_array_equal(merged.prev, one.prev)
    # the pair straddling the split is seen by neither part: documented, counted in pairs
    straddle = int(n_a > 0 and n_b > 0)
    assert merged.pairs == one.pairs - straddle
    assert (one.unchanged.astype(int) - merged.unchanged).min() >= 0
    assert (one.unchanged.astype(int) - merged.unchanged).max() <= straddle


def test_merge_does_not_modify_inputs():
    frames = _frames(1, 6)
    a, b = _run(frames[:3]), _run(frames[3:])
    before = (a.mean.copy(), b.m2.copy(), a.bright.copy())
    a.merge(b)
    np.testing.assert_array_equal(a.mean, before[0])
    np.testing.assert_array_equal(b.m2, before[1])
    np.testing.assert_array_equal(a.bright, before[2])


def test_welford_matches_float64_reference():
    frames = _frames(7, 9)
    acc = _run(frames)
    residuals = np.stack([cfa_residual(f, [[0, 1], [3, 2]], black_level=64, white_level=WHITE).residual
                          for f in frames]).astype(np.float64)
    np.testing.assert_allclose(acc.mean, residuals.mean(axis=0), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(acc.variance(), residuals.var(axis=0, ddof=1), rtol=1e-4, atol=1e-2)


def test_counts_and_stuck_pairs():
    frames = _frames(3, 5)
    for f in frames:
        f[4, 6] = 1234  # frozen site, inside (black, white)
    acc = _run(frames)
    assert acc.frames == 5 and acc.pairs == 4
    assert acc.unchanged[4, 6] == 4
    assert acc.nbytes == 26 * acc.height * acc.width


def test_merge_refuses_mismatch():
    a = _run(_frames(1, 2))
    with pytest.raises(ValueError):
        a.merge(SensorAccumulator(a.height, a.width + 2))
    with pytest.raises(ValueError):
        a.merge(SensorAccumulator(a.height, a.width, params=ResidualParams(margin=9)))
    with pytest.raises(ValueError):
        a.update(np.zeros((4, 4), np.uint16), white_level=WHITE)


@pytest.mark.parametrize("layout", ["cfa", "rgb"])
def test_save_load_round_trip(tmp_path, layout):
    if layout == "cfa":
        acc = _run(_frames(5, 4), pattern=[[1, 0], [2, 3]], params=ResidualParams(margin=5))
    else:
        acc = SensorAccumulator(10, 14, layout="rgb")
        rng = np.random.default_rng(0)
        for _ in range(3):
            acc.update(rng.integers(0, 255, (10, 14, 3), dtype=np.uint8))
    path = tmp_path / "sensor.npz"
    acc.save(path)
    back = SensorAccumulator.load(path)
    assert (back.shape, back.layout, back.frames, back.pairs, back.params) == \
        (acc.shape, acc.layout, acc.frames, acc.pairs, acc.params)
    if layout == "cfa":
        np.testing.assert_array_equal(back.pattern, acc.pattern)
    for name in ("mean", "m2", "bright", "dark", "prev", "unchanged"):
        np.testing.assert_array_equal(getattr(back, name), getattr(acc, name))
    assert [p.name for p in tmp_path.iterdir()] == ["sensor.npz"]  # no temp file left


def test_save_replaces_atomically_and_truncated_file_raises(tmp_path):
    path = tmp_path / "sensor.npz"
    acc = _run(_frames(2, 3))
    acc.save(path)
    _run(_frames(2, 5)).save(path)
    assert SensorAccumulator.load(path).frames == 5
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AccumulatorFileError, match="sensor accumulator"):
        SensorAccumulator.load(path)
    path.write_bytes(b"")
    with pytest.raises(AccumulatorFileError):
        SensorAccumulator.load(path)
    with pytest.raises(AccumulatorFileError):
        SensorAccumulator.load(tmp_path / "missing.npz")


def test_corrupted_bytes_raise(tmp_path):
    path = tmp_path / "sensor.npz"
    _run(_frames(2, 3)).save(path)
    import zipfile

    with zipfile.ZipFile(path) as zf:
        member = zf.getinfo("mean.npy")
    data = bytearray(path.read_bytes())
    # flip the last byte of the mean array's data (past its local header and npy header)
    data[member.header_offset + 30 + len(member.filename) + member.compress_size - 1] ^= 0xFF
    # zip CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(AccumulatorFileError):
        SensorAccumulator.load(path)


def test_version_1_file_loads_without_dates_and_merges(tmp_path):
    """Files written before defect dates (format 1: no strong/first/last/times) still load,
    with nothing dated, and take new dated frames."""
    acc = _run(_frames(4, 4))
    path = tmp_path / "old.npz"
    acc.save(path)
    with np.load(path) as data:
        content = {k: data[k] for k in data.files if k not in ("strong", "first", "last", "times")}
    content["meta"][0] = 1
    np.savez(path, **content)
    old = SensorAccumulator.load(path)
    assert old.frames == 4 and old.times.size == 0 and not old.first.any() and not old.strong.any()
    np.testing.assert_array_equal(old.mean, acc.mean)
    later = SensorAccumulator(*old.shape)
    later.update(_frames(5, 1)[0], black_level=64, white_level=WHITE, time=1_700_000_000)
    merged = old.merge(later)
    assert merged.frames == 5 and merged.times.tolist() == [1_700_000_000]
    assert set(np.unique(merged.first)) <= {0, 1_700_000_000}
