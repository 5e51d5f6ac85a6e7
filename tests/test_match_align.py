"""Planted shifts and scales come back from phase correlation and thumbnail alignment."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from indexer.measure import align
from indexer.measure.align import align_thumbs, phase_shift, rank_normalise


def _kodak(shared_data, n=5) -> np.ndarray:
    path = shared_data / "photos" / "kodak" / f"kodim{n:02d}.png"
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def _scene(seed=0, shape=(300, 400)) -> np.ndarray:
    """Generated texture with structure at several scales (always available)."""
    rng = np.random.default_rng(seed)
    img = sum(ndimage.gaussian_filter(rng.normal(size=shape), s) * s for s in (1, 3, 9, 27))
    img = (img - img.min()) / np.ptp(img)
    return img * 255.0


def _fourier_shifted(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img), (dy, dx))).real


def _thumb(a: np.ndarray, n: int = 128) -> np.ndarray:
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    s = n / max(img.size)
    size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS))


def test_integer_shift_on_kodak(shared_data):
    im = _kodak(shared_data)
    ref = im[100:356, 200:456]
    moving = im[107:363, 188:444]  # = ref displaced by (-7, +12)
    got = phase_shift(ref, moving)
    # skimage convention: the shift that registers moving onto reference.
    assert (got.dy, got.dx) == pytest.approx((7, -12), abs=0.1)
    assert got.peak > 0.5


@pytest.mark.parametrize("dy, dx", [(-7, 12), (0.3, -0.7), (2.25, 1.5), (-4.6, 3.35)])
def test_subpixel_shift_on_kodak(shared_data, dy, dx):
    im = _kodak(shared_data)
    moved = _fourier_shifted(im, dy, dx)
    got = phase_shift(im[100:356, 200:456], moved[100:356, 200:456])
    assert (got.dy, got.dx) == pytest.approx((-dy, -dx), abs=0.1)


@pytest.mark.parametrize("dy, dx", [(5.5, -3.25), (-0.4, 0.8)])
def test_subpixel_shift_generated(dy, dx):
    im = _scene(1)
    moved = _fourier_shifted(im, dy, dx)
    got = phase_shift(im[50:250, 50:350], moved[50:250, 50:350])
    assert (got.dy, got.dx) == pytest.approx((-dy, -dx), abs=0.1)


def test_peak_separates_related_from_unrelated():
    a, b = _scene(1), _scene(2)
    same = phase_shift(a[20:220, 20:320], a[23:223, 15:315])
    other = phase_shift(a[20:220, 20:320], b[20:220, 20:320])
    assert same.peak > 0.5
    assert other.peak < 0.1


def test_rank_normalise_ignores_monotonic_tone_change():
    a = _scene(3)
    darker = 255.0 * (a / 255.0) ** 2.2 * 0.5
    assert np.allclose(rank_normalise(a), rank_normalise(darker))


@pytest.mark.parametrize("keep, oy, ox", [(0.85, 30, 50), (0.8, 0, 0), (0.95, 10, 5)])
def test_align_thumbs_recovers_crop(keep, oy, ox):
    full = _scene(4, (480, 720))
    h, w = round(480 * keep), round(720 * keep)
    crop = full[oy:oy + h, ox:ox + w]
    got = align_thumbs(_thumb(full), _thumb(crop))
    k = 128 / 720  # full-image thumbnail pixels per full pixel
    assert got.scale == pytest.approx(1 / keep, rel=0.02)
    assert (got.x, got.y) == pytest.approx((ox * k, oy * k), abs=1.0)
    assert got.overlap_b > 0.95


def test_align_thumbs_exposure_and_resize():
    full = _scene(5, (400, 600))
    dark = 255.0 * (full / 255.0) ** 1.8 * 0.6
    small = np.asarray(Image.fromarray(dark.astype(np.uint8)).resize((300, 200), Image.Resampling.BILINEAR))
    got = align_thumbs(_thumb(full), _thumb(small.astype(np.float64)))
    assert got.scale == pytest.approx(1.0, rel=0.02)
    assert (got.x, got.y) == pytest.approx((0, 0), abs=0.6)
    assert got.peak > 0.3


# (1000, 601): past 4 M multiply-adds at factor 10, the matrix-product path; the others
# take the compiled loop
@pytest.mark.parametrize("shape", [(180, 120), (96, 64), (33, 47), (34, 47), (33, 46), (7, 8), (1000, 601)])
@pytest.mark.parametrize("factor", [4, 10])
def test_half_spectrum_surface_equals_full_upsampled_dft(shape, factor):
    """The registration's sub-pixel surface from the rfft2 half spectrum equals the
    matrix-multiply DFT of the full spectrum (Guizar-Sicairos et al. 2008), Nyquist rows
    and columns of even sizes included."""
    rng = np.random.default_rng(sum(shape) + factor)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    full = np.fft.fft2(a) * np.fft.fft2(b).conj()
    full /= np.abs(full)
    half = align.spectrum(a) * align.spectrum(b).conj()
    half /= np.abs(half)
    region = int(np.ceil(factor * 1.5))
    offsets = rng.uniform(-shape[0], shape[0], 2).round() * factor / 4
    want = np.abs(align.upsampled_dft(full.conj(), region, factor, offsets).conj())
    got = align.upsampled_surface(half, shape, region, factor, offsets)
    assert np.abs(got - want).max() <= 1e-12 * want.max()


def test_resample_matches_ndimage_affine_transform():
    """The separable bilinear resampling takes the samples ndimage's order-1 'constant'
    affine transform takes (same points outside, same values to rounding)."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        h, w = (int(n) for n in rng.integers(1, 130, 2))
        img = rng.normal(size=(h, w))
        scale = float(1.35 ** rng.uniform(-1.1, 1.1)) if rng.random() > 0.1 else 1.0
        shape = (max(1, round(h / scale)), max(1, round(w / scale)))
        src = ndimage.gaussian_filter(img, 0.4 * scale) if scale > 1.05 else img
        want = ndimage.affine_transform(src, [scale, scale], offset=0.5 * scale - 0.5, output_shape=shape,
                                        order=1, mode="constant", cval=0.0)
        got = align.resample(img, scale, shape)
        assert np.array_equal(got == 0, want == 0)
        assert np.abs(got - want).max() <= 1e-14


