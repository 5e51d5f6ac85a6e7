"""Image registration: sub-pixel phase correlation and scale-searching thumbnail alignment.

:func:`phase_shift` follows scikit-image's ``phase_cross_correlation`` (Guizar-Sicairos,
Thurman & Fienup, "Efficient subpixel image registration algorithms", Opt. Lett. 33(2),
2008): the integer peak of the cross-power spectrum's inverse FFT, then a matrix-multiply
DFT evaluated on an ``upsample``-times finer grid in a 1.5-pixel neighbourhood of it.
Sign convention as skimage: the returned (dy, dx) is the shift that, applied to
``moving``, registers it onto ``reference`` (``moving = roll(reference, (3, -2))`` gives
(-3, 2)). Unlike skimage (whose ``error`` is 1.0 for every input under its default
``normalization='phase'``, so it says nothing), ``peak`` here is the height of the
normalised phase-correlation surface at the refined peak: 1.0 for a circular shift of the
same image, ~0.3-0.9 for real copies (windowing and non-overlapping borders lower it),
~0.01-0.05 for unrelated images. Inputs are Hann-windowed (mean removed first) so the
image borders do not produce a spurious peak at zero shift. The inputs are real, so
everything runs on ``rfft2`` half spectra, the sub-pixel DFT included
(:func:`upsampled_surface`); results equal the full-spectrum computation to rounding.

:func:`align_thumbs` registers two small grey thumbnails (uint8, long side ~128 px) that
may differ by exposure (tone curve), size, and crops of up to ~20% per side. Both are
rank-normalised (each pixel replaced by its quantile), which makes the comparison
invariant to any monotonic tone change, as OpenCV's AlignMTB median-threshold bitmaps
are. The scale is found by a coarse-to-fine search over magnifications; at each scale the
second thumbnail is resampled to the first's pixel scale and phase-correlated.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# scipy.ndimage and the numba kernels (align_kernels) are imported inside the functions
# that use them: at module level they cost ~0.6 s (scipy) + ~0.7 s (numba) of start-up
# (python -X importtime, 2026-12-07) to every `photoqa index` run, which imports this
# module through the exposure stage even when no pair is ever aligned. The FFTs are
# NumPy's (pocketfft, as scipy.fft's): the same numbers to the bit (tests/test_match_align.py),
# without scipy.fft's import (~0.24 s CPU in every process that verifies a pair).


@dataclass(frozen=True)
class Shift:
    """Result of :func:`phase_shift`: rows/columns shift (pixels) and peak height (0..1)."""

    dy: float
    dx: float
    peak: float


@dataclass(frozen=True)
class Alignment:
    """How thumbnail ``b`` sits on thumbnail ``a`` (both in ``a``'s orientation).

    A point ``p = (x, y)`` in ``a``'s thumbnail pixels maps to
    ``q = scale * (p - (x, y))`` in ``b``'s thumbnail pixels: ``(x, y)`` is where ``b``'s
    top-left corner lands in ``a``, and ``scale`` is ``b`` pixels per ``a`` pixel
    (> 1 when ``b`` shows a magnified part of ``a``, e.g. a crop). ``overlap_a`` and
    ``overlap_b`` are the fractions of each thumbnail covered by the other; ``peak`` is
    the phase-correlation peak at the chosen scale.
    """

    x: float
    y: float
    scale: float
    overlap_a: float
    overlap_b: float
    peak: float


def hann2d(shape: tuple[int, int]) -> np.ndarray:
    """Separable Hann window (float64, ``shape``); all ones along an axis of length < 3."""
    def win(n: int) -> np.ndarray:
        return np.hanning(n + 2)[1:-1] if n >= 3 else np.ones(n)
    return np.outer(win(shape[0]), win(shape[1]))


def _window(shape: tuple[int, int]) -> np.ndarray:
    """:func:`hann2d`, cached for thumbnail-sized shapes (the scale search windows many
    images of a few sizes; a full-resolution window is made afresh, not kept)."""
    return _small_window(shape) if shape[0] * shape[1] <= 1 << 16 else hann2d(shape)


@functools.lru_cache(maxsize=64)  # at most 64 x 512 KiB
def _small_window(shape: tuple[int, int]) -> np.ndarray:
    out = hann2d(shape)
    out.flags.writeable = False
    return out


def prepare(img: np.ndarray, window: bool) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    a = a - a.mean()
    return a * _window(a.shape) if window else a


def spectrum(real: np.ndarray, canvas: tuple[int, int] | None = None) -> np.ndarray:
    """Half spectrum (``rfft2``, complex128 (H, W // 2 + 1)) of a real (h, w) array
    zero-padded at the bottom and right to ``canvas`` (H, W) (default: its own shape).

    Real inputs have Hermitian spectra, so the half carries everything and costs about
    half as much to transform, multiply and normalise. Rows first, as ``rfft2`` does,
    but only the ``h`` non-zero rows (the padding rows transform to zeros), so the
    result is the same to the bit without building the padded array. NumPy's (the
    same bits as scipy.fft's)
    pocketfft, one thread.
    """
    big_h, big_w = canvas or real.shape
    rows = np.fft.rfft(real, n=big_w, axis=1)
    return np.fft.fft(rows, n=big_h, axis=0)


def irfft2(half: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``scipy.fft.irfft2(half, s=shape)`` by NumPy, the same to the bit: the inverse FFT
    down the columns then the real inverse along the rows, unscaled, then one scaling by
    ``1 / (h w)`` (pocketfft scales once at the end, as scipy calls it; NumPy's default
    scales per axis, which differs by ~1e-15); float64 ``shape``."""
    h, w = shape
    out = np.fft.irfft(np.fft.ifft(half, n=h, axis=0, norm="forward"), n=w, axis=1, norm="forward")
    out *= 1.0 / (h * w)
    return out


@functools.lru_cache(maxsize=1024)
def next_fast_len(n: int) -> int:
    """``scipy.fft.next_fast_len(n, real=True)``: the least 5-smooth number (2^a 3^b 5^c) >= n."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _signed_freqs(n: int) -> np.ndarray:
    """Integer frequency of each FFT bin along an axis of length ``n`` (``fftfreq * n``:
    0, 1, ..., then negatives; the Nyquist bin of an even ``n`` is ``-n / 2``)."""
    k = np.arange(n)
    return np.where(k > (n - 1) // 2, k - n, k)


@functools.lru_cache(maxsize=64)  # region x n: <= 30 x 1024 x 16 B each for the exposure module's sizes
def _grid_kernel(n: int, factor: int, region: int, half: bool) -> tuple[np.ndarray, np.ndarray]:
    """``exp(2 pi i g r / (factor n))`` for grid rows ``r`` in ``range(region)`` and bin
    frequencies ``g`` (:func:`_signed_freqs`, the first ``n // 2 + 1`` when ``half``);
    complex128 (region, bins), with ``g / (factor n)`` (float64 (bins,)) for the offset.

    The grid origin's phase ``exp(-2 pi i g off / (factor n))`` is one factor per bin, so
    the matrix depends only on sizes and is cached; read-only.
    """
    g = _signed_freqs(n)[: n // 2 + 1] if half else _signed_freqs(n)
    freq = g / (factor * n)
    out = np.exp(2j * np.pi * np.arange(region)[:, None] * freq)
    out.flags.writeable = False
    return out, freq


def _axis_kernel(n: int, factor: int, region: int, off: float, half: bool) -> np.ndarray:
    """Row ``r`` evaluates bin ``g`` at ``(r - off) / factor`` pixels: (region, bins) complex128."""
    kernel, freq = _grid_kernel(n, factor, region, half)
    return kernel * np.exp(-2j * np.pi * off * freq)


def _contract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for the complex products of the upsampled DFT.

    At thumbnail sizes OpenBLAS's threaded zgemm spends far more CPU on thread hand-off
    than on the product itself when the cores are busy; einsum's own loop never threads.
    On large products (the exposure module's full-resolution registration) BLAS is
    faster again, so einsum below ~4 M multiply-adds, BLAS above (figures:
    docs/BENCHMARKS.md, ``bench/verify_cost.py``).
    """
    # CPU per product, 2026-12-01: 2.9 M einsum 4.8 / zgemm 8.4 ms; 11.8 M 13.6 / 8.0 ms
    if a.shape[0] * a.shape[1] * b.shape[0] < 1 << 22:
        return np.einsum("ij,kj->ik", a, b)
    return a @ b.T


def upsampled_dft(data: np.ndarray, region: int, factor: int, offsets: np.ndarray) -> np.ndarray:
    """DFT of ``data`` (2-D spectrum) sampled on a ``region``-square grid ``factor`` finer.

    Matrix-multiply form of Guizar-Sicairos et al. (2008); ``offsets`` (2,) place the
    grid's origin in upsampled pixels, as skimage's ``upsampled_dft``. The reference
    for :func:`upsampled_surface`, which the registration uses.
    """
    out = data
    for n, off in zip(data.shape[::-1], offsets[::-1]):
        kernel = (np.arange(region) - off)[:, None] * np.fft.fftfreq(n, factor)
        out = np.tensordot(np.exp(-2j * np.pi * kernel), out, axes=(1, -1))
    return out


def upsampled_surface(half: np.ndarray, shape: tuple[int, int], region: int, factor: int,
                       offsets: np.ndarray) -> np.ndarray:
    """``|upsampled_dft(full.conj(), ...)|`` from the half spectrum: float64 (region, region).

    ``half``: complex128 (h, w // 2 + 1), the ``rfft2`` layout of a Hermitian full
    spectrum ``P`` of ``shape`` (h, w). The surface is ``S(u) = sum_k P(k) e^{2 pi i k.u}``.
    A column ``j`` in ``1..(w - 1) // 2`` has its mirror ``w - j`` off the half, with
    ``P(ky, -j) = conj(P(-ky, j))``; summed over rows that half is
    ``conj(A_r @ Q_pos)``, where ``Q_pos`` contracts the mirrored columns along x and
    ``A_r`` is the row kernel with ``ky -> -ky``: equal to the row kernel except on an
    even ``h``'s Nyquist row, whose frequency ``-h/2`` maps to itself (so it is
    conjugated there). Columns 0 and an even ``w``'s Nyquist column have no mirror and
    count once, as in the full sum. Exact up to rounding (see tests). Below ~4 M
    multiply-adds by the compiled loop :func:`indexer.measure.align_kernels.upsampled_surface`
    (the NumPy form cost ~0.19 ms, mostly call overhead, per 6 x 6 surface of the
    thumbnail scale search); above, as matrix products (:func:`_contract`: BLAS at the
    exposure module's full-resolution sizes).
    """
    h, w = shape
    if h * half.shape[1] * region < 1 << 22:  # see below, and _contract for large products
        from indexer.measure import align_kernels

        return align_kernels.upsampled_surface(np.ascontiguousarray(half, dtype=np.complex128), int(h), int(w),
                                               int(region), int(factor), float(offsets[0]), float(offsets[1]))
    ay = _axis_kernel(h, factor, region, float(offsets[0]), half=False)  # (region, h)
    ax = _axis_kernel(w, factor, region, float(offsets[1]), half=True)  # (region, w // 2 + 1)
    m = (w - 1) // 2  # columns 1..m have mirrors
    q_pos = _contract(half[:, 1:m + 1], ax[:, 1:m + 1])  # (h, region)
    q = q_pos + half[:, :1]  # column 0: its kernel is exp(0) = 1
    if w % 2 == 0:
        q = q + half[:, -1:] * ax[:, -1]
    ay_r = ay.copy()
    if h % 2 == 0:
        ay_r[:, h // 2] = ay_r[:, h // 2].conj()
    s = _contract(ay, q.T) + _contract(ay_r, q_pos.T).conj()
    return np.abs(s)


def phase_shift(reference: np.ndarray, moving: np.ndarray, *, upsample: int = 20,
                window: bool = True, eps: float = 1e-9) -> Shift:
    """Shift registering ``moving`` onto ``reference``, to 1/``upsample`` pixel.

    ``reference``, ``moving``: real 2-D arrays of the same shape (any dtype). Returns
    :class:`Shift` with ``dy``, ``dx`` in pixels (rows, columns), each in
    ``(-n/2, n/2]`` of its axis, and ``peak`` in [0, 1] (see module docstring).
    """
    ref, mov = np.asarray(reference), np.asarray(moving)
    if ref.shape != mov.shape or ref.ndim != 2:
        raise ValueError(f"need two 2-D arrays of one shape, got {ref.shape} and {mov.shape}")
    return _spectrum_shift(spectrum(prepare(ref, window)), spectrum(prepare(mov, window)), ref.shape,
                           upsample=upsample, eps=eps)


def _spectrum_shift(f_ref: np.ndarray, f_mov: np.ndarray, shape: tuple[int, int], *, upsample: int,
                    eps: float = 1e-9) -> Shift:
    """:func:`phase_shift` on precomputed half spectra (:func:`spectrum`) of real
    ``shape`` arrays, so a reference is transformed once."""
    return _subpixel(_correlate(f_ref, f_mov, shape, eps), shape, upsample)


def _correlate(f_ref: np.ndarray, f_mov: np.ndarray, shape: tuple[int, int], eps: float = 1e-9
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """The whole-pixel step of :func:`_spectrum_shift`: (normalised cross-power half
    spectrum, whole-pixel shift (dy, dx) float64 (2,), peak height)."""
    from indexer.measure import align_kernels

    # One compiled pass for conj(f_mov) f_ref / max(|.|, eps) (the five NumPy calls it
    # replaces, each a fresh array, cost ~0.1 ms a call at thumbnail size, with 4-10 calls
    # a verification), the same to the bit: numpy divides a complex by (c + 0i) as times 1 / c
    product = align_kernels.cross_power(np.ascontiguousarray(f_ref, dtype=np.complex128),
                                        np.ascontiguousarray(f_mov, dtype=np.complex128), float(eps))
    corr = irfft2(product, shape)  # real: the spectrum is Hermitian
    shape_a = np.array(shape)
    flat = int(align_kernels.abs_argmax(corr))
    idx = np.array(np.unravel_index(flat, shape), dtype=np.float64)
    return product, np.where(idx > shape_a // 2, idx - shape_a, idx), abs(float(corr.flat[flat]))


def _subpixel(correlated: tuple[np.ndarray, np.ndarray, float], shape: tuple[int, int], upsample: int) -> Shift:
    """The sub-pixel step of :func:`_spectrum_shift` from :func:`_correlate`'s result
    (reused when one pair is refined at two upsampling factors)."""
    product, shifts, best = correlated
    if upsample > 1:
        region = int(np.ceil(upsample * 1.5))
        centre = np.fix(region / 2.0)
        shifts = np.round(shifts * upsample) / upsample
        up = upsampled_surface(product, shape, region, upsample, centre - shifts * upsample)
        peak_idx = np.array(np.unravel_index(int(np.argmax(up)), up.shape), dtype=np.float64)
        shifts = shifts + (peak_idx - centre) / upsample
        best = max(best, float(up[tuple(peak_idx.astype(int))]) / (shape[0] * shape[1]))
    return Shift(dy=float(shifts[0]), dx=float(shifts[1]), peak=min(best, 1.0))


def rank_normalise(img: np.ndarray) -> np.ndarray:
    """Each pixel replaced by its mid-rank quantile in (0, 1); float64, same shape.

    Invariant to any strictly increasing tone change (exposure, gamma, contrast), so two
    exposures of one scene give nearly the same array. Ties share their mean rank.
    """
    flat = np.asarray(img).ravel()
    levels = _small_levels(flat)
    if levels is not None:  # counting, not sorting: the same numbers, ~10x sooner (2026-12-01)
        counts = np.bincount(levels)
        return ((np.cumsum(counts) - 0.5 * counts) / flat.size)[levels].reshape(np.shape(img))
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    mid = (np.cumsum(counts) - 0.5 * counts) / flat.size
    return mid[inverse].reshape(np.shape(img))


def _small_levels(flat: np.ndarray) -> np.ndarray | None:
    """``flat`` as int64 levels 0..65535 when it holds only such values (uint8/uint16
    thumbnails, or floats converted from them, as the verification measures pass), else
    None. For those, cumulative counts over all levels equal ``np.unique``'s over the
    levels present (absent levels count 0), so the mid-ranks are identical."""
    if flat.size == 0:
        return None
    if flat.dtype.kind == "u" and flat.dtype.itemsize <= 2:
        return flat
    if flat.dtype.kind != "f" or not 0 <= flat.min() <= flat.max() <= 65535:  # NaN fails too
        return None
    levels = flat.astype(np.int64)
    return levels if np.array_equal(levels, flat) else None


def resample(img: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """``out(u) = img(scale * u)`` on an output grid of ``shape`` (pixel-centre convention).

    Bilinear; a Gaussian pre-blur of sigma ``0.4 * scale`` when shrinking (scale > 1)
    limits aliasing. Points outside ``img`` are 0. float64 ``shape``. The same samples
    as ``ndimage.affine_transform(..., order=1, mode="constant")`` (within 1e-15, see
    tests), interpolated separably (rows, then columns), which is cheaper than the general
    affine transform at thumbnail size.
    """
    from indexer.measure import align_kernels

    src = np.asarray(img, dtype=np.float64)
    if scale > 1.05:
        from indexer.measure.smallfilters import gaussian  # ndimage.gaussian_filter, less overhead

        src = gaussian(src, 0.4 * scale)
    # Compiled (align_kernels.resample_linear): positions as ndimage's zoom_shift computes
    # them, ``(k + offset / scale) * scale``, so the same samples fall outside; the NumPy
    # form spent ~0.1 ms a call on ~20 calls of overhead at thumbnail size (2026-12-03).
    offset = 0.5 * scale - 0.5
    return align_kernels.resample_linear(np.ascontiguousarray(src), float(scale), offset, offset,
                                         int(shape[0]), int(shape[1]))


def _coarse_peak(f_a: np.ndarray, b_win: np.ndarray, canvas: tuple[int, int]) -> float:
    """Phase-correlation peak height at its sub-pixel (1/4 px) position.

    Whole-pixel maxima favour a wrong scale that happens to land the shift on a whole
    pixel, and sums around the maximum favour the broad peaks of wrong scales; the
    amplitude at the refined position is comparable across scales.
    """
    return _spectrum_shift(f_a, spectrum(b_win, canvas), canvas, upsample=4).peak


def _resampled(b: np.ndarray, scale: float, canvas: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """``b`` resampled to ``a``'s pixel scale (at most ``canvas``), mean-removed and
    Hann-windowed (float64), and its shape."""
    shape = (max(1, round(b.shape[0] / scale)), max(1, round(b.shape[1] / scale)))
    shape = (min(shape[0], canvas[0]), min(shape[1], canvas[1]))
    return prepare(resample(b, scale, shape), True), shape


def _try_scale(f_a: np.ndarray, b: np.ndarray, scale: float, canvas: tuple[int, int],
               upsample: int) -> tuple[Shift, tuple[int, int], tuple]:
    """Phase-correlate ``a`` (half spectrum ``f_a``) with ``b`` resampled to ``a``'s pixel
    scale; also returns the whole-pixel correlation (:func:`_correlate`), for a finer rerun."""
    shape, correlated = _scale_correlation(f_a, b, scale, canvas)
    return _subpixel(correlated, canvas, upsample), shape, correlated


def _scale_correlation(f_a: np.ndarray, b: np.ndarray, scale: float, canvas: tuple[int, int]
                       ) -> tuple[tuple[int, int], tuple]:
    """:func:`_try_scale` without the sub-pixel step: (shape, :func:`_correlate`'s result)."""
    b_win, shape = _resampled(b, scale, canvas)
    return shape, _correlate(f_a, spectrum(b_win, canvas), canvas)


def _best_scale(f_a: np.ndarray, b: np.ndarray, scales, canvas) -> float:
    return max(scales, key=lambda s: _coarse_peak(f_a, _resampled(b, s, canvas)[0], canvas))


def _halve(img: np.ndarray) -> np.ndarray:
    """2x2 box average (odd edges dropped)."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _canvas(a_shape, b_shape, max_scale: float) -> tuple[int, int]:
    """Zero-padded size holding both images at any searched scale, FFT-friendly."""
    return tuple(next_fast_len(max(a_shape[i] + 8, b_shape[i] + 8, round(b_shape[i] * max_scale)))
                 for i in (0, 1))


def _coarse_scale(ra: np.ndarray, rb: np.ndarray, grid: list[float], max_scale: float) -> float:
    """Best magnification on the grid, searched on half-resolution images."""
    ha, hb = _halve(ra), _halve(rb)
    canvas = _canvas(ha.shape, hb.shape, max_scale)
    return _best_scale(spectrum(prepare(ha, True), canvas), hb, grid, canvas)


def _overlap(a_shape, b_shape_in_a, x: float, y: float) -> tuple[float, float]:
    ox = max(0.0, min(a_shape[1], x + b_shape_in_a[1]) - max(0.0, x))
    oy = max(0.0, min(a_shape[0], y + b_shape_in_a[0]) - max(0.0, y))
    area = ox * oy
    return area / (a_shape[0] * a_shape[1]), area / (b_shape_in_a[0] * b_shape_in_a[1])


def align_thumbs(a: np.ndarray, b: np.ndarray, *, max_scale: float = 1.35, coarse_steps: int = 8,
                 fine_step: float = 0.015, upsample: int = 10,
                 scale_hint: float | None = None, hint_peak: float = 0.3,
                 sure_peak: float = 0.9, search: dict | None = None) -> Alignment:
    """Register grey thumbnail ``b`` onto grey thumbnail ``a`` (both 2-D, any size).

    ``b`` must already be in ``a``'s orientation (apply the matched D4 transform first).
    Magnifications ``scale`` in ``[1/max_scale, max_scale]`` are searched on a geometric
    grid with ``coarse_steps`` steps per side, then refined in steps of ``fine_step``
    (relative) around the best. ``scale_hint`` (e.g. the scale implied by the hash
    channel that proposed the pair) is refined first, and accepted without the coarse
    search when its peak reaches ``hint_peak`` (distinct images peak at <= 0.12, copies
    at >= 0.35). A 20% crop is a magnification of 1.25. A hinted scale whose peak
    reaches ``sure_peak`` is kept without trying its neighbours on the fine ladder (see
    :func:`refine`), and so is the coarse search's best (at most half a coarse step,
    1.9%, from the true scale). ``search``: a memo of the unhinted search for these same two
    images (a dict, empty at first): a failed hint, or no hint, returns
    ``search["alignment"]`` when present, else searches and stores the result there (the
    engine tries several hints of one pair, each failing into the same ~8 ms search).
    Returns :class:`Alignment` in ``a``'s thumbnail pixels.
    """
    ra, rb = rank_normalise(a), rank_normalise(b)
    canvas = _canvas(a.shape, b.shape, max_scale)
    f_a = spectrum(prepare(ra, True), canvas)
    half_span = max_scale ** (1 / coarse_steps)
    k = int(np.ceil(np.log(half_span) / np.log1p(fine_step)))
    if scale_hint is not None:  # a good hint (from the hash channel) skips the coarse search
        hint = float(np.clip(scale_hint, 1 / max_scale, max_scale))
        found = refine(f_a, rb, hint, k, fine_step, canvas, upsample, sure_peak=sure_peak)
        if found[0].peak >= hint_peak:
            return _result(a.shape, *found)
    if search is not None and "alignment" in search:
        return search["alignment"]
    grid = list(max_scale ** (np.arange(-coarse_steps, coarse_steps + 1) / coarse_steps))
    small = min(a.shape) >= 32 and min(b.shape) >= 32
    if small:
        coarse = _coarse_scale(ra, rb, grid, max_scale)
    else:  # tiny thumbnails: search the grid at full resolution
        coarse = _best_scale(f_a, rb, grid, canvas)
    found = _result(a.shape, *refine(f_a, rb, coarse, k, fine_step, canvas, upsample, sure_peak=sure_peak))
    if search is not None:
        search["alignment"] = found
    return found


def refine(f_a, rb, centre: float, k: int, step: float, canvas, upsample: int, *,
            sure_peak: float = 2.0):
    """Best scale within ``centre * (1 + step) ** [-k..k]``, then the sub-pixel shift there.

    The peak rises towards the true scale and falls past it, so the ladder is climbed from
    ``centre`` towards its higher neighbour while the peak rises, not tried in full:
    3-4 scales instead of ``2k + 1`` = 7 (each a resample, two FFTs and a sub-pixel peak),
    the same scale on the copies of ``bench/verify_cost.py`` (2026-12-03).

    A centre peaking at ``sure_peak`` or more is kept without trying its neighbours (one
    scale instead of three, ~0.6 ms each): a scale 1.5% off moves a 128-px thumbnail's
    edges by a pixel, and the peak falls with it. Measured 2026-12-07 on the copies of
    ``bench/verify_cost.py`` (resize, crop, shift, exposure, rotation, blur): with the
    hint moved 0.4-3% off the true scale (144 copies x 10 offsets), a neighbour beat the
    centre only while the centre peaked at <= 0.81 (e.g. 0.80 against 0.91, hint 2% off);
    with true hints (216 copies), only at <= 0.58. Same-size copies (hint 1.0) peak at
    0.95-1.0, so most stop at one scale.
    """
    # Fine scales are ranked by the sub-pixel (upsampled) peak: whole-pixel peaks favour
    # a wrong scale that happens to put the shift on a whole pixel.
    tried = {}

    def peak(i: int) -> float:
        if i not in tried:
            tried[i] = _try_scale(f_a, rb, centre * (1 + step) ** i, canvas, 4)
        return tried[i][0].peak

    if k >= 1:
        # The sub-pixel peak is at least the whole-pixel one: a whole-pixel peak at
        # sure_peak settles the centre without its 1/4-px surface (~0.1 ms)
        shape, correlated = _scale_correlation(f_a, rb, centre, canvas)
        if correlated[2] >= sure_peak:
            return _subpixel(correlated, canvas, upsample), shape, centre
        tried[0] = (_subpixel(correlated, canvas, 4), shape, correlated)
    best = 0 if k < 1 or peak(0) >= sure_peak else max((-1, 0, 1), key=peak)
    direction = best  # -1 or 1 when a neighbour beat the centre, else 0 (stay)
    while direction and abs(best + direction) <= k and peak(best + direction) > peak(best):
        best += direction
    # the finer rerun reuses the whole-pixel correlation (cross-power spectrum, inverse
    # FFT, peak): the same numbers, ~0.4 ms a verification not spent again
    _, shape, correlated = tried[best]
    return _subpixel(correlated, canvas, upsample), shape, centre * (1 + step) ** best


def _result(a_shape, shift: Shift, shape, scale: float) -> Alignment:
    ov_a, ov_b = _overlap(a_shape, shape, shift.dx, shift.dy)
    return Alignment(x=shift.dx, y=shift.dy, scale=float(scale), overlap_a=ov_a, overlap_b=ov_b,
                     peak=shift.peak)
