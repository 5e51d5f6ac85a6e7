"""Transfer curve and delta EV: planted exposure changes, EXIF prediction, RAW CFA."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from indexer.synthetic import scenes as synth
from indexer.measure import linear
from indexer.exposure import transfer

KODAK = ("kodim01", "kodim03", "kodim05", "kodim13", "kodim20", "kodim23")
EVS = (-2.0, -1.3, -0.5, 0.7, 2.0)


def planted(a_lin: np.ndarray, ev: float, *, requantise: bool) -> np.ndarray:
    """A's linear light times 2**ev, clipped at 1.0; optionally re-encoded to 8-bit sRGB
    and decoded again, as a camera or editor writing a file would."""
    b = np.clip(a_lin * np.float32(2.0**ev), 0.0, 1.0)
    if requantise:
        b = linear.srgb8_to_linear(np.rint(linear.linear_to_srgb(b) * 255).astype(np.uint8))
    return b


@pytest.fixture(scope="module")
def kodak(shared_data):
    return {n: linear.srgb_to_linear(np.asarray(Image.open(shared_data / "photos" / "kodak" / f"{n}.png"),
                                                dtype=np.float32) / 255.0) for n in KODAK}


@pytest.mark.parametrize("name", KODAK)
def test_planted_ev_on_kodak(kodak, name):
    a = kodak[name]
    for ev in EVS:
        for requantise in (False, True):
            res = transfer.delta_ev(a, planted(a, ev, requantise=requantise), with_curve=False)
            assert abs(res.delta_ev - ev) < 0.05, (name, ev, requantise, res.delta_ev)
            assert res.n_used > 10_000


def test_sign_is_b_over_a(kodak):
    a = kodak["kodim23"]
    b = planted(a, 1.0, requantise=True)
    assert transfer.delta_ev(a, b).delta_ev == pytest.approx(1.0, abs=0.05)
    assert transfer.delta_ev(b, a).delta_ev == pytest.approx(-1.0, abs=0.05)


def test_srgb_ratios_understate_ev(kodak):
    # the pitfall the linearisation avoids: the same pair compared on sRGB codes
    a = kodak["kodim03"]
    b = planted(a, -1.3, requantise=True)
    naive = transfer.delta_ev(linear.linear_to_srgb(a), linear.linear_to_srgb(b), with_curve=False)
    assert -0.8 < naive.delta_ev < -0.4
    assert transfer.delta_ev(a, b).delta_ev == pytest.approx(-1.3, abs=0.05)


def test_generated_scene_always_runs():
    rgb8 = synth.scene(3, 320, 240)
    for ev in (-1.5, 0.8):
        a = linear.srgb8_to_linear(rgb8)
        b = linear.srgb8_to_linear(synth.change_exposure(rgb8, ev))
        assert transfer.delta_ev(a, b).delta_ev == pytest.approx(ev, abs=0.05)


def test_curve_follows_planted_scale_and_marks_clipping():
    rgb8 = synth.scene(5, 320, 240)
    a = linear.srgb8_to_linear(rgb8)
    res = transfer.delta_ev(a, planted(a, 1.5, requantise=False))
    c = res.curve
    assert c.level_a.size > 10 and np.all(np.diff(c.level_a) > 0)
    ratio = np.log2(c.median_b[c.usable] / c.level_a[c.usable])
    assert np.allclose(ratio, 1.5, atol=0.02)
    # levels of A above 1/2**1.5 drive B into clipping: never usable
    assert not np.any(c.usable[c.level_a > 0.95 / 2**1.5])
    assert transfer.curve_bend(c) < 0.01


def test_too_few_pixels_is_nan_and_mask_limits():
    a = np.full((20, 20), 0.2, np.float32)
    b = a * 2
    mask = np.zeros((20, 20), bool)
    mask[:5, :5] = True
    res = transfer.delta_ev(a, b, mask=mask, min_pixels=100)
    assert math.isnan(res.delta_ev) and res.n_used == 25
    assert transfer.delta_ev(a, b, mask=mask, min_pixels=10).delta_ev == pytest.approx(1.0)
    with pytest.raises(ValueError):
        transfer.delta_ev(a, b[:10])


def test_encoding_choice_keeps_srgb_for_srgb_pairs(kodak):
    a = kodak["kodim05"]
    enc_a = linear.linear_to_srgb(a)
    enc_b = linear.linear_to_srgb(planted(a, -1.3, requantise=True))
    res = transfer.delta_ev_encoded(enc_a, enc_b)
    assert res.encoding == "srgb" and res.delta.delta_ev == pytest.approx(-1.3, abs=0.05)
    # the same pair encoded with BT.709 is recognised as such
    bt_a = _bt709_encode(a)
    bt_b = _bt709_encode(planted(a, -1.3, requantise=False))
    res = transfer.delta_ev_encoded(bt_a, bt_b)
    assert res.encoding == "bt709" and res.delta.delta_ev == pytest.approx(-1.3, abs=0.05)


def _bt709_encode(lin: np.ndarray) -> np.ndarray:
    v = np.clip(lin, 0, 1)
    return np.where(v < 0.018, 4.5 * v, 1.099 * v**0.45 - 0.099).astype(np.float32)


@pytest.mark.parametrize("a,b,expected", [
    ((1 / 8, 100, 8.0), (1.0, 100, 8.0), 3.0),
    ((1 / 60, 800, 5.6), (1 / 200, 1000, 5.6), math.log2((1000 / 200) / (800 / 60))),
    ((1 / 100, 100, 4.0), (1 / 100, 100, 5.6), math.log2(4.0**2 / 5.6**2)),
    ((1 / 100, 100, 4.0), (1 / 100, 400, 4.0), 2.0),
])
def test_delta_ev_exif(a, b, expected):
    assert transfer.delta_ev_exif(*a, *b) == pytest.approx(expected)


def test_delta_ev_exif_missing():
    assert transfer.delta_ev_exif(None, 100, 8, 1, 100, 8) is None
    assert transfer.delta_ev_exif(1, 100, 0, 1, 100, 8) is None
    assert transfer.delta_ev_exif(1, 100, 8, 1, float("nan"), 8) is None


def _bayer_pair(ev: float, *, seed: int = 0, white: int = 4000):
    """Synthetic RGGB CFA planes (H, W) of one scene at two exposures, black-subtracted
    DN with Poisson-like noise; colour 1 gets a white-balance-like gain so the per-colour
    levels differ. Returns (a, b, colors)."""
    rng = np.random.default_rng(seed)
    h, w = 240, 320
    scene = linear.srgb8_to_linear(synth.scene(seed, w, h))
    colors = np.zeros((h, w), np.int64)
    colors[0::2, 1::2], colors[1::2, 0::2], colors[1::2, 1::2] = 1, 3, 2
    chan = np.choose(np.where(colors == 3, 1, colors), [scene[..., 0], scene[..., 1], scene[..., 2]])
    signal = chan * np.float32(0.3 * white)

    def expose(k):
        s = signal * k
        return np.clip(np.rint(s + rng.normal(0, np.sqrt(s + 4.0))), 0, white)
    return expose(1.0), expose(2.0**ev), colors


@pytest.mark.parametrize("ev", [-1.0, 0.5, 1.7])
def test_cfa_delta_pooled_and_per_colour(ev):
    a, b, colors = _bayer_pair(ev)
    res = transfer.delta_ev_cfa(a, b, white=4000, colors=colors)
    assert res.pooled.delta_ev == pytest.approx(ev, abs=0.05)
    assert set(res.per_colour) == {0, 1, 2, 3}
    for d in res.per_colour.values():
        assert d.delta_ev == pytest.approx(ev, abs=0.06)


def _thumb(rgb_float: np.ndarray, *, grey: bool) -> np.ndarray:
    from indexer.measure import features
    rgb8 = features.to_uint8(rgb_float)
    if grey:
        return features.thumbnail(features.luma8(rgb8), 128)
    img = Image.fromarray(rgb8)
    img.thumbnail((128, 128), Image.Resampling.LANCZOS)
    return np.asarray(img)


@pytest.mark.parametrize("grey", [True, False])
def test_thumbnail_path(kodak, grey):
    """128-px thumbnails measure planted EV within 0.05 up to +0.7 EV. At +2 EV a
    thumbnail pixel can average clipped and unclipped full-size pixels without itself
    reading as clipped, so the thumbnail path reads low by up to ~0.06 EV here."""
    for name in ("kodim01", "kodim05", "kodim23"):
        a = kodak[name]
        ta = _thumb(linear.linear_to_srgb(a), grey=grey)
        for ev in EVS:
            tb = _thumb(linear.linear_to_srgb(planted(a, ev, requantise=False)), grey=grey)
            res = transfer.delta_ev_thumbs(ta, tb)
            tol = 0.1 if ev > 1 else 0.05
            assert abs(res.delta_ev - ev) < tol, (name, ev, grey, res.delta_ev)


def test_thumbnail_path_with_shift():
    rgb8 = synth.scene(7, 640, 480)
    from scipy import ndimage
    from indexer.measure import features
    b8 = synth.change_exposure(rgb8, -1.0)
    moved = ndimage.shift(b8.astype(np.float32), (12, -20, 0), order=1, mode="nearest")
    ta = features.thumbnail(features.luma8(rgb8), 128)
    tb = features.thumbnail(features.luma8(np.clip(np.rint(moved), 0, 255).astype(np.uint8)), 128)
    scale = 128 / 640
    res = transfer.delta_ev_thumbs(ta, tb, dy=-12 * scale, dx=20 * scale)
    assert res.delta_ev == pytest.approx(-1.0, abs=0.05)
    assert res.n_used < ta.size - 4 * 128  # the non-overlapping border is left out


@pytest.mark.parametrize("ev", [-1.3, 0.7])
def test_cfa_on_real_raw_frame(shared_data, ev):
    """Planted on real sensor data: a Canon S40 CRW's black-subtracted CFA plane against
    itself times 2**ev, with photon-like noise and clipping at the white level."""
    rawpy = pytest.importorskip("rawpy")
    path = shared_data / "raw" / "digicam_corpus" / "Canon" / "PowerShot_S40" / "CRW_0101.CRW"
    with rawpy.imread(str(path)) as raw:
        black = np.asarray(raw.black_level_per_channel, dtype=np.float32)
        colors = raw.raw_colors_visible.copy()
        a = raw.raw_image_visible.astype(np.float32) - black[colors]
        white = float(raw.white_level) - float(black.max())
    rng = np.random.default_rng(0)
    b = np.clip(a * 2.0**ev + rng.normal(0, np.sqrt(np.maximum(a * 2.0**ev, 0) + 4)), 0, white)
    res = transfer.delta_ev_cfa(a, b, white=white, colors=colors)
    assert res.pooled.delta_ev == pytest.approx(ev, abs=0.05)
    assert all(d.delta_ev == pytest.approx(ev, abs=0.06) for d in res.per_colour.values())


def test_level_medians_equal_a_median_per_level():
    """The one-sort per-level medians give np.median's figures bit for bit (ties, even
    and odd counts, float32 and float64, values too small for the fast sort key)."""
    from indexer.exposure.transfer import level_medians

    rng = np.random.default_rng(5)
    for dtype, scale in ((np.float32, 1.0), (np.float64, 1.0), (np.float32, 1e-12)):
        values = (np.round(rng.random(3000) * 50) / 50 * scale).astype(dtype)
        bins = rng.integers(0, 12, values.size)
        size = np.bincount(bins, minlength=12)
        kept = np.flatnonzero(size >= 1)
        starts = np.concatenate(([0], np.cumsum(size)))[kept]
        got = level_medians(values, bins, starts, size[kept])
        want = np.array([np.median(values[bins == k]) for k in kept], dtype=np.float64)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,levels", [(1, 1), (2, 3), (9, 48), (10_000, 48)])
def test_compiled_level_medians_equal_the_sort_and_np_median(dtype, n, levels):
    """transfer_kernels (a selection per level) against the one-sort reference and
    np.median per level, bit for bit: continuous values (a shifted thumbnail), ties
    (a thumbnail's 256 levels), even and odd counts, levels with one member."""
    from indexer.exposure.transfer import level_medians, sorted_level_medians

    rng = np.random.default_rng(n + levels)
    for values in (rng.random(n).astype(dtype), (rng.integers(0, 256, n) / 255.0).astype(dtype) ** 2.2):
        bins = np.sort(rng.integers(0, levels, n))[rng.permutation(n)]
        size = np.bincount(bins, minlength=levels)
        kept = np.flatnonzero(size >= 1)
        starts = np.concatenate(([0], np.cumsum(size)))[kept]
        got = level_medians(values, bins, starts, size[kept])
        assert np.array_equal(got, sorted_level_medians(values, bins, starts, size[kept]))
        assert np.array_equal(got, np.array([np.median(values[bins == k]) for k in kept], dtype=np.float64))