@pytest.mark.parametrize("values", [
    np.arange(256, dtype=np.uint8).repeat(3)[::7], np.array([4.0, 0.0, -0.0, 4.0, 65535.0]),
    np.array([1.0, 2.5, 2.5, -1.0]), np.array([70000.0, 3.0, 3.0]), np.array([1.0, np.nan, 2.0]),
    np.array([-3, 2, 2, 7]), np.zeros(0)])
def test_rank_normalise_counting_path_equals_unique(values):
    """Integer levels are ranked by counting; the mid-ranks equal np.unique's bit for bit."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    want = ((np.cumsum(counts) - 0.5 * counts) / max(values.size, 1))[inverse]
    assert np.array_equal(rank_normalise(values), want, equal_nan=True)
    if values.dtype == np.uint8:
        assert np.array_equal(rank_normalise(values), rank_normalise(values.astype(np.float64)))


def _full_spectrum_phase_shift(ref, mov, upsample):
    """The registration on full complex spectra, as before the half-spectrum version."""
    f_ref, f_mov = (np.fft.fft2(align.prepare(x, True)) for x in (ref, mov))
    product = f_ref * f_mov.conj()
    product /= np.maximum(np.abs(product), 1e-9)
    corr = np.abs(np.fft.ifft2(product))
    shape = np.array(corr.shape)
    idx = np.array(np.unravel_index(int(np.argmax(corr)), corr.shape), dtype=np.float64)
    shifts = np.round(np.where(idx > shape // 2, idx - shape, idx) * upsample) / upsample
    region = int(np.ceil(upsample * 1.5))
    centre = np.fix(region / 2.0)
    up = np.abs(align.upsampled_dft(product.conj(), region, upsample, centre - shifts * upsample))
    peak_idx = np.array(np.unravel_index(int(np.argmax(up)), up.shape))
    best = max(float(corr.max()), float(up.max()) / product.size)
    return shifts + (peak_idx - centre) / upsample, min(best, 1.0)


@pytest.mark.parametrize("shape", [(64, 90), (63, 91), (120, 180), (33, 34)])
@pytest.mark.parametrize("upsample", [4, 10])
def test_phase_shift_equals_full_spectrum_registration(shape, upsample):
    """Half spectra, pruned padding-free transforms and the reciprocal normalisation
    change no result: same sub-pixel shift, same peak to rounding."""
    rng = np.random.default_rng(shape[0] * upsample)
    base = ndimage.gaussian_filter(rng.normal(size=(shape[0] + 8, shape[1] + 8)), 2)
    ref, mov = base[:shape[0], :shape[1]], base[5:shape[0] + 5, 3:shape[1] + 3] + 0.05 * rng.normal(size=shape)
    want_shift, want_peak = _full_spectrum_phase_shift(ref, mov, upsample)
    got = phase_shift(ref, mov, upsample=upsample)
    assert (got.dy, got.dx) == tuple(want_shift)
    # Phase normalisation turns the FFTs' absolute rounding in bins of tiny magnitude
    # (these smooth images have many) into whole phase errors: ~1e-9 in the peak here,
    # ~1e-15 on Kodak thumbnails. Any two FFT codes differ that much.
    assert got.peak == pytest.approx(want_peak, abs=1e-8)


@pytest.mark.parametrize("shape", [(175, 180), (100, 135), (128, 96), (45, 64), (81, 125), (173, 231)])
def test_numpy_ffts_equal_scipy_fft_to_the_bit(shape):
    """The registration's FFTs are NumPy's (no scipy.fft import): the same numbers as the
    scipy.fft calls they replace."""
    import scipy.fft

    from indexer.measure import align

    h, w = shape
    real = np.random.default_rng(h * w).normal(size=(h - 11, w - 7))
    half = align.spectrum(real, shape)
    assert np.array_equal(half, scipy.fft.fft(scipy.fft.rfft(real, n=w, axis=1, workers=1), n=h, axis=0, workers=1))
    assert np.array_equal(align.irfft2(half, shape), scipy.fft.irfft2(half, s=shape, workers=1))


def test_next_fast_len_equals_scipy():
    import scipy.fft

    from indexer.measure.align import next_fast_len

    assert [next_fast_len(n) for n in range(1, 3000)] == [scipy.fft.next_fast_len(n, real=True) for n in range(1, 3000)]


def test_failed_hints_share_one_search(monkeypatch):
    """A pair tried with several failing hints and no hint (as the engine's run_job does)
    searches the scales once per transform, with the Evidence each call gives without
    the memo; a hint that succeeds is not replaced by the search."""
    from indexer.match import verify

    scene = _scene(3)
    a = _thumb(scene)
    b = _thumb(_scene(4))  # unrelated: every hint fails
    crop = _thumb(scene[30:270, 40:360])  # a 80% crop: magnification 1.25
    hist = np.zeros((4, 256), dtype=np.uint32)
    hist[:, 100] = 1
    searches = []
    real = align.refine
    monkeypatch.setattr(align, "refine", lambda *args, **kw: searches.append(kw) or real(*args, **kw))
    plain = [verify.compare(a, b, hist, hist, scale_hint=h) for h in (1.0, 0.8, None)]
    calls_plain = len(searches)
    searches.clear()
    memo: dict = {}
    shared = [verify.compare(a, b, hist, hist, scale_hint=h, searched=memo) for h in (1.0, 0.8, None)]
    assert shared == plain
    # three hinted ladders and one search ladder, against three searches before
    assert len(searches) == 3 and calls_plain == 5
    crop_memo: dict = {}
    searched = verify.compare(a, crop, hist, hist, searched=crop_memo)
    hinted = verify.compare(a, crop, hist, hist, scale_hint=1.25, searched=crop_memo)
    assert hinted == verify.compare(a, crop, hist, hist, scale_hint=1.25)
    assert hinted is not searched
    assert abs(hinted.scale - 1.25) < 0.03 and hinted.peak >= 0.3
