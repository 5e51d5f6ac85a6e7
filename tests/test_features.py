"""Per-image measurements with planted answers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from indexer.measure import features

from indexer.synthetic import scenes as synth
from indexer.measure import linear


def as_float(rgb8: np.ndarray) -> np.ndarray:
    return rgb8.astype(np.float32) / 255.0


def grey_rgb(levels: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(levels, dtype=np.uint8)[:, :, None], 3, axis=2)


def test_known_histogram():
    # 10 pixels at 0, 20 at 100, 30 at 200, 40 at 255 (grey, so R=G=B=luma)
    levels = np.array([0] * 10 + [100] * 20 + [200] * 30 + [255] * 40, dtype=np.uint8).reshape(10, 10)
    f = features.measure(as_float(grey_rgb(levels)))
    assert f.hist.shape == (4, 256) and f.hist.dtype == np.uint32
    for channel in range(4):
        row = f.hist[channel]
        assert (row[0], row[100], row[200], row[255]) == (10, 20, 30, 40)
        assert row.sum() == 100
    assert f.clip_low == pytest.approx(0.10)
    assert f.clip_high == pytest.approx(0.40)
    assert f.luma_p1 == 0.0
    assert f.luma_p50 == pytest.approx(200 / 255)
    assert f.luma_p99 == 1.0
    assert f.luma_mean == pytest.approx((20 * 100 + 30 * 200 + 40 * 255) / 100 / 255, abs=1e-6)


def test_colour_histogram_per_channel():
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    rgb[0, 0] = (255, 0, 128)
    hist = features.measure(as_float(rgb)).hist
    assert hist[0, 10] == 19 and hist[0, 255] == 1
    assert hist[1, 20] == 19 and hist[1, 0] == 1
    assert hist[2, 30] == 19 and hist[2, 128] == 1


def test_luma_matches_pillow():
    rgb = synth.scene(7, 96, 64)
    assert np.array_equal(features.luma8(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


@pytest.mark.parametrize("level", [0, 77, 255])
def test_flat_image_has_zero_entropy_and_sharpness(level):
    f = features.measure(as_float(grey_rgb(np.full((48, 64), level))))
    assert f.entropy == 0.0
    assert f.sharpness == pytest.approx(0.0, abs=1e-6)
    assert f.luma_std == pytest.approx(0.0, abs=1e-6)  # float32 mean: ~3e-8 residue
    assert f.colourfulness == pytest.approx(0.0, abs=1e-6)


def test_uniform_levels_give_eight_bits():
    levels = np.tile(np.arange(256, dtype=np.uint8), 16).reshape(64, 64)
    f = features.measure(as_float(grey_rgb(levels)))
    assert f.entropy == pytest.approx(8.0, abs=1e-9)
    assert features.entropy_bits(np.ones(256)) == pytest.approx(8.0)
    assert features.entropy_bits(np.array([5, 5, 0, 0])) == pytest.approx(1.0)


def test_percentiles_on_a_ramp():
    counts = np.ones(256)
    assert features.percentile_from_hist(counts, 50) == pytest.approx(127 / 255)
    assert features.percentile_from_hist(counts, 1) == pytest.approx(2 / 255)
    assert features.percentile_from_hist(counts, 100) == 1.0


def test_exposure_of_mid_grey_and_one_stop():
    # sRGB 118 is ~18% linear: 0 EV. Doubling linear light is +1 EV.
    lin = linear.srgb_to_linear(np.array([118 / 255]))[0]
    assert lin == pytest.approx(0.18, abs=0.002)
    base = linear.exposure_ev(np.full((8, 8, 3), 118 / 255, dtype=np.float32))
    assert base == pytest.approx(0.0, abs=0.02)
    scene = synth.scene(3, 120, 90)
    darker = synth.change_exposure(scene, -1.0)
    delta = linear.exposure_ev(as_float(darker)) - linear.exposure_ev(as_float(scene))
    assert delta == pytest.approx(-1.0, abs=0.1)
    assert linear.exposure_ev(np.zeros((4, 4, 3), np.float32)) == pytest.approx(-20.0)


def test_blur_lowers_sharpness():
    rgb = synth.scene(1, 256, 192)
    sharp = features.measure(as_float(rgb)).sharpness
    blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(3)))
    soft = features.measure(as_float(blurred)).sharpness
    assert soft < sharp / 4


def test_colourfulness_grey_vs_colour():
    rgb = synth.scene(4, 120, 90)
    grey = grey_rgb(features.luma8(rgb))
    assert features.measure(as_float(grey)).colourfulness == pytest.approx(0.0, abs=1e-3)
    assert features.measure(as_float(rgb)).colourfulness > 30


@pytest.mark.parametrize("shape,expected", [((300, 200), (128, 85)), ((200, 300), (85, 128)),
                                            ((50, 40), (50, 40))])
def test_thumbnail_keeps_aspect_never_enlarges(shape, expected):
    rgb = synth.scene(5, shape[0], shape[1]) if min(shape) >= 60 else \
        np.random.default_rng(0).integers(0, 256, (shape[1], shape[0], 3), dtype=np.uint8)
    thumb = features.measure(as_float(rgb), thumb_size=128).thumb
    assert thumb.dtype == np.uint8
    assert (thumb.shape[1], thumb.shape[0]) == expected


def test_features_of_mirror_share_histogram_and_stats():
    rgb = synth.scene(6, 160, 120)
    a = features.measure(as_float(rgb))
    b = features.measure(as_float(rgb[:, ::-1].copy()))
    assert np.array_equal(a.hist, b.hist)
    assert a.entropy == b.entropy and a.luma_mean == pytest.approx(b.luma_mean)
    assert a.phash != b.phash  # a mirror image is a different hash
    assert b.phash == a.phash_d4[4]  # ...equal to the original's flip_h variant


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (2, 2)])
def test_degenerate_sizes_do_not_crash(shape):
    rgb = np.random.default_rng(0).random(shape + (3,), dtype=np.float32)
    f = features.measure(rgb)
    assert f.hist.sum(axis=1).tolist() == [shape[0] * shape[1]] * 4
    assert f.thumb.ndim == 2 and max(f.thumb.shape) <= 128
    assert np.isfinite([f.sharpness, f.entropy, f.ev, f.colourfulness]).all()


def test_laplacian_equals_scipy():
    from scipy import ndimage

    for shape in [(192, 256), (5, 7), (1, 4)]:
        a = np.random.default_rng(1).integers(0, 256, shape).astype(np.float32)
        assert np.array_equal(features.laplacian(a), ndimage.laplace(a))
