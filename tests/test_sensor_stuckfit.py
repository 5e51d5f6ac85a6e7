"""The sparse stuck-candidate record of rendered frames (indexer.sensor.stuckfit): the fit
rule on planted sequences, exact merges, and the record through deltas, files and bands."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from indexer.config import SensorSettings
from indexer.sensor import stuckfit, tiles
from indexer.sensor.accumulator import SensorAccumulator
from indexer.sensor.delta import rgb_delta
from indexer.synthetic import camera as synthetic


def _record(v: np.ndarray, m: np.ndarray) -> stuckfit.StuckRecord:
    """One candidate whose colour 0 saw codes ``v`` over neighbourhoods ``m``."""
    sums = sum(stuckfit.samples(np.array([[a]]), np.array([[b]]), 255) for a, b in zip(v, m))
    return stuckfit.StuckRecord(np.array([0]), np.array([1]), sums)


@pytest.mark.parametrize("kind, expected", [("stuck", True), ("clean", False), ("hot", False), ("dead", False),
                                            ("few", False), ("flat", False), ("black", False)])
def test_the_rule_on_planted_sequences(kind, expected):
    rng = np.random.default_rng(3)
    m = rng.integers(40, 220, 40)
    noise = rng.normal(0, 2, 40)
    v = {"stuck": 140 + noise, "clean": m + noise, "hot": np.minimum(m + 60, 254) + noise,
         "dead": 0.3 * m + noise, "few": 140 + noise, "flat": 140 + noise, "black": 3 + 0 * noise}[kind]
    if kind == "few":
        v, m = v[:12], m[:12]
    if kind == "flat":
        m = 128 + rng.integers(-3, 4, 40)
    v = np.clip(np.round(v), 1, 254).astype(np.int64)
    assert bool(stuckfit.stuck(_record(v, m), SensorSettings().stuck_tests())[0]) is expected


def test_records_merge_exactly():
    """Two halves' records (every site admitted, nothing pruned) merge into one pass's."""
    rng = np.random.default_rng(5)
    one, a, b = (stuckfit.StuckRecord.empty() for _ in range(3))
    frames = []
    for _ in range(30):
        at = np.unique(rng.integers(0, 500, 60))
        contrib = stuckfit.samples(rng.integers(1, 255, (at.size, 3)), rng.integers(1, 255, (at.size, 3)), 255)
        frames.append((at, contrib))
    big = 10**6
    for i, (at, contrib) in enumerate(frames, 1):
        one = stuckfit.add_frame(one, i, at, contrib, np.ones(at.size, bool), window=big)
        if i <= 13:
            a = stuckfit.add_frame(a, i, at, contrib, np.ones(at.size, bool), window=big)
        else:
            b = stuckfit.add_frame(b, i - 13, at, contrib, np.ones(at.size, bool), window=big)
    merged = stuckfit.merge(a, b, 13, 30, window=big)
    assert np.array_equal(merged.at, one.at) and np.array_equal(merged.since, one.since)
    np.testing.assert_allclose(merged.sums, one.sums, rtol=1e-12)


@pytest.fixture(scope="module")
def jpeg_frames():
    cam = synthetic.make_camera(64, 96, hot=3, dead=2, stuck=3, seed=11)
    rng = np.random.default_rng(12)
    scenes = [synthetic.generated_scene(rng, 80, 120) for _ in range(4)]
    out = []
    for raw in synthetic.camera_frames(cam, scenes, 24, seed=13):
        buf = io.BytesIO()
        Image.fromarray(synthetic.develop(raw, cam)).save(buf, "JPEG", quality=95)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def _same_fit(a: SensorAccumulator, b: SensorAccumulator) -> None:
    assert len(a.stuck_fit) > 0
    assert np.array_equal(a.stuck_fit.at, b.stuck_fit.at)
    assert np.array_equal(a.stuck_fit.since, b.stuck_fit.since)
    assert np.array_equal(a.stuck_fit.sums, b.stuck_fit.sums)


def test_deltas_feed_the_record_like_one_pass(jpeg_frames):
    h, w = jpeg_frames[0].shape[:2]
    one, fed = SensorAccumulator(h, w, layout="rgb"), SensorAccumulator(h, w, layout="rgb")
    for image in jpeg_frames:
        one.update(image)
        fed.add(pickle.loads(pickle.dumps(rgb_delta(image))))
    _same_fit(one, fed)


def test_record_survives_files_bands_and_merges(jpeg_frames, tmp_path):
    h, w = jpeg_frames[0].shape[:2]
    a, b = SensorAccumulator(h, w, layout="rgb"), SensorAccumulator(h, w, layout="rgb")
    for i, image in enumerate(jpeg_frames):
        (a if i < 12 else b).update(image)
    a.save(tmp_path / "a.npz")
    _same_fit(a, SensorAccumulator.load(tmp_path / "a.npz"))
    _same_fit(a, SensorAccumulator.from_bytes(a.to_bytes(compress=True)))
    ranges = tiles.bands(h, w, tile_bytes=tiles.SITE_BYTES * w * 7)
    parts = [(y0, SensorAccumulator.from_bytes(tiles.band(a, y0, y1, with_times=y0 == 0).to_bytes()))
             for y0, y1 in ranges]
    _same_fit(a, tiles.assemble(parts, h))
    expected = a.merge(b)
    assert expected.frames == len(jpeg_frames) and len(expected.stuck_fit) >= len(a.stuck_fit) // 2
    tiles.merge_in_place(a, b, ranges)
    _same_fit(a, expected)


def test_kernel_samples_equal_the_ninthers_at_the_sampled_sites(jpeg_frames):
    """The values and ninthers read inside the residual pass equal a direct computation."""
    from indexer.sensor.kernels import site_ninthers

    delta = rgb_delta(jpeg_frames[0])
    at = delta.stood_at()
    assert 0 < at.size < np.unpackbits(delta.bright | delta.dark).sum()  # clear outliers only
    v, m = site_ninthers(jpeg_frames[0], at, 2)
    assert np.array_equal(v, delta.stood_v) and np.array_equal(m, delta.stood_m)


def test_cap_keeps_the_candidates_that_stand_out_most():
    """Past the cap, those that stood out in the smallest share of their frames go."""
    sums = np.zeros((5, 3, 6))
    sums[:, 0, 0] = [10, 3, 8, 10, 1]  # hits since admission at frame 1
    rec = stuckfit.StuckRecord(np.arange(5) * 7, np.ones(5, np.int64), sums)
    kept = stuckfit.prune(rec, frames=10, cap=3)
    assert kept.at.tolist() == [0, 14, 21]  # shares 1.0, 0.8, 1.0 kept; 0.3 and 0.1 dropped
    assert len(stuckfit.prune(rec, frames=10)) == 5  # window not reached: nothing dropped
    assert stuckfit.cap_for(12_000_000) == 120_000 and stuckfit.cap_for(1000) == 4096


def test_stuck_settings_change_the_verdict(tmp_path):
    """The [sensor] stuck_* settings reach the fit: a planted stuck sequence of 40 frames
    is stuck with the defaults, not once a setting asks for more than it has."""
    from indexer.config import load_settings

    rng = np.random.default_rng(3)
    m = rng.integers(40, 220, 40)
    v = np.clip(np.round(140 + rng.normal(0, 2, 40)), 1, 254).astype(np.int64)
    rec = _record(v, m)
    assert bool(stuckfit.stuck(rec, load_settings().sensor.stuck_tests())[0])
    for line in ("stuck_min_frames = 41", "stuck_max_slope = -0.5", "stuck_min_share = 0.9999",
                 "stuck_min_level = 0.5", "stuck_z = 1e9", "stuck_min_spread = 0.9"):
        config = tmp_path / "photoqa.toml"
        config.write_text(f"[sensor]\n{line}\n")
        tests = load_settings(config).sensor.stuck_tests()
        assert not bool(stuckfit.stuck(rec, tests)[0]), line
