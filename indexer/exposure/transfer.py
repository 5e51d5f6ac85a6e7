"""Exposure difference between two aligned images of one scene, in linear light.

Method: on the pixels that are usable in both images (neither clipped nor in the noise
floor), ``delta_ev`` is the median of ``log2(B / A)`` (positive when B is brighter); a
robust spread (1.4826 x MAD, in EV) says how well one global scale explains the pair.
The transfer curve bins A's levels (log-spaced in linear light) and takes, per level,
the median of B over the pixels at that level: a straight line of slope 1 on log axes
is a pure exposure change; a bend shows a tone curve, clipping or a local edit.

Inputs must be linear: sRGB images go through :func:`indexer.measure.linear.srgb_to_linear`
first (ratios of sRGB codes understate EV about 2x); RAW data is linear once its black
level is subtracted (:func:`delta_ev_cfa`). The EXIF prediction follows the exposure
equation: recorded signal is proportional to ``t * ISO / N**2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from indexer.exposure.shift import shift_image
from indexer.measure.linear import luminance

LOW = 0.005  # linear level below which a pixel is treated as noise floor (~sRGB code 16)
HIGH = 0.95  # linear level at or above which a pixel (any channel) counts as clipped
MAD_TO_SIGMA = 1.4826
N_LEVELS = 48  # levels of A in a transfer curve (log-spaced between LOW and HIGH)
MIN_COUNT = 10  # pixels a level needs to be kept in the curve
MIN_OK = 0.95  # share of a level's B pixels unclipped and above the floor for it to be usable
MAX_SAMPLES = 200_000  # pixels a curve uses at most (evenly strided)
BEND_RATIO, BEND_MARGIN = 0.5, 0.005  # a later decoding must be this much straighter (straighter)


@dataclass(frozen=True)
class TransferCurve:
    """Per-level medians. All float64 (n,) except ``count`` int64 (n,); linear units.

    ``level_a``: median A within each level bin; ``median_b``: median B there;
    ``count``: pixels in the bin (after sampling); ``usable``: bool, at least
    ``min_ok`` of the bin's B pixels are neither clipped nor in the noise floor, so the
    median is a clean estimate of the scale at that level.
    """

    level_a: np.ndarray
    median_b: np.ndarray
    count: np.ndarray
    usable: np.ndarray


@dataclass(frozen=True)
class ExposureDelta:
    """``delta_ev``: median log2(B/A) over usable pixels (NaN when fewer than
    ``min_pixels``). ``spread_ev``: 1.4826 x MAD of those log ratios. ``n_used``: usable
    pixels; ``fraction_used``: of the pixels compared (inside the mask)."""

    delta_ev: float
    spread_ev: float
    n_used: int
    fraction_used: float
    curve: TransferCurve | None = None


@dataclass(frozen=True)
class CfaDelta:
    """Pooled result over all CFA sites and one result per CFA colour index."""

    pooled: ExposureDelta
    per_colour: dict[int, ExposureDelta] = field(default_factory=dict)


def _grey_and_peak(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luminance (H, W) and the brightest channel (H, W) of grey or RGB linear input."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        return a, a
    # a chain of np.maximum is ~10x faster than max(axis=-1) over a 3-long last axis (2026-11)
    return luminance(a), np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def usable_mask(a: np.ndarray, b: np.ndarray, *, low: float = LOW, high: float = HIGH,
                mask: np.ndarray | None = None) -> np.ndarray:
    """bool (H, W): both images above ``low`` in luminance and below ``high`` in every
    channel (and inside ``mask`` when given). ``a``, ``b``: linear (H, W) or (H, W, 3)."""
    return _usable(*_grey_and_peak(a), *_grey_and_peak(b), low, high, mask)


def _usable(ya, pa, yb, pb, low, high, mask):
    ok = (ya > low) & (yb > low) & (pa < high) & (pb < high)
    return ok if mask is None else ok & mask


def _robust(log_ratio: np.ndarray, total: int, min_pixels: int,
            curve: TransferCurve | None) -> ExposureDelta:
    n = int(log_ratio.size)
    if n < max(min_pixels, 1):
        return ExposureDelta(math.nan, math.nan, n, n / max(total, 1), curve)
    med = float(np.median(log_ratio))
    mad = float(np.median(np.abs(log_ratio - med)))
    return ExposureDelta(med, MAD_TO_SIGMA * mad, n, n / max(total, 1), curve)


def delta_ev(a: np.ndarray, b: np.ndarray, *, low: float = LOW, high: float = HIGH,
             mask: np.ndarray | None = None, min_pixels: int = 100,
             with_curve: bool = True, n_levels: int = N_LEVELS,
             max_samples: int = MAX_SAMPLES) -> ExposureDelta:
    """Exposure of B relative to A (EV) from two aligned linear images of one scene.

    ``a``, ``b``: float linear light in [0, 1], same shape, (H, W) grey or (H, W, 3)
    RGB (then Rec. 709 luminance is compared, and a pixel is dropped when any channel
    is clipped in either image). ``mask``: optional bool (H, W) of the overlap region.
    ``low`` / ``high``: noise-floor / clipping levels in linear units. Returns NaN
    ``delta_ev`` when fewer than ``min_pixels`` pixels are usable.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shapes differ: {np.shape(a)} vs {np.shape(b)}")
    (ya, pa), (yb, pb) = _grey_and_peak(a), _grey_and_peak(b)
    ok = _usable(ya, pa, yb, pb, low, high, mask)
    total = int(ya.size if mask is None else np.count_nonzero(mask))
    log_ratio = np.log2(yb[ok] / ya[ok])
    curve = None
    if with_curve:
        curve = _curve(ya, pa, yb, pb, low=low, high=high, mask=mask, n_levels=n_levels,
                       min_count=MIN_COUNT, max_samples=max_samples, min_ok=MIN_OK)
    return _robust(log_ratio, total, min_pixels, curve)


