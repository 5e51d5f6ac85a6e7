"""The fast thumbnails' delta EV (exposure.thumbev) against its reference
(transfer.delta_ev_thumbs), bit for bit, and against planted exposure changes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from indexer.exposure import thumbev, thumbev_kernels, transfer
from indexer.measure import features, linear
from indexer.synthetic import scenes as synth

SHIFTS = ((0.0, 0.0), (3.0, -5.0), (0.37, -1.62), (-2.5, 0.0), (0.0, 0.25))


def assert_same(ref: transfer.ExposureDelta, fast: transfer.ExposureDelta) -> None:
    for k in ("delta_ev", "spread_ev", "n_used", "fraction_used"):
        x, y = getattr(ref, k), getattr(fast, k)
        assert x == y or (math.isnan(x) and math.isnan(y)), (k, x, y)
    assert (ref.curve is None) == (fast.curve is None)
    for k in ("level_a", "median_b", "count", "usable") if ref.curve else ():
        x, y = getattr(ref.curve, k), getattr(fast.curve, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k


def random_thumb(rng, shape=(86, 128)) -> np.ndarray:
    """uint8 grey: a smooth field with noise, a clipped block (255), a dark block (0-12)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    base = 40 + 150 * (0.5 + 0.5 * np.sin(x / rng.uniform(5, 30) + y / rng.uniform(5, 30)))
    img = base + rng.normal(0, rng.uniform(1, 20), shape)
    img[rng.integers(0, h // 2):, :rng.integers(5, w // 3)] = 255
    img[:rng.integers(5, h // 3), rng.integers(w // 2, w):] = rng.integers(0, 13)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def exposed(thumb: np.ndarray, ev: float, encoding: str = "srgb") -> np.ndarray:
    """``thumb``'s linear light times 2**ev, re-encoded to 8 bits in ``encoding``."""
    lin = linear.decode(thumb.astype(np.float32) / np.float32(255), encoding) * np.float32(2.0 ** ev)
    lin = np.clip(lin, 0.0, 1.0)
    if encoding == "srgb":
        enc = linear.linear_to_srgb(lin)
    else:  # the BT.709 OETF
        enc = np.where(lin < 0.018, 4.5 * lin, 1.099 * lin ** 0.45 - 0.099)
    return np.clip(np.rint(enc * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("encoding", ["auto", "srgb", "bt709"])
def test_equal_to_the_reference_on_random_thumbnails(seed, encoding):
    """Random pairs (planted EV with noise, an unrelated pair, B all black) in each
    decoding, shifted and not, landscape and portrait: every figure and the transfer
    curve equal to the bit."""
    rng = np.random.default_rng(seed)
    a = random_thumb(rng, (86, 128) if seed % 2 else (128, 86))
    noisy = np.clip(exposed(a, rng.uniform(-2, 2)) + rng.integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
    for b in (noisy, random_thumb(rng, a.shape), np.zeros_like(a)):
        for dy, dx in SHIFTS:
            ref = transfer.delta_ev_thumbs(a, b, dy=dy, dx=dx, encoding=encoding, min_pixels=200)
            fast = thumbev.delta_ev_thumbs(a, b, dy=dy, dx=dx, encoding=encoding, min_pixels=200)
            assert_same(ref, fast)


def test_equal_with_options_and_few_pixels():
    rng = np.random.default_rng(11)
    a = random_thumb(rng)
    b = exposed(a, 0.8)
    for kw in ({"low": 0.02, "high": 0.8}, {"n_levels": 12}, {"ratio": 0.9, "margin": 0.0}):
        assert_same(transfer.delta_ev_thumbs(a, b, encoding="auto", **kw),
                    thumbev.delta_ev_thumbs(a, b, encoding="auto", **kw))
    ro = b.copy()
    ro.flags.writeable = False
    for x, y in ((a.T, b.T), (a, ro), (a[::2], b[::2])):  # views, read-only
        assert_same(transfer.delta_ev_thumbs(x, y, dy=0.5, encoding="auto"),
                    thumbev.delta_ev_thumbs(x, y, dy=0.5, encoding="auto"))
        assert_same(transfer.delta_ev_thumbs(x, y, encoding="auto"),
                    thumbev.delta_ev_thumbs(x, y, encoding="auto"))
    small_a, small_b = a[:9, :9], b[:9, :9]  # 81 pixels: fewer than min_pixels, NaN
    fast = thumbev.delta_ev_thumbs(small_a, small_b, encoding="auto")
    assert math.isnan(fast.delta_ev)
    assert_same(transfer.delta_ev_thumbs(small_a, small_b, encoding="auto"), fast)


def test_other_inputs_go_to_the_reference():
    rng = np.random.default_rng(3)
    rgb = np.stack([random_thumb(rng)] * 3, axis=-1)
    b = exposed(rgb, 1.0)
    assert_same(transfer.delta_ev_thumbs(rgb, b, encoding="auto"),
                thumbev.delta_ev_thumbs(rgb, b, encoding="auto"))
    grey, grey_b = rgb[..., 0], b[..., 0]
    with pytest.raises(ValueError):  # shapes differ: the reference's error
        thumbev.delta_ev_thumbs(grey, grey[:, :-1])
    assert thumbev.covered(grey, grey_b, {"low": 0.01})
    for options in ({"low": np.float64(0.01)}, {"max_samples": 5000}, {"with_curve": False}):
        assert not thumbev.covered(grey, grey_b, options)
        assert_same(transfer.delta_ev_thumbs(grey, grey_b, **options),
                    thumbev.delta_ev_thumbs(grey, grey_b, **options))


@pytest.mark.parametrize("ev", [-1.0, 1.0])
@pytest.mark.parametrize("shift", [(0.0, 0.0), (-2.4, 4.0)])
def test_planted_ev_comes_back(ev, shift):
    """A synthetic scene and the same scene at ``ev``, as 128-px grey thumbnails, B moved
    by ``shift`` thumbnail pixels: the fast path reads ``ev`` within 0.02."""
    rgb8 = synth.scene(5, 640, 480)
    big = np.asarray(Image.fromarray(synth.change_exposure(rgb8, ev)).transform(
        (640, 480), Image.Transform.AFFINE, (1, 0, shift[1] * 5, 0, 1, shift[0] * 5),
        resample=Image.Resampling.BILINEAR))
    ta = features.thumbnail(features.luma8(rgb8), 128)
    tb = features.thumbnail(features.luma8(big), 128)
    res = thumbev.delta_ev_thumbs(ta, tb, dy=shift[0], dx=shift[1], encoding="auto")
    assert res.delta_ev == pytest.approx(ev, abs=0.02)
    assert res.n_used > 5000


def test_bt709_pair_is_read_in_bt709():
    """A pair encoded with the BT.709 curve at +1 EV: "auto" keeps BT.709 and reads +1,
    where sRGB decoding overstates it (as on the frobisher bracket)."""
    rng = np.random.default_rng(8)
    a = np.clip(random_thumb(rng).astype(np.int16) - 60, 0, 255).astype(np.uint8)  # room for +1 EV
    b = exposed(a, 1.0, "bt709")
    auto = thumbev.delta_ev_thumbs(a, b, encoding="auto")
    srgb = thumbev.delta_ev_thumbs(a, b, encoding="srgb")
    assert auto.delta_ev == pytest.approx(1.0, abs=0.03)
    assert srgb.delta_ev > auto.delta_ev + 0.05


def test_real_pairs(shared_data):
    """Thumbnails of real photos: the frobisher bracket (BT.709 JPEGs, 3 EV steps),
    camera HDR on/off pairs and Kodak photos at a planted EV, shifted and not."""
    def thumb(path):
        with Image.open(path) as im:
            return features.thumbnail(features.luma8(np.asarray(im.convert("RGB"))), 128)

    bracket = [thumb(shared_data / "scenes" / "brackets" / "frobisher_001" / f"IMG_260{i}.jpg")
               for i in range(3)]
    hdr = [thumb(shared_data / "exif-samples" / "jpg" / "hdr" / f"{c}_hdr_{s}.jpg")
           for c in ("canon", "iphone") for s in ("NO", "YES")]
    kodak = [thumb(shared_data / "photos" / "kodak" / f"kodim{n:02d}.png") for n in (3, 13, 23)]
    pairs = [(bracket[0], bracket[1]), (bracket[1], bracket[2]), (hdr[0], hdr[1]), (hdr[2], hdr[3])]
    pairs += [(k, exposed(k, ev)) for k in kodak for ev in (-1.3, 0.7)]
    for a, b in pairs:
        b = b[:a.shape[0], :a.shape[1]] if b.shape != a.shape else b
        for dy, dx in SHIFTS:
            assert_same(transfer.delta_ev_thumbs(a, b, dy=dy, dx=dx, encoding="auto"),
                        thumbev.delta_ev_thumbs(a, b, dy=dy, dx=dx, encoding="auto"))
    step = thumbev.delta_ev_thumbs(bracket[0], bracket[1], encoding="auto")
    assert 2.5 < step.delta_ev < 3.5  # 1/8 s -> 1 s at f/8


@pytest.mark.parametrize("n", [1, 2, 3, 4, 101, 1000, 4097])
def test_median_and_mad_equal_np_median(n):
    """Radix selection (median_and_mad) and quickselect (median_inplace, on a slice)
    against np.median: continuous values, heavy ties, all-equal values, odd and even n."""
    rng = np.random.default_rng(n)
    for v in (rng.normal(0.5, 0.2, n), np.round(rng.normal(0, 1, n) * 4) / 4, np.full(n, -0.75)):
        v = v.astype(np.float32)
        med, mad = thumbev_kernels.median_and_mad(v)
        want = np.median(v)
        assert med == want and np.float32(med) == med  # a float32 value, as np.median gives
        assert mad == np.median(np.abs(v - float(want)))
        assert thumbev_kernels.median_inplace(np.concatenate([v[:1], v.copy()]), 1, n) == want


def test_curve_bend_is_the_weighted_deviation():
    """curve_bend (np.average's steps inlined) equals np.average's figures to the bit."""
    rng = np.random.default_rng(2)
    for k in (3, 7, 48):
        curve = transfer.TransferCurve(rng.uniform(0.01, 0.9, k), rng.uniform(0.01, 0.9, k),
                                       rng.integers(10, 900, k), np.arange(k) % 5 != 4)
        u = curve.usable
        lr = np.log2(curve.median_b[u] / curve.level_a[u])
        w = curve.count[u].astype(np.float64)
        mean = float(np.average(lr, weights=w))
        want = float(np.sqrt(np.average((lr - mean) ** 2, weights=w)))
        assert transfer.curve_bend(curve) == want
