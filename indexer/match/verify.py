"""Pixel evidence for a candidate pair: align the thumbnails, then compare the overlap.

Inputs are what the index stores per image: a uint8 grey thumbnail (long side ~128 px,
display orientation), the uint32 (4, 256) R/G/B/luma histogram and the display size.
``transform`` (a name from :data:`indexer.measure.orient.D4`) is the rotation/flip that brings
``b`` into ``a``'s orientation: ``a ~ orient.apply(b, transform)``.

Measures, all on the aligned overlap (see :func:`indexer.measure.align.align_thumbs`):

* ``corr_rank``: Spearman's rank correlation (Pearson on ranks), invariant to any
  monotonic tone change, so an exposure variant keeps it near 1;
* ``corr_grey``: Pearson correlation of plain grey levels;
* ``corr_tile``: the second-lowest rank correlation over a 4x4 grid of tiles; a moved
  object (a burst neighbour) drags one region down while a copy stays high everywhere;
* ``changed``: fraction of overlap pixels whose rank (quantile) differs by more than
  ``0.25`` after a 3x3 median: a small overlay (text, logo) changes a few percent, a
  moved object far more;
* ``corr_smooth``, ``tile_smooth``: ``corr_rank`` and ``corr_tile`` after a Gaussian blur
  (sigma 1 thumbnail pixel, normalised to the overlap) of both sides: the two thumbnails
  of a crop or a shifted copy sample the scene on different grids and with different
  anti-aliasing, which costs a textured copy (brick, foliage) several points of rank
  correlation; blurred, copies agree again while a moved object stays a different object;
* ``edit_area``, ``edit_sign``, ``outside_corr``: where the pair differs. The edit region
  is the ``changed`` mask grown by one pixel; ``edit_area`` is its fraction of the overlap,
  ``edit_sign`` = ``|sum(d)| / sum(|d|)`` of the signed rank difference ``d`` (b minus a)
  inside it (1.0 when every changed pixel moved the same way, as when text, a logo or a
  date stamp is drawn over a picture; near 0 when content was replaced by other content,
  as when an object moves: what it uncovers and what it covers change in both
  directions; 0.0 without an edit region), and ``outside_corr`` the blurred rank
  correlation of the overlap beyond three pixels of it (a copy outside its edit is
  the same picture);
* ``hist_sim``: weighted Jaccard (Ruzicka) similarity of the stored histograms,
  ``sum(min(p, q)) / sum(max(p, q))`` per channel on normalised counts, averaged;
* ``colour_a``, ``colour_b``: how far apart each image's R, G and B histograms are (the
  largest earth mover's distance between two of them, in levels): exactly 0 for a
  greyscale image decoded to RGB, 9-112 on the 24 Kodak photos, so a copy converted to
  greyscale is told by one side near 0 and the other well above it;
* ``delta_ev``: median log2 ratio of linearised (IEC 61966-2-1) grey, ``b`` over ``a``,
  over unclipped overlap pixels: positive when ``b`` is brighter. A quick estimate; the
  exposure module measures it precisely.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from indexer.measure import orient
from indexer.measure.align import Alignment, align_thumbs, rank_normalise
# scipy.ndimage's blur and cross morphology without their per-call overhead (~15% of a
# verification at thumbnail size), the same arrays to the bit
from indexer.measure.smallfilters import dilate_cross, erode_cross, gaussian


def kernels():
    """:mod:`indexer.match.verify_kernels`, imported on first verification: numba (and
    the scipy it loads) cost ~0.6-0.8 s CPU to import, which `photoqa index` of a file
    with no candidate never needs (issue 13 item 4)."""
    from indexer.match import verify_kernels

    return verify_kernels


def resample_linear(*args):
    """:func:`indexer.measure.align_kernels.resample_linear`, imported on first use (numba)."""
    from indexer.measure.align_kernels import resample_linear as compiled

    return compiled(*args)

_TILES = 4
_MIN_TILE_PIXELS = 24


@dataclass(frozen=True)
class Evidence:
    """What the pixels say about a pair. Geometry is in ``a``'s full-size display pixels.

    ``x``, ``y``: where ``b``'s top-left corner lands in ``a`` (pixels of ``a``);
    ``scale``: ``b`` pixels per ``a`` pixel (0.5 = ``b`` is a half-size copy; a crop of
    ``a`` kept at full resolution is 1.0); ``overlap_a``/``overlap_b``: fraction of each
    image covered by the other; ``peak``: phase-correlation peak (0..1); correlations in
    [-1, 1]; ``hist_sim`` in [0, 1]; ``delta_ev`` in EV (b relative to a).
    """

    transform: str
    x: float
    y: float
    scale: float
    overlap_a: float
    overlap_b: float
    peak: float
    corr_rank: float
    corr_grey: float
    corr_tile: float
    hist_sim: float
    delta_ev: float
    changed: float = 0.0
    colour_a: float = 0.0
    colour_b: float = 0.0
    corr_smooth: float = 0.0
    tile_smooth: float = 0.0
    edit_area: float = 1.0
    edit_sign: float = 0.0
    outside_corr: float = 0.0


def ruzicka(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Weighted Jaccard similarity of two (C, 256) count histograms, averaged over C."""
    p = np.asarray(hist_a, dtype=np.float64)
    q = np.asarray(hist_b, dtype=np.float64)
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1)
    q = q / np.maximum(q.sum(axis=-1, keepdims=True), 1)
    sims = np.minimum(p, q).sum(axis=-1) / np.maximum(np.maximum(p, q).sum(axis=-1), 1e-12)
    return float(np.mean(sims))