def _sample(idx: np.ndarray, max_samples: int) -> np.ndarray:
    """A deterministic, evenly strided subset of at most ``max_samples`` indices."""
    if idx.size <= max_samples:
        return idx
    return idx[np.linspace(0, idx.size - 1, max_samples).astype(np.int64)]


def transfer_curve(a: np.ndarray, b: np.ndarray, *, low: float = LOW, high: float = HIGH,
                   mask: np.ndarray | None = None, n_levels: int = N_LEVELS,
                   min_count: int = MIN_COUNT, max_samples: int = MAX_SAMPLES,
                   min_ok: float = MIN_OK) -> TransferCurve:
    """For each level of A (``n_levels`` log-spaced bins between ``low`` and ``high``),
    the median of B over the aligned pixels at that level (linear luminance).

    Pixels where A is clipped (any channel >= ``high``) or in the noise floor
    (luminance <= ``low``) are excluded; B is kept whatever its value, so the curve
    shows where B clips (those levels are marked not ``usable``). Levels holding fewer
    than ``min_count`` pixels are dropped. At most ``max_samples`` pixels (evenly
    strided) are used, which bounds the cost on full-resolution images.
    """
    (ya, pa), (yb, pb) = _grey_and_peak(a), _grey_and_peak(b)
    return _curve(ya, pa, yb, pb, low=low, high=high, mask=mask, n_levels=n_levels,
                  min_count=min_count, max_samples=max_samples, min_ok=min_ok)


def _curve(ya, pa, yb, pb, *, low, high, mask, n_levels, min_count, max_samples, min_ok):
    ok = (ya > low) & (pa < high)
    if mask is not None:
        ok &= mask
    idx = _sample(np.flatnonzero(ok), max_samples)
    va, vb = ya.ravel()[idx], yb.ravel()[idx]
    b_ok = (vb > low) & (pb.ravel()[idx] < high)
    edges = np.geomspace(low, high, n_levels + 1)
    bins = np.clip(np.searchsorted(edges, va, side="right") - 1, 0, n_levels - 1)
    size = np.bincount(bins, minlength=n_levels)
    kept = np.flatnonzero(size >= min_count)
    count = size[kept].astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(size)))[kept]
    level_a = level_medians(va, bins, starts, count)
    median_b = level_medians(vb, bins, starts, count)
    usable = (np.bincount(bins, weights=b_ok, minlength=n_levels)[kept] / count) >= min_ok
    return TransferCurve(level_a, median_b, count, usable)


