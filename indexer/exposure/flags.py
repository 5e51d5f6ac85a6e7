"""Per-image quality flags as pure functions of stored metrics.

Inputs are the per-image measurements of :mod:`indexer.measure.features` (luma on a 0..1 scale,
Rec. 601 luma of 8-bit sRGB; ``hist`` uint32 (4, 256) counts of R, G, B, luma) plus the
image's width and height in pixels. Every check returns a :class:`Flag` carrying the
measured value and the threshold it was compared with, fired or not, so a report can say
"dark: 99th-percentile luma 0.21 < 0.32".

Correspondence with cleanvision (cleanlab/cleanvision, ``image_property.py`` and
``image_property_issue_manager.py``, defaults of v0.3) is stated per check. The main
differences: cleanvision measures the file at full size (blur at 64 px), we measure the
working-size decode; cleanvision's brightness is sqrt(.241 R^2 + .691 G^2 + .068 B^2)
("HSP"), ours Rec. 601 luma (equal on grey pixels, within a few % on colours); its
odd_size and near-duplicate checks are dataset-relative, ours take the dataset's
quartiles as arguments. Bump :data:`FLAGS_VERSION` when a definition or default changes.
"""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

# Names, Flag and the default thresholds live in a NumPy-free module, which indexer.config reads
from indexer.exposure.thresholds import FLAG_NAMES, FLAGS_VERSION, Flag, FlagThresholds  # noqa: F401


def _below(name: str, value: float, threshold: float) -> Flag:
    return Flag(name, float(value), float(threshold), bool(value < threshold))


def _above(name: str, value: float, threshold: float) -> Flag:
    return Flag(name, float(value), float(threshold), bool(value > threshold))


