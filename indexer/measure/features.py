"""Per-image measurements: pure functions of one working-size RGB array.

Input everywhere: ``rgb`` float32 (h, w, 3) in [0, 1], sRGB-encoded, orientation applied
(as produced by :mod:`indexer.decode`). Output: a :class:`Features` dataclass of plain
numbers, int64 hashes and small arrays. Bump :data:`FEATURES_VERSION` whenever any
definition below changes; rows measured by an older version are re-measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer.measure import hashes
from indexer.measure import linear
from indexer.measure.sizes import THUMB_SIZE

FEATURES_VERSION = 2  # 2: phash_crops gained eight off-centre 85% crops
SHARPNESS_SIZE = 256  # long side, px, at which sharpness is measured
CLIP_HIGH, CLIP_LOW = 250, 5  # 8-bit luma levels counted as clipped


@dataclass
class Features:
    """Measurements of one image. Luma values are on a 0..1 scale (Rec. 601 luma of sRGB).

    ``hist``: uint32 (4, 256) counts of R, G, B, luma. ``thumb``: uint8 grey (th, tw),
    long side ``thumb_size``. ``phash_d4``: int64 (8,) in ``orient.D4`` order.
    ``phash_crops``: int64 (10,) in ``hashes.CROP_SPECS`` order: centred 90% and 80%
    crops, then 85% crops anchored top-left, top-right, bottom-left, bottom-right, top,
    bottom, left and right (version 1 stored only the first two). ``ev``: log2 of the mean
    linear luminance over 18% grey. ``sharpness``: variance of the Laplacian of grey
    (0..255) at :data:`SHARPNESS_SIZE`. ``colourfulness``: Hasler & Süsstrunk (2003) M.
    """

    phash: int
    dhash: int
    phash_d4: np.ndarray
    phash_crops: np.ndarray
    hist: np.ndarray
    luma_mean: float
    luma_std: float
    luma_p1: float
    luma_p50: float
    luma_p99: float
    clip_high: float
    clip_low: float
    entropy: float
    sharpness: float
    colourfulness: float
    ev: float
    thumb: np.ndarray


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 with rounding."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def luma8(rgb8: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of uint8 RGB as Pillow's ``convert('L')`` computes it; uint8 (h, w)."""
    r, g, b = (rgb8[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def histograms(rgb8: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """uint32 (4, 256): counts of R, G, B and luma levels."""
    planes = (rgb8[..., 0], rgb8[..., 1], rgb8[..., 2], grey)
    return np.stack([np.bincount(p.ravel(), minlength=256) for p in planes]).astype(np.uint32)


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of a histogram; 0 for a flat image, 8 for uniform 8-bit noise."""
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def percentile_from_hist(counts: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) level of a 256-bin histogram, on a 0..1 scale."""
    cdf = np.cumsum(counts, dtype=np.float64)
    level = int(np.searchsorted(cdf, q / 100.0 * cdf[-1], side="left"))
    return min(level, 255) / 255.0


def sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of grey (0..255) at SHARPNESS_SIZE long side."""
    img = Image.fromarray(grey)
    if max(img.size) != SHARPNESS_SIZE:
        scale = SHARPNESS_SIZE / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    return float(laplacian(np.asarray(img, dtype=np.float32)).var())


def laplacian(a: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian with mirrored edges, equal to ``scipy.ndimage.laplace``
    (mode 'reflect'); NumPy only, so worker processes skip importing scipy.ndimage."""
    p = np.pad(a, 1, mode="symmetric")
    return (p[:-2, 1:-1] + p[2:, 1:-1]) + (p[1:-1, :-2] + p[1:-1, 2:]) - 4 * a


def colourfulness(rgb8: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M on 0..255 units; ~0 for grey images."""
    r, g, b = (rgb8[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def thumbnail(grey: np.ndarray, size: int) -> np.ndarray:
    """uint8 grey thumbnail with the long side ``size`` (never enlarged), aspect kept."""
    img = Image.fromarray(grey)
    if max(img.size) > size:
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def measure(rgb: np.ndarray, *, thumb_size: int = THUMB_SIZE) -> Features:
    """All features of one working-size image (see module docstring for the input)."""
    rgb8 = to_uint8(rgb)
    grey = luma8(rgb8)
    hist = histograms(rgb8, grey)
    luma = grey.astype(np.float32) / 255.0
    total = grey.size
    d4 = hashes.phash_d4(grey)  # its identity entry is the pHash: no second resize and DCT
    return Features(
        phash=int(d4[0]), dhash=hashes.dhash(grey),
        phash_d4=d4, phash_crops=hashes.crop_phashes(grey),
        hist=hist,
        luma_mean=float(luma.mean()), luma_std=float(luma.std()),
        luma_p1=percentile_from_hist(hist[3], 1), luma_p50=percentile_from_hist(hist[3], 50),
        luma_p99=percentile_from_hist(hist[3], 99),
        clip_high=float(hist[3, CLIP_HIGH:].sum()) / total,
        clip_low=float(hist[3, :CLIP_LOW + 1].sum()) / total,
        entropy=entropy_bits(hist[3]), sharpness=sharpness(grey),
        colourfulness=colourfulness(rgb8), ev=linear.exposure_ev(rgb),
        thumb=thumbnail(grey, thumb_size),
    )
