"""A vectorised first look at candidate pairs of frames: the best correlation over small shifts.

The photos' verification (:func:`indexer.match.verify.compare`: phase correlation, scale
search, rank correlations, tiles) costs 50-150 ms a pair on a busy core. Candidate pairs of
dataset frames are many: the hashes of 3,600 smooth 96x96 frames propose ~10 pairs per
frame by chance (crop-channel hits within 12-14 bits), so verifying them all took minutes.
Here every candidate pair of equal-size frames is scored at once: both frames zero-mean
and unit-variance, ``b`` turned by the pair's proposed D4 transform, and the Pearson
correlation taken at every shift up to :data:`MAX_SHIFT` of the side, as one batch of
FFTs (zero-padded by the largest shift, so no wrap-around). A copy, mirrored copy, resized (down and up) copy
or copy shifted by a few pixels scores 0.9-1.0; unrelated frames score well under
:data:`MIN_CORRELATION`. Pairs under it are dropped; the rest are verified as photos are,
so verdicts and evidence are the photos'. Pairs proposed at another scale (crops) and
frames of other shapes are kept for verification unscreened.

Input: uint8 grey frames (n, H, W) (the stored thumbnails: the frames themselves up to
128 px). Output: float64 (n,) correlations in [-1, 1].
"""
from __future__ import annotations

import numpy as np

from indexer.measure import orient

MAX_SHIFT = 0.125  # fraction of the side searched each way: 12 px of 96 (photos' shifted copies: 1-5%)
MIN_CORRELATION = 0.8  # below it no pair is verified: 3,600 smooth random 96x96 frames' chance
# candidates scored at most 0.68, their planted mirrored, resized and 3 px shifted copies 0.96-1.0
SAME_SCALE = 0.03  # a proposal's scale hint within 3% of 1: screened at scale 1


def standardise(frames: np.ndarray) -> np.ndarray:
    """float64 (n, H, W): each frame minus its mean over its standard deviation (flat: 0)."""
    x = np.asarray(frames, np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    sd = x.std(axis=(1, 2), keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def shifted_correlation(a: np.ndarray, b: np.ndarray, max_shift: float = MAX_SHIFT) -> np.ndarray:
    """float64 (n,): for each pair of (n, H, W) frames, the largest Pearson-like
    correlation sum(a(p) b(p - s)) / (H W) of the standardised frames over shifts s up
    to ``max_shift`` of each side (a shifted copy loses only the uncovered border)."""
    n, h, w = a.shape
    dy, dx = max(1, int(h * max_shift)), max(1, int(w * max_shift))
    size = (h + dy, w + dx)  # padded by the largest shift: lags up to it do not wrap around
    fa = np.fft.rfft2(standardise(a), s=size)
    fb = np.fft.rfft2(standardise(b), s=size)
    corr = np.fft.irfft2(fa * np.conj(fb), s=size) / (h * w)
    rows = np.r_[0:dy + 1, h:h + dy]
    cols = np.r_[0:dx + 1, w:w + dx]
    return corr[:, rows][:, :, cols].reshape(n, -1).max(axis=1)


def screen(pairs: list[tuple[np.ndarray, np.ndarray, str]], chunk: int = 256) -> np.ndarray:
    """float64 (n,): the score of each ``(a, b, transform)`` (``a ~ orient.apply(b,
    transform)``, uint8 (H, W) frames of one shape after the transform), in chunks of
    ``chunk`` pairs (~2 x 256 x 108 x 55 complex: 24 MB at 96 px)."""
    out = np.empty(len(pairs))
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        a = np.stack([p[0] for p in part])
        b = np.stack([orient.apply(p[1], p[2]) for p in part])
        out[start:start + len(part)] = shifted_correlation(a, b)
    return out