def hist_percentile(counts: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) level of a 256-bin histogram, on a 0..1 scale
    (same rule as ``indexer.measure.features.percentile_from_hist``: first level whose
    cumulative count reaches q% of the total)."""
    cdf = np.cumsum(np.asarray(counts, dtype=np.float64))
    if cdf[-1] <= 0:
        return 0.0
    level = int(np.searchsorted(cdf, q / 100.0 * cdf[-1], side="left"))
    return min(level, 255) / 255.0


def rgb_entropy(hist: np.ndarray) -> float:
    """Entropy (bits) of the R, G, B histograms concatenated into 768 bins: what
    Pillow's ``Image.entropy()`` returns for an RGB image (cleanvision's measure).
    A grey image stored as RGB scores its luma entropy + log2(3)."""
    p = np.asarray(hist[:3], dtype=np.float64).ravel()
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def dark(luma_p99: float, *, threshold: float = FlagThresholds.dark) -> Flag:
    """Even the brightest 1% of pixels are dim (cleanvision: brightness_perc_99 < 0.32)."""
    return _below("dark", luma_p99, threshold)


def light(luma_p5: float, *, threshold: float = FlagThresholds.light) -> Flag:
    """Even the darkest 5% of pixels are bright (cleanvision: 1 - brightness_perc_5 < 0.05)."""
    return _above("light", luma_p5, threshold)


def blurry(sharpness: float, luma_p1: float, luma_p99: float, *,
           threshold: float = FlagThresholds.blurry,
           min_range: float = FlagThresholds.low_contrast,
           min_p99: float = FlagThresholds.dark) -> Flag:
    """Little Laplacian energy (Pech-Pacheco et al. 2000, variance of the Laplacian).

    cleanvision uses sqrt(var) of Pillow's FIND_EDGES (8-neighbour Laplacian) at 64 px
    with 1 - exp(-0.01 s) < 0.29 (s < 34); it exempts flat images (a histogram-spread
    term, v0.3) and dark ones (v0.2). Laplacian energy scales with contrast, so we do
    the same: the flag cannot fire on an image that is low-contrast (p99 - p1 below
    ``min_range``) or dark (p99 below ``min_p99``); those get their own flags.
    """
    flag = _below("blurry", sharpness, threshold)
    gated = (luma_p99 - luma_p1) < min_range or luma_p99 < min_p99
    return Flag("blurry", flag.value, flag.threshold, flag.fired and not gated)


def low_information(entropy_rgb: float, *,
                    threshold: float = FlagThresholds.low_information) -> Flag:
    """Few distinct levels: RGB histogram entropy (bits, :func:`rgb_entropy`) below 3."""
    return _below("low_information", entropy_rgb, threshold)


def grayscale(colourfulness: float, *, threshold: float = FlagThresholds.grayscale) -> Flag:
    """No colour: Hasler & Suesstrunk (2003) M near 0. cleanvision flags Pillow mode "L"
    only; we also catch grey pictures stored as RGB (M = 0 when R = G = B)."""
    return _below("grayscale", colourfulness, threshold)


def odd_aspect_ratio(width: int, height: int, *,
                     threshold: float = FlagThresholds.odd_aspect_ratio) -> Flag:
    """min(w/h, h/w) below 0.35, as cleanvision."""
    ratio = min(width / height, height / width) if width > 0 and height > 0 else 0.0
    return _below("odd_aspect_ratio", ratio, threshold)


def size_quartiles(widths: np.ndarray, heights: np.ndarray) -> tuple[float, float]:
    """(q1, q3) of sqrt(w*h) over a dataset, for :func:`odd_size`."""
    size = np.sqrt(np.asarray(widths, dtype=np.float64) * np.asarray(heights, dtype=np.float64))
    q1, q3 = np.percentile(size, [25, 75])
    return float(q1), float(q3)


def odd_size(width: int, height: int, *, quartiles: tuple[float, float] | None = None,
             iqr_factor: float = FlagThresholds.odd_size_iqr_factor,
             min_side: int = FlagThresholds.odd_size_min_side) -> Flag:
    """Size far from the rest of the dataset.

    With ``quartiles`` (q1, q3 of sqrt(w*h), see :func:`size_quartiles`): fires outside
    [q1 - k*IQR, q3 + k*IQR], which is exactly cleanvision's rule (its score < 0.5).
    ``value`` is sqrt(w*h); ``threshold`` the fence crossed (the nearer one if none).
    Without quartiles: fires when the shorter side is below ``min_side`` pixels.
    """
    if quartiles is None:
        return _below("odd_size", min(width, height), min_side)
    size = math.sqrt(width * height)
    q1, q3 = quartiles
    lo, hi = q1 - iqr_factor * (q3 - q1), q3 + iqr_factor * (q3 - q1)
    if size > hi or (size >= lo and hi - size < size - lo):
        return _above("odd_size", size, hi)
    return _below("odd_size", size, lo)


def odd_sizes(widths, heights, *, min_share: float = FlagThresholds.odd_size_min_share,
              min_side: int = FlagThresholds.odd_size_min_side, min_images: int = 20,
              factor: float = 2.0) -> list[Flag]:
    """``odd_size`` for every image of a dataset at once, robust to several ordinary sizes.

    Unlike cleanvision's interquartile fences (:func:`odd_size` with quartiles), which
    call every camera original odd in an archive of mostly small web copies, a size is
    odd here when fewer than ``min_share`` of the other images have a sqrt(w*h) within
    ``factor`` of it: ``value`` is that share, ``threshold`` ``min_share``. With fewer
    than ``min_images`` images the share means nothing and the minimum-side rule of
    :func:`odd_size` applies instead.
    """
    w = np.asarray(widths, dtype=np.float64)
    h = np.asarray(heights, dtype=np.float64)
    n = len(w)
    if n < max(min_images, 2):
        return [odd_size(int(a), int(b), min_side=min_side) for a, b in zip(w, h)]
    size = np.log2(np.sqrt(np.maximum(w * h, 1.0)))
    order = np.sort(size)
    span = math.log2(factor)
    near = np.searchsorted(order, size + span, side="right") - np.searchsorted(order, size - span, side="left")
    share = (near - 1) / (n - 1)
    return [_below("odd_size", float(v), min_share) for v in share]


def clipped_highlights(clip_high: float, *,
                       threshold: float = FlagThresholds.clipped_highlights) -> Flag:
    """Fraction of pixels with luma >= 250/255 above 5%."""
    return _above("clipped_highlights", clip_high, threshold)


def crushed_shadows(clip_low: float, *, threshold: float = FlagThresholds.crushed_shadows) -> Flag:
    """Fraction of pixels with luma <= 5/255 above 5%."""
    return _above("crushed_shadows", clip_low, threshold)


def low_contrast(luma_p1: float, luma_p99: float, *,
                 threshold: float = FlagThresholds.low_contrast) -> Flag:
    """Luma range p99 - p1 below 0.25 (skimage.exposure.is_low_contrast's measure)."""
    return _below("low_contrast", luma_p99 - luma_p1, threshold)


def underexposed(ev: float, *, threshold: float = FlagThresholds.underexposed) -> Flag:
    """Mean scene luminance more than 3 EV below 18% grey (linear light)."""
    return _below("underexposed", ev, threshold)


def overexposed(ev: float, *, threshold: float = FlagThresholds.overexposed) -> Flag:
    """Mean scene luminance more than 2 EV above 18% grey (linear light)."""
    return _above("overexposed", ev, threshold)


def evaluate(m, width: int, height: int, *, thresholds: FlagThresholds = FlagThresholds(),
             size_quartiles: tuple[float, float] | None = None) -> list[Flag]:
    """All checks in :data:`FLAG_NAMES` order, fired or not.

    ``m``: any object with the attributes of ``indexer.measure.features.Features`` used here
    (hist, luma_p1, luma_p99, clip_high, clip_low, sharpness, colourfulness,
    ev). ``width``, ``height``: the image's pixel size (not the working size).
    """
    t = thresholds
    hist = np.asarray(m.hist)
    return [
        dark(m.luma_p99, threshold=t.dark),
        light(hist_percentile(hist[3], 5), threshold=t.light),
        blurry(m.sharpness, m.luma_p1, m.luma_p99, threshold=t.blurry,
               min_range=t.low_contrast, min_p99=t.dark),
        low_information(rgb_entropy(hist), threshold=t.low_information),
        grayscale(m.colourfulness, threshold=t.grayscale),
        odd_size(width, height, quartiles=size_quartiles, iqr_factor=t.odd_size_iqr_factor,
                 min_side=t.odd_size_min_side),
        odd_aspect_ratio(width, height, threshold=t.odd_aspect_ratio),
        clipped_highlights(m.clip_high, threshold=t.clipped_highlights),
        crushed_shadows(m.clip_low, threshold=t.crushed_shadows),
        low_contrast(m.luma_p1, m.luma_p99, threshold=t.low_contrast),
        underexposed(m.ev, threshold=t.underexposed),
        overexposed(m.ev, threshold=t.overexposed),
    ]


def fired(m, width: int, height: int, **kwargs) -> list[Flag]:
    """Only the checks that fired (same arguments as :func:`evaluate`)."""
    return [f for f in evaluate(m, width, height, **kwargs) if f.fired]


def threshold_names() -> tuple[str, ...]:
    """Names of the settings in :class:`FlagThresholds`, for the central config."""
    return tuple(f.name for f in fields(FlagThresholds))