def colour_spread(hist: np.ndarray) -> float:
    """Largest earth mover's distance (levels) between two of the R, G, B histograms of a
    (4, 256) R/G/B/luma count histogram: 0.0 for a greyscale image."""
    p = np.asarray(hist, dtype=np.float64)[:3]
    cdf = np.cumsum(p / np.maximum(p.sum(axis=1, keepdims=True), 1), axis=1)
    return float(max(np.abs(cdf[i] - cdf[j]).sum() for i, j in ((0, 1), (0, 2), (1, 2))))


def warp_onto(a_shape: tuple[int, int], b: np.ndarray, al: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """``b`` resampled onto ``a``'s thumbnail grid, and the mask of valid pixels.

    Continuous pixel-centre coordinates: ``q = scale * (p - t)``; bilinear, 0 outside
    ``b`` (the samples of ``ndimage.affine_transform(order=1, mode="constant")``, by the
    compiled separable loop of the scale search: two affine transforms cost ~0.5 ms at
    thumbnail size, 2026-12-03); the mask is eroded by one pixel so interpolated borders
    do not count.
    """
    s = al.scale
    src = np.asarray(b, dtype=np.float64)
    if s > 1.05:
        src = gaussian(src, 0.4 * s)
    off_y, off_x = s * (0.5 - al.y) - 0.5, s * (0.5 - al.x) - 0.5
    h, w = int(a_shape[0]), int(a_shape[1])
    warped = resample_linear(np.ascontiguousarray(src), float(s), off_y, off_x, h, w)
    ones = resample_linear(np.ones(b.shape), float(s), off_y, off_x, h, w)
    return warped, erode_cross(ones > 0.999)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(kernels().pearson(np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(kernels().spearman(np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()))


def tile_correlations(a: np.ndarray, b: np.ndarray, mask: np.ndarray, tiles: int = _TILES) -> np.ndarray:
    """Rank correlation per tile of the mask's bounding box (tiles with at least
    ``_MIN_TILE_PIXELS`` masked pixels spanning more than 2 levels on both sides)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return np.zeros(0)
    ys = np.linspace(rows[0], rows[-1] + 1, tiles + 1).astype(np.int64)
    xs = np.linspace(cols[0], cols[-1] + 1, tiles + 1).astype(np.int64)
    return kernels().tile_spearman(np.ascontiguousarray(a, dtype=np.float64),
                                 np.ascontiguousarray(b, dtype=np.float64),
                                 np.ascontiguousarray(mask, dtype=np.bool_), ys, xs, _MIN_TILE_PIXELS, 2.0)


def _sorted_tiles(av: np.ndarray, bv: np.ndarray, oa: np.ndarray, ob: np.ndarray, mask: np.ndarray,
                  tiles: int = _TILES) -> np.ndarray:
    """:func:`tile_correlations` from the values under ``mask`` (row-major, float64) and
    their sorted orders (``verify_kernels.order_of``): the same correlations."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return np.zeros(0)
    ys = np.linspace(rows[0], rows[-1] + 1, tiles + 1).astype(np.int64)
    xs = np.linspace(cols[0], cols[-1] + 1, tiles + 1).astype(np.int64)
    return kernels().tile_spearman_sorted(av, bv, oa, ob, np.ascontiguousarray(mask), ys, xs,
                                          _MIN_TILE_PIXELS, 2.0)


def _rank_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``d``: rank of ``b`` minus rank of ``a`` (quantiles over ``mask``), 0 off it."""
    av, bv = np.asarray(a, dtype=np.float64)[mask], np.asarray(b, dtype=np.float64)[mask]
    d = np.zeros(np.shape(a))
    d[mask] = _ranks(bv) - _ranks(av)
    return d


def _ranks(v: np.ndarray) -> np.ndarray:
    """:func:`rank_normalise` of a 1-D float64 vector: counting for integer levels (a
    stored thumbnail), the compiled sort for anything else (a resampled one)."""
    return rank_normalise(v) if _integer_levels(v) else kernels().mid_ranks(v)


def _integer_levels(v: np.ndarray) -> bool:
    """True when ``v`` holds only integer levels 0..65535 (no interpolated values)."""
    return v.size > 0 and 0 <= v.min() and v.max() <= 65535 and bool(np.array_equal(v, np.rint(v)))


def changed_fraction(a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, level: float = 0.25) -> float:
    """Fraction of masked pixels whose rank differs by more than ``level`` (3x3 median)."""
    return float(kernels().median3_above(np.abs(_rank_difference(a, b, mask)), level)[mask].mean())


_SMOOTH_SIGMA = 1.0  # thumbnail px


def _blur_on(img: np.ndarray, mask: np.ndarray, sigma: float = _SMOOTH_SIGMA, *,
             den: np.ndarray | None = None) -> np.ndarray:
    """Gaussian blur of ``img`` using only pixels under ``mask`` (normalised convolution);
    ``den``: :func:`_blur_weight` of ``mask``, if already computed."""
    num = gaussian(np.where(mask, img, 0.0), sigma)
    return num / (_blur_weight(mask, sigma) if den is None else den)


def _blur_weight(mask: np.ndarray, sigma: float = _SMOOTH_SIGMA) -> np.ndarray:
    """The normalised convolution's denominator: ``mask`` blurred, at least 1e-6."""
    return np.maximum(gaussian(mask.astype(np.float64), sigma), 1e-6)


def _second_lowest(tiles: np.ndarray) -> float:
    return float(np.sort(tiles)[1]) if len(tiles) >= 2 else 0.0


def _blurred(a: np.ndarray, b: np.ndarray, mask: np.ndarray):
    """Both images blurred on ``mask``, and the mask eroded by 2 sigma (where the blur
    saw only valid pixels)."""
    inner = erode_cross(mask, int(np.ceil(2 * _SMOOTH_SIGMA)))
    den = _blur_weight(mask)  # one mask, one denominator for both
    return _blur_on(a, mask, den=den), _blur_on(b, mask, den=den), inner


def smooth_correlations(a: np.ndarray, b: np.ndarray, mask: np.ndarray, *,
                        blurred=None) -> tuple[float, float]:
    """(rank correlation, second-lowest tile rank correlation) of both images blurred by
    ``_SMOOTH_SIGMA`` on ``mask``, measured on the mask eroded by 2 sigma. ``blurred``:
    :func:`_blurred` of the same arguments, if already computed."""
    sa, sb, inner = blurred or _blurred(a, b, mask)
    if inner.sum() < 4 * _MIN_TILE_PIXELS:
        return 0.0, 0.0
    return _spearman(sa[inner], sb[inner]), _second_lowest(tile_correlations(sa, sb, inner))


def edit_measures(a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, level: float = 0.25,
                  margin: int = 3, blurred=None) -> tuple[float, float, float]:
    """(edit_area, edit_sign, outside_corr) of an aligned pair (see module docstring);
    ``blurred`` as for :func:`smooth_correlations`."""
    d = _rank_difference(a, b, mask)
    return _edit(d, kernels().median3_above(np.abs(d), level), mask, blurred or _blurred(a, b, mask),
                 margin=margin)


def _edit(d: np.ndarray, changed: np.ndarray, mask: np.ndarray, blurred, *, margin: int = 3,
          smooth: float | None = None, sorted_inner=None) -> tuple[float, float, float]:
    """:func:`edit_measures` from the rank difference ``d`` (:func:`_rank_difference`),
    where its 3x3 median of ``|d|`` exceeds the level (``changed``, bool) and
    :func:`_blurred`; ``smooth``: the blurred rank correlation on the whole eroded mask,
    when known (``outside_corr`` equals it when there is no edit); ``sorted_inner``: the
    blurred values on the eroded mask and their sorted orders (``_evidence``), so the
    outside's ranks come from them instead of two more sorts."""
    edit = changed & mask
    edit = dilate_cross(edit) & mask
    area = float(edit.sum() / max(mask.sum(), 1))
    sign = float(abs(d[edit].sum()) / max(np.abs(d[edit]).sum(), 1e-12)) if edit.any() else 0.0
    sa, sb, inner = blurred
    if not edit.any() and smooth is not None:
        return area, sign, smooth if inner.sum() >= 4 * _MIN_TILE_PIXELS else 0.0
    outside = inner & ~dilate_cross(edit, margin)
    if outside.sum() < 4 * _MIN_TILE_PIXELS:
        return area, sign, 0.0
    if sorted_inner is not None:
        sav, sbv, osa, osb = sorted_inner
        keep, k = outside[inner], kernels()
        return area, sign, float(k.pearson(k.subset_ranks(sav, osa, keep), k.subset_ranks(sbv, osb, keep)))
    return area, sign, _spearman(sa[outside], sb[outside])


def srgb_linear(v8: np.ndarray) -> np.ndarray:
    """8-bit sRGB code values -> linear light in [0, 1] (IEC 61966-2-1)."""
    v = np.asarray(v8, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_LINEAR = srgb_linear(np.arange(256))  # the same numbers by lookup: a power per pixel cost ~0.2 ms
# log2(lin(b) / lin(a)) for every pair of 8-bit levels, row a, column b (levels 0 give
# inf/nan but are never looked up: exposure_offset keeps 8 < level < 247): one lookup
# per pixel instead of two lookups, a division and a log2 (~0.1 ms a compare, 2026-12-07)
with np.errstate(divide="ignore", invalid="ignore"):
    _LOG_RATIO = np.log2(_LINEAR[None, :] / _LINEAR[:, None])


def exposure_offset(a: np.ndarray, b: np.ndarray, *, low: int = 8, high: int = 247) -> float:
    """Median log2(lin(b) / lin(a)) over pixels unclipped in both; 0.0 if none qualify."""
    if a.dtype == b.dtype == np.uint8:
        # compiled: counts of level pairs walked in table order (no mask arrays, no
        # partition of ~10^4 values: ~0.3 of ~0.4 ms at load 20, 2026-12-07), the same median
        n, median = kernels().level_pair_median(np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(),
                                                low, high, _LOG_RATIO.ravel(), _pair_keys(low, high))
        return float(median) if n >= 16 else 0.0
    ok = (a > low) & (a < high) & (b > low) & (b < high)
    if ok.sum() < 16:
        return 0.0
    a, b = np.asarray(a)[ok], np.asarray(b)[ok]
    return float(np.median(np.log2(srgb_linear(b) / srgb_linear(a))))


@functools.lru_cache(maxsize=4)
def _pair_keys(low: int, high: int) -> np.ndarray:
    """The 8-bit level pairs ``a * 256 + b`` with ``low < a, b < high``, sorted by their
    ``_LOG_RATIO`` (int64, read-only)."""
    levels = np.arange(low + 1, high)
    keys = (levels[:, None] * 256 + levels[None, :]).ravel()
    keys = keys[np.argsort(_LOG_RATIO.ravel()[keys], kind="stable")].astype(np.int64)
    keys.flags.writeable = False
    return keys


def trim_borders(img: np.ndarray, *, tol: float = 2.0, max_frac: float = 0.25) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) bounds without uniform margins (padding, letterbox).

    A margin row/column is one whose grey std is below ``tol`` levels and whose mean is
    within ``tol`` of the outermost one; at most ``max_frac`` of a side is trimmed.
    """
    a = np.asarray(img, dtype=np.float64)

    def margin(lines: np.ndarray) -> int:
        if lines[0].std() >= tol:  # most pictures: no margin, and no need to scan every line
            return 0
        limit = int(len(lines) * max_frac)
        flat = (lines.std(axis=1) < tol) & (np.abs(lines.mean(axis=1) - lines[0].mean()) < tol)
        n = int(np.argmin(flat[:limit])) if limit and not flat[:limit].all() else limit
        return n if flat[0] else 0

    top, bottom = margin(a), margin(a[::-1])
    left, right = margin(a.T), margin(a.T[::-1])
    return top, a.shape[0] - bottom, left, a.shape[1] - right


def _full_geometry(al: Alignment, a_thumb, bt_thumb, a_size, b_size_t) -> tuple[float, float, float]:
    """Thumbnail alignment -> (x, y, scale) in ``a``'s full-size pixels."""
    fa = a_size[0] / a_thumb.shape[1]  # full px of a per thumbnail px
    fb = b_size_t[0] / bt_thumb.shape[1]
    return al.x * fa, al.y * fa, al.scale * fb / fa


def compare(thumb_a: np.ndarray, thumb_b: np.ndarray, hist_a: np.ndarray, hist_b: np.ndarray, *,
            transform: str = "identity", size_a: tuple[int, int] | None = None,
            size_b: tuple[int, int] | None = None, scale_hint: float | None = None,
            searched: dict | None = None) -> Evidence:
    """Evidence for a candidate pair (see module docstring).

    ``thumb_*``: uint8 (h, w) grey thumbnails in display orientation; ``hist_*``: (4, 256)
    counts; ``size_*``: full display size (width, height), defaulting to the thumbnail
    size; ``transform`` maps ``b`` onto ``a``'s orientation. ``searched``: a dict kept
    by the caller for this one pair of images (same thumbnails, histograms and sizes)
    across calls: a call whose hint fails (or that has none) falls back to the unhinted
    scale search, whose Evidence depends only on the pair and ``transform``, so it is
    computed once per transform and returned again from here (a distinct pair tried
    with its hint, its other hints and no hint paid the ~12 ms search each time).
    """
    bt = np.ascontiguousarray(orient.apply(np.asarray(thumb_b), transform))
    a = np.asarray(thumb_a)
    size_a = size_a or (a.shape[1], a.shape[0])
    size_b = size_b or (thumb_b.shape[1], thumb_b.shape[0])
    size_bt = (size_b[1], size_b[0]) if orient.swaps_axes(transform) else tuple(size_b)
    ta, tb = trim_borders(a), trim_borders(bt)  # padding must not steer the alignment
    a_in, b_in = a[ta[0]:ta[1], ta[2]:ta[3]], bt[tb[0]:tb[1], tb[2]:tb[3]]
    memo = {} if searched is None else searched.setdefault(transform, {})
    al = align_thumbs(a_in, b_in, scale_hint=scale_hint, search=memo)
    if al is memo.get("alignment") and "evidence" in memo:
        return memo["evidence"]
    ev = _evidence(a, bt, a_in, b_in, ta, tb, al, hist_a, hist_b, transform, size_a, size_bt)
    if al is memo.get("alignment"):
        memo["evidence"] = ev
    return ev


def _evidence(a, bt, a_in, b_in, ta, tb, al: Alignment, hist_a, hist_b, transform: str, size_a,
              size_bt) -> Evidence:
    """:func:`compare`'s measures of the trimmed thumbnails ``a_in``, ``b_in`` (trimmed
    from ``a``, ``bt`` by ``ta``, ``tb``) at alignment ``al``."""
    warped, mask = warp_onto(a_in.shape, b_in, al)
    av, bv = a_in[mask].astype(np.float64), warped[mask]
    enough = mask.sum() >= 4 * _MIN_TILE_PIXELS
    corr_rank = corr_grey = corr_smooth = tile_smooth = edit_sign = outside_corr = 0.0
    edit_area, changed, tiles = 1.0, 1.0, np.zeros(0)
    if enough:
        a_f = a_in.astype(np.float64)
        k = kernels()
        # One sort per side of the overlap serves corr_rank, the 16 tiles and (blurred)
        # corr_smooth, its tiles and outside_corr (verify_kernels: ranks of a subset from
        # the whole set's order, the same numbers): ~70 sorts a compare became 4.
        oa, ob = k.order_of(av), k.order_of(bv)
        rav, rbv = k.ranks_sorted(av, oa), k.ranks_sorted(bv, ob)
        corr_rank, corr_grey = float(k.pearson(rav, rbv)), _pearson(av, bv)
        d = np.zeros(a_in.shape)
        d[mask] = rbv - rav
        above = k.median3_above(np.abs(d), 0.25)
        changed = float(above[mask].mean())
        tiles = _sorted_tiles(av, bv, oa, ob, mask)
        blurred = _blurred(a_f, warped, mask)
        sa, sb, inner = blurred
        if inner.sum() >= 4 * _MIN_TILE_PIXELS:
            sav, sbv = sa[inner], sb[inner]
            smooth = (sav, sbv, k.order_of(sav), k.order_of(sbv))
            corr_smooth = float(k.pearson(k.ranks_sorted(sav, smooth[2]), k.ranks_sorted(sbv, smooth[3])))
            tile_smooth = _second_lowest(_sorted_tiles(*smooth, inner))
        else:
            smooth = None
        edit_area, edit_sign, outside_corr = _edit(d, above, mask, blurred, smooth=corr_smooth,
                                                   sorted_inner=smooth)
    # Back to untrimmed thumbnail coordinates: p = p' + off_a, q = q' + off_b.
    al = Alignment(x=al.x + ta[2] - tb[2] / al.scale, y=al.y + ta[0] - tb[0] / al.scale, scale=al.scale,
                   overlap_a=al.overlap_a, overlap_b=al.overlap_b, peak=al.peak)
    x, y, scale = _full_geometry(al, a, bt, size_a, size_bt)
    return Evidence(
        transform=transform, x=x, y=y, scale=scale, overlap_a=al.overlap_a, overlap_b=al.overlap_b,
        peak=al.peak,
        corr_rank=corr_rank, corr_grey=corr_grey, corr_tile=_second_lowest(tiles),
        corr_smooth=corr_smooth, tile_smooth=tile_smooth,
        edit_area=edit_area, edit_sign=edit_sign, outside_corr=outside_corr,
        hist_sim=ruzicka(hist_a, hist_b), colour_a=colour_spread(hist_a), colour_b=colour_spread(hist_b),
        changed=changed,
        delta_ev=exposure_offset(a_in[mask], np.clip(np.rint(bv), 0, 255).astype(np.uint8)) if enough else 0.0,
    )
