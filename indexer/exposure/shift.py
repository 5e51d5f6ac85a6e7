"""Sub-pixel translation of images: resample by a shift, and measure the shift of a pair.

Pure functions over float arrays, shared by the exposure difference images
(:mod:`indexer.exposure.diffimages`) and the thumbnail transfer curve
(:mod:`indexer.exposure.transfer`), which both need B moved onto A's grid.
"""
from __future__ import annotations

import math

import numpy as np

from indexer.measure.align import phase_shift, rank_normalise


def _take(img: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """``out[y, x] = img[y + ky, x + kx]``, zero where that falls outside."""
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    ys, yd = slice(max(ky, 0), min(h, h + ky)), slice(max(-ky, 0), min(h, h - ky))
    xs, xd = slice(max(kx, 0), min(w, w + kx)), slice(max(-kx, 0), min(w, w - kx))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[yd, xd] = img[ys, xs]
    return out


def _bilinear_shift(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Bilinear ``out[y, x] = a(y - dy, x - dx)`` with zeros outside: four weighted
    integer translations (same values as ``ndimage.shift(order=1)``, and faster: whole-array
    slices instead of its per-pixel interpolation)."""
    ky, kx = math.floor(-dy), math.floor(-dx)
    fy, fx = np.float32(-dy - ky), np.float32(-dx - kx)
    out = _take(a, ky, kx) * ((1 - fy) * (1 - fx))
    for wy, wx, oy, ox in ((1 - fy, fx, 0, 1), (fy, 1 - fx, 1, 0), (fy, fx, 1, 1)):
        if wy * wx > 0:
            out += _take(a, ky + oy, kx + ox) * np.float32(wy * wx)
    return out


def shift_image(img: np.ndarray, dy: float, dx: float, *,
                order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``out[y, x] = img[y - dy, x - dx]`` (bilinear for ``order`` 1, else a scipy
    spline of that order), per channel; returns (float32 like ``img``, bool (H, W)
    mask of output pixels whose source lies inside ``img``)."""
    a = np.asarray(img, dtype=np.float32)
    if order == 1:
        out = _bilinear_shift(a, dy, dx)
    else:
        from scipy import ndimage  # only spline orders need it; its import costs ~0.3 s

        shift = (dy, dx) + (0,) * (a.ndim - 2)
        out = ndimage.shift(a, shift, order=order, mode="constant", cval=0.0)
    ys = np.arange(a.shape[0], dtype=np.float64)[:, None] - dy
    xs = np.arange(a.shape[1], dtype=np.float64)[None, :] - dx
    eps = 1e-6
    mask = (ys >= -eps) & (ys <= a.shape[0] - 1 + eps) & (xs >= -eps) & (xs <= a.shape[1] - 1 + eps)
    return out.astype(np.float32, copy=False), mask


def _block_mean(img: np.ndarray, f: int) -> np.ndarray:
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    return img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def measure_shift(ga: np.ndarray, gb: np.ndarray, *, upsample: int = 20, crop: int = 1024,
                  coarse: int = 512) -> tuple[float, float, float]:
    """(dy, dx, peak) registering grey ``gb`` onto grey ``ga`` (same shape).

    Coarse to fine: phase correlation of rank-normalised block means (long side <=
    ``coarse``) finds the shift robustly, even when fine detail decorrelates (noise,
    tone mapping, slight rotation); it is then refined at full resolution on the central
    ``crop`` pixels of A against B's window displaced by the coarse shift. The fine
    result is kept only when it stays within one coarse pixel of the coarse one.
    """
    f = max(1, int(math.ceil(max(ga.shape) / coarse)))
    s = phase_shift(rank_normalise(_block_mean(ga, f)), rank_normalise(_block_mean(gb, f)),
                    upsample=upsample)
    dy, dx, peak = s.dy * f, s.dx * f, s.peak
    iy, ix = int(round(dy)), int(round(dx))
    h, w = ga.shape
    size_y, size_x = min(crop, h - abs(iy)), min(crop, w - abs(ix))
    if size_y < 32 or size_x < 32:
        return dy, dx, peak
    y0, x0 = (h - size_y) // 2, (w - size_x) // 2
    # both windows inside their images: y0 in [max(0, iy), min(h, h + iy) - size_y]
    y0 = min(max(y0, max(0, iy)), h - size_y + min(0, iy))
    x0 = min(max(x0, max(0, ix)), w - size_x + min(0, ix))
    ref = ga[y0:y0 + size_y, x0:x0 + size_x]
    mov = gb[y0 - iy:y0 - iy + size_y, x0 - ix:x0 - ix + size_x]
    fine = phase_shift(rank_normalise(ref), rank_normalise(mov), upsample=upsample)
    if abs(iy + fine.dy - dy) <= f and abs(ix + fine.dx - dx) <= f:
        return iy + fine.dy, ix + fine.dx, fine.peak
    return dy, dx, peak