def level_medians(values: np.ndarray, bins: np.ndarray, starts: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``np.median`` of ``values`` in each level (float64 (k,)), for the levels starting
    at ``starts`` with ``count`` members in the order of ``bins`` (int (n,)).

    One sort by (level, value) and the middle elements of each level, the two middle
    ones averaged in the input's dtype as ``np.median`` does, so the figures are
    bit-identical to a median per level; that loop (96 ``np.median`` calls per pair) was
    ~45% of a verification job on the dense set (2.3 of 6.4 s under cProfile, 2026-12-07).
    """
    if values.dtype in (np.float32, np.float64) and values.size and not np.isnan(values).any():
        # compiled: a counting sort by level and a selection of the middle values, no
        # sort of every value (transfer_kernels; the same numbers)
        from indexer.exposure import transfer_kernels

        n_levels = int(bins.max()) + 1
        return transfer_kernels.level_medians(np.ascontiguousarray(values), np.ascontiguousarray(bins, dtype=np.int64),
                                              n_levels, np.ascontiguousarray(starts, dtype=np.int64),
                                              np.ascontiguousarray(count, dtype=np.int64))
    return sorted_level_medians(values, bins, starts, count)


def sorted_level_medians(values: np.ndarray, bins: np.ndarray, starts: np.ndarray, count: np.ndarray) -> np.ndarray:
    """:func:`level_medians` by one sort (any dtype); the reference of the compiled one."""
    wide = values.astype(np.float64)
    offset = bins * 4.0
    key = offset + wide
    if wide.size and wide.min() >= 0.0 and wide.max() < 2.0 and np.array_equal(key - offset, wide):
        # level * 4 + value sorts as (level, value) when it holds the value exactly (checked:
        # linear light in [0, 1], not below ~2^-30): one plain sort, ~4x faster than lexsort
        key.sort()
        ordered = (key - np.floor(key / 4) * 4).astype(values.dtype)
    else:
        ordered = values[np.lexsort((values, bins))]
    lo, hi = starts + (count - 1) // 2, starts + count // 2
    return np.mean(np.stack([ordered[lo], ordered[hi]]), axis=0).astype(np.float64)


def delta_ev_thumbs(thumb_a: np.ndarray, thumb_b: np.ndarray, *, dy: float = 0.0,
                    dx: float = 0.0, min_pixels: int = 100, encoding: str = "srgb",
                    **kwargs) -> ExposureDelta:
    """:func:`delta_ev` of two stored thumbnails (uint8 sRGB, grey (h, w) or RGB
    (h, w, 3), same shape and scale), B first shifted by (dy, dx) thumbnail pixels
    (skimage convention, e.g. from ``indexer.measure.align``) and compared on the overlap.

    ``encoding``: how the codes are decoded to linear light, "srgb" (default), "bt709"
    or "auto" (each tried, the straightest transfer curve kept, as
    :func:`delta_ev_encoded`: the frobisher bracket's thumbnails read +3.83 / +3.75 EV
    for its two 3-stop steps decoded as sRGB, +3.06 / +3.05 with "auto").

    Grey thumbnails cannot show a clipped colour channel whose luma stays below the
    clip level: on a saturated-red photo (kodim02) at +2 EV the grey path reads 0.16 EV
    low, where RGB input is exact. Pass RGB thumbnails when you have them.

    This NumPy code is the reference of :func:`indexer.exposure.thumbev.delta_ev_thumbs`,
    which returns the same result to the bit, faster, for grey uint8 thumbnails.
    """
    from indexer.measure.linear import srgb8_to_linear

    if encoding != "srgb":
        a = np.asarray(thumb_a, dtype=np.float32) / np.float32(255)
        b = np.asarray(thumb_b, dtype=np.float32) / np.float32(255)
        mask = None
        if dy or dx:
            b, mask = shift_image(b, dy, dx)
        encodings = ("srgb", "bt709") if encoding == "auto" else (encoding,)
        return delta_ev_encoded(a, b, encodings=encodings, mask=mask, min_pixels=min_pixels,
                                **kwargs).delta
    a, b = srgb8_to_linear(thumb_a), srgb8_to_linear(thumb_b)
    mask = None
    if dy or dx:
        b, mask = shift_image(b, dy, dx)
    return delta_ev(a, b, mask=mask, min_pixels=min_pixels, **kwargs)


def delta_ev_exif(t_a: float | None, iso_a: float | None, n_a: float | None,
                  t_b: float | None, iso_b: float | None, n_b: float | None) -> float | None:
    """EV of B over A predicted by EXIF: ``log2((tB*isoB/NB**2) / (tA*isoA/NA**2))``.

    ``t``: exposure time (s); ``iso``: ISO speed; ``n``: f-number. Returns None when any
    value is missing or not positive. A missing f-number on both sides (fixed-aperture
    phones often omit it) is not assumed equal: the caller decides.
    """
    vals = (t_a, iso_a, n_a, t_b, iso_b, n_b)
    if any(v is None or not (float(v) > 0) or not math.isfinite(float(v)) for v in vals):
        return None
    ea = float(t_a) * float(iso_a) / float(n_a) ** 2
    eb = float(t_b) * float(iso_b) / float(n_b) ** 2
    return math.log2(eb / ea)


def delta_ev_cfa(a: np.ndarray, b: np.ndarray, *, white: float,
                 colors: np.ndarray | None = None, low: float = LOW, high: float = HIGH,
                 mask: np.ndarray | None = None, min_pixels: int = 100) -> CfaDelta:
    """Exposure difference of two RAW frames from their black-subtracted CFA planes.

    ``a``, ``b``: (H, W) numeric (DN, black level already subtracted, e.g.
    ``raw_image_visible - black``), same sensor and size. ``white``: saturation level
    minus black (DN); ``low`` / ``high`` are fractions of it. ``colors``: optional int
    (H, W) CFA colour index per site (rawpy ``raw_colors_visible``); when given, one
    result per colour is returned as well. Same statistic as :func:`delta_ev`
    (median log2 ratio per site), no demosaicing and no white balance involved.
    """
    fa = np.asarray(a, dtype=np.float32) / np.float32(white)
    fb = np.asarray(b, dtype=np.float32) / np.float32(white)
    pooled = delta_ev(fa, fb, low=low, high=high, mask=mask, min_pixels=min_pixels,
                      with_curve=False)
    per: dict[int, ExposureDelta] = {}
    if colors is not None:
        colors = np.asarray(colors)
        for c in np.unique(colors):
            sel = colors == c if mask is None else (colors == c) & mask
            per[int(c)] = delta_ev(fa, fb, low=low, high=high, mask=sel,
                                   min_pixels=min_pixels, with_curve=False)
    return CfaDelta(pooled, per)


def curve_bend(curve: TransferCurve) -> float:
    """How far the usable part of a transfer curve is from a pure exposure change:
    count-weighted standard deviation (EV) of log2(median_b / level_a) over usable
    levels. 0 for a pure scale; NaN with fewer than 3 usable levels."""
    u = curve.usable
    if np.count_nonzero(u) < 3:
        return math.nan
    lr = np.log2(curve.median_b[u] / curve.level_a[u])
    w = curve.count[u].astype(np.float64)
    total = w.sum()  # np.average(x, weights=w)'s own steps, without its ~10 us of checks a call
    mean = float((lr * w).sum() / total)
    return float(np.sqrt(((lr - mean) ** 2 * w).sum() / total))


def straighter(new: float, old: float, *, ratio: float = BEND_RATIO, margin: float = BEND_MARGIN) -> bool:
    """Whether a curve bend ``new`` clearly beats ``old`` (both EV, NaN = unknown):
    below ``ratio`` times it and by more than ``margin``; any number beats NaN."""
    if math.isnan(new):
        return False
    return math.isnan(old) or (new < ratio * old and old - new > margin)


@dataclass(frozen=True)
class EncodedDelta:
    """Result of :func:`delta_ev_encoded`: the chosen ``encoding``, its
    :class:`ExposureDelta`, and the curve bend (EV) found for each candidate."""

    encoding: str
    delta: ExposureDelta
    bends: dict[str, float]


def delta_ev_encoded(a: np.ndarray, b: np.ndarray, *,
                     encodings: tuple[str, ...] = ("srgb", "bt709"),
                     ratio: float = BEND_RATIO, margin: float = BEND_MARGIN,
                     **kwargs) -> EncodedDelta:
    """:func:`delta_ev` of two *encoded* images (values in [0, 1]), decoding both with
    each candidate transfer function and keeping the one whose transfer curve is
    straightest (:func:`curve_bend`). A later candidate must clearly beat the current
    choice (:func:`straighter` with ``ratio``, ``margin``), so near-ties keep the first
    (sRGB by default).

    Why: a pure exposure change is a straight line of slope 1 on log axes only when the
    decoding matches the encoding. On the frobisher bracket (BT.709-encoded JPEGs)
    sRGB decoding bends the curve (0.13-0.14 EV) and reads +3.8 EV for a 3-stop step;
    BT.709 is straight (0.02 EV) and reads +3.08. No decoding can undo an unknown
    camera tone curve that is a pure power (that ambiguity is exact, see Grossberg &
    Nayar 2003), so treat delta EV of camera JPEGs as approximate.
    """
    from indexer.measure.linear import decode

    best, bends = None, {}
    for enc in encodings:
        res = delta_ev(decode(a, enc), decode(b, enc), with_curve=True, **kwargs)
        bends[enc] = curve_bend(res.curve)
        if best is None or straighter(bends[enc], bends[best[0]], ratio=ratio, margin=margin):
            best = (enc, res)
    return EncodedDelta(best[0], best[1], bends)
